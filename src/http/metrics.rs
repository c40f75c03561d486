//! `/metrics`: the Prometheus text exposition format 0.0.4, written by
//! hand into one reused buffer (nothing is allocated per feed beyond the
//! text), and the same text for node_exporter's textfile collector.
//!
//! Names, units and labels follow Prometheus' naming guide: a
//! `brokerguard_` prefix, base units (`_seconds`, `_bytes`), `_total` on
//! counters, `_timestamp_seconds` on instants; labels `feed`, `broker`,
//! `state`, `credential`, `alert` (a contract, like the names). Each family
//! is written whole (HELP, TYPE, then every sample), as the format wants.
//! A broker's own series come from the registry
//! ([`crate::brokers::registry::Broker::note_series`]), so nothing here
//! names a broker.

use super::board::Published;
use super::process::ProcessStats;
use crate::alert::{self, AlertKind};
use crate::brokers::registry::BROKERS;
use crate::fanout::FanoutStats;
use crate::feed::FeedState;
use crate::status::ready::{feed_ready, is_ready};
use crate::status::schema::FeedStatus;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `Content-Type` of the text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything a scrape reads besides the publication.
pub struct Inputs {
    pub fanout: FanoutStats,
    pub process: ProcessStats,
    pub started_at: SystemTime,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes a label value escaped as the format says (`\\`, `\"`, `\n`).
fn label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name{feed="..",broker=".."` (left open for more labels).
fn feed_sample_start(out: &mut String, name: &str, f: &FeedStatus) {
    out.push_str(name);
    out.push_str("{feed=\"");
    label_value(out, &f.name);
    out.push_str("\",broker=\"");
    label_value(out, &f.broker);
    out.push('"');
}

fn feed_gauge(
    out: &mut String,
    p: &Published,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&FeedStatus) -> Option<f64>,
) {
    family(out, name, kind, help);
    for f in &p.doc.feeds {
        if let Some(v) = value(f) {
            feed_sample_start(out, name, f);
            let _ = writeln!(out, "}} {v}");
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A family of one unlabelled sample.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Writes the whole text into `out` (cleared first).
pub fn render(p: &Published, inputs: &Inputs, out: &mut String) {
    out.clear();
    agent_series(out, p);
    feed_series(out, p);
    broker_series(out, p);
    credentials(out, p);
    fanout_series(out, &inputs.fanout);
    alert_series(out);
    ha_series(out, p);
    process_series(out, inputs);
}

/// The build, and whether the agent is ready.
fn agent_series(out: &mut String, p: &Published) {
    family(
        out,
        "brokerguard_build_info",
        "gauge",
        "The running build: always 1, with its version as a label.",
    );
    out.push_str("brokerguard_build_info{version=\"");
    label_value(out, env!("CARGO_PKG_VERSION"));
    out.push_str("\"} 1\n");
    scalar(
        out,
        "brokerguard_ready",
        "gauge",
        "1 when every required feed is live with data or quiet because its market is closed (/readyz).",
        bool_value(is_ready(&p.doc)),
    );
}

/// Per feed: up, ready, its state, its counters, its market. A table: one
/// call per family.
fn feed_series(out: &mut String, p: &Published) {
    feed_gauge(
        out,
        p,
        "brokerguard_feed_up",
        "gauge",
        "1 while the feed is live (data on this connection) and not flapping.",
        |f| Some(bool_value(f.state == "live" && f.flapping.is_none())),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_feed_ready",
        "gauge",
        "1 while the feed counts as ready: live with data, or quiet because its market is closed.",
        |f| Some(bool_value(feed_ready(f))),
    );
    feed_states(out, p);
    feed_gauge(
        out,
        p,
        "brokerguard_feed_messages_total",
        "counter",
        "Data and heartbeat messages received since the agent started.",
        |f| Some(f.messages as f64),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_feed_reconnects_total",
        "counter",
        "Connections that reached live after the first.",
        |f| Some(f.reconnects as f64),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_feed_restarts_total",
        "counter",
        "Restarts ordered by the watchdog or the agent (a stall, a stuck thread, new credentials).",
        |f| Some(f.restarts as f64),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_feed_last_message_age_seconds",
        "gauge",
        "Seconds since the feed's last data or heartbeat message (absent before the first).",
        |f| f.last_message_age_ms.map(|ms| ms as f64 / 1000.0),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_feed_flapping",
        "gauge",
        "1 while the feed is down with short-lived connections.",
        |f| Some(bool_value(f.flapping.is_some())),
    );
    feed_gauge(
        out,
        p,
        "brokerguard_market_open",
        "gauge",
        "1 while the feed's market is open or in pre-open (always 1 for a 24/7 market).",
        |f| {
            Some(bool_value(
                f.market.as_deref() != Some("closed") && f.state != "closed",
            ))
        },
    );
}

/// One series per feed and state in `FeedState::ALL`: 1 for the feed's.
fn feed_states(out: &mut String, p: &Published) {
    family(
        out,
        "brokerguard_feed_state",
        "gauge",
        "1 for the state the feed is in, 0 for every other state.",
    );
    for f in &p.doc.feeds {
        for s in FeedState::ALL {
            feed_sample_start(out, "brokerguard_feed_state", f);
            let _ = writeln!(
                out,
                ",state=\"{}\"}} {}",
                s.as_str(),
                bool_value(f.state == s.as_str())
            );
        }
        // A state this build's FeedState does not list (a document from a
        // newer writer) still shows as itself.
        if FeedState::parse(&f.state).is_none() {
            feed_sample_start(out, "brokerguard_feed_state", f);
            out.push_str(",state=\"");
            label_value(out, &f.state);
            out.push_str("\"} 1\n");
        }
    }
}

/// The bot's socket: subscribers, and those dropped or refused.
fn fanout_series(out: &mut String, fanout: &FanoutStats) {
    scalar(
        out,
        "brokerguard_fanout_subscribers",
        "gauge",
        "Local processes connected to the fan-out socket.",
        fanout.subscribers,
    );
    scalar(
        out,
        "brokerguard_fanout_dropped_total",
        "counter",
        "Fan-out subscribers disconnected because they fell behind.",
        fanout.dropped_slow,
    );
    scalar(
        out,
        "brokerguard_fanout_refused_total",
        "counter",
        "Fan-out connections refused because fanout_max_subscribers were connected.",
        fanout.refused,
    );
}

/// Alerts raised, by kind, and webhook deliveries given up on.
fn alert_series(out: &mut String) {
    family(
        out,
        "brokerguard_alerts_total",
        "counter",
        "Alerts raised since the agent started (journal alert= lines), by kind.",
    );
    for k in AlertKind::ALL {
        let _ = writeln!(
            out,
            "brokerguard_alerts_total{{alert=\"{}\"}} {}",
            k.as_str(),
            alert::raised(k)
        );
    }
    scalar(
        out,
        "brokerguard_alert_deliveries_failed_total",
        "counter",
        "Alert webhook deliveries given up on (retries spent, or the queue full).",
        crate::alerts::DELIVERIES_FAILED.load(std::sync::atomic::Ordering::Relaxed),
    );
}

/// Failover (`[ha]`) only: a single agent has no role to show.
fn ha_series(out: &mut String, p: &Published) {
    let Some(ha) = &p.doc.agent.ha else {
        return;
    };
    scalar(
        out,
        "brokerguard_ha_leader",
        "gauge",
        "1 while this agent holds the failover lease (runs the private feeds), else 0.",
        bool_value(ha.role == "leader"),
    );
    if let Some(epoch) = ha.epoch {
        scalar(
            out,
            "brokerguard_ha_epoch",
            "gauge",
            "The current leadership's epoch (its etcd create revision); grows at each takeover.",
            epoch,
        );
    }
}

/// The standard `process_` series.
fn process_series(out: &mut String, inputs: &Inputs) {
    let pr = &inputs.process;
    scalar(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        pr.resident_bytes,
    );
    scalar(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        pr.cpu_seconds,
    );
    scalar(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        pr.open_fds,
    );
    scalar(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        unix_seconds(inputs.started_at),
    );
}

/// Each broker's series from its feeds' `info` notes.
fn broker_series(out: &mut String, p: &Published) {
    for b in BROKERS {
        for s in b.note_series() {
            let mut wrote_header = false;
            for f in p.doc.feeds.iter().filter(|f| f.broker == b.name()) {
                let Some(v) = f.info.get(s.note).and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                if !wrote_header {
                    family(
                        out,
                        s.name,
                        if s.counter { "counter" } else { "gauge" },
                        s.help,
                    );
                    wrote_header = true;
                }
                feed_sample_start(out, s.name, f);
                let _ = writeln!(out, "}} {v}");
            }
        }
    }
}

/// Per credential: present, valid, and a day token's expiry.
fn credentials(out: &mut String, p: &Published) {
    let creds = &p.doc.credentials;
    family(
        out,
        "brokerguard_credential_present",
        "gauge",
        "1 when the credential is set (in a credential file, a systemd credential or the environment).",
    );
    for c in creds {
        let _ = writeln!(
            out,
            "brokerguard_credential_present{{credential=\"{}\"}} {}",
            c.name,
            bool_value(c.present)
        );
    }
    family(
        out,
        "brokerguard_credential_valid",
        "gauge",
        "1 when the credential is set, well formed, and no feed using it had it refused (REST check or auth).",
    );
    for c in creds {
        let refused = p.doc.feeds.iter().zip(&p.extra).any(|(f, x)| {
            x.credentials.contains(&c.name)
                && (f.state == "parked" || f.credentials_checked.as_ref().is_some_and(|k| !k.ok))
        });
        let valid = c.present && c.problems.is_empty() && !refused;
        let _ = writeln!(
            out,
            "brokerguard_credential_valid{{credential=\"{}\"}} {}",
            c.name,
            bool_value(valid)
        );
    }
    let mut wrote_header = false;
    for (i, x) in p.extra.iter().enumerate() {
        let Some((name, expires)) = &x.token else {
            continue;
        };
        // Feeds of one account share the token: one series for it.
        if p.extra[..i]
            .iter()
            .any(|y| y.token.as_ref().is_some_and(|(n, _)| n == name))
        {
            continue;
        }
        if !wrote_header {
            family(
                out,
                "brokerguard_token_expiry_timestamp_seconds",
                "gauge",
                "When the credential's day token expires, in seconds since the unix epoch.",
            );
            wrote_header = true;
        }
        out.push_str("brokerguard_token_expiry_timestamp_seconds{credential=\"");
        label_value(out, name);
        let _ = writeln!(out, "\"}} {}", unix_seconds(*expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::board::FeedExtra;
    use crate::status::schema::{CredentialStatus, StatusDoc};
    use std::sync::Arc;

    pub(crate) fn published(feeds: usize) -> Published {
        let doc = StatusDoc {
            feeds: (0..feeds)
                .map(|i| FeedStatus {
                    name: format!("feed-{i}"),
                    broker: "websocket".into(),
                    state: if i % 2 == 0 { "live" } else { "backoff" }.into(),
                    messages: 10 * i as u64,
                    last_message_age_ms: Some(1500),
                    ..FeedStatus::default()
                })
                .collect(),
            credentials: vec![CredentialStatus {
                name: "SIG_TOKEN".into(),
                present: true,
                fingerprint: Some("hmac:00000000".into()),
                ..CredentialStatus::default()
            }],
            ..StatusDoc::default()
        };
        let extra = (0..feeds)
            .map(|_| FeedExtra {
                credentials: vec!["SIG_TOKEN".into()],
                token: Some((
                    "SIG_TOKEN".into(),
                    UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
                )),
                login: None,
            })
            .collect();
        Published {
            doc,
            extra,
            config: Arc::new(crate::config::parse_str("", std::path::Path::new("t.toml")).unwrap()),
        }
    }

    #[test]
    fn families_are_whole_and_states_one_hot() {
        let p = published(2);
        let mut out = String::new();
        let inputs = Inputs {
            fanout: FanoutStats {
                subscribers: 2,
                dropped_slow: 1,
                refused: 4,
                lines_published: 0,
            },
            process: ProcessStats {
                resident_bytes: 1,
                cpu_seconds: 0.5,
                open_fds: 3,
            },
            started_at: UNIX_EPOCH,
        };
        render(&p, &inputs, &mut out);
        assert!(
            out.contains("brokerguard_feed_up{feed=\"feed-0\",broker=\"websocket\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("brokerguard_feed_up{feed=\"feed-1\",broker=\"websocket\"} 0\n"));
        assert!(out.contains(
            "brokerguard_feed_state{feed=\"feed-1\",broker=\"websocket\",state=\"backoff\"} 1\n"
        ));
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("brokerguard_feed_state{feed=\"feed-0\"")
                    && l.ends_with(" 1"))
                .count(),
            1
        );
        assert!(out.contains(
            "brokerguard_feed_last_message_age_seconds{feed=\"feed-0\",broker=\"websocket\"} 1.5\n"
        ));
        assert!(out.contains(
            "brokerguard_token_expiry_timestamp_seconds{credential=\"SIG_TOKEN\"} 1800000000\n"
        ));
        assert!(
            out.contains("brokerguard_credential_valid{credential=\"SIG_TOKEN\"} 1\n"),
            "{out}"
        );
        assert_eq!(
            out.matches("brokerguard_token_expiry_timestamp_seconds{")
                .count(),
            1,
            "one per credential"
        );
        let mut parked = published(2);
        parked.doc.feeds[1].state = "parked".into();
        let mut text = String::new();
        render(&parked, &inputs, &mut text);
        assert!(
            text.contains("brokerguard_credential_valid{credential=\"SIG_TOKEN\"} 0\n"),
            "{text}"
        );
        assert!(out.contains("brokerguard_fanout_dropped_total 1\n"));
        assert!(out.contains("brokerguard_alerts_total{alert=\"feed_down\"} "));
        assert!(
            out.contains("brokerguard_fanout_refused_total 4\n"),
            "{out}"
        );
        assert!(out.contains("brokerguard_alert_deliveries_failed_total "));
        // A single agent has no failover role to show.
        assert!(!out.contains("brokerguard_ha_"), "{out}");
        let mut ha = published(1);
        ha.doc.agent.ha = Some(Box::new(crate::status::schema::HaSection {
            role: "leader".into(),
            epoch: Some(41),
            holder: Some("droplet-a".into()),
            ..Default::default()
        }));
        let mut text = String::new();
        render(&ha, &inputs, &mut text);
        assert!(text.contains("brokerguard_ha_leader 1\n"), "{text}");
        assert!(text.contains("brokerguard_ha_epoch 41\n"), "{text}");
        ha.doc.agent.ha.as_mut().unwrap().role = "standby".into();
        ha.doc.agent.ha.as_mut().unwrap().epoch = None;
        text.clear();
        render(&ha, &inputs, &mut text);
        assert!(text.contains("brokerguard_ha_leader 0\n"), "{text}");
        assert!(!text.contains("brokerguard_ha_epoch"), "{text}");
        // Every family's samples follow its TYPE line, and no family twice.
        let mut seen = Vec::new();
        let mut current = String::new();
        for l in out.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!seen.contains(&name), "{name} twice");
                seen.push(name.clone());
                current = name;
            } else if !l.starts_with('#') {
                let metric = l.split(['{', ' ']).next().unwrap();
                assert_eq!(metric, current, "{l}");
            }
        }
    }
}
