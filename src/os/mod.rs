//! The operating-system boundary: every call into the kernel or libc that
//! the standard library does not wrap safely lives here, and nowhere else.
//!
//! The crate root denies `unsafe_code`; this module alone is allowed it,
//! and each `unsafe` block says why it is sound. Callers get safe functions
//! that take owned or borrowed descriptors and return `io::Result`s.
//!
//! - [`fs`]: the no-follow rule for folders another user can write (open
//!   relative to a folder handle, `O_NOFOLLOW`, `O_EXCL` temp names, `fstat`
//!   and `fchown`/`fchmod` on the handle, bounded reads that refuse FIFOs and
//!   devices), and the trusted-folder check.
//! - [`lock`]: advisory locks (std's `flock`-based file locks, retried on
//!   EINTR) and the POSIX record lock whose holder the kernel names.
//! - [`poll`]: `poll(2)` over borrowed descriptors, and an eventfd.
//! - [`user`]: effective ids and user and group look-ups.
//! - [`process`]: malloc arenas, the open-file limit, `PR_SET_DUMPABLE`,
//!   signals to a process or a thread, the monotonic clock.
//! - [`socket`]: socket options (TCP keepalive, reset on close, peer pid).
//! - [`term`]: terminal echo off for a typed secret.
//! - [`random`]: bytes from the kernel's random source.

pub mod epoll;
pub mod fs;
pub mod lock;
pub mod poll;
pub mod process;
pub mod random;
pub mod socket;
pub mod term;
pub mod user;

use std::io;

/// `Ok(rc)` for a non-negative return value, else the thread's errno.
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Runs `f` again while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
