//! `brokerguard ha status` and `brokerguard ha step-down`: the failover role
//! as the running agent publishes it in status.json, and a planned hand-over
//! (SIGUSR2 to the lock holder, then waiting for the standby to take the
//! lease, read from the same status.json).
//!
//! Exit codes: `status` 0 this agent or another leads, 1 no leader known
//! (etcd unreachable or an election under way), 3 not running; `step-down`
//! 0 handed over, 1 not the leader or nobody took over in time, 3 not
//! running.

use crate::pidfile;
use crate::status::schema::HaSection;
use crate::status::show::{self, Observed};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a command found, for the binary to print and map to an exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    Failed(String),
    NotRunning(String),
}

fn ha_of(runtime_dir: &Path) -> Result<(u32, HaSection), Outcome> {
    match show::observe(runtime_dir) {
        Observed::Running(doc) => match doc.agent.ha {
            Some(ha) => Ok((doc.agent.pid, *ha)),
            None => Err(Outcome::Failed(
                "the running agent has no [ha] table: it is a single agent, with nothing to fail over"
                    .into(),
            )),
        },
        Observed::NotRunning { .. } => Err(Outcome::NotRunning(format!(
            "brokerguard is not running (no agent holds the lock in {})",
            runtime_dir.display()
        ))),
        Observed::Unreadable(why) => Err(Outcome::Failed(why)),
    }
}

/// One line about the role (and `ha status`'s verdict).
pub fn describe(ha: &HaSection) -> String {
    let epoch = ha.epoch.map(|e| format!(", epoch {e}")).unwrap_or_default();
    let holder = match (&ha.holder, ha.role.as_str()) {
        (_, "leader") => "this agent holds the lease".to_string(),
        (Some(h), _) => format!("{h} holds the lease"),
        (None, _) => "no leader known".to_string(),
    };
    let etcd = if ha.etcd_reachable {
        String::new()
    } else {
        format!(
            "; etcd unreachable: {}",
            ha.last_error.as_deref().unwrap_or("no answer")
        )
    };
    format!(
        "node {} in cluster {}: {} ({holder}{epoch}) since {}; lease {}{etcd}",
        ha.node,
        ha.cluster,
        ha.role,
        ha.since,
        crate::timefmt::human(Duration::from_millis(ha.lease_ms))
    )
}

pub fn status(runtime_dir: &Path) -> Outcome {
    match ha_of(runtime_dir) {
        Err(o) => o,
        Ok((_, ha)) if ha.role == "leader" || ha.holder.is_some() => Outcome::Ok(describe(&ha)),
        Ok((_, ha)) => Outcome::Failed(describe(&ha)),
    }
}

/// Asks the leader in `runtime_dir` to step down and waits, at most
/// `timeout`, for another node to hold the lease.
pub fn step_down(runtime_dir: &Path, timeout: Duration) -> Outcome {
    let (pid, ha) = match ha_of(runtime_dir) {
        Ok(x) => x,
        Err(o) => return o,
    };
    if ha.role != "leader" {
        return Outcome::Failed(format!(
            "this agent is not the leader, so it has nothing to hand over: {}",
            describe(&ha)
        ));
    }
    // The PID is the lock holder's, read from the lock, not only the file.
    match pidfile::holder(runtime_dir) {
        Ok(Some(h)) if h.pid == Some(pid) => {}
        _ => {
            return Outcome::Failed(format!(
                "pid {pid} in status.json does not hold the agent's lock; not signalling it"
            ));
        }
    }
    if let Err(e) = pidfile::signal_holder(runtime_dir, pid, libc::SIGUSR2) {
        return Outcome::Failed(format!("cannot signal pid {pid}: {e}"));
    }
    let start = Instant::now();
    loop {
        if let Observed::Running(doc) = show::observe(runtime_dir) {
            if let Some(now) = doc.agent.ha {
                if now.role != "leader" {
                    if let Some(h) = now.holder.as_ref().filter(|h| **h != ha.node) {
                        return Outcome::Ok(format!(
                            "stepped down: {h} holds the lease{} after {}",
                            now.epoch
                                .map(|e| format!(" (epoch {e})"))
                                .unwrap_or_default(),
                            crate::timefmt::human(start.elapsed())
                        ));
                    }
                }
            }
        }
        if start.elapsed() >= timeout {
            return Outcome::Failed(format!(
                "no other node took the lease within {}: is a standby running? This agent campaigns \
                 again two lease TTLs after stepping down",
                crate::timefmt::human(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
