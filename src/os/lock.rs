//! Advisory locks on open files.
//!
//! Whole-file locks are `flock(2)`: they belong to the open file
//! description, so a second `open` of the same file in one process contends
//! like another process would, and a child never inherits them since std
//! opens with `O_CLOEXEC`. Here they are retried on EINTR and a busy lock is
//! `Ok(false)`, not an error. (std's `File::lock` family does the same from
//! Rust 1.89; the crate's `rust-version` is 1.85, so this is the one
//! wrapper until it moves.)
//!
//! The POSIX record lock ([`hold_record_lock`], [`record_lock_holder`]) is
//! taken beside the agent's pidfile lock for one reason: the kernel reports
//! the PID that holds it (`F_GETLK`), so `reload` can confirm whom it
//! signals instead of trusting the PID written in a file that the service
//! user can rewrite. POSIX locks are per process and dropped when the
//! process closes any descriptor of the file, so only the pidfile, which the
//! agent opens exactly once, carries one.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Which lock to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Exclusive,
    Shared,
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor the borrowed File keeps open; no memory is passed.
    super::retry(|| super::cvt(unsafe { libc::flock(file.as_raw_fd(), op) })).map(drop)
}

fn op(kind: Kind) -> libc::c_int {
    match kind {
        Kind::Exclusive => libc::LOCK_EX,
        Kind::Shared => libc::LOCK_SH,
    }
}

/// Takes the lock if it is free: `Ok(false)` when another open file holds it.
pub fn try_lock(file: &File, kind: Kind) -> io::Result<bool> {
    match flock(file, op(kind) | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits in the kernel until the lock is ours (no deadline: callers that
/// need one wait in a helper thread).
pub fn lock(file: &File, kind: Kind) -> io::Result<()> {
    flock(file, op(kind))
}

/// Releases a lock taken with [`try_lock`] or [`lock`] (closing the last
/// descriptor of the open file releases it too).
pub fn unlock(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_UN)
}

fn whole_file(kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Takes a POSIX write lock on all of `file` (opened for writing) without
/// waiting: `Ok(false)` when another process holds one.
pub fn hold_record_lock(file: &File) -> io::Result<bool> {
    let fl = whole_file(libc::F_WRLCK as libc::c_short);
    // SAFETY: fcntl(F_SETLK) reads one flock struct through a valid pointer.
    match super::retry(|| super::cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) }))
    {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases the POSIX lock of [`hold_record_lock`].
pub fn unlock_record(file: &File) -> io::Result<()> {
    let fl = whole_file(libc::F_UNLCK as libc::c_short);
    // SAFETY: fcntl(F_SETLK) reads one flock struct through a valid pointer.
    super::retry(|| super::cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) }))
        .map(drop)
}

/// The PID the kernel says holds a POSIX lock on `file` that would conflict
/// with a write lock (`None`: no such lock). Opening for reading suffices.
/// The PID is as seen from this process's PID namespace (0 if the holder
/// is outside it).
pub fn record_lock_holder(file: &File) -> io::Result<Option<u32>> {
    let mut fl = whole_file(libc::F_WRLCK as libc::c_short);
    // SAFETY: fcntl(F_GETLK) reads and writes one flock struct we own.
    super::retry(|| super::cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) }))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(u32::try_from(fl.l_pid).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(tag: &str) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("bg-os-lock-{tag}-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .unwrap();
        (p, f)
    }

    #[test]
    fn a_second_open_contends_and_a_release_frees() {
        let (p, a) = temp_file("flock");
        let b = File::open(&p).unwrap();
        assert!(try_lock(&a, Kind::Exclusive).unwrap());
        assert!(!try_lock(&b, Kind::Shared).unwrap());
        unlock(&a).unwrap();
        assert!(try_lock(&b, Kind::Shared).unwrap());
        assert!(!try_lock(&a, Kind::Exclusive).unwrap());
        lock(&a, Kind::Shared).unwrap();
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn the_record_lock_holder_is_named_by_the_kernel() {
        use std::io::{BufRead, BufReader, Write};
        let (p, f) = temp_file("posix");
        let reader = File::open(&p).unwrap();
        assert_eq!(record_lock_holder(&reader).unwrap(), None);
        assert!(hold_record_lock(&f).unwrap());
        assert_eq!(
            record_lock_holder(&reader).unwrap(),
            None,
            "our own lock never conflicts"
        );
        unlock_record(&f).unwrap();
        // Another process's lock: a child that takes it and waits.
        let script = "import fcntl,sys\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('held',flush=True)\nsys.stdin.read()\n";
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&p)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped the cross-process half: python3 is not installed");
            return;
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        assert_eq!(record_lock_holder(&reader).unwrap(), Some(child.id()));
        assert!(!hold_record_lock(&f).unwrap(), "held elsewhere");
        child.stdin.take().unwrap().write_all(b"").unwrap();
        child.wait().unwrap();
        assert_eq!(record_lock_holder(&reader).unwrap(), None);
        std::fs::remove_file(p).unwrap();
    }
}
