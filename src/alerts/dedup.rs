//! Which alerts go to the webhooks: the same alert at most once per
//! `[agent] alert_repeat` (the knob the journal's repeats follow), except
//! changes of state, which always go. Pure: time comes in as an argument.
//!
//! An alert is identified by its kind and its subject (the first of its
//! `feed`, `name`, `account`, `file` fields). A recovery always goes and
//! clears what was sent about its subject, so the next outage of that
//! subject starts afresh: down → recovered → down sends all three, and a
//! parked feed's `credential_rejected` after it went live goes at once.
//! Any other alert goes when its kind was not sent for this subject yet
//! (a new state: down, then flapping) or was sent `alert_repeat` ago.

use crate::alert::Alert;
use crate::clock::Mono;
use std::collections::HashMap;
use std::time::Duration;

/// The fields that name what an alert is about, in order of preference.
const SUBJECT_FIELDS: &[&str] = &["feed", "name", "account", "file"];
/// Remembered (kind, subject) pairs; beyond this the oldest are forgotten
/// (an alert then may repeat early, never be lost).
const MEMORY_MAX: usize = 1024;

/// What an alert is about (`""` when it names nothing).
pub fn subject(a: &Alert) -> &str {
    SUBJECT_FIELDS
        .iter()
        .find_map(|k| a.get(k))
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct Dedup {
    sent: HashMap<(&'static str, String), Mono>,
}

impl Dedup {
    /// Whether `a` goes out now; remembers it when it does.
    pub fn admit(&mut self, a: &Alert, now: Mono, repeat: Duration) -> bool {
        let subject = subject(a).to_string();
        if a.kind.is_recovery() {
            self.sent.retain(|(_, s), _| *s != subject);
            return true;
        }
        // Once a day by its own schedule, whatever alert_repeat says.
        if a.kind == crate::alert::AlertKind::DailyReport {
            return true;
        }
        let key = (a.kind.as_str(), subject);
        if let Some(last) = self.sent.get(&key) {
            if now.since(*last) < repeat {
                return false;
            }
        }
        if self.sent.len() >= MEMORY_MAX && !self.sent.contains_key(&key) {
            if let Some(oldest) = self
                .sent
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.sent.remove(&oldest);
            }
        }
        self.sent.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;

    fn at(s: u64) -> Mono {
        Mono(Duration::from_secs(s))
    }

    fn a(kind: AlertKind, feed: &str) -> Alert {
        Alert::new(kind).with("feed", feed)
    }

    #[test]
    fn repeats_wait_for_alert_repeat_and_state_changes_always_go() {
        use AlertKind::*;
        let repeat = Duration::from_secs(900);
        let mut d = Dedup::default();
        // (time, alert, goes)
        let table: &[(u64, Alert, bool)] = &[
            (0, a(FeedDown, "k"), true),
            (60, a(FeedDown, "k"), false),
            (60, a(FeedDown, "other"), true),
            (120, a(FeedFlapping, "k"), true),
            (130, a(FeedFlapping, "k"), false),
            (899, a(FeedDown, "k"), false),
            (900, a(FeedDown, "k"), true),
            (901, a(FeedRecovered, "k"), true),
            (902, a(FeedDown, "k"), true),
            (903, a(FeedRecovered, "k"), true),
            (904, a(FeedRecovered, "k"), true),
            (905, a(CredentialRejected, "k"), true),
            (906, a(FeedDown, "other"), false),
            (907, Alert::new(CredentialLost).with("name", "X"), true),
            (908, Alert::new(CredentialLost).with("name", "X"), false),
            (909, Alert::new(CredentialRestored).with("name", "X"), true),
            (910, Alert::new(CredentialLost).with("name", "X"), true),
        ];
        for (i, (t, alert, goes)) in table.iter().enumerate() {
            assert_eq!(d.admit(alert, at(*t), repeat), *goes, "row {i}: {alert}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedup::default();
        for i in 0..(MEMORY_MAX + 10) {
            assert!(d.admit(
                &a(AlertKind::FeedDown, &format!("f{i}")),
                at(i as u64),
                Duration::from_secs(60)
            ));
        }
        assert_eq!(d.sent.len(), MEMORY_MAX);
    }
}
