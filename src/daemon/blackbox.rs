//! `brokerguard blackbox FEED`: a running feed's flight recorder, reached
//! the way `reload` reaches the agent. The command signals the lock
//! holder with SIGUSR1; the agent's main thread writes every feed's ring
//! to `<runtime_dir>/blackbox/<feed>.ndjson` (atomically, mode 0640: the
//! folder and files are the agent's group's, as `status.json` is, and the
//! recorder never holds a secret); the command waits for a fresh file and
//! prints it. No socket is opened and nothing is accepted from the caller
//! but the signal, so the agent gains no new way in.

use super::lock;
use crate::feed::recorder;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The folder under the runtime folder that holds the dumps.
pub const FOLDER: &str = "blackbox";
const POLL: Duration = Duration::from_millis(20);

/// `<runtime_dir>/blackbox/<feed>.ndjson`.
pub fn file_for(runtime_dir: &Path, feed: &str) -> PathBuf {
    runtime_dir.join(FOLDER).join(format!("{feed}.ndjson"))
}

/// The agent's side: every registered recorder to its file.
pub fn write_all(runtime_dir: &Path) {
    let folder = runtime_dir.join(FOLDER);
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&folder)
    {
        log::warn!("blackbox: cannot create {}: {e}", folder.display());
        return;
    }
    for r in recorder::all_registered() {
        let path = file_for(runtime_dir, &r.feed);
        if let Err(e) = write_atomic(&path, r.to_ndjson().as_bytes()) {
            log::warn!("blackbox: cannot write {}: {e}", path.display());
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&temp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

#[derive(Debug)]
pub enum BlackboxError {
    /// No agent holds the lock (exit 3).
    NotRunning { runtime_dir: String },
    /// The lock or the file could not be read (not root or the service's group).
    Unreadable(String),
    /// The signal could not be sent.
    Signal { pid: u32, source: io::Error },
    /// No fresh file for the feed in time: the agent does not run it.
    NoAnswer { feed: String, waited: Duration },
}

impl fmt::Display for BlackboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlackboxError::NotRunning { runtime_dir } => {
                write!(
                    f,
                    "brokerguard is not running (no lock held in {runtime_dir})"
                )
            }
            BlackboxError::Unreadable(why) => write!(f, "{why}"),
            BlackboxError::Signal { pid, source } => write!(
                f,
                "cannot signal the agent (pid {pid}): {source}; run as root or the service user"
            ),
            BlackboxError::NoAnswer { feed, waited } => write!(
                f,
                "no flight recorder of feed {feed} within {}: the agent does not run a feed of that name \
                 (brokerguard status lists them)",
                crate::timefmt::human(*waited)
            ),
        }
    }
}

impl std::error::Error for BlackboxError {}

fn identity(path: &Path) -> Option<(u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec()))
}

/// Asks the agent in `runtime_dir` to write its recorders and returns the
/// NDJSON of `feed`, waiting at most `timeout`.
pub fn request(runtime_dir: &Path, feed: &str, timeout: Duration) -> Result<String, BlackboxError> {
    let shown = runtime_dir.display().to_string();
    let holder = lock::holder(runtime_dir)
        .map_err(|e| BlackboxError::Unreadable(format!("{e}; run as root or the service user")))?
        .ok_or_else(|| BlackboxError::NotRunning {
            runtime_dir: shown.clone(),
        })?;
    let pid = holder.pid.ok_or(BlackboxError::NotRunning {
        runtime_dir: shown.clone(),
    })?;
    let path = file_for(runtime_dir, feed);
    let before = identity(&path);
    // Only the PID the kernel names as the lock's holder is signalled.
    if let Err(source) = crate::pidfile::signal_holder(runtime_dir, pid, libc::SIGUSR1) {
        return Err(BlackboxError::Signal { pid, source });
    }
    let start = Instant::now();
    loop {
        let now = identity(&path);
        if now.is_some() && now != before {
            return std::fs::read_to_string(&path).map_err(|e| {
                BlackboxError::Unreadable(format!(
                    "cannot read {}: {e}; run as root or a member of the agent's group",
                    path.display()
                ))
            });
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(BlackboxError::NoAnswer {
                feed: feed.to_string(),
                waited,
            });
        }
        std::thread::sleep(POLL.min(timeout - waited));
    }
}
