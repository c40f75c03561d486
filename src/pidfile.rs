//! The pidfile's read side: its name, who holds it (`holder`, for
//! `status`, `reload`, `ha` and the blackbox) and the PID the kernel
//! confirms (`kernel_holder`), and signalling that PID only when the
//! kernel confirms it (`signal_holder`, for `reload`, `blackbox` and
//! `ha step-down`). A leaf that `status` and `ha` may use; taking the lock
//! is `daemon::lock`'s.

use crate::os::fs::{Access, Dir, Owners};
use crate::os::{self, lock::Kind};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// File name of the pidfile (and lock) inside the runtime folder.
pub const PIDFILE_NAME: &str = "brokerguard.pid";

/// Who holds the lock, as seen by [`holder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// The PID written in the pidfile; `None` if it was empty or unreadable
    /// (the holder was between locking and writing it).
    pub pid: Option<u32>,
}

/// The PID in an open pidfile, from its start. Only a complete line counts,
/// so a read racing the holder's write cannot return a cut-off number.
pub(crate) fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.strip_suffix('\n')?.trim().parse().ok()
}

/// The runtime folder, opened and checked for a reader; `None` if missing.
fn open_for_reading(runtime_dir: &Path) -> io::Result<Option<Dir>> {
    match Dir::open(runtime_dir, &Owners::of_this_process()) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(os::fs::naming("open", runtime_dir, e)),
    }
}

/// The pidfile, opened for reading by the no-follow rule; `None` if missing.
fn open_pidfile(runtime_dir: &Path) -> io::Result<Option<File>> {
    let Some(dir) = open_for_reading(runtime_dir)? else {
        return Ok(None);
    };
    let path = dir.shown(PIDFILE_NAME);
    match dir.open_file(PIDFILE_NAME, Access::Read) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(os::fs::naming("open", &path, e)),
    }
}

/// Whether a live process holds the lock in `runtime_dir`, for `status`.
/// A missing pidfile, or one whose lock is free (left by a killed agent), is
/// `Ok(None)`. Creates nothing, follows no link, and refuses a pidfile that
/// is not a regular file. The probe holds a shared lock for a few
/// microseconds; `acquire` rides over that (see the module doc).
pub fn holder(runtime_dir: &Path) -> io::Result<Option<LockHolder>> {
    let Some(mut file) = open_pidfile(runtime_dir)? else {
        return Ok(None);
    };
    let free = os::lock::try_lock(&file, Kind::Shared).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot probe the lock on {}: {e}",
                runtime_dir.join(PIDFILE_NAME).display()
            ),
        )
    })?;
    if free {
        return Ok(None);
    }
    Ok(Some(LockHolder {
        pid: read_pid(&mut file),
    }))
}

/// The PID the kernel says holds the agent's record lock on the pidfile
/// (`None`: nobody, or an agent too old to take one). Unlike the PID
/// written in the file, nobody but the holder can make this say anything.
/// Never call it in the agent itself: closing the probe's descriptor would
/// drop the agent's own record lock (POSIX locks are per process).
pub fn kernel_holder(runtime_dir: &Path) -> io::Result<Option<u32>> {
    let Some(file) = open_pidfile(runtime_dir)? else {
        return Ok(None);
    };
    os::lock::record_lock_holder(&file)
}
/// Sends `sig` to `pid`, the agent whose lock is in `runtime_dir`, only
/// when the kernel confirms that `pid` holds the agent's record lock on its
/// pidfile (the pidfile's text is the service user's to write, so it alone
/// must never decide whom root signals).
pub fn signal_holder(runtime_dir: &Path, pid: u32, sig: libc::c_int) -> io::Result<()> {
    let kernel = kernel_holder(runtime_dir)?;
    if kernel != Some(pid) {
        return Err(io::Error::other(format!(
            "the kernel does not confirm that pid {pid} holds the agent's lock in {}; not signalling it",
            runtime_dir.display()
        )));
    }
    os::process::signal_process(pid, sig)
}
