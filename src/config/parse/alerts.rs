//! The `[alerts]` table and its `[[alerts.webhook]]` entries: each key read
//! and checked, then the rules that tie them together (Telegram takes
//! `bot_token` and `chat_id`, the others a `url`; secrets are `${NAME}`
//! references to credentials, never literals).

use std::collections::HashMap;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::feed::valid_feed_name;
use super::set;
use super::walker::{Value, Walker};
use crate::alert::Severity;
use crate::config::{AlertsConfig, WebhookConfig, WebhookFormat};

pub(super) const ALERTS_KEYS: &[&str] = &[
    "heartbeat_url",
    "heartbeat_fail_url",
    "heartbeat_every",
    "webhook",
    "daily_report",
];
pub(super) const WEBHOOK_KEYS: &[&str] = &[
    "name",
    "format",
    "url",
    "bot_token",
    "chat_id",
    "api_url",
    "min_severity",
];
/// The shortest accepted `heartbeat_every`: services such as
/// healthchecks.io count pings per minute.
const MIN_HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

impl Walker<'_, '_> {
    pub(super) fn alerts(&mut self, t: &DeTable<'_>, a: &mut AlertsConfig) {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("alerts.{key}");
            match key {
                "heartbeat_url" => set(&mut a.heartbeat_url, self.url_template(v, &kp).map(Some)),
                "heartbeat_fail_url" => set(
                    &mut a.heartbeat_fail_url,
                    self.url_template(v, &kp).map(Some),
                ),
                "heartbeat_every" => set(
                    &mut a.heartbeat_every,
                    self.duration_within(v, &kp, MIN_HEARTBEAT_EVERY, None),
                ),
                "webhook" => self.webhooks(v, a),
                "daily_report" => {
                    if let Some(text) = self.nonempty_string(v, &kp) {
                        match crate::config::DailyReportConfig::parse(&text) {
                            Ok(d) => a.daily_report = Some(d),
                            Err(e) => self.report(v.span(), &kp, e),
                        }
                    }
                }
                _ => self.unknown_key(k.span(), &kp, key, "[alerts]", ALERTS_KEYS),
            }
        }
        if a.heartbeat_fail_url.is_some() && a.heartbeat_url.is_none() {
            if let Some(v) = t.get("heartbeat_fail_url") {
                self.report(
                    v.span(),
                    "alerts.heartbeat_fail_url",
                    "has no heartbeat_url beside it; add heartbeat_url (the URL pinged while healthy)",
                );
            }
        }
    }

    fn webhooks(&mut self, v: &Value<'_>, a: &mut AlertsConfig) {
        let items = match v.get_ref() {
            DeValue::Array(items) => items,
            _ => {
                self.report(
                    v.span(),
                    "alerts.webhook",
                    "each webhook is an array-of-tables entry: write [[alerts.webhook]] (double brackets)",
                );
                return;
            }
        };
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let kp = format!("alerts.webhook[{i}]");
            let Some(t) = self.table(item, &kp, "a table (an [[alerts.webhook]] header)") else {
                continue;
            };
            let Some(w) = self.webhook(&kp, t, item) else {
                continue;
            };
            if let Some(j) = names.get(&w.name) {
                let span = t.get("name").map_or(item.span(), |v| v.span());
                self.report(
                    span,
                    &format!("{kp}.name"),
                    format!(
                        "webhook name \"{}\" is already used by alerts.webhook[{j}]; give each webhook a unique name",
                        w.name
                    ),
                );
                continue;
            }
            names.insert(w.name.clone(), i);
            a.webhooks.push(w);
        }
    }

    fn webhook(&mut self, kp: &str, t: &DeTable<'_>, item: &Value<'_>) -> Option<WebhookConfig> {
        let before = self.problems.len();
        let (name, format, mut w) = self.webhook_keys(kp, t);
        if name.is_none() && t.get("name").is_none() {
            self.report(
                item.span(),
                &format!("{kp}.name"),
                "is missing; add name = \"ops\"",
            );
        }
        match format {
            None if t.get("format").is_none() => self.report(
                item.span(),
                &format!("{kp}.format"),
                "is missing; add format = \"slack\" (or discord, telegram, json)",
            ),
            None => {}
            Some(WebhookFormat::Telegram) => self.telegram_keys(kp, t, item),
            Some(f) => self.url_webhook_keys(kp, t, item, f, w.url.as_deref()),
        }
        if self.problems.len() > before {
            return None;
        }
        w.name = name?;
        w.format = format?;
        Some(w)
    }

    /// Each key of one `[[alerts.webhook]]` read and checked on its own:
    /// its name, its format and the rest (name and format still to be set).
    fn webhook_keys(
        &mut self,
        kp: &str,
        t: &DeTable<'_>,
    ) -> (Option<String>, Option<WebhookFormat>, WebhookConfig) {
        let mut name = None;
        let mut format = None;
        let mut w = WebhookConfig {
            name: String::new(),
            format: WebhookFormat::Json,
            url: None,
            bot_token: None,
            chat_id: None,
            api_url: None,
            min_severity: Severity::Notice,
        };
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kpk = format!("{kp}.{key}");
            match key {
                "name" => {
                    let n = self.nonempty_string(v, &kpk);
                    match n {
                        Some(n) if valid_feed_name(&n) => name = Some(n),
                        Some(_) => self.report(
                            v.span(),
                            &kpk,
                            "use lower-case letters, digits, - and _ only (e.g. \"ops\")",
                        ),
                        None => {}
                    }
                }
                "format" => {
                    format = self
                        .choice(v, &kpk, "webhook format", WebhookFormat::NAMES)
                        .and_then(WebhookFormat::parse)
                }
                "url" => w.url = self.url_template(v, &kpk),
                "bot_token" => w.bot_token = self.secret_template(v, &kpk, "TELEGRAM_BOT_TOKEN"),
                "chat_id" => w.chat_id = self.nonempty_string(v, &kpk),
                "api_url" => w.api_url = self.url_template(v, &kpk),
                "min_severity" => set(
                    &mut w.min_severity,
                    self.choice(v, &kpk, "severity", Severity::NAMES)
                        .and_then(Severity::parse),
                ),
                _ => self.unknown_key(k.span(), &kpk, key, "[[alerts.webhook]]", WEBHOOK_KEYS),
            }
        }
        (name, format, w)
    }

    /// A telegram webhook needs `bot_token` and `chat_id`, and takes no `url`.
    fn telegram_keys(&mut self, kp: &str, t: &DeTable<'_>, item: &Value<'_>) {
        let at = |key: &str| t.get(key).map_or(item.span(), |v| v.span());
        for (key, example) in [
            ("bot_token", "bot_token = \"${TELEGRAM_BOT_TOKEN}\""),
            ("chat_id", "chat_id = \"-100123\""),
        ] {
            if t.get(key).is_none() {
                self.report(
                    item.span(),
                    &format!("{kp}.{key}"),
                    format!("is missing: a telegram webhook needs it; add {example}"),
                );
            }
        }
        if t.get("url").is_some() {
            self.report(
                at("url"),
                &format!("{kp}.url"),
                "a telegram webhook takes bot_token and chat_id, not url (api_url overrides the Bot API's address)",
            );
        }
    }

    /// A webhook posting to a URL (slack, discord, json) needs `url` (a
    /// `${NAME}` credential but for json), and takes no telegram keys.
    fn url_webhook_keys(
        &mut self,
        kp: &str,
        t: &DeTable<'_>,
        item: &Value<'_>,
        f: WebhookFormat,
        url: Option<&str>,
    ) {
        let at = |key: &str| t.get(key).map_or(item.span(), |v| v.span());
        if t.get("url").is_none() {
            self.report(
                item.span(),
                &format!("{kp}.url"),
                format!(
                    "is missing: a {} webhook needs it; add url = \"${{{}_WEBHOOK_URL}}\" and put the URL in the credentials file",
                    f.as_str(),
                    f.as_str().to_uppercase()
                ),
            );
        }
        if f != WebhookFormat::Json {
            if let Some(u) = url {
                if crate::config::template_names(u).is_empty() {
                    self.report(
                        at("url"),
                        &format!("{kp}.url"),
                        format!(
                            "a {} webhook URL is a secret (whoever has it can post): write url = \"${{{}_WEBHOOK_URL}}\" and set it with brokerguard set-credential {}_WEBHOOK_URL",
                            f.as_str(),
                            f.as_str().to_uppercase(),
                            f.as_str().to_uppercase()
                        ),
                    );
                }
            }
        }
        for key in ["bot_token", "chat_id", "api_url"] {
            if t.get(key).is_some() {
                self.report(
                    at(key),
                    &format!("{kp}.{key}"),
                    format!("only a telegram webhook takes {key}; remove it"),
                );
            }
        }
    }

    /// An `http(s)://` URL template (its `${NAME}`s checked).
    fn url_template(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.template(v, key)?;
        if !(s.starts_with("${") || s.starts_with("http://") || s.starts_with("https://")) {
            self.report(
                v.span(),
                key,
                "must start with http:// or https:// (or be a ${NAME} credential holding the URL)",
            );
            return None;
        }
        Some(s)
    }

    /// A template that must reference a credential: a literal secret in
    /// the configuration is refused.
    fn secret_template(&mut self, v: &Value<'_>, key: &str, example: &str) -> Option<String> {
        let s = self.template(v, key)?;
        if crate::config::template_names(&s).is_empty() {
            self.report(
                v.span(),
                key,
                format!(
                    "is a secret: write \"${{{example}}}\" and set it with brokerguard set-credential {example}"
                ),
            );
            return None;
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::alert::Severity;
    use crate::config::WebhookFormat;
    use std::time::Duration;

    #[test]
    fn reads_every_key() {
        let cfg = parse(
            r#"
[alerts]
heartbeat_url = "https://hc-ping.com/${HC_UUID}"
heartbeat_every = "30s"
daily_report = "08:30 Asia/Kolkata"
[[alerts.webhook]]
name = "ops"
format = "telegram"
bot_token = "${TELEGRAM_BOT_TOKEN}"
chat_id = "-100123"
api_url = "http://127.0.0.1:9/"
min_severity = "error"
[[alerts.webhook]]
name = "team"
format = "slack"
url = "${SLACK_WEBHOOK_URL}"
"#,
        )
        .unwrap();
        let a = &cfg.alerts;
        assert_eq!(a.heartbeat_every, Duration::from_secs(30));
        assert_eq!(
            a.daily_report.as_ref().map(|d| d.to_string()).as_deref(),
            Some("08:30 Asia/Kolkata")
        );
        assert_eq!(
            a.fail_url().as_deref(),
            Some("https://hc-ping.com/${HC_UUID}/fail")
        );
        assert_eq!(a.webhooks.len(), 2);
        assert_eq!(a.webhooks[0].format, WebhookFormat::Telegram);
        assert_eq!(a.webhooks[0].min_severity, Severity::Error);
        assert_eq!(a.webhooks[1].min_severity, Severity::Notice);
        assert_eq!(a.webhooks[1].url.as_deref(), Some("${SLACK_WEBHOOK_URL}"));
    }

    #[test]
    fn rules_name_the_key_and_the_fix() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n",
                "alerts.webhook[0].url",
                "is a secret",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"telegram\"\nbot_token = \"123:abc\"\nchat_id = \"1\"\n",
                "alerts.webhook[0].bot_token",
                "set-credential TELEGRAM_BOT_TOKEN",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"telegram\"\nbot_token = \"${T}\"\n",
                "alerts.webhook[0].chat_id",
                "is missing",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"discord\"\n",
                "alerts.webhook[0].url",
                "is missing",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"teams\"\nurl = \"${U}\"\n",
                "alerts.webhook[0].format",
                "unknown webhook format",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"json\"\nurl = \"${U}\"\nchat_id = \"1\"\n",
                "alerts.webhook[0].chat_id",
                "only a telegram webhook",
            ),
            (
                "[[alerts.webhook]]\nname = \"a\"\nformat = \"json\"\nurl = \"${U}\"\n[[alerts.webhook]]\nname = \"a\"\nformat = \"json\"\nurl = \"${U}\"\n",
                "alerts.webhook[1].name",
                "already used",
            ),
            (
                "[alerts]\nheartbeat_url = \"ftp://x\"\n",
                "alerts.heartbeat_url",
                "http://",
            ),
            (
                "[alerts]\nheartbeat_fail_url = \"https://x/f\"\n",
                "alerts.heartbeat_fail_url",
                "no heartbeat_url",
            ),
            (
                "[alerts]\nheartbeat_evry = \"1m\"\n",
                "alerts.heartbeat_evry",
                "did you mean",
            ),
            (
                "[alerts]\ndaily_report = \"8:30\"\n",
                "alerts.daily_report",
                "HH:MM",
            ),
            (
                "[alerts]\ndaily_report = \"08:30 Mars/Olympus\"\n",
                "alerts.daily_report",
                "unknown time zone",
            ),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
    }

    #[test]
    fn a_json_webhook_may_be_a_literal_url() {
        let cfg = parse(
            "[[alerts.webhook]]\nname = \"local\"\nformat = \"json\"\nurl = \"http://127.0.0.1:9000/alerts\"\n",
        )
        .unwrap();
        assert_eq!(cfg.alerts.webhooks[0].format, WebhookFormat::Json);
    }
}
