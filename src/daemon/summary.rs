//! The one-line summary (systemd `STATUS=`, status.json) and the status
//! document built from feed health and credentials. Pure functions.

use crate::clock::Mono;
use crate::feed::FeedState;
use crate::feed::health::HealthData;
use crate::feed::outage::Outage;
use crate::status::schema::{
    AgentStatus, CheckStatus, ClockStatus, CredentialStatus, FeedStatus, OutageStatus,
    ReloadStatus, SCHEMA, StatusDoc,
};
use crate::timefmt::{human, retry_in, rfc3339, rfc3339_millis};
use std::time::SystemTime;

/// `3/4 feeds live; books: backoff (retry in 8s) (auth rejected)`: the
/// time is what is left until the next attempt, never how long the feed
/// has been in its state.
pub fn summary_line(feeds: &[HealthData], now: Mono) -> String {
    if feeds.is_empty() {
        return "running; no feeds configured".to_string();
    }
    // Every feed not live is named, a `closed` one too (healthy, but
    // an operator reads why it is quiet).
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
        // From the outage record: since the last data, not since the state.
        match &h.outage {
            Some(o) if o.after_data => s.push_str(&format!(" (down {})", human(o.down_for(now)))),
            Some(o) => s.push_str(&format!(
                " (no data yet, {} since start)",
                human(o.down_for(now))
            )),
            None => {}
        }
        // Whole: an operator acts on this message; never cut it mid-word.
        if let Some(e) = &h.last_error {
            s.push_str(&format!(" ({e})"));
        }
    }
    s
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
        crashes: h.crashes,
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
        outage: h.outage.as_ref().map(|o| outage_status(o, now)),
        last_outage: h.last_outage.as_ref().map(|o| outage_status(o, now)),
    }
}

/// An outage record as status.json shows it.
pub fn outage_status(o: &Outage, now: Mono) -> OutageStatus {
    OutageStatus {
        since: rfc3339_millis(o.start_wall),
        until: o.end_wall.map(rfc3339_millis),
        down_ms: o.down_for(now).as_millis() as u64,
        connections: o.connections,
        errors: o.errors,
        cause: o.cause.clone(),
        last_error: o.last_error.clone(),
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
    /// Failover, when configured.
    pub ha: Option<crate::ha::HaStatus>,
}

/// The summary with the failover role in front (`ha leader (epoch 42);
/// …`), as `STATUS=` shows it.
pub fn with_role(summary: String, ha: Option<&crate::ha::HaStatus>) -> String {
    match ha {
        None => summary,
        Some(h) => {
            let holder = match (&h.holder, h.role) {
                (Some(n), "standby") => format!(", {n} leads"),
                _ => String::new(),
            };
            let epoch = h
                .epoch
                .map(|e| format!(" (epoch {e}{holder})"))
                .unwrap_or_default();
            format!("ha {}{epoch}; {summary}", h.role)
        }
    }
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
            summary: with_role(summary_line(feeds, now), agent.ha.as_ref()),
            config: agent.config.to_string(),
            clock: agent.clock.as_ref().map(|r| ClockStatus {
                offset_ms: r.offset.signed_millis(),
                uncertainty_ms: r.offset.uncertainty.as_millis() as u64,
                host: r.host.clone(),
                at: rfc3339(r.at),
            }),
            reload: agent.reload.cloned().map(Box::new),
            ha: agent.ha.as_ref().map(|h| {
                Box::new(crate::status::schema::HaSection {
                    node: h.node.clone(),
                    cluster: h.cluster.clone(),
                    role: h.role.to_string(),
                    epoch: h.epoch,
                    holder: h.holder.clone(),
                    since: rfc3339(h.since),
                    etcd_reachable: h.etcd_reachable,
                    last_error: h.last_error.clone(),
                    lease_ms: h.lease_ttl.as_millis() as u64,
                })
            }),
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

    #[test]
    fn summary_tells_the_outage_from_the_record_and_closed_is_healthy() {
        use crate::feed::outage::OutageTracker;
        let t0 = Mono(Duration::from_secs(100));
        let wall = SystemTime::UNIX_EPOCH;
        let mut tracker =
            OutageTracker::new(Duration::from_secs(2), Duration::from_secs(60), t0, wall);
        let mut a = FeedHealth::new("signals", "websocket", t0, wall).snapshot();
        a.state = FeedState::Subscribed;
        a.outage = tracker.current().cloned();
        let later = t0.plus(Duration::from_secs(5));
        assert_eq!(
            summary_line(std::slice::from_ref(&a), later),
            "0/1 feed live; signals: subscribed (no data yet, 5s since start)"
        );
        // Data, then the connection ends: down from the last data.
        tracker.subscribed(later);
        tracker.evidence(later, wall);
        tracker.ended(later.plus(Duration::from_secs(1)), wall, Some("reset"));
        a.state = FeedState::Backoff;
        a.outage = tracker.current().cloned();
        assert_eq!(
            summary_line(
                std::slice::from_ref(&a),
                later.plus(Duration::from_secs(12))
            ),
            "0/1 feed live; signals: backoff (down 12s)"
        );
        let mut b = a.clone();
        b.state = FeedState::Closed;
        b.outage = None;
        assert_eq!(summary_line(&[b], later), "0/1 feed live; signals: closed");
    }
}
