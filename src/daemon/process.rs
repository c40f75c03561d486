//! Process-wide settings the agent makes once, before its first thread.
//!
//! - One malloc arena setting: glibc gives each thread that allocates an
//!   arena of its own (up to eight per core), each with its own resident
//!   pages and its own free lists that other threads cannot reuse. Two
//!   arenas keep the main thread's apart from the rest without one per feed;
//!   small allocations still come from each thread's tcache without a lock.
//! - The open-file limit: each feed holds two descriptors (its socket and
//!   the clone its interrupter shuts down), so 500 feeds need more than the
//!   usual soft limit of 1024. The soft limit is raised to the hard one;
//!   under systemd the unit's `LimitNOFILE=` has set both already, and the
//!   unit's system-call filter may refuse the call, which is fine.

/// glibc arenas for the whole process (module doc).
#[cfg(target_env = "gnu")]
const MALLOC_ARENAS: libc::c_int = 2;

/// Applies both settings; failures are logged at debug level only, since
/// the agent runs correctly without them.
pub fn tune() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt takes two integers and changes allocator
        // parameters only; it is called before the agent starts threads.
        if unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) } != 1 {
            log::debug!("mallopt(M_ARENA_MAX, {MALLOC_ARENAS}) refused");
        }
    }
    raise_open_file_limit();
}

fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur >= lim.rlim_max
    {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        log::debug!(
            "cannot raise the open-file limit from {} to {}: {}",
            lim.rlim_cur,
            lim.rlim_max,
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_ends_at_the_hard_one() {
        tune();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
