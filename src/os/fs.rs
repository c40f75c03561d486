//! The no-follow rule, for every command that touches a folder another
//! user can write (the runtime folder, the state folder), above all when it
//! runs as root:
//!
//! - a folder is opened once, with `O_NOFOLLOW | O_DIRECTORY`, and checked
//!   through its handle ([`Dir::open`]): it must belong to root, to this
//!   process's user or to the service user, and must not be writable by
//!   every user; otherwise the error names it and the fix;
//! - everything inside is reached relative to that handle by a single name
//!   (`openat`, `mkdirat`, `renameat`, `unlinkat`), with `O_NOFOLLOW`: a
//!   symlink planted in the folder is refused (ELOOP), never followed;
//! - a temp file has a random name and is created with `O_EXCL`, so it is
//!   always a new file of ours ([`Dir::create_temp`]);
//! - what was opened is checked with `fstat` on the handle (a regular file,
//!   a trusted owner), and changed with `fchown`/`fchmod` on the handle,
//!   never by path;
//! - a read is bounded and refuses anything but a regular file
//!   ([`Dir::read_limited`]): it opens with `O_NONBLOCK`, so a FIFO cannot
//!   hang it, and a device such as `/dev/zero` is refused by `fstat`.

use std::ffi::CString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The account the packaged service runs as (install.sh creates it).
pub const SERVICE_USER: &str = "brokerguard";

/// The group that reads /etc/brokerguard (config and credentials); the
/// service has it as a supplementary group.
pub const SERVICE_GROUP: &str = "brokerguard";

/// Who may own a folder (or a file in it) that a command trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owners {
    uids: Vec<u32>,
}

impl Owners {
    /// Root, this process's user, and the service user when the host has
    /// one: a folder of anyone else is someone who could swap its entries.
    /// Looked up once per process (a user database read).
    pub fn of_this_process() -> Owners {
        static OWNERS: std::sync::OnceLock<Owners> = std::sync::OnceLock::new();
        OWNERS
            .get_or_init(|| {
                let service = super::user::user_by_name(SERVICE_USER).map(|u| u.uid);
                let mut uids = vec![0, super::user::euid()];
                uids.extend(service);
                uids.dedup();
                Owners { uids }
            })
            .clone()
    }

    /// These uids and no others (tests stand in an unprivileged user for
    /// the service user).
    pub fn only(uids: &[u32]) -> Owners {
        Owners {
            uids: uids.to_vec(),
        }
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    fn described(&self) -> String {
        let names: Vec<String> = self
            .uids
            .iter()
            .map(|&u| super::user::user_name_or_id(u))
            .collect();
        names.join(" nor ")
    }
}

/// What `fstat`/`fstatat` said about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub size: u64,
}

impl Stat {
    fn of(m: &Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            size: m.size(),
        }
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// `a FIFO`, `a symlink`, ... for an error message.
    pub fn kind(&self) -> &'static str {
        match self.mode & libc::S_IFMT {
            libc::S_IFREG => "a regular file",
            libc::S_IFDIR => "a folder",
            libc::S_IFLNK => "a symlink",
            libc::S_IFIFO => "a FIFO",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            libc::S_IFSOCK => "a socket",
            _ => "an unknown kind of file",
        }
    }

    /// Same file (device and inode).
    pub fn same_file(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// `fstat` of an open file or folder.
pub fn stat(f: &File) -> io::Result<Stat> {
    f.metadata().map(|m| Stat::of(&m))
}

/// Why a folder is not trusted: the text names it and the fix.
fn untrusted(path: &Path, st: &Stat, owners: &Owners) -> Option<String> {
    let shown = path.display();
    if !owners.contains(st.uid) {
        return Some(format!(
            "the folder {shown} belongs to {} (uid {}), neither {}: another user could swap its \
             entries; give it to the service user (sudo chown {SERVICE_USER}: {shown}) or set the \
             folder in the configuration to one that is",
            super::user::user_name_or_id(st.uid),
            st.uid,
            owners.described()
        ));
    }
    if st.mode & 0o002 != 0 {
        return Some(format!(
            "the folder {shown} is writable by every user (mode {:04o}): anyone could plant a \
             link in it; sudo chmod o-w {shown}",
            st.mode & 0o7777
        ));
    }
    None
}

/// A single path component: not empty, no `/`, not `.` or `..`, no NUL.
fn component(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a file name"))
}

fn path_c(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

/// How [`Dir::open_file`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created with this mode (before the umask) if missing.
    ReadWriteCreate(u32),
}

/// An open folder: everything in it is reached through this handle.
pub struct Dir {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dir({})", self.path.display())
    }
}

impl Dir {
    /// Opens the folder at `path` without following a symlink at its last
    /// component, and checks it ([`Owners`], not writable by every user).
    pub fn open(path: &Path, owners: &Owners) -> io::Result<Dir> {
        let c = path_c(path)?;
        // SAFETY: a NUL-terminated path; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = super::retry(|| {
            super::cvt(unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })
        })
        .map_err(|e| not_a_folder(path, e))?;
        // SAFETY: fd was just opened and is owned by no one else.
        let dir = Dir {
            file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
            path: path.to_path_buf(),
        };
        dir.check(owners)?;
        Ok(dir)
    }

    /// [`Dir::open`], creating the folder (and missing parents) with `mode`
    /// first if it does not exist.
    pub fn open_or_create(path: &Path, mode: u32, owners: &Owners) -> io::Result<Dir> {
        match Dir::open(path, owners) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(path)?;
                Dir::open(path, owners)
            }
            other => other,
        }
    }

    fn check(&self, owners: &Owners) -> io::Result<()> {
        let st = self.stat()?;
        match untrusted(&self.path, &st, owners) {
            Some(why) => Err(io::Error::new(io::ErrorKind::PermissionDenied, why)),
            None => Ok(()),
        }
    }

    /// The folder's path, for messages (never used to reach anything).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `fstat` of the folder itself.
    pub fn stat(&self) -> io::Result<Stat> {
        stat(&self.file)
    }

    /// The folder as an open file (for `fchown`, `fchmod`, `fsync`).
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// `fsync` of the folder, so a rename or a new entry is durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn raw(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Opens the entry `name` (never following a symlink) and checks that
    /// it is a regular file; with `ReadWriteCreate` a missing one is made.
    /// A FIFO or device is refused without blocking.
    pub fn open_file(&self, name: &str, access: Access) -> io::Result<File> {
        let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let mut mode: libc::c_uint = 0;
        flags |= match access {
            Access::Read => libc::O_RDONLY,
            Access::ReadWrite => libc::O_RDWR,
            Access::ReadWriteCreate(m) => {
                mode = m;
                libc::O_RDWR | libc::O_CREAT
            }
        };
        let file = self.openat(name, flags, mode)?;
        self.expect_regular(&file, name)?;
        Ok(file)
    }

    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::c_uint) -> io::Result<File> {
        let c = component(name)?;
        // SAFETY: a descriptor we hold open, a NUL-terminated single name;
        // a non-negative result is a new descriptor that nothing else owns.
        let fd = super::retry(|| {
            super::cvt(unsafe { libc::openat(self.raw().as_raw_fd(), c.as_ptr(), flags, mode) })
        })
        .map_err(|e| self.link_refused(name, e))?;
        // SAFETY: as above.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// ELOOP from `O_NOFOLLOW` says "symlink": say so, with the path.
    fn link_refused(&self, name: &str, e: io::Error) -> io::Error {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symlink, which brokerguard never follows here; remove it",
                    self.shown(name).display()
                ),
            )
        } else {
            e
        }
    }

    fn expect_regular(&self, file: &File, name: &str) -> io::Result<Stat> {
        let st = stat(file)?;
        if !st.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {}, not a regular file; remove it",
                    self.shown(name).display(),
                    st.kind()
                ),
            ));
        }
        Ok(st)
    }

    /// Creates a new file `.<prefix><random>.tmp` with `mode` (and
    /// `O_EXCL`: never an existing file or a link), for writing and a
    /// rename over the target. Returns it and its name.
    pub fn create_temp(&self, prefix: &str, mode: u32) -> io::Result<(File, String)> {
        let mut last = None;
        for _ in 0..8 {
            let name = format!(".{prefix}{}.tmp", super::random::hex(8)?);
            match self.openat(
                &name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            ) {
                Ok(f) => return Ok((f, name)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
    }

    /// Renames the entry `from` to `to`, both in this folder (the target is
    /// replaced atomically; a symlink at `to` is replaced, not followed).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (component(from)?, component(to)?);
        let fd = self.raw().as_raw_fd();
        // SAFETY: a descriptor we hold open and two NUL-terminated names.
        super::cvt(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) }).map(drop)
    }

    /// Gives the file `from` (in this folder) the new name `to`, failing
    /// with `AlreadyExists` if `to` exists: the first of two creators wins
    /// and neither replaces the other's file.
    pub fn link_new(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (component(from)?, component(to)?);
        let fd = self.raw().as_raw_fd();
        // SAFETY: a descriptor we hold open and two NUL-terminated names;
        // flags 0: a link at `from` would be linked itself, not followed.
        super::cvt(unsafe { libc::linkat(fd, a.as_ptr(), fd, b.as_ptr(), 0) }).map(drop)
    }

    /// Removes the entry `name` (a link itself, never its target).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = component(name)?;
        // SAFETY: a descriptor we hold open and a NUL-terminated name.
        super::cvt(unsafe { libc::unlinkat(self.raw().as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// `fstatat` of the entry `name` without following it; `None` if missing.
    pub fn stat_entry(&self, name: &str) -> io::Result<Option<Stat>> {
        let c = component(name)?;
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a descriptor we hold open, a NUL-terminated name and a
        // stat struct we own.
        let rc = unsafe {
            libc::fstatat(
                self.raw().as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            size: st.st_size as u64,
        }))
    }

    /// Opens (creating it with `mode` if missing) the folder `name` in this
    /// one, without following a link, and checks it like [`Dir::open`].
    pub fn subdir(&self, name: &str, create_mode: Option<u32>, owners: &Owners) -> io::Result<Dir> {
        let c = component(name)?;
        if let Some(mode) = create_mode {
            // SAFETY: a descriptor we hold open and a NUL-terminated name.
            match super::cvt(unsafe { libc::mkdirat(self.raw().as_raw_fd(), c.as_ptr(), mode) }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let file = self
            .openat(
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0,
            )
            .map_err(|e| not_a_folder(&self.shown(name), e))?;
        let dir = Dir {
            file,
            path: self.shown(name),
        };
        dir.check(owners)?;
        Ok(dir)
    }

    /// Reads the regular file `name` whole, refusing a link, a FIFO, a
    /// device, or more than `max` bytes. `None` when it does not exist.
    pub fn read_limited(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let mut file = match self.open_file(name, Access::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        (&mut file).take(max + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is larger than {max} bytes, which it never is; remove it",
                    self.shown(name).display()
                ),
            ));
        }
        Ok(Some(buf))
    }
}

fn not_a_folder(path: &Path, e: io::Error) -> io::Error {
    // O_NOFOLLOW | O_DIRECTORY on a link fails with ENOTDIR on Linux;
    // looking again (for the message only) tells a link from a file.
    let link = e.raw_os_error() == Some(libc::ELOOP)
        || (e.raw_os_error() == Some(libc::ENOTDIR)
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()));
    match link {
        true => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symlink, which brokerguard never follows here; make it a real folder",
                path.display()
            ),
        ),
        false => e,
    }
}

/// `e` with `what` and `path` in front, unless its text names the path
/// already (the errors of [`Dir`] that explain a refusal do).
pub fn naming(what: &str, path: &Path, e: io::Error) -> io::Error {
    if names_itself(&e, path) {
        e
    } else {
        io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
    }
}

/// Whether `e`'s text names `path` (or a path under it) already: the
/// refusals of [`Dir`] do, with the fix, so a caller does not repeat it.
pub fn names_itself(e: &io::Error, path: &Path) -> bool {
    e.to_string().contains(&path.display().to_string())
}

/// Gives an open file (or folder) to `uid`:`gid` through its handle.
pub fn give(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::fchown(file, Some(uid), Some(gid))
}

/// `(st_dev, st_ino)` of this process's stderr, if it is open.
pub fn stderr_identity() -> Option<(u64, u64)> {
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let st = stat(&File::from(fd)).ok()?;
    Some((st.dev, st.ino))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh folder under the temp dir, removed on drop.
    pub(crate) struct Scratch(pub PathBuf);

    impl Scratch {
        pub(crate) fn new(tag: &str) -> Scratch {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "bg-osfs-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The unprivileged user that stands in for the service user (and for
    /// an attacker who owns the folder) in the tests run as root.
    pub(crate) const NOBODY: u32 = 65534;

    /// A folder owned by [`NOBODY`], for the tests of what root does in a
    /// folder another user can write; `None` (with the reason printed)
    /// when not running as root, since only root can make one.
    pub(crate) fn folder_of_nobody(tag: &str) -> Option<Scratch> {
        if !crate::os::user::is_root() {
            eprintln!("skipped: only root can test what root does in another user's folder");
            return None;
        }
        let d = Scratch::new(tag);
        std::os::unix::fs::chown(&d.0, Some(NOBODY), Some(NOBODY)).unwrap();
        Some(d)
    }

    /// A root-only 0600 file outside the folder, that a planted link aims at.
    pub(crate) fn victim(dir: &Scratch) -> PathBuf {
        let p = dir.0.join("root-only");
        std::fs::write(&p, b"precious").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// The victim is as it was: content, root's, 0600.
    pub(crate) fn assert_untouched(victim: &Path) {
        let m = std::fs::symlink_metadata(victim).unwrap();
        assert!(m.is_file(), "{} replaced", victim.display());
        assert_eq!(
            std::fs::read(victim).unwrap(),
            b"precious",
            "{} written",
            victim.display()
        );
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "{} given away",
            victim.display()
        );
        assert_eq!(
            m.mode() & 0o7777,
            0o600,
            "{} mode changed",
            victim.display()
        );
    }

    fn mine() -> Owners {
        Owners::of_this_process()
    }

    #[test]
    fn links_fifos_devices_and_big_files_are_refused() {
        let d = Scratch::new("refuse");
        let dir = Dir::open(&d.0, &mine()).unwrap();
        std::fs::write(d.0.join("ok"), b"hello").unwrap();
        std::os::unix::fs::symlink("ok", d.0.join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.0.join("zero")).unwrap();
        let fifo = path_c(&d.0.join("fifo")).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(dir.read_limited("ok", 5).unwrap().unwrap(), b"hello");
        assert!(
            dir.read_limited("ok", 4)
                .unwrap_err()
                .to_string()
                .contains("larger than 4 bytes")
        );
        assert_eq!(dir.read_limited("missing", 5).unwrap(), None);
        for name in ["link", "zero"] {
            let e = dir.read_limited(name, 5).unwrap_err();
            assert!(e.to_string().contains("is a symlink"), "{e}");
        }
        let e = dir.read_limited("fifo", 5).unwrap_err();
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        assert!(dir.open_file("../x", Access::Read).is_err());
        assert!(Dir::open(&d.0.join("link"), &mine()).is_err());
    }

    #[test]
    fn temp_files_are_new_and_renamed_within_the_folder() {
        let d = Scratch::new("temp");
        let dir = Dir::open(&d.0, &mine()).unwrap();
        let (mut f, name) = dir.create_temp("x-", 0o600).unwrap();
        let (_, other) = dir.create_temp("x-", 0o600).unwrap();
        assert_ne!(name, other);
        assert!(name.starts_with(".x-") && name.ends_with(".tmp") && name.len() == 3 + 16 + 4);
        f.write_all(b"v").unwrap();
        dir.rename(&name, "target").unwrap();
        assert_eq!(std::fs::read(d.0.join("target")).unwrap(), b"v");
        assert!(dir.stat_entry("target").unwrap().unwrap().is_file());
        dir.remove("target").unwrap();
        assert_eq!(dir.stat_entry("target").unwrap(), None);
    }

    #[test]
    fn a_folder_writable_by_everyone_or_of_a_stranger_is_refused() {
        let d = Scratch::new("trust");
        std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Dir::open(&d.0, &mine()).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("writable by every user (mode 0777)"),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("sudo chmod o-w {}", d.0.display())),
            "{shown}"
        );
        std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let stranger = Owners::only(&[4_000_000_001]);
        let e = Dir::open(&d.0, &stranger).unwrap_err();
        assert!(e.to_string().contains("neither 4000000001"), "{e}");
        assert!(e.to_string().contains("sudo chown brokerguard:"), "{e}");
    }
}
