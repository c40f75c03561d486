//! `brokerguard doctor`: an offline audit of the credentials and the host,
//! and with `--online` a REST check of each feed's credentials.
//!
//! For every required credential: set / missing / malformed / env-only, its
//! source, fingerprint and file age. For every credentials file: owner,
//! group, mode (the rule is [`crate::credentials::permissions`]). The
//! platform: systemd unit installed, running under systemd, DigitalOcean
//! droplet (from DMI / cloud-init data, offline), container. Every problem
//! comes with the exact commands that fix it on this host.
//!
//! - `report`: the audit as data ([`DoctorReport`], serialised for `--json`);
//! - `host`: what is read from the host, behind the [`Host`] trait
//!   ([`SystemHost`] is the machine; tests use a fake);
//! - `audit`: the offline checks, host facts and credentials in, report out;
//! - `feeds`: what each feed's broker says (notes, session facts);
//! - `online`: `--online`'s REST checks;
//! - `render`: the text and JSON forms.
//!
//! [`DoctorReport::ok`] is false when any problem is an error: a missing,
//! malformed or environment-only credential (the outage this tool exists
//! for), a broken or missing credentials file, a file every user can read
//! or the group can change. Warnings (a value of an unusual shape, group
//! read access by any group but the service's own, members of the
//! service's group besides the service user, no systemd unit) are printed
//! but do not fail the audit.

mod audit;
mod feeds;
pub mod host;
mod online;
mod render;
pub mod report;
#[cfg(test)]
mod tests;

pub use feeds::session_facts;
pub use host::{Host, SystemHost};
pub use online::online_checks;
pub use report::*;

use crate::config::Config;
use crate::credentials::store::Sources;
use std::time::SystemTime;

/// Audits now.
pub fn audit(cfg: &Config, sources: &Sources, host: &dyn Host) -> DoctorReport {
    audit::audit_at(cfg, sources, host, SystemTime::now())
}

pub use audit::audit_at;
