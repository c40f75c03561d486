//! `doctor --online`: each feed's credentials proven against its broker's
//! REST API ([`crate::brokers::registry::Broker::validate_credentials`]),
//! and the verdicts added to the report: a rejection is an error (the
//! credential must be replaced), a check that could not be made a warning.

use super::report::{DoctorProblem, DoctorReport, OnlineCheck};
use crate::brokers::BuildContext;
use crate::config::Config;
use crate::credentials::format::Severity;
use crate::feed::ErrorClass;

/// Proves every feed's credentials against its broker's REST API.
pub fn online_checks(cfg: &Config, ctx: &BuildContext<'_>) -> Vec<OnlineCheck> {
    cfg.feeds
        .iter()
        .map(|f| {
            let (outcome, class, detail) = match f.broker.validate_credentials(f, ctx) {
                None => (
                    "not_available",
                    None,
                    "no REST credential check for this feed (its broker has none, or the feed uses no key)".to_string(),
                ),
                Some(Ok(d)) => ("ok", None, d),
                Some(Err(e)) if e.class == ErrorClass::Auth => {
                    ("rejected", Some(e.class.as_str()), e.message)
                }
                Some(Err(e)) => ("failed", Some(e.class.as_str()), e.message),
            };
            OnlineCheck {
                feed: f.name.clone(),
                broker: f.broker.name().to_string(),
                outcome,
                class,
                detail,
            }
        })
        .collect()
}

impl DoctorReport {
    /// Adds `--online` results: a rejection is an error (the credential
    /// must be replaced), a check that could not be made a warning.
    pub fn add_online(&mut self, checks: Vec<OnlineCheck>) {
        for c in &checks {
            match c.outcome {
                "rejected" => {
                    self.ok = false;
                    let problem = self.rejected(c);
                    self.problems.push(problem);
                }
                "failed" => self.problems.push(DoctorProblem {
                    severity: Severity::Warning,
                    message: format!(
                        "feed {} ({}): the credentials could not be checked: {}",
                        c.feed, c.broker, c.detail
                    ),
                    fix: vec![crate::fixcmd::with_config(
                        &self.config,
                        &format!("check {}", c.feed),
                    )],
                    note: None,
                }),
                _ => {}
            }
        }
        self.online = Some(checks);
    }

    /// A feed whose broker refused its credentials: set each of them anew.
    fn rejected(&self, c: &OnlineCheck) -> DoctorProblem {
        DoctorProblem {
            severity: Severity::Error,
            message: format!(
                "feed {} ({}): the broker rejected the credentials: {}",
                c.feed, c.broker, c.detail
            ),
            fix: self
                .credentials
                .iter()
                .filter(|r| r.feeds.contains(&c.feed))
                .map(|r| {
                    crate::fixcmd::with_config(&self.config, &format!("set-credential {}", r.name))
                })
                .collect(),
            note: Some("a running agent picks a new value up at once; no reload needed".into()),
        }
    }
}
