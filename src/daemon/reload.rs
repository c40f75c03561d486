//! `brokerguard reload`: ask the running agent to reload and wait for what
//! it made of it, so `systemctl reload` (the unit's `ExecReload=`) fails
//! when the new configuration is rejected instead of returning before the
//! agent has read anything.
//!
//! The handshake: read the reload generation in the agent's status.json,
//! send SIGHUP to the PID that holds the lock, then wait until the lock
//! holder's status.json shows a larger generation. The agent publishes a
//! reload's outcome only after it has finished it, and every SIGHUP
//! received after the read leads to a reload after it, so the outcome seen
//! belongs to this request (or to one that began after it and read the same
//! file), never to an earlier one.

use super::lock;
use crate::status::schema::{ReloadStatus, StatusDoc};
use crate::status::show::{self, Observed};
use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often status.json is re-read while waiting.
const POLL: Duration = Duration::from_millis(20);

/// What the agent made of the reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub pid: u32,
    pub reload: ReloadStatus,
}

impl Outcome {
    pub fn applied(&self) -> bool {
        self.reload.result == ReloadStatus::APPLIED
    }
}

/// Why no outcome could be had.
#[derive(Debug)]
pub enum ReloadError {
    /// No agent holds the lock in the runtime folder.
    NotRunning { runtime_dir: String },
    /// The agent exited (or was replaced) before it answered.
    Exited { pid: u32 },
    /// The lock holder's PID is not in the pidfile (it is still starting).
    NoPid { runtime_dir: String },
    /// The runtime folder or status.json cannot be read.
    Unreadable(String),
    /// The kernel does not confirm that the PID in the pidfile holds the
    /// lock (`kernel`: whom it names instead, if anyone), so it is not
    /// signalled: the pidfile is writable by the service user.
    Unconfirmed {
        pid: u32,
        kernel: Option<u32>,
        pidfile: String,
    },
    /// SIGHUP could not be sent.
    Signal { pid: u32, source: io::Error },
    /// The agent did not publish an outcome in time.
    Timeout { pid: u32, waited: Duration },
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::NotRunning { runtime_dir } => write!(
                f,
                "brokerguard is not running (no agent holds the lock in {runtime_dir}); start it: systemctl start brokerguard"
            ),
            ReloadError::Exited { pid } => write!(
                f,
                "the agent (pid {pid}) exited before it answered; see journalctl -u brokerguard"
            ),
            ReloadError::NoPid { runtime_dir } => write!(
                f,
                "an agent holds the lock in {runtime_dir} but its pid is not written yet (still starting); try again"
            ),
            ReloadError::Unreadable(why) => f.write_str(why),
            ReloadError::Unconfirmed {
                pid,
                kernel,
                pidfile,
            } => {
                write!(
                    f,
                    "{pidfile} names pid {pid}, but the kernel does not confirm it holds the agent's lock ("
                )?;
                match kernel {
                    Some(k) => write!(f, "pid {k} does")?,
                    None => f.write_str("no process holds its record lock")?,
                }
                f.write_str(
                    "); not signalling it. An agent started by an older brokerguard takes no record \
                     lock: restart it once (systemctl restart brokerguard)",
                )
            }
            ReloadError::Signal { pid, source } => {
                write!(f, "cannot send SIGHUP to pid {pid}: {source}")?;
                if source.kind() == io::ErrorKind::PermissionDenied {
                    write!(f, "; run as root or as the service user (brokerguard)")?;
                }
                Ok(())
            }
            ReloadError::Timeout { pid, waited } => write!(
                f,
                "the agent (pid {pid}) published no reload outcome within {}; it may still apply it, or be stuck: see journalctl -u brokerguard",
                crate::timefmt::human(*waited)
            ),
        }
    }
}

impl std::error::Error for ReloadError {}

/// The reload generation the agent `pid` has published (0 before its first
/// reload or its first status write).
fn generation(doc: Option<&StatusDoc>, pid: u32) -> u64 {
    doc.filter(|d| d.agent.pid == pid)
        .and_then(|d| d.agent.reload.as_ref())
        .map_or(0, |r| r.generation)
}

/// Signals the agent whose lock is in `runtime_dir` to reload and waits at
/// most `timeout` for the outcome.
pub fn request(runtime_dir: &Path, timeout: Duration) -> Result<Outcome, ReloadError> {
    let shown = runtime_dir.display().to_string();
    let holder = lock::holder(runtime_dir)
        .map_err(|e| ReloadError::Unreadable(format!("{e}; run as root or the service user")))?
        .ok_or_else(|| ReloadError::NotRunning {
            runtime_dir: shown.clone(),
        })?;
    let pid = holder.pid.ok_or(ReloadError::NoPid {
        runtime_dir: shown.clone(),
    })?;
    let before = match show::observe(runtime_dir) {
        Observed::Running(doc) => generation(Some(&doc), pid),
        // Still starting: its first reload will be generation 1.
        Observed::NotRunning { .. } => 0,
        Observed::Unreadable(_) if !runtime_dir.join(show::STATUS_FILE_NAME).exists() => 0,
        Observed::Unreadable(why) => return Err(ReloadError::Unreadable(why)),
    };
    // The pidfile's text is the service user's to write: signal only the PID
    // the kernel names as the holder of the agent's record lock, so a
    // rewritten pidfile cannot make root signal another process.
    let kernel = lock::kernel_holder(runtime_dir)
        .map_err(|e| ReloadError::Unreadable(format!("{e}; run as root or the service user")))?;
    if kernel != Some(pid) {
        return Err(ReloadError::Unconfirmed {
            pid,
            kernel,
            pidfile: runtime_dir.join(lock::PIDFILE_NAME).display().to_string(),
        });
    }
    // The lock is held, so the process is alive and is the agent, not a reused PID.
    if let Err(source) = crate::pidfile::signal_holder(runtime_dir, pid, libc::SIGHUP) {
        return Err(match source.raw_os_error() {
            Some(libc::ESRCH) => ReloadError::Exited { pid },
            _ => ReloadError::Signal { pid, source },
        });
    }
    let start = Instant::now();
    loop {
        match show::observe(runtime_dir) {
            Observed::Running(doc) if doc.agent.pid == pid => {
                if let Some(r) = doc.agent.reload.filter(|r| r.generation > before) {
                    return Ok(Outcome { pid, reload: *r });
                }
            }
            Observed::Running(_) | Observed::NotRunning { .. } => {
                let still_ours = lock::holder(runtime_dir)
                    .ok()
                    .flatten()
                    .is_some_and(|h| h.pid == Some(pid));
                if !still_ours {
                    return Err(ReloadError::Exited { pid });
                }
            }
            // A rename in progress or a moment without the file: look again.
            Observed::Unreadable(_) => {}
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(ReloadError::Timeout { pid, waited });
        }
        std::thread::sleep(POLL.min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::schema::AgentStatus;

    #[test]
    fn generation_counts_only_the_lock_holders_document() {
        let mut doc = StatusDoc {
            agent: AgentStatus {
                pid: 7,
                ..AgentStatus::default()
            },
            ..StatusDoc::default()
        };
        assert_eq!(generation(Some(&doc), 7), 0);
        doc.agent.reload = Some(Box::new(ReloadStatus {
            generation: 4,
            result: ReloadStatus::APPLIED.into(),
            ..ReloadStatus::default()
        }));
        assert_eq!(generation(Some(&doc), 7), 4);
        // A document left by another (dead) agent says nothing about this one.
        assert_eq!(generation(Some(&doc), 8), 0);
        assert_eq!(generation(None, 7), 0);
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = ReloadError::Signal {
            pid: 42,
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(e.to_string().contains("run as root"), "{e}");
        let e = ReloadError::Timeout {
            pid: 42,
            waited: Duration::from_secs(10),
        };
        assert!(e.to_string().contains("within 10s"), "{e}");
    }

    /// A child stopped and reaped when dropped, also when an assertion fails.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_pidfile_naming_a_process_that_does_not_hold_the_lock_is_not_signalled() {
        use crate::os::fs::tests::Scratch;
        use std::process::{Command, Stdio};
        let run = Scratch::new("reload-confirm");
        let pidfile = run.0.join(lock::PIDFILE_NAME);
        // Whoever can write the runtime folder names another process in the
        // pidfile while a lock is held: `reload` must not signal it.
        let mut victim = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
        std::fs::write(&pidfile, format!("{}\n", victim.0.id())).unwrap();
        let holder = Command::new("flock")
            .arg(&pidfile)
            .args(["sleep", "60"])
            .stdout(Stdio::null())
            .spawn();
        let Ok(holder) = holder else {
            eprintln!("skipped: the flock command (util-linux) is not installed");
            return;
        };
        let _holder = Reaped(holder);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock::holder(&run.0).unwrap().is_none() {
            assert!(Instant::now() < deadline, "flock never took the lock");
            std::thread::sleep(Duration::from_millis(5));
        }
        let e = request(&run.0, Duration::from_secs(1)).unwrap_err();
        let shown = e.to_string();
        assert!(
            matches!(e, ReloadError::Unconfirmed { kernel: None, .. }),
            "{e:?}"
        );
        assert!(
            shown.contains(&format!("names pid {}", victim.0.id())),
            "{shown}"
        );
        assert!(shown.contains("not signalling it"), "{shown}");
        assert!(
            victim.0.try_wait().unwrap().is_none(),
            "the named process was signalled"
        );
    }
}
