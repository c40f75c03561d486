//! Single instance: `<runtime_dir>/brokerguard.pid`, held with `flock`.
//!
//! The lock is the truth, the PID inside the file is only a courtesy for the
//! operator. A copy killed with SIGKILL leaves its file behind, but the kernel
//! released its lock with its last descriptor, so the next start simply takes
//! the file over: no manual cleanup, no "stale pidfile" guessing from PIDs.
//!
//! The runtime folder may be writable by the service user while `run`,
//! `status` or `reload` run as root, so the pidfile is reached by the
//! no-follow rule (`os::fs`): the folder is opened once and checked (owner,
//! not writable by everyone), the pidfile is opened relative to it with
//! `O_NOFOLLOW` and must be a regular file; its mode is set through the
//! handle. A planted symlink, FIFO or device is refused, never followed.
//! Beside the `flock`, the holder takes a POSIX record lock on the file,
//! whose holder the kernel names ([`kernel_holder`]): `reload` signals only
//! a PID that the kernel confirms, never just what the file says.
//!
//! Races handled here:
//! * A stopping agent unlinks the file and then unlocks. A new copy that opened
//!   the old inode just before the unlink can win the lock on a file nobody
//!   will ever look at again; after locking we compare the descriptor's inode
//!   with the path's and start over when they differ.
//! * [`holder`] (used by `brokerguard status`) probes with a shared lock for
//!   an instant. A copy starting at exactly that instant sees the lock busy, so
//!   [`PidLock::acquire`] retries for a short window before concluding that
//!   another agent runs. The same window lets the losers of a start race read
//!   the winner's PID instead of an empty file.

use crate::os::fs::{Access, Dir, Owners};
use crate::os::{self, lock::Kind};
use std::fmt;
use std::fs::{File, Permissions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::pidfile::read_pid;
pub use crate::pidfile::{LockHolder, PIDFILE_NAME, holder, kernel_holder};

/// How long a busy lock is retried before concluding another agent holds it.
/// Long enough to ride over a `status` probe or a winner still writing its
/// PID; short enough that a second copy still exits "at once".
const BUSY_WINDOW: Duration = Duration::from_millis(100);
const BUSY_POLL: Duration = Duration::from_millis(5);

/// How many times the lock is retaken after losing a race with an unlink.
const MAX_INODE_RETRIES: u32 = 100;

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another live process holds the lock.
    Held { pid: Option<u32> },
    /// The OS refused an operation on the runtime folder or the pidfile.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held { pid: Some(pid) } => {
                write!(f, "another brokerguard is running (pid {pid})")
            }
            LockError::Held { pid: None } => {
                write!(f, "another brokerguard is running (pid unknown)")
            }
            LockError::Io {
                path,
                action,
                source,
            } => {
                if os::fs::names_itself(source, path) {
                    // A refusal of the no-follow rule names the file and the fix.
                    return write!(f, "cannot {action}: {source}");
                }
                write!(f, "cannot {action} {}: {source}", path.display())?;
                match source.kind() {
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => write!(
                        f,
                        "; run as the service user (brokerguard) or set agent.runtime_dir to a folder you can write"
                    ),
                    _ => write!(
                        f,
                        "; check the folder exists and is writable, or set agent.runtime_dir"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Held { .. } => None,
            LockError::Io { source, .. } => Some(source),
        }
    }
}

/// The held lock. Dropping it (or [`PidLock::release`]) removes the pidfile
/// and then unlocks, so nobody ever sees an unlocked file that we still own.
#[derive(Debug)]
pub struct PidLock {
    file: Option<File>,
    dir: Dir,
    path: PathBuf,
    pid: u32,
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> LockError + use<> {
    let path = path.to_path_buf();
    move |source| LockError::Io {
        path,
        action,
        source,
    }
}

/// Whether `file` is still the inode found at the pidfile's name.
fn same_inode(file: &File, dir: &Dir) -> io::Result<bool> {
    let ours = os::fs::stat(file)?;
    Ok(dir
        .stat_entry(PIDFILE_NAME)?
        .is_some_and(|now| now.same_file(&ours)))
}

impl PidLock {
    /// Takes the single-instance lock in `runtime_dir` (created 0755 if
    /// missing) and writes our PID into it. Never blocks for long: a lock
    /// held by a live process gives [`LockError::Held`] within ~100 ms.
    pub fn acquire(runtime_dir: &Path) -> Result<PidLock, LockError> {
        let dir = Dir::open_or_create(runtime_dir, 0o755, &Owners::of_this_process())
            .map_err(io_err(runtime_dir, "open the runtime folder"))?;
        Self::acquire_in(dir)
    }

    /// [`PidLock::acquire`] in an opened and checked runtime folder.
    pub fn acquire_in(dir: Dir) -> Result<PidLock, LockError> {
        let path = dir.shown(PIDFILE_NAME);
        let pid = std::process::id();

        for _ in 0..MAX_INODE_RETRIES {
            // O_CLOEXEC: the lock never leaks into a child.
            let mut file = dir
                .open_file(PIDFILE_NAME, Access::ReadWriteCreate(0o644))
                .map_err(io_err(&path, "open the pidfile"))?;

            let deadline = Instant::now() + BUSY_WINDOW;
            let mut seen_pid = None;
            let locked = loop {
                if os::lock::try_lock(&file, Kind::Exclusive)
                    .map_err(io_err(&path, "lock the pidfile"))?
                {
                    break true;
                }
                seen_pid = read_pid(&mut file).or(seen_pid);
                if Instant::now() >= deadline {
                    break false;
                }
                thread::sleep(BUSY_POLL);
            };
            if !locked {
                return Err(LockError::Held { pid: seen_pid });
            }

            if !same_inode(&file, &dir).map_err(io_err(&path, "check the pidfile"))? {
                // Locked an inode a stopping agent just unlinked: start over.
                drop(file);
                continue;
            }

            let write = |file: &mut File| -> io::Result<()> {
                // The kernel's word on who holds it, for `reload`.
                if !os::lock::hold_record_lock(file)? {
                    return Err(io::Error::other(
                        "another process holds a record lock on it without the flock",
                    ));
                }
                // 0644 whatever the umask (fchmod on the handle): `status`
                // run by another user must be able to open it to probe the lock.
                file.set_permissions(Permissions::from_mode(0o644))?;
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(format!("{pid}\n").as_bytes())?;
                file.sync_all()
            };
            write(&mut file).map_err(io_err(&path, "write the pidfile"))?;
            return Ok(PidLock {
                file: Some(file),
                dir,
                path,
                pid,
            });
        }
        Err(LockError::Io {
            path,
            action: "lock the pidfile",
            source: io::Error::other("the pidfile kept being replaced while locking it"),
        })
    }

    /// Path of the pidfile.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Our PID, as written in the file.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Removes the pidfile and unlocks (same as dropping it).
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        if let Some(file) = self.file.take() {
            // Unlink only our own inode: if an operator removed the file and
            // another copy created a new one, that one is not ours to delete.
            if same_inode(&file, &self.dir).unwrap_or(false) {
                let _ = self.dir.remove(PIDFILE_NAME);
            }
            drop(file); // closing the last descriptor unlocks
        }
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_messages_are_exact() {
        assert_eq!(
            LockError::Held { pid: Some(42) }.to_string(),
            "another brokerguard is running (pid 42)"
        );
        assert_eq!(
            LockError::Held { pid: None }.to_string(),
            "another brokerguard is running (pid unknown)"
        );
    }

    #[test]
    fn io_error_names_path_and_remedy() {
        let e = LockError::Io {
            path: PathBuf::from("/run/brokerguard/brokerguard.pid"),
            action: "open the pidfile",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot open the pidfile /run/brokerguard/brokerguard.pid: "),
            "{text}"
        );
        assert!(text.contains("run as the service user"), "{text}");
        assert!(text.contains("agent.runtime_dir"), "{text}");
    }

    #[test]
    fn root_never_follows_a_pidfile_planted_as_a_link() {
        use crate::os::fs::tests::{NOBODY, Scratch, assert_untouched, folder_of_nobody, victim};
        let Some(run) = folder_of_nobody("pidfile-link") else {
            return;
        };
        let elsewhere = Scratch::new("pidfile-victim");
        let target = victim(&elsewhere);
        std::os::unix::fs::symlink(&target, run.0.join(PIDFILE_NAME)).unwrap();
        let dir = Dir::open(&run.0, &Owners::only(&[0, NOBODY])).unwrap();
        let e = PidLock::acquire_in(dir).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert_untouched(&target);
        // A real pidfile left by the folder's owner is taken over, its
        // owner kept and its mode set through the handle.
        std::fs::remove_file(run.0.join(PIDFILE_NAME)).unwrap();
        let dir = Dir::open(&run.0, &Owners::only(&[0, NOBODY])).unwrap();
        let held = PidLock::acquire_in(dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(held.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(held);
        // The folder of a stranger is refused, naming the folder and the fix.
        if crate::os::user::user_by_name(crate::os::fs::SERVICE_USER).is_none() {
            let e = PidLock::acquire(&run.0).unwrap_err().to_string();
            assert!(e.contains("neither root"), "{e}");
            assert!(e.contains("sudo chown brokerguard:"), "{e}");
        }
    }
}
