//! The credential monitor: turns successive looks at the store into events.
//!
//! Pure: the caller passes the time, the required list, the store and the
//! load problems on every change event and every `credential_check`
//! interval. Each condition is reported once when it starts (a problem that
//! goes away and comes back is reported again), never on every check.

use super::format::Severity;
use super::required::{Required, distinct_names};
use super::store::{CredProblem, CredentialStore};
use crate::alert::{Alert, AlertKind, escape};
use crate::timefmt::rfc3339;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

/// Something about the credentials an operator must hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredEvent {
    /// A required credential that was present is gone.
    Lost {
        name: String,
        fingerprint: String,
        last_seen: SystemTime,
    },
    /// A lost credential is back.
    Restored { name: String, fingerprint: String },
    /// A required credential was not set at the first look (nothing was
    /// lost: the feeds that need it wait for it).
    Missing { name: String },
    /// A credential missing since the first look is now set.
    Set { name: String, fingerprint: String },
    /// A credentials source is malformed, missing or unreadable.
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    /// A credential's value changed.
    Rotated {
        name: String,
        old: String,
        new: String,
    },
    /// A credential's value has a format problem.
    FormatProblem {
        name: String,
        severity: Severity,
        reason: String,
    },
    /// A credential is found only in the process environment: it will be
    /// gone after the next restart or redeploy.
    EnvOnly { name: String },
}

impl CredEvent {
    /// How loud: errors for what stops a feed, info (journald notice) for good news.
    pub fn level(&self) -> log::Level {
        match self {
            CredEvent::Lost { .. } | CredEvent::Invalid { .. } => log::Level::Error,
            CredEvent::FormatProblem {
                severity: Severity::Error,
                ..
            } => log::Level::Error,
            CredEvent::FormatProblem {
                severity: Severity::Warning,
                ..
            }
            | CredEvent::EnvOnly { .. }
            | CredEvent::Missing { .. } => log::Level::Warn,
            CredEvent::Restored { .. } | CredEvent::Rotated { .. } | CredEvent::Set { .. } => {
                log::Level::Info
            }
        }
    }

    /// The alert this event raises, if it is one (the rest are plain log lines).
    pub fn alert(&self) -> Option<Alert> {
        Some(match self {
            CredEvent::Lost {
                name,
                fingerprint,
                last_seen,
            } => Alert::new(AlertKind::CredentialLost)
                .with("name", name)
                .with("fingerprint", fingerprint)
                .with("last_seen", rfc3339(*last_seen)),
            CredEvent::Restored { name, fingerprint } => Alert::new(AlertKind::CredentialRestored)
                .with("name", name)
                .with("fingerprint", fingerprint),
            CredEvent::Invalid { file, line, reason } => Alert::new(AlertKind::CredentialsInvalid)
                .with("file", file.display())
                .with_opt("line", *line)
                .with("reason", reason),
            CredEvent::FormatProblem {
                name,
                severity: Severity::Error,
                reason,
            } => Alert::new(AlertKind::CredentialMalformed)
                .with("name", name)
                .with("reason", reason),
            _ => return None,
        })
    }

    /// The journal line, e.g.
    /// `alert=credential_lost name=KRAKEN_MASTER_API_KEY fingerprint=hmac:1a2b3c4d last_seen=2026-11-23T18:00:00Z`.
    pub fn alert_line(&self) -> String {
        if let Some(a) = self.alert() {
            return a.to_string();
        }
        match self {
            CredEvent::Rotated { name, old, new } => {
                format!("token_rotated name={} old={old} new={new}", escape(name))
            }
            CredEvent::FormatProblem { name, reason, .. } => {
                format!(
                    "credential_suspect name={} reason={}",
                    escape(name),
                    escape(reason)
                )
            }
            CredEvent::Missing { name } => format!(
                "credential_missing name={} reason={}",
                escape(name),
                escape(&format!(
                    "not set: the feeds that need it wait for it (state waiting) and start \
                     once it is set: {}",
                    crate::fixcmd::command(&format!("set-credential {name}"))
                ))
            ),
            CredEvent::Set { name, fingerprint } => {
                format!(
                    "credential_set name={} fingerprint={fingerprint}",
                    escape(name)
                )
            }
            CredEvent::EnvOnly { name } => format!(
                "credential_env_only name={} reason={}",
                escape(name),
                escape(&format!(
                    "only in the process environment, lost on the next restart; move it: {}",
                    crate::fixcmd::command(&format!("set-credential {name}"))
                ))
            ),
            _ => unreachable!("alert kinds are handled above"),
        }
    }

    /// Logs the event: alerts through [`Alert::emit`], the rest at their level.
    pub fn emit(&self) {
        match self.alert() {
            Some(a) => a.emit(),
            None => match self.level() {
                log::Level::Info => crate::notice!("{}", self.alert_line()),
                _ => log::warn!("{}", self.alert_line()),
            },
        }
    }
}

impl fmt::Display for CredEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.alert_line())
    }
}

#[derive(Clone, Debug, Default)]
struct NameState {
    /// The value last seen, and when: `None` while it has never been set.
    seen: Option<(String, SystemTime)>,
    /// Reported gone (lost, or missing when never seen) and not back yet.
    absent: bool,
}

/// Remembers what was reported so each condition is reported once.
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    names: BTreeMap<String, NameState>,
    invalid: BTreeSet<(PathBuf, Option<usize>, String)>,
    format: BTreeSet<(String, String)>,
    env_only: BTreeSet<String>,
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares this look at the credentials with the previous one.
    pub fn observe(
        &mut self,
        now: SystemTime,
        required: &[Required],
        store: &CredentialStore,
        problems: &[CredProblem],
    ) -> Vec<CredEvent> {
        let mut events = Vec::new();
        let names = distinct_names(required);
        self.names.retain(|n, _| names.contains(&n.as_str()));
        for name in names {
            let st = self.names.entry(name.to_string()).or_default();
            match store.fingerprint(name) {
                Some(fp) => {
                    let name = name.to_string();
                    match (&st.seen, st.absent) {
                        (None, true) => events.push(CredEvent::Set {
                            name,
                            fingerprint: fp.clone(),
                        }),
                        (Some(_), true) => events.push(CredEvent::Restored {
                            name,
                            fingerprint: fp.clone(),
                        }),
                        (Some((old, _)), false) if *old != fp => events.push(CredEvent::Rotated {
                            name,
                            old: old.clone(),
                            new: fp.clone(),
                        }),
                        _ => {}
                    }
                    st.seen = Some((fp, now));
                    st.absent = false;
                }
                // A fallback the feed runs without: its absence is no loss.
                None if super::store::all_optional(required, name) => {}
                None if !st.absent => {
                    events.push(match &st.seen {
                        Some((fp, at)) => CredEvent::Lost {
                            name: name.to_string(),
                            fingerprint: fp.clone(),
                            last_seen: *at,
                        },
                        None => CredEvent::Missing {
                            name: name.to_string(),
                        },
                    });
                    st.absent = true;
                }
                None => {}
            }
        }

        let mut invalid = BTreeSet::new();
        let mut format = BTreeSet::new();
        let mut env_only = BTreeSet::new();
        for p in problems {
            match p {
                CredProblem::FileInvalid { file, line, .. } => {
                    invalid.insert((file.clone(), Some(*line), p.reason()));
                }
                CredProblem::FileMissing { file } | CredProblem::FileUnreadable { file, .. } => {
                    invalid.insert((file.clone(), None, p.reason()));
                }
                CredProblem::SystemdUnreadable { path, .. } => {
                    invalid.insert((path.clone(), None, p.reason()));
                }
                CredProblem::Format { name, problem } => {
                    if format.insert((name.clone(), problem.message.clone()))
                        && !self
                            .format
                            .contains(&(name.clone(), problem.message.clone()))
                    {
                        events.push(CredEvent::FormatProblem {
                            name: name.clone(),
                            severity: problem.severity,
                            reason: problem.message.clone(),
                        });
                    }
                }
                CredProblem::EnvOnly { name } => {
                    if env_only.insert(name.clone()) && !self.env_only.contains(name) {
                        events.push(CredEvent::EnvOnly { name: name.clone() });
                    }
                }
                CredProblem::Missing { .. } => {}
            }
        }
        for key in invalid.difference(&self.invalid) {
            events.push(CredEvent::Invalid {
                file: key.0.clone(),
                line: key.1,
                reason: key.2.clone(),
            });
        }
        self.invalid = invalid;
        self.format = format;
        self.env_only = env_only;
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::dotenv::DotenvProblem;
    use crate::credentials::store::Sources;
    use crate::credentials::store::tests::req;
    use std::time::{Duration, UNIX_EPOCH};

    fn store(env: &[(&str, &str)], names: &[&str]) -> CredentialStore {
        CredentialStore::load(&Sources::fixed(None, vec![], env), &req(names)).store
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn lost_restored_rotated() {
        let r = req(&["KRAKEN_MASTER_API_KEY"]);
        let mut m = Monitor::new();
        let s1 = store(
            &[("KRAKEN_MASTER_API_KEY", "v1")],
            &["KRAKEN_MASTER_API_KEY"],
        );
        let fp1 = s1.fingerprint("KRAKEN_MASTER_API_KEY").unwrap();
        let seen = t(1_795_456_800); // 2026-11-23T18:00:00Z
        assert!(m.observe(seen, &r, &s1, &[]).is_empty());
        assert!(m.observe(t(1_795_456_860), &r, &s1, &[]).is_empty());

        let empty = store(&[], &["KRAKEN_MASTER_API_KEY"]);
        let ev = m.observe(t(1_795_456_900), &r, &empty, &[]);
        assert_eq!(
            ev,
            vec![CredEvent::Lost {
                name: "KRAKEN_MASTER_API_KEY".into(),
                fingerprint: fp1.clone(),
                last_seen: t(1_795_456_860),
            }]
        );
        assert_eq!(
            ev[0].alert_line(),
            format!(
                "alert=credential_lost name=KRAKEN_MASTER_API_KEY fingerprint={fp1} last_seen=2026-11-23T18:01:00Z"
            )
        );
        assert_eq!(ev[0].level(), log::Level::Error);
        // Still gone: not reported again.
        assert!(m.observe(t(1_795_457_000), &r, &empty, &[]).is_empty());

        let s2 = store(
            &[("KRAKEN_MASTER_API_KEY", "v2")],
            &["KRAKEN_MASTER_API_KEY"],
        );
        let fp2 = s2.fingerprint("KRAKEN_MASTER_API_KEY").unwrap();
        let ev = m.observe(t(1_795_457_100), &r, &s2, &[]);
        assert_eq!(
            ev,
            vec![CredEvent::Restored {
                name: "KRAKEN_MASTER_API_KEY".into(),
                fingerprint: fp2.clone()
            }]
        );
        assert_eq!(ev[0].level(), log::Level::Info);
        assert_eq!(
            ev[0].alert_line(),
            format!("alert=credential_restored name=KRAKEN_MASTER_API_KEY fingerprint={fp2}")
        );

        let ev = m.observe(t(1_795_457_200), &r, &s1, &[]);
        assert_eq!(
            ev,
            vec![CredEvent::Rotated {
                name: "KRAKEN_MASTER_API_KEY".into(),
                old: fp2.clone(),
                new: fp1.clone()
            }]
        );
        assert_eq!(
            ev[0].alert_line(),
            format!("token_rotated name=KRAKEN_MASTER_API_KEY old={fp2} new={fp1}")
        );
    }

    #[test]
    fn never_set_is_missing_not_lost_and_reported_once() {
        let r = req(&["A"]);
        let mut m = Monitor::new();
        let empty = store(&[], &["A"]);
        let ev = m.observe(t(10), &r, &empty, &[]);
        assert_eq!(ev, vec![CredEvent::Missing { name: "A".into() }]);
        // Not an alert: nothing was lost; the feed says it waits.
        assert_eq!(ev[0].alert(), None);
        assert_eq!(ev[0].level(), log::Level::Warn);
        let line = ev[0].alert_line();
        assert!(
            line.starts_with("credential_missing name=A reason=\"not set: the feeds")
                && line.contains("wait")
                && line.contains("set-credential A")
                && !line.contains("lost"),
            "{line}"
        );
        assert!(m.observe(t(20), &r, &empty, &[]).is_empty());
        // Set for the first time: "set", not "restored".
        let set = store(&[("A", "v")], &["A"]);
        let ev = m.observe(t(30), &r, &set, &[]);
        let fp = set.fingerprint("A").unwrap();
        assert_eq!(
            ev,
            vec![CredEvent::Set {
                name: "A".into(),
                fingerprint: fp.clone()
            }]
        );
        assert_eq!(ev[0].level(), log::Level::Info);
        assert_eq!(
            ev[0].alert_line(),
            format!("credential_set name=A fingerprint={fp}")
        );
        // Gone after it was present: now it is lost, with when it was last seen.
        let ev = m.observe(t(40), &r, &empty, &[]);
        assert_eq!(
            ev,
            vec![CredEvent::Lost {
                name: "A".into(),
                fingerprint: fp,
                last_seen: t(30)
            }]
        );
    }

    #[test]
    fn an_optional_credential_is_never_lost() {
        let mut r = req(&["A_2"]);
        r[0].optional = true;
        let mut m = Monitor::new();
        let empty = store(&[], &["A_2"]);
        assert!(m.observe(t(10), &r, &empty, &[]).is_empty());
        let set = store(&[("A_2", "v")], &["A_2"]);
        assert!(m.observe(t(20), &r, &set, &[]).is_empty());
        assert!(m.observe(t(30), &r, &empty, &[]).is_empty());
    }

    #[test]
    fn invalid_reported_once_per_distinct_problem() {
        let r = req(&["A"]);
        let s = store(&[("A", "x")], &["A"]);
        let file = PathBuf::from("/etc/brokerguard/credentials.env");
        let bad = |line| CredProblem::FileInvalid {
            file: file.clone(),
            line,
            problem: DotenvProblem::MissingEquals,
        };
        let mut m = Monitor::new();
        let ev = m.observe(t(1), &r, &s, &[bad(7)]);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].alert_line(),
            "alert=credentials_invalid file=/etc/brokerguard/credentials.env line=7 reason=\"missing '=' after name; write NAME=value; the last good values stay in force\""
        );
        assert!(m.observe(t(2), &r, &s, &[bad(7)]).is_empty());
        // A different line is a different problem.
        assert_eq!(m.observe(t(3), &r, &s, &[bad(9)]).len(), 1);
        // Fixed, then broken again: reported again.
        assert!(m.observe(t(4), &r, &s, &[]).is_empty());
        assert_eq!(m.observe(t(5), &r, &s, &[bad(9)]).len(), 1);
        let missing = CredProblem::FileMissing { file: file.clone() };
        let ev = m.observe(t(6), &r, &s, &[missing]);
        assert!(ev[0].alert_line().starts_with(
            "alert=credentials_invalid file=/etc/brokerguard/credentials.env reason=\"file does not exist"
        ));
    }

    #[test]
    fn env_only_warned_once() {
        let r = req(&["A"]);
        let out = CredentialStore::load(&Sources::fixed(None, vec![], &[("A", "v")]), &r);
        let mut m = Monitor::new();
        let ev = m.observe(t(1), &r, &out.store, &out.problems);
        assert_eq!(ev, vec![CredEvent::EnvOnly { name: "A".into() }]);
        assert_eq!(ev[0].level(), log::Level::Warn);
        assert!(
            ev[0]
                .alert_line()
                .starts_with("credential_env_only name=A reason=\"only in")
        );
        assert!(m.observe(t(2), &r, &out.store, &out.problems).is_empty());
    }

    #[test]
    fn format_problem_once() {
        let r = req(&["A"]);
        let d = crate::credentials::store::tests::temp_dir("monfmt");
        let f = d.join("c.env");
        std::fs::write(&f, "A=\"'quoted'\"\n").unwrap();
        let out = CredentialStore::load(&Sources::fixed(None, vec![f], &[]), &r);
        std::fs::remove_dir_all(&d).unwrap();
        let mut m = Monitor::new();
        let ev = m.observe(t(1), &r, &out.store, &out.problems);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(
            ev[0]
                .alert_line()
                .starts_with("alert=credential_malformed name=A reason=\"is wrapped in quotes")
        );
        assert!(m.observe(t(2), &r, &out.store, &out.problems).is_empty());
    }
}
