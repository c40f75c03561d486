//! What each feed's broker says to `doctor`, from local state only: its
//! notes (the key set in use, who owns the key's nonces,
//! [`crate::brokers::registry::Broker::doctor_notes`]) and its session
//! facts (a day token's expiry, the market's next opening,
//! [`crate::brokers::registry::Broker::session_facts`]).

use super::report::{DoctorReport, FeedNotes, SessionReport};
use crate::brokers::BuildContext;
use crate::config::Config;
use std::collections::BTreeMap;

/// Every feed's session facts, from local state only (no connection).
pub fn session_facts(cfg: &Config, ctx: &BuildContext<'_>) -> Vec<SessionReport> {
    cfg.feeds
        .iter()
        .filter_map(|f| {
            let facts = f.broker.session_facts(f, ctx);
            (!facts.is_empty()).then(|| SessionReport {
                feed: f.name.clone(),
                broker: f.broker.name().to_string(),
                facts: facts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            })
        })
        .collect()
}

impl DoctorReport {
    /// Adds each feed's broker notes. `running` gives a feed's `info` in
    /// the running agent's status.json (`None` when no agent runs).
    pub fn add_feed_notes(
        &mut self,
        cfg: &Config,
        running: &dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    ) {
        for f in &cfg.feeds {
            let info = running(&f.name);
            let notes = f.broker.doctor_notes(f, info.as_ref());
            if !notes.is_empty() {
                self.feed_notes.push(FeedNotes {
                    feed: f.name.clone(),
                    broker: f.broker.name().to_string(),
                    notes,
                });
            }
        }
    }

    /// Adds each feed's session facts (see [`session_facts`]).
    pub fn add_sessions(&mut self, sessions: Vec<SessionReport>) {
        self.sessions = sessions;
    }
}
