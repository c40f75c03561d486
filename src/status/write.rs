//! Rewrites `status.json` atomically: a reader sees the old document or the
//! new one, never a mix or a truncated file.
//!
//! Temp file in the same folder (rename is atomic only within a file
//! system), written, renamed over the target. Nothing is fsynced: the file
//! lives under /run (tmpfs, where fsync does nothing useful) and is
//! rewritten every second, so only readers' atomicity matters, which the
//! rename gives, not durability across a crash (a restarted agent writes a
//! new one; one left by a dead agent is reported as stale). On a disk-backed
//! runtime_dir an fsync per second was a journal commit per second.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::schema::StatusDoc;

/// Unique suffix for temp files of concurrent writers in one process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The process id, asked once (glibc no longer caches getpid).
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.{seq}.tmp", pid()));
    Ok(path.with_file_name(temp))
}

/// Writes `doc` as pretty JSON to `path` atomically, mode 0640 whatever the
/// umask: the agent's group reads it (under systemd, brokerguard-clients,
/// the trading bot's group), others do not. Errors name the file.
pub fn write_atomic(path: &Path, doc: &StatusDoc) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes, 0o640)
}

/// Writes `bytes` to `path` atomically (temp file beside it, renamed
/// over it) with `mode` whatever the umask; errors name the file. Also the
/// metrics textfile's writer (mode 0644: node_exporter runs as its own user).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        drop(file);
        fs::rename(&temp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_is_hidden_beside_the_target() {
        let t = temp_path(Path::new("/run/brokerguard/status.json")).unwrap();
        assert_eq!(t.parent(), Some(Path::new("/run/brokerguard")));
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".status.json.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert_ne!(
            temp_path(Path::new("/x/status.json")).unwrap(),
            temp_path(Path::new("/x/status.json")).unwrap()
        );
    }
}
