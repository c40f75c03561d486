//! Rewrites `status.json` atomically: a reader sees the old document or the
//! new one, never a mix or a truncated file.
//!
//! Temp file in the same folder (rename is atomic only within a file
//! system), written, renamed over the target. Nothing is fsynced: the file
//! lives under /run (tmpfs, where fsync does nothing useful) and is
//! rewritten every second, so only readers' atomicity matters, which the
//! rename gives, not durability across a crash (a restarted agent writes a
//! new one; one left by a dead agent is reported as stale). On a disk-backed
//! runtime_dir an fsync per second was a journal commit per second.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::schema::StatusDoc;
use crate::alert::{Alert, AlertKind};
use std::time::{Duration, Instant};

/// Unique suffix for temp files of concurrent writers in one process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The process id, asked once (glibc no longer caches getpid).
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.{seq}.tmp", pid()));
    Ok(path.with_file_name(temp))
}

/// Writes `doc` as pretty JSON to `path` atomically, mode 0640 whatever the
/// umask: the agent's group reads it (under systemd, brokerguard-clients,
/// the trading bot's group), others do not. The error is the OS's alone:
/// the agent says the path once, in its alert ([`WriteHealth`]).
pub fn write_atomic_unnamed(path: &Path, doc: &StatusDoc) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes, 0o640)
}

/// Writes `bytes` to `path` atomically (temp file beside it, renamed
/// over it) with `mode` whatever the umask; errors name the file. Also the
/// metrics textfile's writer (mode 0644: node_exporter runs as its own user).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        drop(file);
        fs::rename(&temp, path)
    })();
    result.inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

/// [`write_atomic_unnamed`], with an error that names the file.
pub fn write_atomic(path: &Path, doc: &StatusDoc) -> io::Result<()> {
    write_atomic_unnamed(path, doc)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// Whether status.json can be written, said once instead of on every
/// rewrite: the first failure is `alert=status_unwritable` with the path
/// and the error, repeated every `alert_repeat` while it lasts (the same
/// error or another), and the first success after it a notice. Pure: the
/// time comes in as an argument.
#[derive(Debug, Default)]
pub struct WriteHealth {
    /// Since when writes fail, and when the alert was last said.
    failing: Option<(Instant, Instant)>,
}

/// What [`WriteHealth`] has to say about one write.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteNews {
    Nothing,
    /// The alert to emit.
    Alert(Alert),
    /// Writable again after failing for this long (a notice).
    Writable {
        after: Duration,
    },
}

impl WriteHealth {
    /// One write's result at `now`. `error` is the OS error alone (the path
    /// is a field of its own, so it is said once).
    pub fn observe(
        &mut self,
        now: Instant,
        repeat: Duration,
        path: &Path,
        error: Option<&io::Error>,
    ) -> WriteNews {
        match (error, self.failing) {
            (None, None) => WriteNews::Nothing,
            (None, Some((since, _))) => {
                self.failing = None;
                WriteNews::Writable {
                    after: now.saturating_duration_since(since),
                }
            }
            (Some(e), failing) => {
                let (since, said) = match failing {
                    Some((since, said)) if now.saturating_duration_since(said) < repeat => {
                        let _ = since;
                        return WriteNews::Nothing;
                    }
                    Some((since, _)) => (since, now),
                    None => (now, now),
                };
                self.failing = Some((since, said));
                WriteNews::Alert(
                    Alert::new(AlertKind::StatusUnwritable)
                        .with("path", path.display())
                        .with("error", e)
                        .with(
                            "action",
                            "free space in the runtime folder (df -h on it); the feeds keep running",
                        ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_is_hidden_beside_the_target() {
        let t = temp_path(Path::new("/run/brokerguard/status.json")).unwrap();
        assert_eq!(t.parent(), Some(Path::new("/run/brokerguard")));
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".status.json.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert_ne!(
            temp_path(Path::new("/x/status.json")).unwrap(),
            temp_path(Path::new("/x/status.json")).unwrap()
        );
    }

    #[test]
    fn an_unwritable_status_is_said_once_repeated_and_its_end_noticed() {
        let mut h = WriteHealth::default();
        let t0 = Instant::now();
        let repeat = Duration::from_secs(3600);
        let path = Path::new("/run/brokerguard/status.json");
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(h.observe(at(0), repeat, path, None), WriteNews::Nothing);
        let WriteNews::Alert(a) = h.observe(at(1), repeat, path, Some(&full)) else {
            panic!("no alert on the first failure");
        };
        let line = a.to_string();
        assert!(
            line.starts_with("alert=status_unwritable path=/run/brokerguard/status.json error="),
            "{line}"
        );
        assert_eq!(
            line.matches("status.json").count(),
            1,
            "the path said once: {line}"
        );
        // A failure a second for the next hour says nothing more...
        for s in 2..3601 {
            assert_eq!(
                h.observe(at(s), repeat, path, Some(&full)),
                WriteNews::Nothing,
                "{s}"
            );
        }
        // ...until alert_repeat has passed.
        assert!(matches!(
            h.observe(at(3601), repeat, path, Some(&full)),
            WriteNews::Alert(_)
        ));
        assert_eq!(
            h.observe(at(3700), repeat, path, None),
            WriteNews::Writable {
                after: Duration::from_secs(3699)
            }
        );
        assert_eq!(h.observe(at(3701), repeat, path, None), WriteNews::Nothing);
        assert!(matches!(
            h.observe(at(3702), repeat, path, Some(&full)),
            WriteNews::Alert(_)
        ));
    }
}
