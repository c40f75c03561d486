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

use crate::credentials::Secret;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
    /// `sha256:` + 8 hex digits of the token.
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
/// that is not `sha256:` + hex (nothing else may become a file name).
pub fn path_of(state_dir: &Path, fingerprint: &str) -> Option<PathBuf> {
    let hex = fingerprint.strip_prefix("sha256:")?;
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

/// The record of the token with this fingerprint, if there is a readable one.
pub fn load_fingerprint(state_dir: &Path, fingerprint: &str) -> Option<IssueRecord> {
    let text = fs::read_to_string(path_of(state_dir, fingerprint)?).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
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
    let io = |path: &Path, action: &'static str| {
        let path = path.to_path_buf();
        move |error| RecordError::Io {
            path,
            action,
            error,
        }
    };
    let path = path_of(state_dir, &rec.fingerprint).ok_or_else(|| RecordError::Io {
        path: state_dir.to_path_buf(),
        action: "name a record in",
        error: io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 fingerprint"),
    })?;
    let body = serde_json::json!({
        "fingerprint": rec.fingerprint,
        "issued_at": crate::timefmt::rfc3339(rec.issued_at),
        "issued_unix": unix(rec.issued_at),
        "by": rec.by.as_str(),
        "user_id": rec.user_id,
    });
    let dir_meta = fs::metadata(state_dir).map_err(io(state_dir, "read the state folder"))?;
    let tmp = state_dir.join(format!(".{PREFIX}{}.{}.tmp", std::process::id(), unix(now)));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        // Root (kite-login) writes for the service user: the folder's owner.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&tmp, Some(dir_meta.uid()), Some(dir_meta.gid()))?;
        }
        fs::rename(&tmp, &path)?;
        fs::File::open(state_dir)?.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(RecordError::Io {
            path,
            action: "write",
            error: e,
        });
    }
    prune(state_dir, now);
    Ok(())
}

/// Removes records issued more than [`KEEP_FOR`] before `now`.
fn prune(state_dir: &Path, now: SystemTime) {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(hex) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
        else {
            continue;
        };
        let fp = format!("sha256:{hex}");
        let old = match load_fingerprint(state_dir, &fp) {
            Some(r) => now
                .duration_since(r.issued_at)
                .is_ok_and(|age| age > KEEP_FOR),
            // Unreadable or foreign: judged by its modification time.
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > KEEP_FOR)),
        };
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
            &rec("sha256:0000000a", now - 4 * 86_400),
            at(now - 4 * 86_400),
        )
        .unwrap();
        save(&d, &rec("sha256:0000000b", now - 86_400), at(now)).unwrap();
        assert!(load_fingerprint(&d, "sha256:0000000a").is_none());
        assert!(load_fingerprint(&d, "sha256:0000000b").is_some());
        assert_eq!(path_of(&d, "../etc/passwd"), None);
        assert_eq!(path_of(&d, "sha256:../x"), None);
        assert!(save(&d, &rec("sha256:", now), at(now)).is_err());
        // A record naming another fingerprint than its file is ignored.
        fs::write(
            d.join("kite-token-0000000c.json"),
            r#"{"fingerprint":"sha256:0000000d","issued_unix":1,"by":"kite-login"}"#,
        )
        .unwrap();
        assert!(load_fingerprint(&d, "sha256:0000000c").is_none());
        fs::remove_dir_all(&d).unwrap();
    }
}
