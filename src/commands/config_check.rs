//! `config check`'s warnings about credentials: the `${NAME}`s (and
//! broker credential names) the configuration needs that no credential
//! source defines, and credentials files every user can read. They warn
//! and do not fail the check: the configuration itself is valid.

use crate::config::Config;
use crate::config::required_credentials;
use crate::credentials::permissions;
use crate::credentials::store::{CredProblem, CredentialStore, Sources};

/// Every credential warning, one line each (printed after `warning: `).
pub fn credential_warnings(cfg: &Config, sources: &Sources) -> Vec<String> {
    let mut out = undefined_credentials(cfg, sources);
    for (file, mode) in permissions::open_to_everyone(&cfg.agent.credential_files) {
        out.push(format!(
            "credentials file {} has mode {mode:04o}: every user on this host can read it; \
             fix: {}",
            file.display(),
            permissions::tighten_command(&file)
        ));
    }
    out
}

/// The credentials no source defines: the feeds that need them would
/// wait. A source this user cannot read makes the answer unknown, and is
/// said instead of a false "not defined".
pub fn undefined_credentials(cfg: &Config, sources: &Sources) -> Vec<String> {
    let required = required_credentials(cfg);
    let outcome = CredentialStore::load(sources, &required);
    let unreadable: Vec<String> = outcome
        .problems
        .iter()
        .filter_map(|p| match p {
            CredProblem::FileUnreadable { file, .. } => Some(file.display().to_string()),
            CredProblem::SystemdUnreadable { path, .. } => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    if !unreadable.is_empty() {
        return vec![format!(
            "cannot tell which credentials are defined: {} cannot be read by this user; \
             run {}",
            unreadable.join(", "),
            crate::fixcmd::with_config(&cfg.path, "config check")
        )];
    }
    let files = cfg
        .agent
        .credential_files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    outcome
        .problems
        .iter()
        .filter_map(|p| match p {
            CredProblem::Missing { name, feeds } => Some(format!(
                "${{{name}}} (feed {}) is defined by no credential source ({}, \
                 $CREDENTIALS_DIRECTORY, the environment): the feed will wait for it; set it: {}",
                feeds.join(", "),
                if files.is_empty() {
                    "no credential_files"
                } else {
                    &files
                },
                crate::fixcmd::with_config(&cfg.path, &format!("set-credential {name}"))
            )),
            _ => None,
        })
        .collect()
}
