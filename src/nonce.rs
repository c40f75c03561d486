//! Nonces for signed broker APIs: one persistent, strictly increasing counter
//! per API key that every brokerguard process on the host shares (the
//! daemon, `doctor --online`, `check`).
//!
//! Why: a broker such as Kraken rejects a signed request whose nonce is not
//! larger than the last one it saw for the key, and locks the key after a few
//! conflicts. Eight copies of a bot signing with one key once did exactly
//! that. A counter in memory cannot prevent it; one file per key, locked for
//! every draw, can.
//!
//! Each key has `<state_dir>/nonce/<key id>` (the key id is the credential's
//! fingerprint, `hmac:1f2e3d4c`, stored as `hmac-1f2e3d4c`). A draw opens
//! it, takes an exclusive `flock` (never a blocking call without a deadline:
//! `LOCK_NB` polls, then a bounded wait, so a hung holder is a named error,
//! never a hang), reads the last value, issues
//! `max(now in µs since the Unix epoch, last + 1)` ([`next_nonce`]), writes it
//! back, `fsync`s, and unlocks. The value is durable before it is handed out,
//! so restarts and a wall clock stepping backwards never reissue one.
//!
//! The file holds the value as 20 zero-padded decimal digits and a newline,
//! always written in place at offset 0: a fixed width means a write never
//! changes the file's length, so there is no moment at which the file is
//! truncated or half as long. A file that does not hold a number is an
//! error naming it: the counter never silently restarts.
//!
//! A nonce that is unique is not enough: the broker checks it when the
//! request *arrives*, so two processes that draw 7 and 8 and send at once
//! can arrive as 8, 7 and the 7 is refused. [`NonceStore::lock_calls`]
//! serialises the signed calls of one key (draw, send, answer) across
//! every process on the host through a second lock file,
//! `<key id>.calls`, so brokerguard's own calls reach the broker in the
//! order their nonces were drawn; the waiting is bounded like the draw's.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clock::Clock;
use crate::os::{
    self,
    fs::{Access, Dir, Owners},
    lock::Kind,
};
use crate::timefmt::human;

/// The folder under `agent.state_dir` that holds one counter file per key.
pub const NONCE_DIR: &str = "nonce";

/// The floor a new counter starts above (a failover takeover's; a dot
/// keeps it apart from every key id's file name).
const FLOOR_FILE: &str = ".floor";

/// How long a draw waits for another process to release a counter's lock.
/// A draw holds it for one read, one write and one fsync (well under a
/// millisecond on a healthy disk), so this much waiting means a holder is
/// stopped or hung.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest accepted key id; fingerprints are 15 characters.
const MAX_KEY_ID_LEN: usize = 64;

/// Digits in the file: enough for `u64::MAX`.
const WIDTH: usize = 20;

/// A counter file longer than this is not one of ours (a number is at most
/// 20 digits; leave room for hand-written whitespace).
const MAX_FILE_LEN: usize = 64;

/// The pure rule: the next nonce after `last` (`None`: the key has none yet)
/// when the wall clock reads `now_us` microseconds since the Unix epoch.
/// The clock wins while it is ahead; `last + 1` wins when it is not (clock
/// stepped back, or several draws in one microsecond). `None` only when
/// `last` is `u64::MAX`: no larger nonce exists.
pub fn next_nonce(now_us: u64, last: Option<u64>) -> Option<u64> {
    match last {
        // Nonce 0 reads as "no nonce" to some brokers.
        None => Some(now_us.max(1)),
        Some(last) => last.checked_add(1).map(|next| next.max(now_us)),
    }
}

/// The file name for a key id: `hmac:1f2e3d4c` → `hmac-1f2e3d4c`.
/// `None` unless the id is 1 to 64 ASCII letters, digits, `:`, `_` or `-`
/// (so it can never climb out of the folder or hide as a dot file).
pub fn file_name_for(key_id: &str) -> Option<String> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return None;
    }
    key_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => Some(c),
            ':' => Some('-'),
            _ => None,
        })
        .collect()
}

/// Why a nonce could not be drawn or read. Messages name files and folders
/// and what to do; they never quote a key id that failed validation (it
/// may be a secret passed by mistake).
#[derive(Debug)]
pub enum NonceError {
    /// The key id is not a fingerprint-like name (a bug in the caller).
    KeyId { len: usize },
    /// The nonce folder could not be created or entered.
    Folder {
        dir: PathBuf,
        state_dir: PathBuf,
        source: io::Error,
    },
    /// A counter file could not be opened or created.
    Open {
        path: PathBuf,
        state_dir: PathBuf,
        source: io::Error,
    },
    /// Another process held the counter's lock for the whole wait.
    LockTimeout { path: PathBuf, waited: Duration },
    /// Another signed call with the key was in flight for the whole wait
    /// ([`NonceStore::lock_calls`]).
    CallsBusy { path: PathBuf, waited: Duration },
    /// The file does not hold a number.
    Corrupt { path: PathBuf, found: String },
    /// The file holds `u64::MAX`: no larger nonce exists.
    Exhausted { path: PathBuf },
    /// The disk holding the state folder is full: the counter could not be
    /// written or synced, so the nonce was not handed out.
    DiskFull { path: PathBuf, state_dir: PathBuf },
    /// Reading, writing, syncing or locking failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl NonceError {
    /// The counter file or folder the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            NonceError::KeyId { .. } => None,
            NonceError::Folder { dir, .. } => Some(dir),
            NonceError::Open { path, .. }
            | NonceError::LockTimeout { path, .. }
            | NonceError::CallsBusy { path, .. }
            | NonceError::Corrupt { path, .. }
            | NonceError::Exhausted { path }
            | NonceError::DiskFull { path, .. }
            | NonceError::Io { path, .. } => Some(path),
        }
    }
}

/// What to do about a failure to create or open something under the state
/// folder, for the errors an operator can fix.
fn access_remedy(source: &io::Error, state_dir: &Path) -> Option<String> {
    match source.kind() {
        io::ErrorKind::PermissionDenied => {
            let uid = os::user::euid();
            Some(format!(
                "permission denied for uid {uid}; the state folder must belong to the user \
                 brokerguard runs as: sudo chown -R brokerguard: {}",
                state_dir.display()
            ))
        }
        io::ErrorKind::ReadOnlyFilesystem => Some(format!(
            "the file system is read-only here; under systemd the unit needs \
             StateDirectory=brokerguard (or ReadWritePaths={})",
            state_dir.display()
        )),
        _ => None,
    }
}

impl fmt::Display for NonceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonceError::KeyId { len } => write!(
                f,
                "a nonce key id must be a credential fingerprint such as hmac:1f2e3d4c \
                 (1 to {MAX_KEY_ID_LEN} letters, digits, ':', '_' or '-'); got {len} characters \
                 that are not (not shown: it may be a secret)"
            ),
            NonceError::Folder {
                source, state_dir, ..
            } if os::fs::names_itself(source, state_dir) => {
                write!(f, "cannot use the nonce folder: {source}")
            }
            NonceError::Open {
                source, state_dir, ..
            } if os::fs::names_itself(source, state_dir) => {
                write!(f, "cannot open the nonce counter: {source}")
            }
            NonceError::Folder {
                dir,
                state_dir,
                source,
            } => match access_remedy(source, state_dir) {
                Some(remedy) => write!(
                    f,
                    "cannot create the nonce folder {}: {remedy}",
                    dir.display()
                ),
                None => write!(
                    f,
                    "cannot create the nonce folder {}: {source}",
                    dir.display()
                ),
            },
            NonceError::Open {
                path,
                state_dir,
                source,
            } => match access_remedy(source, state_dir) {
                Some(remedy) => write!(
                    f,
                    "cannot open the nonce counter {}: {remedy}",
                    path.display()
                ),
                None => write!(
                    f,
                    "cannot open the nonce counter {}: {source}",
                    path.display()
                ),
            },
            NonceError::LockTimeout { path, waited } => write!(
                f,
                "the nonce counter {} stayed locked by another process for {}; a process \
                 holding it is stopped or hung: find it with `fuser -v {}`, end it, and retry",
                path.display(),
                human(*waited),
                path.display()
            ),
            NonceError::CallsBusy { path, waited } => write!(
                f,
                "another signed call with this API key has been in flight for {} (lock {}); \
                 the broker is slow to answer, or a brokerguard process holding it is stopped \
                 or hung: find it with `fuser -v {}`",
                human(*waited),
                path.display(),
                path.display()
            ),
            NonceError::Corrupt { path, found } => write!(
                f,
                "{} does not hold a nonce counter (expected one decimal number, found {found:?}); \
                 brokerguard will not guess, since reusing a nonce can lock the API key: restore \
                 the file from a backup or write a number at least as large as the last nonce \
                 used with this key (deleting it restarts from the clock, safe only if the clock \
                 is ahead of every nonce already used)",
                path.display()
            ),
            NonceError::Exhausted { path } => write!(
                f,
                "{} holds {}, the largest nonce there is; this key cannot sign again: \
                 create a new API key at the broker",
                path.display(),
                u64::MAX
            ),
            NonceError::DiskFull { path, state_dir } => write!(
                f,
                "the disk holding {} is full: the nonce counter {} cannot be written, so no \
                 signed call is made (no nonce is used before it is on disk, none is ever reused); \
                 free space there (df -h {})",
                state_dir.display(),
                path.display(),
                state_dir.display()
            ),
            NonceError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "cannot {action} the nonce counter {}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for NonceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NonceError::Folder { source, .. }
            | NonceError::Open { source, .. }
            | NonceError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The shared counters of one state folder. Cheap to create; every method
/// opens the file it needs, so any number of stores and processes can use
/// one folder at once.
pub struct NonceStore {
    state_dir: PathBuf,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    lock_timeout: Duration,
    /// Who may own the state folder (root, us, the service user).
    owners: Owners,
    /// Where a counter's bytes go (a seam: tests make the disk full).
    disk: Arc<dyn CounterDisk>,
}

impl fmt::Debug for NonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceStore")
            .field("dir", &self.dir)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl NonceStore {
    /// Counters under `<state_dir>/nonce/`, timed by `clock`'s wall time.
    /// Nothing is touched until the first draw.
    pub fn new(state_dir: &Path, clock: Arc<dyn Clock>) -> NonceStore {
        NonceStore {
            state_dir: state_dir.to_path_buf(),
            dir: state_dir.join(NONCE_DIR),
            clock,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            owners: Owners::of_this_process(),
            disk: Arc::new(RealDisk),
        }
    }

    /// Trusts a state folder of these owners only (tests stand in an
    /// unprivileged user for the service user).
    pub fn with_owners(mut self, owners: Owners) -> NonceStore {
        self.owners = owners;
        self
    }

    #[cfg(test)]
    fn with_disk(mut self, disk: Arc<dyn CounterDisk>) -> NonceStore {
        self.disk = disk;
        self
    }

    /// Waits at most `timeout` for another process's lock instead of
    /// [`DEFAULT_LOCK_TIMEOUT`].
    pub fn with_lock_timeout(mut self, timeout: Duration) -> NonceStore {
        self.lock_timeout = timeout;
        self
    }

    /// `<state_dir>/nonce`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counter file of `key_id`.
    pub fn path_of(&self, key_id: &str) -> Result<PathBuf, NonceError> {
        file_name_for(key_id)
            .map(|name| self.dir.join(name))
            .ok_or(NonceError::KeyId { len: key_id.len() })
    }

    /// The next nonce for `key_id`: larger than every nonce any process has
    /// drawn for it from this state folder, and on disk before it is returned.
    pub fn draw(&self, key_id: &str) -> Result<u64, NonceError> {
        let path = self.path_of(key_id)?;
        let dir = self.open_dir()?;
        let file = self.open_for_draw(&dir, &path)?;
        let _locked = Flock::take(&file, &path, Kind::Exclusive, self.lock_timeout)?;
        let (mut last, len) = read_counter(&file, &path)?;
        if last.is_none() {
            // A key this host never signed with starts above the floor a
            // failover takeover set (`raise_floor`), not at the clock alone.
            last = self.floor(&dir)?;
        }
        let next = next_nonce(micros_since_epoch(self.clock.wall()), last)
            .ok_or_else(|| NonceError::Exhausted { path: path.clone() })?;
        // Durable before it is handed out: if the write or the fsync fails
        // (a full disk), the error goes back and the nonce is never used.
        write_counter(&*self.disk, &file, &path, &self.state_dir, next, len)?;
        if last.is_none() {
            // A new counter's name must survive a crash as well as its value.
            let _ = dir.sync();
        }
        Ok(next)
    }

    /// Claims the signed calls of `key_id` for this caller until the
    /// returned [`CallLock`] is dropped: draw under it, send, read the
    /// answer, drop it. Any other process (or thread) claiming the same key
    /// waits, at most `wait`, so nonces reach the broker in the order they
    /// were drawn. [`NonceStore::draw`] itself does not need the claim.
    pub fn lock_calls(&self, key_id: &str, wait: Duration) -> Result<CallLock, NonceError> {
        let path = self.path_of(key_id)?.with_extension(CALL_LOCK_EXTENSION);
        let dir = self.open_dir()?;
        let file = self.open_for_draw(&dir, &path)?;
        match Flock::take(&file, &path, Kind::Exclusive, wait) {
            // The guard borrows `file`; `CallLock` owns both and unlocks on drop.
            Ok(guard) => std::mem::forget(guard),
            Err(NonceError::LockTimeout { path, waited }) => {
                return Err(NonceError::CallsBusy { path, waited });
            }
            Err(e) => return Err(e),
        }
        Ok(CallLock { file })
    }

    /// The last nonce drawn for `key_id`, `None` if there is none yet (for
    /// `doctor` and `status`). Creates nothing.
    pub fn last(&self, key_id: &str) -> Result<Option<u64>, NonceError> {
        let path = self.path_of(key_id)?;
        let dir = match self.existing_dir() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = match dir.open_file(file_name(&path), Access::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.open_error(&path, source)),
        };
        // Shared: a draw's write is never seen half done.
        let _locked = Flock::take(&file, &path, Kind::Shared, self.lock_timeout)?;
        Ok(read_counter(&file, &path)?.0)
    }

    /// Raises every counter of this state folder to at least `at_least`,
    /// and the floor that a counter not yet created starts above. A new
    /// failover leader calls this with the last nonce its predecessor
    /// recorded (plus a margin), so its nonces are above every nonce the
    /// old leader sent, whatever the two hosts' clocks say.
    pub fn raise_floor(&self, at_least: u64) -> Result<(), NonceError> {
        let dir = self.open_dir()?;
        for name in self
            .counter_names(&dir)?
            .into_iter()
            .chain([FLOOR_FILE.to_string()])
        {
            let path = self.dir.join(&name);
            let file = self.open_for_draw(&dir, &path)?;
            let _locked = Flock::take(&file, &path, Kind::Exclusive, self.lock_timeout)?;
            let (last, len) = read_counter(&file, &path)?;
            if last.is_none_or(|l| l < at_least) {
                write_counter(&*self.disk, &file, &path, &self.state_dir, at_least, len)?;
            }
        }
        let _ = dir.sync();
        Ok(())
    }

    /// The largest nonce drawn for any key from this state folder (what a
    /// failover leader records in etcd), `None` when none was.
    pub fn high_water(&self) -> Result<Option<u64>, NonceError> {
        let Some(dir) = self.existing_dir()? else {
            return Ok(None);
        };
        let mut high = None;
        for name in self.counter_names(&dir)? {
            let path = self.dir.join(&name);
            let Ok(file) = dir.open_file(&name, Access::Read) else {
                continue;
            };
            let _locked = Flock::take(&file, &path, Kind::Shared, self.lock_timeout)?;
            high = high.max(read_counter(&file, &path)?.0);
        }
        Ok(high)
    }

    /// The floor set by [`NonceStore::raise_floor`], if any.
    fn floor(&self, dir: &Dir) -> Result<Option<u64>, NonceError> {
        let path = self.dir.join(FLOOR_FILE);
        let Ok(file) = dir.open_file(FLOOR_FILE, Access::Read) else {
            return Ok(None);
        };
        let _locked = Flock::take(&file, &path, Kind::Shared, self.lock_timeout)?;
        Ok(read_counter(&file, &path)?.0)
    }

    /// Every key's counter file in the nonce folder (not the call locks,
    /// not the floor, no link: a directory entry's type is not followed).
    fn counter_names(&self, dir: &Dir) -> Result<Vec<String>, NonceError> {
        let entries = match std::fs::read_dir(dir.path()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.open_error(&self.dir, source)),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| !n.starts_with('.') && !n.ends_with(".calls"))
            .collect())
    }

    fn folder_error(&self, source: io::Error) -> NonceError {
        NonceError::Folder {
            dir: self.dir.clone(),
            state_dir: self.state_dir.clone(),
            source,
        }
    }

    /// The nonce folder, if it exists, by the no-follow rule: the state
    /// folder is opened and checked (owner, not writable by everyone) and
    /// `nonce` is opened relative to it without following a link.
    fn existing_dir(&self) -> Result<Option<Dir>, NonceError> {
        let state = match Dir::open(&self.state_dir, &self.owners) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.folder_error(e)),
        };
        match state.subdir(NONCE_DIR, None, &self.owners) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.folder_error(e)),
        }
    }

    /// The nonce folder, created 0700 (and the state folder with it) if
    /// missing. When root creates it in a state folder of another user (the
    /// service user), it is given to that user through its handle.
    fn open_dir(&self) -> Result<Dir, NonceError> {
        let state = Dir::open_or_create(&self.state_dir, 0o700, &self.owners)
            .map_err(|e| self.folder_error(e))?;
        let dir = state
            .subdir(NONCE_DIR, Some(0o700), &self.owners)
            .map_err(|e| self.folder_error(e))?;
        if let Some((uid, gid)) = state_owner_if_root(&state) {
            let st = dir.stat().map_err(|e| self.folder_error(e))?;
            if (st.uid, st.gid) != (uid, gid) {
                os::fs::give(dir.as_file(), uid, gid).map_err(|e| self.folder_error(e))?;
            }
        }
        Ok(dir)
    }

    /// Opens (creating it 0600 if needed) a counter for reading and
    /// writing, never through a link, and only a regular file. Opened with
    /// O_CLOEXEC, so a child process never inherits the descriptor and
    /// with it the lock.
    fn open_for_draw(&self, dir: &Dir, path: &Path) -> Result<File, NonceError> {
        let file = dir
            .open_file(file_name(path), Access::ReadWriteCreate(0o600))
            .map_err(|source| self.open_error(path, source))?;
        self.give_to_state_owner(dir, &file, path)?;
        Ok(file)
    }

    fn open_error(&self, path: &Path, source: io::Error) -> NonceError {
        if is_disk_full(&source) {
            return NonceError::DiskFull {
                path: path.to_path_buf(),
                state_dir: self.state_dir.clone(),
            };
        }
        NonceError::Open {
            path: path.to_path_buf(),
            state_dir: self.state_dir.clone(),
            source,
        }
    }

    /// When root (`sudo brokerguard doctor --online`) draws first, the files
    /// it creates must still belong to the service user, or the daemon could
    /// no longer open them: they take the owner of the nonce folder (given
    /// to the state folder's owner by [`NonceStore::open_dir`]).
    fn give_to_state_owner(&self, dir: &Dir, file: &File, path: &Path) -> Result<(), NonceError> {
        if !os::user::is_root() {
            return Ok(());
        }
        let io_error = |action, source| NonceError::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        let owner = dir.stat().map_err(|e| io_error("inspect", e))?;
        if owner.uid == 0 {
            return Ok(());
        }
        let st = os::fs::stat(file).map_err(|e| io_error("inspect", e))?;
        if (st.uid, st.gid) == (owner.uid, owner.gid) {
            return Ok(());
        }
        os::fs::give(file, owner.uid, owner.gid).map_err(|e| io_error("hand over (chown)", e))
    }
}

/// The state folder's owner, when this process is root and the folder
/// belongs to someone else.
fn state_owner_if_root(state: &Dir) -> Option<(u32, u32)> {
    if !os::user::is_root() {
        return None;
    }
    let st = state.stat().ok()?;
    (st.uid != 0).then_some((st.uid, st.gid))
}

/// The last component of a counter's path (made by `path_of`, so a plain name).
fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// ENOSPC or EDQUOT: the disk (or the user's quota on it) is full.
fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Where a counter's bytes go: the file itself, or in tests a disk that
/// fills up on command.
pub(crate) trait CounterDisk: Send + Sync {
    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (fsync).
    fn sync(&self, file: &File) -> io::Result<()>;
}

struct RealDisk;

impl CounterDisk for RealDisk {
    fn write_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(bytes, offset)
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        file.sync_all()
    }
}

/// The extension of a key's call lock beside its counter (`hmac-1f2e3d4c.calls`).
const CALL_LOCK_EXTENSION: &str = "calls";

/// A key's signed calls, claimed by this caller (see
/// [`NonceStore::lock_calls`]); released when dropped.
pub struct CallLock {
    file: File,
}

impl fmt::Debug for CallLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallLock")
    }
}

impl Drop for CallLock {
    fn drop(&mut self) {
        // Closing the file releases it too; unlocking says so explicitly.
        let _ = os::lock::unlock(&self.file);
    }
}

/// Microseconds since the Unix epoch; 0 before it.
fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A `flock` held until dropped.
struct Flock<'f> {
    file: &'f File,
}

impl<'f> Flock<'f> {
    /// Takes `op` (`LOCK_EX` or `LOCK_SH`), waiting at most `timeout`.
    ///
    /// It polls with `LOCK_NB` for the first [`POLL_FIRST`]: most waits
    /// end there, and a busy holder drawing again at once keeps the fast
    /// path free of context switches. A poller can miss the few
    /// microseconds between two draws of a busy holder again and again,
    /// though, and starve for the whole timeout (seen with eight processes
    /// on a loaded machine); so after that the wait moves into the kernel,
    /// which wakes a blocked waiter the moment the lock is released. A
    /// blocking `flock` cannot time out, so a helper thread blocks on a
    /// duplicate descriptor (the same open file description, so the lock it
    /// gets is this file's) while this thread waits for it with the
    /// deadline. Should no helper be available, polling goes on.
    fn take(
        file: &'f File,
        path: &Path,
        kind: Kind,
        timeout: Duration,
    ) -> Result<Flock<'f>, NonceError> {
        let start = Instant::now();
        let lock_error = |source| NonceError::Io {
            path: path.to_path_buf(),
            action: "lock",
            source,
        };
        let mut pause = Duration::from_micros(20);
        let mut helper_tried = false;
        loop {
            if os::lock::try_lock(file, kind).map_err(lock_error)? {
                return Ok(Flock { file });
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(NonceError::LockTimeout {
                    path: path.to_path_buf(),
                    waited,
                });
            }
            if waited >= POLL_FIRST && !helper_tried {
                helper_tried = true;
                match wait_in_kernel(file, kind, timeout - waited) {
                    Waited::Locked => return Ok(Flock { file }),
                    Waited::TimedOut => {
                        return Err(NonceError::LockTimeout {
                            path: path.to_path_buf(),
                            waited: start.elapsed(),
                        });
                    }
                    Waited::Failed(e) => return Err(lock_error(e)),
                    Waited::NoHelper => continue,
                }
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

/// How long a contended lock is polled before the wait moves into the kernel.
const POLL_FIRST: Duration = Duration::from_millis(10);

/// Helper threads blocked in `flock` right now, in this process. A draw
/// that timed out leaves its helper blocked until the stuck holder lets go
/// (it then unlocks at once); the cap keeps a long hang from piling them up.
static LOCK_HELPERS: AtomicUsize = AtomicUsize::new(0);
const MAX_LOCK_HELPERS: usize = 16;

enum Waited {
    Locked,
    TimedOut,
    Failed(io::Error),
    /// No helper thread could be had: poll instead.
    NoHelper,
}

/// A blocking `flock(op)` in a helper thread, waited for at most `timeout`.
fn wait_in_kernel(file: &File, kind: Kind, timeout: Duration) -> Waited {
    if LOCK_HELPERS.fetch_add(1, Ordering::SeqCst) >= MAX_LOCK_HELPERS {
        LOCK_HELPERS.fetch_sub(1, Ordering::SeqCst);
        return Waited::NoHelper;
    }
    let Ok(dup) = file.try_clone() else {
        LOCK_HELPERS.fetch_sub(1, Ordering::SeqCst);
        return Waited::NoHelper;
    };
    let (tx, rx) = mpsc::sync_channel::<io::Result<()>>(1);
    let spawned = std::thread::Builder::new()
        .name("nonce-lock".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let got = os::lock::lock(&dup, kind);
            LOCK_HELPERS.fetch_sub(1, Ordering::SeqCst);
            if let Err(unsent) = tx.send(got) {
                if unsent.0.is_ok() {
                    // The draw gave up meanwhile: release what it no longer wants.
                    let _ = os::lock::unlock(&dup);
                }
            }
        });
    if spawned.is_err() {
        LOCK_HELPERS.fetch_sub(1, Ordering::SeqCst);
        return Waited::NoHelper;
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(_)) => Waited::Locked,
        Ok(Err(e)) => Waited::Failed(e),
        Err(mpsc::RecvTimeoutError::Timeout) => Waited::TimedOut,
        Err(mpsc::RecvTimeoutError::Disconnected) => Waited::Failed(io::Error::other(
            "the lock-wait thread ended without an answer",
        )),
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; unlocking first keeps the
        // lock no longer than the draw even if the caller keeps the file.
        let _ = os::lock::unlock(self.file);
    }
}

/// The value in the file (`None` when empty: a counter just created) and
/// the file's length.
fn read_counter(file: &File, path: &Path) -> Result<(Option<u64>, usize), NonceError> {
    let mut buf = [0u8; MAX_FILE_LEN + 1];
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(NonceError::Io {
                    path: path.to_path_buf(),
                    action: "read",
                    source,
                });
            }
        }
    }
    Ok((parse_counter(&buf[..len], path)?, len))
}

/// Digits with optional surrounding whitespace (a value written by hand is
/// fine); nothing at all means a new counter.
fn parse_counter(bytes: &[u8], path: &Path) -> Result<Option<u64>, NonceError> {
    let corrupt = || NonceError::Corrupt {
        path: path.to_path_buf(),
        found: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_FILE_LEN)]).into_owned(),
    };
    if bytes.len() > MAX_FILE_LEN {
        return Err(corrupt());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(corrupt());
    }
    text.parse().map(Some).map_err(|_| corrupt())
}

/// Writes `value` in place and fsyncs. `old_len` is the length read under
/// the same lock: only a hand-written file of another length needs trimming.
/// A full disk is [`NonceError::DiskFull`], naming the state folder.
fn write_counter(
    disk: &dyn CounterDisk,
    file: &File,
    path: &Path,
    state_dir: &Path,
    value: u64,
    old_len: usize,
) -> Result<(), NonceError> {
    let io_error = |action: &'static str, source: io::Error| {
        if is_disk_full(&source) {
            NonceError::DiskFull {
                path: path.to_path_buf(),
                state_dir: state_dir.to_path_buf(),
            }
        } else {
            NonceError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        }
    };
    let text = format!("{value:0WIDTH$}\n");
    disk.write_at(file, text.as_bytes(), 0)
        .map_err(|e| io_error("write", e))?;
    if old_len > text.len() {
        file.set_len(text.len() as u64)
            .map_err(|e| io_error("write", e))?;
    }
    disk.sync(file).map_err(|e| io_error("fsync", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// 2026-11-22T09:00:00Z.
    const T0: u64 = 1_795_338_000;
    const KEY: &str = "sha256:1f2e3d4c";

    /// A fresh folder, removed on drop.
    use crate::os::fs::tests::Scratch as TempDir;

    fn us(secs: u64) -> u64 {
        secs * 1_000_000
    }

    fn store(dir: &Path, clock: &FakeClock) -> NonceStore {
        NonceStore::new(dir, Arc::new(clock.clone()))
    }

    fn is_root() -> bool {
        os::user::is_root()
    }

    /// An exclusive lock on `file`, as another process would hold it.
    fn hold(file: &File) -> Flock<'_> {
        Flock::take(file, Path::new("holder"), Kind::Exclusive, Duration::ZERO).unwrap()
    }

    #[test]
    fn a_takeover_floor_lifts_every_counter_and_every_new_one() {
        let dir = TempDir::new("floor");
        let clock = FakeClock::at_unix(T0);
        let s = store(&dir.0, &clock);
        assert_eq!(s.high_water().unwrap(), None);
        let drawn = s.draw(KEY).unwrap();
        assert_eq!(drawn, us(T0));
        assert_eq!(s.high_water().unwrap(), Some(drawn));
        // The old leader's clock ran 60 s ahead of ours.
        let floor = us(T0 + 60);
        s.raise_floor(floor).unwrap();
        assert!(s.draw(KEY).unwrap() > floor, "an existing key");
        assert!(
            s.draw("sha256:99999999").unwrap() > floor,
            "a key never used here"
        );
        // The floor file is not a key: the high-water mark is a key's.
        assert_eq!(
            s.high_water().unwrap(),
            s.last("sha256:99999999").unwrap().max(s.last(KEY).unwrap())
        );
        // A floor below the counters leaves them alone.
        let before = s.last(KEY).unwrap();
        s.raise_floor(1).unwrap();
        assert_eq!(s.last(KEY).unwrap(), before);
    }

    #[test]
    fn the_rule() {
        let cases: &[(u64, Option<u64>, Option<u64>)] = &[
            // (now, last, next)
            (100, None, Some(100)),
            (0, None, Some(1)),
            (100, Some(50), Some(100)),
            (100, Some(99), Some(100)),
            (100, Some(100), Some(101)),
            (100, Some(500), Some(501)),
            (0, Some(0), Some(1)),
            (u64::MAX, Some(u64::MAX - 1), Some(u64::MAX)),
            (5, Some(u64::MAX), None),
        ];
        for &(now, last, want) in cases {
            assert_eq!(next_nonce(now, last), want, "now {now}, last {last:?}");
        }
    }

    #[test]
    fn signed_calls_of_one_key_are_claimed_one_at_a_time() {
        let dir = TempDir::new("calls");
        let clock = FakeClock::at_unix(T0);
        let a = store(&dir.0, &clock);
        let b = store(&dir.0, &clock);
        let held = a.lock_calls(KEY, Duration::from_millis(50)).unwrap();
        // The claim does not stop draws, only other claims of the same key.
        assert!(b.draw(KEY).is_ok());
        assert!(b.lock_calls("sha256:00000000", Duration::ZERO).is_ok());
        let start = Instant::now();
        match b.lock_calls(KEY, Duration::from_millis(50)) {
            Err(e @ NonceError::CallsBusy { .. }) => {
                assert!(e.to_string().contains("in flight"), "{e}");
                assert!(e.to_string().contains("sha256-1f2e3d4c.calls"), "{e}");
            }
            other => panic!("expected CallsBusy, got {other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(50));
        // A waiter gets the claim the moment it is released.
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            b.lock_calls(KEY, Duration::from_secs(10))
                .map(|_| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
        let waited = waiter.join().unwrap().expect("claimed after the release");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(a.lock_calls(KEY, Duration::ZERO).is_ok());
        assert!(matches!(
            a.lock_calls("../escape", Duration::ZERO),
            Err(NonceError::KeyId { .. })
        ));
    }

    #[test]
    fn key_ids_become_safe_file_names() {
        assert_eq!(file_name_for(KEY).as_deref(), Some("sha256-1f2e3d4c"));
        assert_eq!(file_name_for("acct_1-A").as_deref(), Some("acct_1-A"));
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "k+y=",
            "é",
            &"a".repeat(65),
        ] {
            assert_eq!(file_name_for(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_key_id_is_refused_without_being_quoted() {
        let d = TempDir::new("keyid");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        let secret = "kQ9+zZ/secretvalue==";
        let e = s.draw(secret).unwrap_err();
        assert!(matches!(e, NonceError::KeyId { len: 20 }), "{e:?}");
        let shown = e.to_string();
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("hmac:1f2e3d4c"), "{shown}");
        assert!(
            !d.0.join(NONCE_DIR).exists(),
            "nothing created for a bad id"
        );
    }

    #[test]
    fn first_draw_creates_folder_and_file_privately() {
        let d = TempDir::new("layout");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        assert_eq!(s.last(KEY).unwrap(), None);
        assert!(!s.dir().exists(), "last() creates nothing");
        assert_eq!(s.draw(KEY).unwrap(), us(T0));
        let path = d.0.join("nonce/sha256-1f2e3d4c");
        assert_eq!(s.path_of(KEY).unwrap(), path);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.0.join("nonce")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{:020}\n", us(T0))
        );
        assert_eq!(s.last(KEY).unwrap(), Some(us(T0)));
    }

    #[test]
    fn a_frozen_clock_still_gives_increasing_nonces() {
        let d = TempDir::new("frozen");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        let got: Vec<u64> = (0..4).map(|_| s.draw(KEY).unwrap()).collect();
        assert_eq!(got, vec![us(T0), us(T0) + 1, us(T0) + 2, us(T0) + 3]);
    }

    #[test]
    fn the_clock_wins_again_once_it_is_ahead() {
        let d = TempDir::new("ahead");
        let clock = FakeClock::at_unix(T0);
        let s = store(&d.0, &clock);
        s.draw(KEY).unwrap();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(s.draw(KEY).unwrap(), us(T0) + 1_500_000);
    }

    #[test]
    fn a_clock_stepping_back_never_reissues() {
        let d = TempDir::new("back");
        let clock = FakeClock::at_unix(T0);
        let s = store(&d.0, &clock);
        let first = s.draw(KEY).unwrap();
        clock.set_wall(UNIX_EPOCH + Duration::from_secs(T0 - 3600));
        assert_eq!(s.draw(KEY).unwrap(), first + 1);
        assert_eq!(s.draw(KEY).unwrap(), first + 2);
    }

    #[test]
    fn a_restart_with_the_clock_set_back_continues_the_counter() {
        let d = TempDir::new("restart");
        let before = {
            let s = store(&d.0, &FakeClock::at_unix(T0));
            s.draw(KEY).unwrap();
            s.draw(KEY).unwrap()
        };
        // A new process a day "earlier": the file, not the clock, decides.
        let s = store(&d.0, &FakeClock::at_unix(T0 - 86_400));
        assert_eq!(s.last(KEY).unwrap(), Some(before));
        assert_eq!(s.draw(KEY).unwrap(), before + 1);
    }

    #[test]
    fn keys_have_separate_counters() {
        let d = TempDir::new("keys");
        let clock = FakeClock::at_unix(T0);
        let s = store(&d.0, &clock);
        s.draw(KEY).unwrap();
        s.draw(KEY).unwrap();
        assert_eq!(s.draw("sha256:aaaabbbb").unwrap(), us(T0));
    }

    #[test]
    fn a_corrupt_counter_is_an_error_naming_the_file_and_left_alone() {
        let d = TempDir::new("corrupt");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        let path = s.path_of(KEY).unwrap();
        std::fs::create_dir_all(s.dir()).unwrap();
        for content in ["garbage\n", "12 34\n", "-5\n", "99999999999999999999999\n"] {
            std::fs::write(&path, content).unwrap();
            let e = s.draw(KEY).unwrap_err();
            assert!(
                matches!(e, NonceError::Corrupt { .. }),
                "{content:?}: {e:?}"
            );
            let shown = e.to_string();
            assert!(shown.starts_with(&path.display().to_string()), "{shown}");
            assert!(shown.contains("will not guess"), "{shown}");
            assert!(matches!(s.last(KEY), Err(NonceError::Corrupt { .. })));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        }
        std::fs::write(&path, vec![b'7'; MAX_FILE_LEN + 1]).unwrap();
        assert!(matches!(s.draw(KEY), Err(NonceError::Corrupt { .. })));
    }

    #[test]
    fn a_hand_written_value_is_read_and_rewritten_in_the_fixed_form() {
        let d = TempDir::new("hand");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        let path = s.path_of(KEY).unwrap();
        std::fs::create_dir_all(s.dir()).unwrap();
        let ahead = us(T0) + 42;
        std::fs::write(&path, format!("  {ahead}\n\n{}\n", " ".repeat(30))).unwrap();
        assert_eq!(s.draw(KEY).unwrap(), ahead + 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{:020}\n", ahead + 1)
        );
    }

    #[test]
    fn the_largest_nonce_is_the_last() {
        let d = TempDir::new("max");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        std::fs::create_dir_all(s.dir()).unwrap();
        std::fs::write(s.path_of(KEY).unwrap(), format!("{}\n", u64::MAX)).unwrap();
        let e = s.draw(KEY).unwrap_err();
        assert!(matches!(e, NonceError::Exhausted { .. }), "{e:?}");
        assert!(e.to_string().contains("create a new API key"), "{e}");
    }

    #[test]
    fn a_held_lock_times_out_with_a_named_error() {
        let d = TempDir::new("lock");
        let s = store(&d.0, &FakeClock::at_unix(T0)).with_lock_timeout(Duration::from_millis(50));
        let first = s.draw(KEY).unwrap();
        // flock locks belong to an open file description, so a second
        // open in this process contends like another process would.
        let holder = File::open(s.path_of(KEY).unwrap()).unwrap();
        let held = hold(&holder);
        let started = Instant::now();
        let e = s.draw(KEY).unwrap_err();
        let took = started.elapsed();
        match &e {
            NonceError::LockTimeout { path, waited } => {
                assert_eq!(path, &s.path_of(KEY).unwrap());
                assert!(*waited >= Duration::from_millis(50), "{waited:?}");
            }
            other => panic!("expected a lock timeout, got {other:?}"),
        }
        assert!(took < Duration::from_secs(1), "gave up after {took:?}");
        assert!(e.to_string().contains("fuser -v"), "{e}");
        assert!(matches!(s.last(KEY), Err(NonceError::LockTimeout { .. })));
        drop(held);
        assert_eq!(s.draw(KEY).unwrap(), first + 1);
        // The helpers left blocked by the two timed-out waits got the lock
        // once it was free, let it go and ended.
        let deadline = Instant::now() + Duration::from_secs(5);
        while LOCK_HELPERS.load(Ordering::SeqCst) != 0 {
            assert!(Instant::now() < deadline, "lock helpers still blocked");
            std::thread::yield_now();
        }
        assert_eq!(s.draw(KEY).unwrap(), first + 2);
    }

    #[test]
    fn a_waiter_blocked_in_the_kernel_gets_the_lock_once_released() {
        let d = TempDir::new("handoff");
        let s = store(&d.0, &FakeClock::at_unix(T0));
        let first = s.draw(KEY).unwrap();
        let holder = File::open(s.path_of(KEY).unwrap()).unwrap();
        let held = hold(&holder);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| s.draw(KEY));
            // Release only once the waiter has moved into the kernel wait.
            let deadline = Instant::now() + Duration::from_secs(1);
            while LOCK_HELPERS.load(Ordering::SeqCst) == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the waiter never blocked in the kernel"
                );
                std::thread::yield_now();
            }
            drop(held);
            assert_eq!(waiter.join().unwrap().unwrap(), first + 1);
        });
    }

    #[test]
    fn permission_errors_name_the_folder_and_the_fix() {
        let d = TempDir::new("perm");
        std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = d.0.join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555)).unwrap();
        let store = store(&state, &FakeClock::at_unix(T0));
        // Root is never refused, so as root the draw runs in a thread whose
        // file-system identity is the user nobody: setfsuid is per thread
        // and drops root's file capabilities for that thread only.
        let e = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    if is_root() {
                        assert!(
                            os::user::act_on_files_as(65534, 65534),
                            "setfsuid did not apply"
                        );
                    }
                    store.draw(KEY).unwrap_err()
                })
                .join()
                .unwrap()
        });
        match &e {
            NonceError::Folder { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied, "{e:?}")
            }
            other => panic!("expected a folder error, got {other:?}"),
        }
        let shown = e.to_string();
        let dir = state.join(NONCE_DIR);
        assert!(
            shown.starts_with(&format!(
                "cannot create the nonce folder {}: permission denied",
                dir.display()
            )),
            "{shown}"
        );
        assert!(
            shown.ends_with(&format!("sudo chown -R brokerguard: {}", state.display())),
            "{shown}"
        );
        if is_root() {
            // Only that thread lost root's rights; this one kept them.
            std::fs::create_dir(state.join("root-may")).unwrap();
        }

        let e = NonceError::Open {
            path: PathBuf::from("/s/nonce/k"),
            state_dir: PathBuf::from("/s"),
            source: io::Error::from(io::ErrorKind::ReadOnlyFilesystem),
        };
        assert!(e.to_string().contains("StateDirectory=brokerguard"), "{e}");
    }

    #[test]
    fn counters_created_by_root_belong_to_the_state_folder_owner() {
        if !is_root() {
            return; // only root can create files for another user
        }
        let d = TempDir::new("owner");
        std::os::unix::fs::chown(&d.0, Some(4242), Some(4343)).unwrap();
        let s = store(&d.0, &FakeClock::at_unix(T0)).with_owners(Owners::only(&[0, 4242]));
        s.draw(KEY).unwrap();
        for p in [s.dir().to_path_buf(), s.path_of(KEY).unwrap()] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{}", p.display());
        }
    }

    #[test]
    fn root_never_follows_a_link_planted_in_the_state_folder() {
        use crate::os::fs::tests::{NOBODY, assert_untouched, folder_of_nobody, victim};
        let Some(state) = folder_of_nobody("nonce-link") else {
            return;
        };
        let elsewhere = TempDir::new("nonce-elsewhere");
        let target = victim(&elsewhere);
        let s = store(&state.0, &FakeClock::at_unix(T0)).with_owners(Owners::only(&[0, NOBODY]));
        // The nonce folder is a link to a root folder: nothing is created
        // there and that folder is not given away.
        std::os::unix::fs::symlink(&elsewhere.0, state.0.join(NONCE_DIR)).unwrap();
        let e = s.draw(KEY).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert_eq!(
            std::fs::read_dir(&elsewhere.0).unwrap().count(),
            1,
            "created through the link"
        );
        assert_eq!(
            std::fs::metadata(&elsewhere.0).unwrap().uid(),
            0,
            "chowned through the link"
        );
        // A counter that is a link to a root-only file: refused, untouched.
        std::fs::remove_file(state.0.join(NONCE_DIR)).unwrap();
        std::fs::create_dir(state.0.join(NONCE_DIR)).unwrap();
        std::os::unix::fs::chown(state.0.join(NONCE_DIR), Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::symlink(&target, s.path_of(KEY).unwrap()).unwrap();
        let e = s.draw(KEY).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(s.last(KEY).is_err());
        assert_untouched(&target);
        // A plain folder of the state folder's owner works, and what root
        // creates there belongs to that owner.
        std::fs::remove_file(s.path_of(KEY).unwrap()).unwrap();
        assert_eq!(s.draw(KEY).unwrap(), us(T0));
        assert_eq!(
            std::fs::metadata(s.path_of(KEY).unwrap()).unwrap().uid(),
            NOBODY
        );
    }

    /// A disk that fills up on command: the write fails, or only the fsync.
    #[derive(Default)]
    struct FillingDisk {
        write_fails: std::sync::atomic::AtomicBool,
        sync_fails: std::sync::atomic::AtomicBool,
    }

    impl CounterDisk for FillingDisk {
        fn write_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
            if self.write_fails.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            RealDisk.write_at(file, bytes, offset)
        }

        fn sync(&self, file: &File) -> io::Result<()> {
            if self.sync_fails.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            RealDisk.sync(file)
        }
    }

    #[test]
    fn a_full_disk_fails_the_draw_naming_the_disk_and_no_nonce_is_ever_reused() {
        let d = TempDir::new("full");
        let clock = FakeClock::at_unix(T0);
        let disk = Arc::new(FillingDisk::default());
        let s = store(&d.0, &clock).with_disk(disk.clone());
        let mut handed_out = vec![s.draw(KEY).unwrap(), s.draw(KEY).unwrap()];
        for fault in [&disk.write_fails, &disk.sync_fails] {
            fault.store(true, Ordering::SeqCst);
            for _ in 0..3 {
                let e = s.draw(KEY).unwrap_err();
                assert!(matches!(e, NonceError::DiskFull { .. }), "{e:?}");
                let shown = e.to_string();
                assert!(
                    shown.starts_with(&format!("the disk holding {} is full", d.0.display())),
                    "{shown}"
                );
                assert!(shown.contains("no signed call is made"), "{shown}");
                assert!(
                    shown.contains(&format!("df -h {}", d.0.display())),
                    "{shown}"
                );
            }
            fault.store(false, Ordering::SeqCst);
            handed_out.push(s.draw(KEY).unwrap());
        }
        // The clock never moved: every nonce came from the counter, each
        // larger than the last, even after a write that reached the file
        // but whose fsync failed.
        assert!(handed_out.windows(2).all(|w| w[0] < w[1]), "{handed_out:?}");
        assert_eq!(handed_out[..2], [us(T0), us(T0) + 1]);
        assert!(
            handed_out[3] > handed_out[2] + 1,
            "the unsynced value is skipped too: {handed_out:?}"
        );
    }
}
