//! Fingerprints of secrets: `hmac:` + the first 8 hex digits of
//! HMAC-SHA-256(host key, value).
//!
//! A fingerprint tells two values apart in logs, status.json, `doctor` and
//! alerts without showing either. An unkeyed hash would let anyone who can
//! read status.json (the bot's group) confirm a guessed weak secret
//! offline; keyed with a random per-host key that only root and the service
//! user can read, it confirms nothing to them.
//!
//! The key is 32 random bytes, kept as 64 hex digits in
//! `<state_dir>/fingerprint.key` (0600, the state folder's owner), created
//! on first use and the same across restarts, so a fingerprint in
//! yesterday's journal still matches today's status. It is read and
//! written by the no-follow rule (`os::fs`), since root's commands use it
//! too. Each process installs it once ([`use_host_key`]) before it shows a
//! fingerprint:
//!
//! - `run`, `check`, `kite-login`, `doctor` and `set-credential` load it
//!   (creating it if missing; as root, for the state folder's owner);
//! - `status` computes no fingerprint: it shows what the agent wrote;
//! - a process without the key (`doctor` by a user who cannot read the
//!   state folder) fingerprints with a key of its own, made at random on
//!   first use: its fingerprints compare with each other but not with the
//!   agent's, and `doctor` says so.

use crate::os::{
    self,
    fs::{Access, Dir, Owners},
};
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// The key's file name in the state folder.
pub const KEY_FILE: &str = "fingerprint.key";

const KEY_BYTES: usize = 32;

/// The per-host fingerprint key.
#[derive(Clone)]
pub struct FingerprintKey(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl PartialEq for FingerprintKey {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl FingerprintKey {
    /// 32 bytes from the kernel's random source.
    pub fn random() -> io::Result<FingerprintKey> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        os::random::fill(&mut key[..])?;
        Ok(FingerprintKey(key))
    }

    /// A given key (tests use a fixed one).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> FingerprintKey {
        FingerprintKey(Zeroizing::new(bytes))
    }

    /// `hmac:` + the first 8 hex digits of HMAC-SHA-256(key, value).
    pub fn fingerprint(&self, value: &[u8]) -> String {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[..])
            .expect("HMAC takes a key of any length");
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let mut s = String::from("hmac:");
        for b in &digest[..4] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(2 * KEY_BYTES + 1));
        for b in self.0.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
        s
    }

    fn parse(text: &[u8]) -> Option<FingerprintKey> {
        let text = std::str::from_utf8(text).ok()?.trim();
        if text.len() != 2 * KEY_BYTES {
            return None;
        }
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(FingerprintKey(key))
    }
}

/// Why the host key could not be had.
#[derive(Debug)]
pub enum KeyError {
    /// The state folder or the key file could not be opened, read or written.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The file does not hold 64 hex digits.
    Malformed { path: PathBuf },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io {
                path,
                action,
                source,
            } if os::fs::names_itself(source, path) => {
                write!(f, "cannot {action} the fingerprint key: {source}")
            }
            KeyError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "cannot {action} the fingerprint key {}: {source}",
                path.display()
            ),
            KeyError::Malformed { path } => write!(
                f,
                "{} does not hold a fingerprint key (64 hex digits); remove it and a new one is \
                 made (fingerprints shown before then will no longer match)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key in `<state_dir>/fingerprint.key`, created (with the folder) if
/// missing.
pub fn load_or_create(state_dir: &Path) -> Result<FingerprintKey, KeyError> {
    let dir =
        Dir::open_or_create(state_dir, 0o700, &Owners::of_this_process()).map_err(|source| {
            KeyError::Io {
                path: state_dir.to_path_buf(),
                action: "open the folder of",
                source,
            }
        })?;
    load_or_create_in(&dir)
}

/// [`load_or_create`] in an opened and checked state folder.
pub fn load_or_create_in(dir: &Dir) -> Result<FingerprintKey, KeyError> {
    let path = dir.shown(KEY_FILE);
    let io_err = |action, source| KeyError::Io {
        path: path.clone(),
        action,
        source,
    };
    // Two tries: a reader that loses the creation race reads the winner's.
    for _ in 0..2 {
        if let Some(key) = read_in(dir)? {
            return Ok(key);
        }
        let key = FingerprintKey::random().map_err(|e| io_err("make", e))?;
        let (mut f, tmp) = dir
            .create_temp("fingerprint.key-", 0o600)
            .map_err(|e| io_err("create", e))?;
        let written = (|| -> io::Result<()> {
            f.write_all(key.to_text().as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            // Root (doctor, kite-login) creates it for the service user.
            if os::user::is_root() {
                let owner = dir.stat()?;
                os::fs::give(&f, owner.uid, owner.gid)?;
            }
            f.sync_all()
        })();
        let linked = written.and_then(|()| dir.link_new(&tmp, KEY_FILE));
        let _ = dir.remove(&tmp);
        match linked {
            Ok(()) => {
                let _ = dir.sync();
                return Ok(key);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("write", e)),
        }
    }
    read_in(dir)?.ok_or_else(|| KeyError::Io {
        path: path.clone(),
        action: "read",
        source: io::Error::other("it kept disappearing"),
    })
}

/// The key in the opened state folder, `None` if there is none yet.
fn read_in(dir: &Dir) -> Result<Option<FingerprintKey>, KeyError> {
    let path = dir.shown(KEY_FILE);
    match dir.read_limited(KEY_FILE, 256) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => {
            let bytes = Zeroizing::new(bytes);
            FingerprintKey::parse(&bytes)
                .map(Some)
                .ok_or(KeyError::Malformed { path })
        }
        Err(source) => Err(KeyError::Io {
            path,
            action: "read",
            source,
        }),
    }
}

/// The key in `<state_dir>/fingerprint.key` if this process can read it,
/// creating nothing (for tests and tools that only compare).
pub fn load(state_dir: &Path) -> Result<Option<FingerprintKey>, KeyError> {
    let dir = match Dir::open(state_dir, &Owners::of_this_process()) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Io {
                path: state_dir.to_path_buf(),
                action: "open the folder of",
                source,
            });
        }
    };
    read_in(&dir)
}

/// Writes `key` as the host key of `state_dir` (tests start agents with a
/// key they know). Fails if there is one already.
pub fn write_key_file(state_dir: &Path, key: &FingerprintKey) -> io::Result<()> {
    let dir = Dir::open_or_create(state_dir, 0o700, &Owners::of_this_process())?;
    let mut f = dir.open_file(KEY_FILE, Access::ReadWriteCreate(0o600))?;
    if os::fs::stat(&f)?.size != 0 {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    f.write_all(key.to_text().as_bytes())?;
    f.sync_all()
}

static INSTALLED: OnceLock<FingerprintKey> = OnceLock::new();
static OWN: OnceLock<FingerprintKey> = OnceLock::new();

/// Makes `key` this process's fingerprint key. `false` if another key was
/// installed before (the first one stays).
pub fn install(key: FingerprintKey) -> bool {
    let kept = INSTALLED.get_or_init(|| key.clone());
    *kept == key
}

/// Loads (or creates) the host key of `state_dir` and installs it.
pub fn use_host_key(state_dir: &Path) -> Result<(), KeyError> {
    let key = load_or_create(state_dir)?;
    if !install(key) {
        log::warn!("a different fingerprint key was installed earlier in this process; keeping it");
    }
    Ok(())
}

/// Whether fingerprints in this process use the host's key.
pub fn host_key_installed() -> bool {
    INSTALLED.get().is_some()
}

/// The fingerprint of `value` with this process's key: the host's once
/// installed, else one of its own (see the module doc).
pub fn of(value: &[u8]) -> String {
    let key = INSTALLED.get().unwrap_or_else(|| {
        OWN.get_or_init(|| {
            FingerprintKey::random().unwrap_or_else(|e| {
                // getrandom fails only on a broken kernel; never fall back
                // to an unkeyed (guessable) fingerprint.
                panic!("no random bytes for the fingerprint key: {e}")
            })
        })
    });
    key.fingerprint(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::fs::tests::Scratch;
    use std::os::unix::fs::MetadataExt;

    const CANARY: &str = "CANARY-weak-password-1";

    #[test]
    fn one_secret_fingerprints_differently_under_two_keys() {
        let a = FingerprintKey::from_bytes([1; 32]);
        let b = FingerprintKey::from_bytes([2; 32]);
        let (fa, fb) = (
            a.fingerprint(CANARY.as_bytes()),
            b.fingerprint(CANARY.as_bytes()),
        );
        assert_ne!(fa, fb);
        assert!(fa.starts_with("hmac:") && fa.len() == 13, "{fa}");
        assert_eq!(fa, a.fingerprint(CANARY.as_bytes()), "stable under one key");
        // Not the unkeyed SHA-256 prefix a guesser could compute.
        let plain = crate::secret::sha256_prefix_for_tests(CANARY.as_bytes());
        assert_ne!(&fa[5..], plain);
        // HMAC-SHA-256 with key 0x01 * 32 of the canary, from Python:
        // hmac.new(b"\x01"*32, b"CANARY-weak-password-1", "sha256").hexdigest()[:8]
        assert_eq!(fa, "hmac:c94f1987");
    }

    #[test]
    fn the_host_key_is_made_once_and_the_same_after_a_restart() {
        let state = Scratch::new("fpkey");
        let dir = state.0.join("state");
        let first = load_or_create(&dir).unwrap();
        let again = load_or_create(&dir).unwrap();
        assert_eq!(first, again, "a restart reads the same key");
        assert_eq!(load(&dir).unwrap(), Some(first.clone()));
        let m = std::fs::metadata(dir.join(KEY_FILE)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let text = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        assert_eq!(text.trim().len(), 64);
        // No temp file left, and a second folder gets another key.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let other = load_or_create(&state.0.join("other")).unwrap();
        assert_ne!(first, other);
        // A damaged key is an error naming the file, not a silent new key.
        std::fs::write(dir.join(KEY_FILE), "short\n").unwrap();
        let e = load_or_create(&dir).unwrap_err().to_string();
        assert!(e.contains("does not hold a fingerprint key"), "{e}");
    }

    #[test]
    fn a_key_planted_as_a_link_is_refused() {
        let state = Scratch::new("fpkey-link");
        std::os::unix::fs::symlink("/dev/zero", state.0.join(KEY_FILE)).unwrap();
        let e = load_or_create(&state.0).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
    }
}
