//! What a webhook receives: one alert rendered as a one-line summary
//! ("kite_nse down for 1m2s (backoff)", "kite_nse recovered after 4m12s")
//! and as the body each format expects. Pure: the time and host come in as
//! arguments, so every shape is table-tested.
//!
//! The shapes (README, "Webhook alerts"):
//! - slack: `{"text": summary, "blocks": [section (summary), context (fields)]}`
//! - discord: `{"content": summary, "embeds": [{title, description, color,
//!   fields, timestamp}], "allowed_mentions": {"parse": []}}`
//! - telegram: `sendMessage` with `{"chat_id", "text", "disable_web_page_preview"}`
//! - json: `{"schema": 1, "source": "brokerguard", "host", "alert",
//!   "severity", "summary", "fields": {..}, "at", "test"}`
//!
//! Alert fields never hold secrets (see [`Alert::with`]); nothing else is
//! added here but the host name and the time.

use crate::alert::{Alert, AlertKind, Severity};
use crate::config::WebhookFormat;
use serde_json::{Value, json};
use std::time::SystemTime;

/// Discord's longest `content` and embed description.
const DISCORD_TEXT_MAX: usize = 2000;
/// Discord: at most 25 fields per embed, 1024 characters per value.
const DISCORD_FIELDS_MAX: usize = 25;
const DISCORD_FIELD_MAX: usize = 1024;
/// Telegram's longest message.
const TELEGRAM_TEXT_MAX: usize = 4096;
/// Slack's longest section or context text.
const SLACK_TEXT_MAX: usize = 3000;
/// Discord embed colours: red for errors, green for recoveries.
const COLOR_ERROR: u32 = 0xd0_30_30;
const COLOR_NOTICE: u32 = 0x2e_a0_43;

/// One alert ready to render: the alert, when it was raised, on which host,
/// and whether it is `alert-test`'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub alert: Alert,
    pub at: SystemTime,
    pub host: String,
    pub test: bool,
}

impl Outgoing {
    pub fn new(alert: Alert, at: SystemTime, host: &str) -> Self {
        Outgoing {
            alert,
            at,
            host: host.to_string(),
            test: false,
        }
    }

    /// The alert `alert-test` sends.
    pub fn test(at: SystemTime, host: &str) -> Self {
        let alert = Alert::new(AlertKind::FeedRecovered)
            .with("feed", "alert-test")
            .with(
                "note",
                "a test from brokerguard alert-test: this webhook works",
            );
        Outgoing {
            alert,
            at,
            host: host.to_string(),
            test: true,
        }
    }

    pub fn severity(&self) -> Severity {
        self.alert.kind.severity()
    }
}

/// The one line a person reads first.
pub fn summary(o: &Outgoing) -> String {
    let a = &o.alert;
    let feed = a.get("feed");
    let s = match (a.kind, feed) {
        _ if o.test => "brokerguard alert-test: this webhook works".to_string(),
        (AlertKind::FeedDown, Some(f)) => {
            let mut s = format!("{f} down");
            if let Some(d) = a.get("down_for") {
                s += &format!(" for {d}");
            }
            if let Some(st) = a.get("state") {
                s += &format!(" ({st})");
            }
            if let Some(e) = a.get("last_error").filter(|e| *e != "none") {
                s += &format!(": {e}");
            }
            s
        }
        (AlertKind::FeedRecovered, Some(f)) => match a.get("downtime") {
            Some(d) if d != "unknown" => format!("{f} recovered after {d}"),
            _ => format!("{f} recovered"),
        },
        (AlertKind::DailyReport, _) => format!(
            "daily report: {} feeds, {} available, {} reconnects, {} alerts over {}",
            a.get("feeds").unwrap_or("0"),
            a.get("available").unwrap_or("n/a"),
            a.get("reconnects").unwrap_or("0"),
            a.get("alerts").unwrap_or("0"),
            a.get("period").unwrap_or("the day"),
        ),
        (AlertKind::FeedFlapping, Some(f)) => {
            let mut s = format!("{f} flapping");
            if let (Some(n), Some(w)) = (a.get("connections"), a.get("within")) {
                s += &format!(": {n} connections within {w}");
            }
            s
        }
        (kind, _) => {
            let subject = feed.or(a.get("name")).or(a.get("account"));
            match subject {
                Some(s) => format!("{kind} {s}"),
                None => kind.to_string(),
            }
        }
    };
    let host = if o.host.is_empty() {
        String::new()
    } else {
        format!(" on {}", o.host)
    };
    format!("{s}{host}")
}

/// The body for `format`; Telegram's needs the chat.
pub fn body(format: WebhookFormat, o: &Outgoing, chat_id: Option<&str>) -> String {
    let v = match format {
        WebhookFormat::Slack => slack(o),
        WebhookFormat::Discord => discord(o),
        WebhookFormat::Telegram => telegram(o, chat_id.unwrap_or_default()),
        WebhookFormat::Json => json_doc(o),
    };
    v.to_string()
}

fn at(o: &Outgoing) -> String {
    crate::timefmt::rfc3339(o.at)
}

fn json_doc(o: &Outgoing) -> Value {
    let fields: serde_json::Map<String, Value> = o
        .alert
        .fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    json!({
        "schema": 1,
        "source": "brokerguard",
        "host": o.host,
        "alert": o.alert.kind.as_str(),
        "severity": o.severity().as_str(),
        "summary": summary(o),
        "fields": fields,
        "at": at(o),
        "test": o.test,
    })
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(o: &Outgoing) -> Value {
    let summary = summary(o);
    let icon = match o.severity() {
        Severity::Error => ":red_circle:",
        Severity::Notice => ":large_green_circle:",
    };
    let mut details: Vec<String> = o
        .alert
        .fields
        .iter()
        .map(|(k, v)| format!("*{k}*: {}", slack_escape(v)))
        .collect();
    details.push(format!("*at*: {}", at(o)));
    json!({
        "text": summary,
        "blocks": [
            {"type": "section",
             "text": {"type": "mrkdwn",
                      "text": truncate(&format!("{icon} *{}*", slack_escape(&summary)), SLACK_TEXT_MAX)}},
            {"type": "context",
             "elements": [{"type": "mrkdwn",
                           "text": truncate(&details.join("\n"), SLACK_TEXT_MAX)}]}
        ]
    })
}

fn discord(o: &Outgoing) -> Value {
    let summary = summary(o);
    let fields: Vec<Value> = o
        .alert
        .fields
        .iter()
        .take(DISCORD_FIELDS_MAX)
        .map(|(k, v)| {
            let v = if v.is_empty() { "(empty)" } else { v.as_str() };
            json!({"name": k, "value": truncate(v, DISCORD_FIELD_MAX), "inline": true})
        })
        .collect();
    let color = match o.severity() {
        Severity::Error => COLOR_ERROR,
        Severity::Notice => COLOR_NOTICE,
    };
    json!({
        "content": truncate(&summary, DISCORD_TEXT_MAX),
        "embeds": [{
            "title": o.alert.kind.as_str(),
            "description": truncate(&summary, DISCORD_TEXT_MAX),
            "color": color,
            "fields": fields,
            "timestamp": at(o),
        }],
        // An alert's text must never ping @everyone.
        "allowed_mentions": {"parse": []},
    })
}

fn telegram(o: &Outgoing, chat_id: &str) -> Value {
    let mut text = summary(o);
    text.push('\n');
    for (k, v) in &o.alert.fields {
        text += &format!("\n{k}: {v}");
    }
    text += &format!("\nat: {}", at(o));
    json!({
        "chat_id": chat_id,
        "text": truncate(&text, TELEGRAM_TEXT_MAX),
        "disable_web_page_preview": true,
    })
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn down() -> Outgoing {
        Outgoing::new(
            Alert::new(AlertKind::FeedDown)
                .with("feed", "kite_nse")
                .with("state", "backoff")
                .with("down_for", "1m2s")
                .with("last_error", "connection reset <by> peer & co"),
            t0(),
            "droplet-a",
        )
    }

    fn up() -> Outgoing {
        Outgoing::new(
            Alert::new(AlertKind::FeedRecovered)
                .with("feed", "kite_nse")
                .with("downtime", "4m12s"),
            t0(),
            "droplet-a",
        )
    }

    #[test]
    fn summaries_read_as_sentences() {
        let cases = [
            (
                down(),
                "kite_nse down for 1m2s (backoff): connection reset <by> peer & co on droplet-a",
            ),
            (up(), "kite_nse recovered after 4m12s on droplet-a"),
            (
                Outgoing::new(
                    Alert::new(AlertKind::CredentialLost).with("name", "X_TOKEN"),
                    t0(),
                    "",
                ),
                "credential_lost X_TOKEN",
            ),
            (
                Outgoing::new(
                    Alert::new(AlertKind::FeedFlapping)
                        .with("feed", "k")
                        .with("connections", 5)
                        .with("within", "1m"),
                    t0(),
                    "h",
                ),
                "k flapping: 5 connections within 1m on h",
            ),
            (
                Outgoing::test(t0(), "h"),
                "brokerguard alert-test: this webhook works on h",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(summary(&o), want);
        }
    }

    #[test]
    fn every_format_has_its_documented_shape() {
        let o = down();
        let v: Value = serde_json::from_str(&body(WebhookFormat::Slack, &o, None)).unwrap();
        assert_eq!(v["text"], summary(&o));
        assert_eq!(v["blocks"][0]["type"], "section");
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("&lt;by&gt; peer &amp; co")
        );
        assert!(
            v["blocks"][1]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("*feed*: kite_nse")
        );

        let v: Value = serde_json::from_str(&body(WebhookFormat::Discord, &o, None)).unwrap();
        assert_eq!(v["content"], summary(&o));
        assert_eq!(v["embeds"][0]["title"], "feed_down");
        assert_eq!(v["embeds"][0]["color"], COLOR_ERROR);
        assert_eq!(v["embeds"][0]["fields"][0]["name"], "feed");
        assert_eq!(v["embeds"][0]["fields"][0]["value"], "kite_nse");
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));

        let v: Value =
            serde_json::from_str(&body(WebhookFormat::Telegram, &up(), Some("-100123"))).unwrap();
        assert_eq!(v["chat_id"], "-100123");
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("kite_nse recovered after 4m12s on droplet-a\n"));
        assert!(text.contains("\ndowntime: 4m12s"));

        let v: Value = serde_json::from_str(&body(WebhookFormat::Json, &o, None)).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["alert"], "feed_down");
        assert_eq!(v["severity"], "error");
        assert_eq!(v["host"], "droplet-a");
        assert_eq!(v["fields"]["state"], "backoff");
        assert_eq!(v["test"], false);
        assert!(v["at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn long_texts_are_cut_to_each_services_limit() {
        let long = "x".repeat(5000);
        let o = Outgoing::new(
            Alert::new(AlertKind::FeedDown)
                .with("feed", "f")
                .with("last_error", &long),
            t0(),
            "h",
        );
        let v: Value = serde_json::from_str(&body(WebhookFormat::Discord, &o, None)).unwrap();
        assert_eq!(
            v["content"].as_str().unwrap().chars().count(),
            DISCORD_TEXT_MAX
        );
        let v: Value = serde_json::from_str(&body(WebhookFormat::Telegram, &o, Some("1"))).unwrap();
        assert_eq!(
            v["text"].as_str().unwrap().chars().count(),
            TELEGRAM_TEXT_MAX
        );
    }
}
