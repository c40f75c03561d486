//! The Unix socket file and the one raw socket call std lacks: binding
//! safely over a stale socket, and the peer's pid.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Identity of the socket file we created, so stop removes only that one
/// and not a file someone else put at the path since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

/// Binds `path` with mode 0660. A socket file already there is removed
/// unless a live process still listens on it; any other kind of file is
/// refused, never deleted.
pub fn bind(path: &Path) -> io::Result<(UnixListener, FileId)> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "fan-out socket {}: another process is listening on it; \
                         stop that process (is another brokerguard running?)",
                        path.display()
                    ),
                ));
            }
            fs::remove_file(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "fan-out socket {}: cannot remove the stale socket: {e}",
                        path.display()
                    ),
                )
            })?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "fan-out socket {}: a file that is not a socket is in the way; \
                     move it away or choose another runtime_dir",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("fan-out socket {}: {e}", path.display()),
            ));
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("fan-out socket {}: cannot bind: {e}", path.display()),
        )
    })?;
    let setup = || -> io::Result<FileId> {
        fs::set_permissions(path, fs::Permissions::from_mode(0o660))?;
        let meta = fs::symlink_metadata(path)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    };
    match setup() {
        Ok(id) => Ok((listener, id)),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(io::Error::new(
                e.kind(),
                format!(
                    "fan-out socket {}: cannot set mode 0660: {e}",
                    path.display()
                ),
            ))
        }
    }
}

/// Removes `path` if it is still the socket file [`bind`] created.
pub fn remove_if_ours(path: &Path, id: FileId) {
    let ours = fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && m.dev() == id.dev && m.ino() == id.ino);
    if ours {
        if let Err(e) = fs::remove_file(path) {
            log::warn!("fan-out socket {}: cannot remove: {e}", path.display());
        }
    }
}
