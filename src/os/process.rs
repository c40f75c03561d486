//! Process-wide settings and signals: malloc arenas, the open-file limit,
//! core dumps, signals to a process or one of our threads, the monotonic
//! clock systemd compares against, the clock-tick and page sizes.

use std::io;

/// Caps glibc's malloc arenas (one per thread by default). Call before the
/// first thread starts. `false` when refused (or not glibc).
pub fn limit_malloc_arenas(arenas: i32) -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt takes two integers and changes allocator
        // parameters only; the caller runs it before threads exist.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = arenas;
        false
    }
}

/// The open-file limit: (soft, hard).
pub fn open_file_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    super::cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the open-file soft limit (at most the hard one).
pub fn set_open_file_soft_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = open_file_limit()?;
    let lim = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    super::cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(drop)
}

/// Makes the process non-dumpable: no core file, and no `ptrace` or
/// `/proc/<pid>/mem` access by other processes of the same user, so a
/// secret in memory cannot land in a core dump or be read by a neighbour
/// running as the service user. Inherited across `fork`, reset by `execve`
/// of a set-id binary only.
pub fn forbid_core_dumps() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integers only.
    super::cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// Whether the process may dump core (`PR_GET_DUMPABLE`).
pub fn dumpable() -> io::Result<bool> {
    // SAFETY: prctl(PR_GET_DUMPABLE) takes integers only.
    super::cvt(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }).map(|v| v != 0)
}

/// Sends signal `sig` to the process `pid`. ESRCH: it no longer exists.
pub fn signal_process(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    // SAFETY: kill takes integers only; pid > 0 names one process, never a group.
    super::cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Sends signal `sig` to one of this process's threads, to interrupt a
/// blocking call in it. The handle is not joined (we borrow it), so its
/// `pthread_t` stays valid even if the thread has ended (then ESRCH).
pub fn signal_thread<T>(thread: &std::thread::JoinHandle<T>, sig: libc::c_int) -> io::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: a pthread_t of a thread not yet joined, and a signal number.
    let rc = unsafe { libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// CLOCK_MONOTONIC in microseconds.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of
/// `/proc/self/stat`'s CPU times; 100 if the system does not say.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// The page size in bytes (`sysconf(_SC_PAGESIZE)`), the unit of
/// `/proc/self/stat`'s RSS; 4096 if the system does not say.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_to_no_process_is_esrch_and_never_a_group() {
        assert_eq!(
            signal_process(0, libc::SIGHUP).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // PID max on Linux is at most 2^22.
        let e = signal_process(1 << 23, libc::SIGHUP).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_usec() >= a + 2_000);
    }

    /// Run as a child by the test below (ignored when run directly).
    #[test]
    #[ignore = "helper: run as a child process by forbidding_core_dumps_sticks"]
    fn child_forbids_core_dumps() {
        assert!(dumpable().unwrap(), "a fresh process may dump core");
        forbid_core_dumps().unwrap();
        assert!(!dumpable().unwrap());
    }

    #[test]
    fn forbidding_core_dumps_sticks() {
        // In a child: the setting is process-wide and would change this
        // test process for every other test.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "os::process::tests::child_forbids_core_dumps",
                "--ignored",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    }
}
