//! Who may read a credentials file: the one rule for the agent's start
//! (`alert=insecure_credentials`), `config check` and `doctor`.
//!
//! A credentials file belongs to root and the service's group
//! ([`crate::os::fs::SERVICE_GROUP`]) with mode 0640 (0600 for a file of
//! the operator's own). Loose modes are refused the way sudo-rs refuses
//! loose config files: every user reading or changing it, or a group
//! changing it, is an error; a group other than the service's (or root's)
//! reading it is a warning. The bot's user belongs in [`CLIENTS_GROUP`],
//! which reads status.json and connects to feeds.sock but reads nothing
//! under /etc/brokerguard.

use crate::fixcmd::sh_quote;
use crate::os::fs::SERVICE_GROUP;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The bot's group: status.json and feeds.sock, never a credential.
pub const CLIENTS_GROUP: &str = "brokerguard-clients";

/// What is wrong with a credentials file's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeProblem {
    /// Every user on the host can read it, or change it (`writable`).
    OpenToEveryone { writable: bool },
    /// Its group can change it.
    GroupWritable,
    /// A group other than root's and the service's can read it; `clients`:
    /// that group is [`CLIENTS_GROUP`], the bot's.
    GroupReadable { clients: bool },
}

impl ModeProblem {
    /// An error fails the audit; a warning is said.
    pub fn is_error(self) -> bool {
        !matches!(self, ModeProblem::GroupReadable { .. })
    }
}

/// The problems of a file with permission bits `mode` whose group is
/// `gid`, named `group`, in the order doctor reports them.
pub fn mode_problems(mode: u32, gid: u32, group: &str) -> Vec<ModeProblem> {
    let mut out = Vec::new();
    if mode & 0o007 != 0 {
        out.push(ModeProblem::OpenToEveryone {
            writable: mode & 0o002 != 0,
        });
    }
    if mode & 0o020 != 0 {
        out.push(ModeProblem::GroupWritable);
    }
    if mode & 0o040 != 0 && gid != 0 && group != SERVICE_GROUP {
        out.push(ModeProblem::GroupReadable {
            clients: group == CLIENTS_GROUP,
        });
    }
    out
}

/// Credentials files that every user on the host can read or change,
/// with their modes: said out loud at `config check` and at start, not only
/// by `doctor`.
pub fn open_to_everyone(files: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    files
        .iter()
        .filter_map(|f| {
            let mode = std::fs::metadata(f).ok()?.mode() & 0o7777;
            mode_problems(mode, 0, "")
                .iter()
                .any(|p| matches!(p, ModeProblem::OpenToEveryone { .. }))
                .then(|| (f.clone(), mode))
        })
        .collect()
}

/// What to run to give a credentials file to root and the service's group.
pub fn restrict_command(file: &Path) -> String {
    let f = sh_quote(&file.display().to_string());
    format!("sudo chmod 0640 {f} && sudo chown root:{SERVICE_GROUP} {f}")
}

/// What to run to close a credentials file to other users, with the
/// variant for a file of the operator's own.
pub fn tighten_command(file: &Path) -> String {
    let f = sh_quote(&file.display().to_string());
    format!(
        "{} (a file of your own: chmod 600 {f})",
        restrict_command(file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ModeProblem::*;

    #[test]
    fn modes_are_judged_by_who_can_read_and_change() {
        let cases: &[(u32, u32, &str, &[ModeProblem])] = &[
            (0o640, 998, "brokerguard", &[]),
            (0o600, 1000, "alice", &[]),
            (0o640, 0, "root", &[]),
            (
                0o644,
                998,
                "brokerguard",
                &[OpenToEveryone { writable: false }],
            ),
            (
                0o646,
                998,
                "brokerguard",
                &[OpenToEveryone { writable: true }],
            ),
            (0o660, 998, "brokerguard", &[GroupWritable]),
            (0o640, 1000, "alice", &[GroupReadable { clients: false }]),
            (
                0o640,
                997,
                CLIENTS_GROUP,
                &[GroupReadable { clients: true }],
            ),
            (
                0o666,
                1000,
                "alice",
                &[
                    OpenToEveryone { writable: true },
                    GroupWritable,
                    GroupReadable { clients: false },
                ],
            ),
        ];
        for (mode, gid, group, want) in cases {
            assert_eq!(
                mode_problems(*mode, *gid, group),
                *want,
                "{mode:04o} {gid} {group}"
            );
        }
        assert!(!GroupReadable { clients: true }.is_error());
        assert!(GroupWritable.is_error() && OpenToEveryone { writable: false }.is_error());
    }

    #[test]
    fn the_fix_quotes_the_path() {
        assert_eq!(
            tighten_command(Path::new("/etc/my creds.env")),
            "sudo chmod 0640 '/etc/my creds.env' && sudo chown root:brokerguard '/etc/my creds.env' \
             (a file of your own: chmod 600 '/etc/my creds.env')"
        );
    }
}
