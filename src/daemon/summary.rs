//! The one-line summary (systemd `STATUS=`, status.json) and the status
//! document built from feed health and credentials. Pure functions.

use crate::clock::Mono;
use crate::feed::FeedState;
use crate::feed::health::HealthData;
use crate::status::schema::{
    AgentStatus, CheckStatus, ClockStatus, CredentialStatus, FeedStatus, ReloadStatus, SCHEMA,
    StatusDoc,
};
use crate::timefmt::{human, rfc3339};
use std::time::SystemTime;

/// `3/4 feeds live; books: backoff (retry in 8s) (auth rejected)`: the
/// time is what is left until the next attempt, never how long the feed
/// has been in its state.
pub fn summary_line(feeds: &[HealthData], now: Mono) -> String {
    if feeds.is_empty() {
        return "running; no feeds configured".to_string();
    }
    let live = |h: &&HealthData| h.state == FeedState::Live && h.flapping.is_none();
    let n_live = feeds.iter().filter(live).count();
    let mut s = format!(
        "{n_live}/{} {} live",
        feeds.len(),
        if feeds.len() == 1 { "feed" } else { "feeds" }
    );
    for h in feeds.iter().filter(|h| !live(h)) {
        match h.flapping {
            Some(n) => s.push_str(&format!(
                "; {}: flapping ({n} short-lived connections)",
                h.name
            )),
            None => s.push_str(&format!("; {}: {}", h.name, h.state)),
        }
        if let Some(at) = h.retry_at {
            s.push_str(&format!(" ({})", retry_in(at.since(now))));
        }
        // Whole: an operator acts on this message; never cut it mid-word.
        if let Some(e) = &h.last_error {
            s.push_str(&format!(" ({e})"));
        }
    }
    s
}

/// `retry in 8s`: how a countdown to the next attempt reads, in the
/// summary and in `status`'s STATE column alike.
pub fn retry_in(left: std::time::Duration) -> String {
    format!("retry in {}", human(left))
}

/// Renders health as the status.json feed entry.
pub fn feed_status(h: &HealthData, now: Mono) -> FeedStatus {
    FeedStatus {
        name: h.name.clone(),
        broker: h.broker.clone(),
        state: h.state.as_str().to_string(),
        since: rfc3339(h.since_wall),
        last_message_age_ms: h.last_message.map(|t| now.since(t).as_millis() as u64),
        messages: h.messages,
        reconnects: h.reconnects,
        restarts: h.restarts,
        consecutive_failures: h.consecutive_failures,
        last_error: h.last_error.clone(),
        last_error_at: h.last_error_at.map(rfc3339),
        retry_in_ms: h.retry_at.map(|t| t.since(now).as_millis() as u64),
        info: h
            .info
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        credentials_checked: None,
        optional: false,
        market: h.market.map(|m| m.as_str().to_string()),
        flapping: h.flapping,
    }
}

pub struct AgentInfo<'a> {
    pub pid: u32,
    pub started_at: SystemTime,
    pub config: &'a str,
    /// The last clock reading from a broker's `Date` header.
    pub clock: Option<crate::net::http::DriftReading>,
    /// The last REST credential check of each feed, by name.
    pub checks: std::collections::BTreeMap<String, super::validator::Validation>,
    pub reload: Option<&'a ReloadStatus>,
}

pub fn status_doc(
    agent: &AgentInfo<'_>,
    feeds: &[HealthData],
    credentials: Vec<CredentialStatus>,
    now: Mono,
    wall: SystemTime,
) -> StatusDoc {
    StatusDoc {
        schema: SCHEMA,
        agent: AgentStatus {
            pid: agent.pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: rfc3339(agent.started_at),
            updated_at: rfc3339(wall),
            summary: summary_line(feeds, now),
            config: agent.config.to_string(),
            clock: agent.clock.as_ref().map(|r| ClockStatus {
                offset_ms: r.offset.signed_millis(),
                uncertainty_ms: r.offset.uncertainty.as_millis() as u64,
                host: r.host.clone(),
                at: rfc3339(r.at),
            }),
            reload: agent.reload.cloned().map(Box::new),
        },
        feeds: feeds
            .iter()
            .map(|h| {
                let mut f = feed_status(h, now);
                f.credentials_checked = agent.checks.get(&h.name).map(|v| CheckStatus {
                    at: rfc3339(v.at),
                    ok: v.ok,
                    detail: v.detail.clone(),
                });
                f
            })
            .collect(),
        credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::health::FeedHealth;
    use std::time::Duration;

    #[test]
    fn summary_names_each_feed_that_is_not_live() {
        let t0 = Mono(Duration::from_secs(100));
        let mut a = FeedHealth::new("signals", "websocket", t0, SystemTime::UNIX_EPOCH).snapshot();
        a.state = FeedState::Live;
        let mut b = FeedHealth::new("books", "exch", t0, SystemTime::UNIX_EPOCH).snapshot();
        b.state = FeedState::Backoff;
        b.retry_at = Some(t0.plus(Duration::from_secs(8)));
        b.last_error = Some("auth rejected".into());
        assert_eq!(
            summary_line(&[a.clone(), b.clone()], t0),
            "1/2 feeds live; books: backoff (retry in 8s) (auth rejected)"
        );
        // A parked feed's time is its countdown to the next retry, and says so.
        b.state = FeedState::Parked;
        b.retry_at = Some(t0.plus(Duration::from_secs(896)));
        assert_eq!(
            summary_line(&[a, b], t0),
            "1/2 feeds live; books: parked (retry in 14m56s) (auth rejected)"
        );
        assert_eq!(summary_line(&[], t0), "running; no feeds configured");
    }
}
