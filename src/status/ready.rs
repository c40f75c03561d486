//! Whether the agent is ready: the one definition `/readyz`, the operator
//! page, the metrics and the alerts' dead-man's switch heartbeat share.
//! Pure: a status document in, a verdict out.
//!
//! The agent is ready when every required feed (a feed opts out with
//! `required = false`) is either
//! - **live with data**: `live`, not flapping, and data has arrived, or
//! - **quiet because its market is closed**: its market (or its state)
//!   says closed, and nothing needs the operator (credentials rejected or
//!   missing, stopped, crashed), or
//! - **standing by** for another agent that holds the lease.
//!
//! Anything else is a reason, with what to do about it.

use super::schema::{FeedStatus, StatusDoc};
use serde::Serialize;

/// Why one feed keeps the agent from being ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotReady {
    pub feed: String,
    pub state: String,
    /// RFC 3339 UTC: since when the feed is in `state`.
    pub since: String,
    /// Short-lived connections within the flap window, while flapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flapping: Option<usize>,
    pub last_error: Option<String>,
    /// What the operator can do about it.
    pub action: String,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Every required feed that is not ready, in the document's order.
    pub not_ready: Vec<NotReady>,
}

/// States in which a feed needs the operator whatever its market does.
const NEEDS_OPERATOR: &[&str] = &["parked", "waiting", "stopped", "crashed"];

/// Whether one feed counts as ready (see the module doc).
pub fn feed_ready(f: &FeedStatus) -> bool {
    let live_with_data =
        f.state == "live" && f.flapping.is_none() && f.last_message_age_ms.is_some();
    let market_closed = f.state == "closed"
        || (f.market.as_deref() == Some("closed") && !NEEDS_OPERATOR.contains(&f.state.as_str()));
    live_with_data || market_closed || f.state == "standby"
}

/// Whether the agent is ready, without the reasons (allocates nothing).
pub fn is_ready(doc: &StatusDoc) -> bool {
    doc.feeds.iter().all(|f| f.optional || feed_ready(f))
}

/// The verdict on a whole document.
pub fn readiness(doc: &StatusDoc) -> Readiness {
    let not_ready: Vec<NotReady> = doc
        .feeds
        .iter()
        .filter(|f| !f.optional && !feed_ready(f))
        .map(|f| NotReady {
            feed: f.name.clone(),
            state: f.state.clone(),
            since: f.since.clone(),
            flapping: f.flapping,
            last_error: f.last_error.clone(),
            action: action(f),
        })
        .collect();
    Readiness {
        ready: not_ready.is_empty(),
        not_ready,
    }
}

/// What to do about a feed that is not ready.
pub fn action(f: &FeedStatus) -> String {
    let name = &f.name;
    if f.flapping.is_some() {
        return format!(
            "its connections keep dropping soon after they open: run `brokerguard check {name}` and read \
             `journalctl -u brokerguard` for the closes"
        );
    }
    match f.state.as_str() {
        "live" => "connected; waiting for the first data (a quiet instrument, or a subscription the broker \
                   ignored: `brokerguard blackbox "
            .to_string()
            + name
            + "` shows what arrived)",
        "subscribed" => format!(
            "subscribed; no data has arrived yet (a quiet instrument, or a subscription the broker ignored: \
             `brokerguard blackbox {name}` shows what arrived)"
        ),
        "waiting" => "a credential it needs is not set; the error names it: set it with `sudo brokerguard \
                      set-credential NAME` and the feed starts at once (`brokerguard doctor` lists what is missing)"
            .to_string(),
        "parked" => format!(
            "the broker refused its credentials or configuration: fix what the error says (`brokerguard \
             doctor --online`); feed {name} retries as soon as a credential or the configuration changes"
        ),
        "degraded" => "connected, but the broker says no data can flow (a data farm or the exchange link is \
                       down); it recovers when the broker says so"
            .to_string(),
        "crashed" => format!(
            "the feed's thread panicked (a bug: the error names the code location); it runs again after a \
             backoff; report it with `journalctl -u brokerguard` around alert=feed_crashed feed={name}"
        ),
        "stopped" => "the feed is stopped: reload (`sudo systemctl reload brokerguard`) or restart the agent"
            .to_string(),
        "backoff" => format!(
            "reconnecting after an error; if it does not recover, `brokerguard check {name}` names the \
             layer that fails"
        ),
        _ => format!(
            "connecting; if it does not go live, `brokerguard check {name}` names the layer that fails"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, state: &str) -> FeedStatus {
        FeedStatus {
            name: name.into(),
            broker: "websocket".into(),
            state: state.into(),
            since: "2026-12-06T09:00:00Z".into(),
            last_message_age_ms: Some(100),
            ..FeedStatus::default()
        }
    }

    fn doc(feeds: Vec<FeedStatus>) -> StatusDoc {
        StatusDoc {
            feeds,
            ..StatusDoc::default()
        }
    }

    #[test]
    fn each_case_of_the_definition() {
        let live = feed("a", "live");
        let mut no_data = feed("b", "live");
        no_data.last_message_age_ms = None;
        let mut flapping = feed("c", "live");
        flapping.flapping = Some(3);
        let mut quiet_closed = feed("d", "backoff");
        quiet_closed.market = Some("closed".into());
        quiet_closed.last_message_age_ms = None;
        let mut parked_closed = feed("e", "parked");
        parked_closed.market = Some("closed".into());
        let mut pre_open = feed("f", "connecting");
        pre_open.market = Some("pre_open".into());
        let mut optional = feed("g", "backoff");
        optional.optional = true;
        let table: &[(&FeedStatus, bool)] = &[
            (&live, true),
            (&no_data, false),
            (&flapping, false),
            (&quiet_closed, true),
            (&feed("h", "closed"), true),
            (&feed("i", "standby"), true),
            (&parked_closed, false),
            (&pre_open, false),
            (&feed("j", "degraded"), false),
            (&feed("k", "waiting"), false),
            (&feed("l", "subscribed"), false),
            (&feed("m", "crashed"), false),
        ];
        for (f, want) in table {
            assert_eq!(feed_ready(f), *want, "{} {}", f.name, f.state);
        }
        // An optional feed is ignored whatever it does.
        assert!(readiness(&doc(vec![live.clone(), optional])).ready);
        assert!(is_ready(&doc(vec![live.clone(), feed("x", "closed")])));
        assert!(!is_ready(&doc(vec![live.clone(), feed("x", "backoff")])));
        assert!(readiness(&doc(vec![])).ready);
        let r = readiness(&doc(vec![live, flapping, parked_closed]));
        assert!(!r.ready);
        let names: Vec<&str> = r.not_ready.iter().map(|n| n.feed.as_str()).collect();
        assert_eq!(names, ["c", "e"]);
        assert!(r.not_ready[0].action.contains("keep dropping"));
        assert!(r.not_ready[1].action.contains("refused"));
        assert_eq!(r.not_ready[0].flapping, Some(3));
    }
}
