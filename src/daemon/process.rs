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

use crate::os;

/// glibc arenas for the whole process (module doc).
const MALLOC_ARENAS: i32 = 2;

/// Applies both settings; failures are logged at debug level only, since
/// the agent runs correctly without them.
pub fn tune() {
    if !os::process::limit_malloc_arenas(MALLOC_ARENAS) {
        log::debug!("mallopt(M_ARENA_MAX, {MALLOC_ARENAS}) refused");
    }
    raise_open_file_limit();
}

fn raise_open_file_limit() {
    let Ok((soft, hard)) = os::process::open_file_limit() else {
        return;
    };
    if soft >= hard {
        return;
    }
    if let Err(e) = os::process::set_open_file_soft_limit(hard) {
        log::debug!("cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_ends_at_the_hard_one() {
        tune();
        let (soft, hard) = os::process::open_file_limit().unwrap();
        assert_eq!(soft, hard);
    }
}
