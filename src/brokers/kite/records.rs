//! When each access token was issued, kept in `agent.state_dir` so the
//! agent knows a token's 06:00 IST expiry from the moment it reads it.
//!
//! One small file per token, named by the token's fingerprint (never the
//! value): `kite-token-<8 hex digits>.json`, holding when it was issued and
//! who said so. `kite-login` writes one from Kite's `login_time`; the agent
//! writes one the first time a token without a record works (at the ticker
//! upgrade or the profile check). Either instant gives the same expiry:
//! a token that works at `t` dies at the first 06:00 IST after `t`.
//!
//! Files are written atomically (temp file, fsync, rename). `kite-login`
//! runs as root and the agent as its service user, so a file is given the
//! state folder's owner and group, and mode 0640: both can read and
//! replace it. Records more than three days old are removed on each write.
//!
//! The state folder belongs to the service user, and root writes in it, so
//! every access follows the no-follow rule (`os::fs`): the folder is opened
//! and checked once, the temp file has a random name and is created with
//! `O_EXCL`, the owner is set on the handle, and a record is read only if
//! it is a small regular file, never through a link.

use crate::os::{
    self,
    fs::{Dir, Owners},
};
use crate::secret::Secret;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Records older than this are removed.
pub const KEEP_FOR: Duration = Duration::from_secs(3 * 24 * 3600);
const PREFIX: &str = "kite-token-";
const SUFFIX: &str = ".json";

/// Who established when a token was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuedBy {
    /// `kite-login`, from Kite's `login_time` (or its own clock).
    KiteLogin,
    /// The agent, the first time the token worked.
    FirstSeen,
}

impl IssuedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedBy::KiteLogin => "kite-login",
            IssuedBy::FirstSeen => "first seen working",
        }
    }

    fn parse(s: &str) -> Option<IssuedBy> {
        [IssuedBy::KiteLogin, IssuedBy::FirstSeen]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// When one token was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRecord {
    /// `hmac:` + 8 hex digits of the token.
    pub fingerprint: String,
    pub issued_at: SystemTime,
    pub by: IssuedBy,
    /// Kite's user id, when `kite-login` learned it.
    pub user_id: Option<String>,
}

/// Why a record could not be written.
#[derive(Debug)]
pub enum RecordError {
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io {
                path,
                action,
                error,
            } => write!(f, "cannot {action} {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for RecordError {}

/// The file of the token with this fingerprint; `None` for a fingerprint
/// that is not `hmac:` + hex (nothing else may become a file name).
pub fn path_of(state_dir: &Path, fingerprint: &str) -> Option<PathBuf> {
    let hex = fingerprint.strip_prefix("hmac:")?;
    if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(state_dir.join(format!("{PREFIX}{hex}{SUFFIX}")))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The record of `token`, if there is a readable one.
pub fn load(state_dir: &Path, token: &Secret) -> Option<IssueRecord> {
    load_fingerprint(state_dir, &token.fingerprint())
}

/// A record is a few hundred bytes; anything larger is not one.
const MAX_RECORD_BYTES: u64 = 4096;

fn file_name_of(fingerprint: &str) -> Option<String> {
    path_of(Path::new(""), fingerprint).map(|p| p.to_string_lossy().into_owned())
}

/// The record of the token with this fingerprint, if there is a readable one.
pub fn load_fingerprint(state_dir: &Path, fingerprint: &str) -> Option<IssueRecord> {
    let dir = Dir::open(state_dir, &Owners::of_this_process()).ok()?;
    load_in(&dir, fingerprint)
}

fn load_in(dir: &Dir, fingerprint: &str) -> Option<IssueRecord> {
    let bytes = dir
        .read_limited(&file_name_of(fingerprint)?, MAX_RECORD_BYTES)
        .ok()??;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if v.get("fingerprint")?.as_str()? != fingerprint {
        return None;
    }
    Some(IssueRecord {
        fingerprint: fingerprint.to_string(),
        issued_at: UNIX_EPOCH + Duration::from_secs(v.get("issued_unix")?.as_u64()?),
        by: IssuedBy::parse(v.get("by")?.as_str()?)?,
        user_id: v
            .get("user_id")
            .and_then(|u| u.as_str())
            .map(crate::peertext::short),
    })
}

/// Writes `rec` (replacing an older record of the same token), then
/// removes records older than [`KEEP_FOR`] as of `now`.
pub fn save(state_dir: &Path, rec: &IssueRecord, now: SystemTime) -> Result<(), RecordError> {
    let dir =
        Dir::open(state_dir, &Owners::of_this_process()).map_err(|error| RecordError::Io {
            path: state_dir.to_path_buf(),
            action: "open the state folder",
            error,
        })?;
    save_in(&dir, rec, now)
}

/// [`save`] in an opened and checked state folder.
pub fn save_in(dir: &Dir, rec: &IssueRecord, now: SystemTime) -> Result<(), RecordError> {
    let name = file_name_of(&rec.fingerprint).ok_or_else(|| RecordError::Io {
        path: dir.path().to_path_buf(),
        action: "name a record in",
        error: io::Error::new(io::ErrorKind::InvalidInput, "not a fingerprint"),
    })?;
    let path = dir.shown(&name);
    let body = serde_json::json!({
        "fingerprint": rec.fingerprint,
        "issued_at": crate::timefmt::rfc3339(rec.issued_at),
        "issued_unix": unix(rec.issued_at),
        "by": rec.by.as_str(),
        "user_id": rec.user_id,
    });
    let (mut f, tmp) = dir
        .create_temp(PREFIX, 0o640)
        .map_err(|error| RecordError::Io {
            path: path.clone(),
            action: "create a temp file for",
            error,
        })?;
    let mut write = || -> io::Result<()> {
        f.write_all(body.to_string().as_bytes())?;
        f.write_all(b"\n")?;
        // 0640 whatever the umask, on the handle.
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        // Root (kite-login) writes for the service user: the folder's owner.
        if os::user::is_root() {
            let owner = dir.stat()?;
            os::fs::give(&f, owner.uid, owner.gid)?;
        }
        f.sync_all()?;
        dir.rename(&tmp, &name)?;
        dir.sync()
    };
    if let Err(e) = write() {
        let _ = dir.remove(&tmp);
        return Err(RecordError::Io {
            path,
            action: "write",
            error: e,
        });
    }
    prune(dir, now);
    Ok(())
}

/// Removes records issued more than [`KEEP_FOR`] before `now`.
fn prune(dir: &Dir, now: SystemTime) {
    let Ok(entries) = fs::read_dir(dir.path()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(hex) = name
            .strip_prefix(PREFIX)
            .and_then(|n| n.strip_suffix(SUFFIX))
        else {
            continue;
        };
        let fp = format!("hmac:{hex}");
        let old = match load_in(dir, &fp) {
            Some(r) => now
                .duration_since(r.issued_at)
                .is_ok_and(|age| age > KEEP_FOR),
            // Unreadable or foreign: judged by its modification time (of
            // the entry itself, a link is not followed).
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > KEEP_FOR)),
        };
        if old {
            // unlinkat removes the entry, a link itself and never its target.
            let _ = dir.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bg-kite-records-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_record_round_trips_by_fingerprint_only() {
        let d = dir("rt");
        let token = Secret::new("CanaryAccessTokenRecords00000001");
        let rec = IssueRecord {
            fingerprint: token.fingerprint(),
            issued_at: at(1_795_400_000),
            by: IssuedBy::KiteLogin,
            user_id: Some("AB1234".into()),
        };
        assert_eq!(load(&d, &token), None);
        save(&d, &rec, at(1_795_400_010)).unwrap();
        assert_eq!(load(&d, &token), Some(rec.clone()));
        let p = path_of(&d, &rec.fingerprint).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(!text.contains(token.expose()), "{text}");
        assert!(text.contains("\"by\":\"kite-login\""), "{text}");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // Replaced by a newer statement about the same token.
        let seen = IssueRecord {
            by: IssuedBy::FirstSeen,
            user_id: None,
            ..rec
        };
        save(&d, &seen, at(1_795_400_020)).unwrap();
        assert_eq!(load(&d, &token).unwrap().by, IssuedBy::FirstSeen);
        // No temp file is left behind.
        let names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn old_records_are_pruned_and_odd_names_refused() {
        let d = dir("prune");
        let rec = |fp: &str, t: u64| IssueRecord {
            fingerprint: fp.into(),
            issued_at: at(t),
            by: IssuedBy::FirstSeen,
            user_id: None,
        };
        let now = 2_000_000_000;
        save(
            &d,
            &rec("hmac:0000000a", now - 4 * 86_400),
            at(now - 4 * 86_400),
        )
        .unwrap();
        save(&d, &rec("hmac:0000000b", now - 86_400), at(now)).unwrap();
        assert!(load_fingerprint(&d, "hmac:0000000a").is_none());
        assert!(load_fingerprint(&d, "hmac:0000000b").is_some());
        assert_eq!(path_of(&d, "../etc/passwd"), None);
        assert_eq!(path_of(&d, "hmac:../x"), None);
        assert!(save(&d, &rec("hmac:", now), at(now)).is_err());
        // A record naming another fingerprint than its file is ignored.
        fs::write(
            d.join("kite-token-0000000c.json"),
            r#"{"fingerprint":"hmac:0000000d","issued_unix":1,"by":"kite-login"}"#,
        )
        .unwrap();
        assert!(load_fingerprint(&d, "hmac:0000000c").is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn root_never_writes_or_reads_through_a_link_in_the_state_folder() {
        use crate::os::fs::tests::{NOBODY, Scratch, assert_untouched, folder_of_nobody, victim};
        let Some(state) = folder_of_nobody("kite-records") else {
            return;
        };
        let elsewhere = Scratch::new("kite-records-victims");
        let target = victim(&elsewhere);
        let now = 1_795_400_000;
        let token = Secret::new("CanaryAccessTokenRecords00000002");
        let rec = IssueRecord {
            fingerprint: token.fingerprint(),
            issued_at: at(now),
            by: IssuedBy::KiteLogin,
            user_id: None,
        };
        // The owner of the folder plants links where the old code wrote:
        // the predictable temp name and the record itself.
        let old_tmp = state
            .0
            .join(format!(".{PREFIX}{}.{now}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &old_tmp).unwrap();
        let final_path = path_of(&state.0, &rec.fingerprint).unwrap();
        std::os::unix::fs::symlink(&target, &final_path).unwrap();
        assert_eq!(
            load_fingerprint(&state.0, &rec.fingerprint),
            None,
            "read through a link"
        );
        let dir = Dir::open(&state.0, &Owners::only(&[0, NOBODY])).unwrap();
        save_in(&dir, &rec, at(now)).unwrap();
        assert_untouched(&target);
        // The record replaced the link and belongs to the folder's owner.
        let m = fs::symlink_metadata(&final_path).unwrap();
        assert!(m.is_file());
        assert_eq!((m.uid(), m.mode() & 0o777), (NOBODY, 0o640));
        assert_eq!(load_in(&dir, &rec.fingerprint), Some(rec));
        // A folder owned by a stranger is refused, naming it.
        let e = save(
            &state.0,
            &IssueRecord {
                fingerprint: "hmac:0000000e".into(),
                issued_at: at(now),
                by: IssuedBy::FirstSeen,
                user_id: None,
            },
            at(now),
        );
        if crate::os::user::user_by_name(crate::os::fs::SERVICE_USER).is_none() {
            let shown = e.unwrap_err().to_string();
            assert!(shown.contains("neither root"), "{shown}");
        }
    }
}
