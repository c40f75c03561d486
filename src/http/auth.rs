//! HTTP basic auth for a listener reachable from other hosts, against an
//! Argon2id hash kept as the credential `HTTP_PASSWORD` (`brokerguard
//! set-credential HTTP_PASSWORD` hashes what the operator types: the
//! credentials file never holds the password itself).
//!
//! The hash uses OWASP's lowest-memory Argon2id setting (7 MiB, 5 passes,
//! one lane), so a check costs a few tens of milliseconds and 7 MiB once;
//! the last `Authorization` value that passed is remembered as a SHA-256
//! digest, so a page refreshing every few seconds is not a hash each
//! time. Checks run one at a time, which also paces a guesser.

use crate::secret::Secret;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Mutex;

/// The credential that holds the hash.
pub const PASSWORD_CREDENTIAL: &str = "HTTP_PASSWORD";
/// What a browser is told when it must ask for the password.
pub const CHALLENGE: &str = "Basic realm=\"brokerguard\", charset=\"UTF-8\"";

/// OWASP's Argon2id row with the least memory: m = 7 MiB, t = 5, p = 1.
fn hasher() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why the stored value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// `HTTP_PASSWORD` is not set.
    Missing,
    /// It is set but is not an Argon2 hash (a plain password written by
    /// hand, or a value damaged in the file).
    NotAHash,
    /// Hashing failed (no randomness for the salt).
    Hash(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => write!(
                f,
                "{PASSWORD_CREDENTIAL} is not set: a listener reachable from other hosts asks for a \
                 password; set one with `sudo brokerguard set-credential {PASSWORD_CREDENTIAL}` (it stores \
                 an Argon2id hash), or listen on 127.0.0.1 behind a reverse proxy"
            ),
            AuthError::NotAHash => write!(
                f,
                "{PASSWORD_CREDENTIAL} does not hold an Argon2id hash ($argon2id$...): set it again with \
                 `sudo brokerguard set-credential {PASSWORD_CREDENTIAL}`, which hashes the password you type"
            ),
            AuthError::Hash(e) => write!(f, "cannot hash the password: {e}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The value `set-credential` stores for `name`: for [`PASSWORD_CREDENTIAL`]
/// the Argon2id hash of what was typed (kept as is when it already is a
/// hash), any other credential unchanged.
pub fn stored_form(name: &str, typed: Secret) -> Result<Secret, AuthError> {
    if name != PASSWORD_CREDENTIAL || typed.expose().starts_with("$argon2") {
        return Ok(typed);
    }
    hasher()
        .hash_password(typed.expose().as_bytes())
        .map(|h| Secret::new(h.to_string()))
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks `Authorization` headers against the stored hash.
pub struct BasicAuth {
    hash: Secret,
    /// SHA-256 of the last header value that passed.
    last_good: Mutex<Option<[u8; 32]>>,
}

impl BasicAuth {
    /// From the stored credential; `None` when it is not set.
    pub fn new(stored: Option<&Secret>) -> Result<BasicAuth, AuthError> {
        let hash = stored.ok_or(AuthError::Missing)?;
        match PasswordHash::new(hash.expose()) {
            Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
            _ => return Err(AuthError::NotAHash),
        }
        Ok(BasicAuth {
            hash: hash.clone(),
            last_good: Mutex::new(None),
        })
    }

    /// Whether `header` (the `Authorization` value) carries the password.
    /// Any user name is accepted: the password is the secret.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(header) = header else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        // One check at a time: the lock is held across the hash.
        let mut last = self.last_good.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(digest) {
            return true;
        }
        let Some(password) = password_of(header) else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(self.hash.expose()) else {
            return false;
        };
        let ok = hasher()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        if ok {
            *last = Some(digest);
        }
        ok
    }
}

/// The password of a `Basic base64(user:password)` value.
fn password_of(header: &str) -> Option<Secret> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn the_hash_lets_the_password_in_and_nothing_else() {
        let stored = stored_form(PASSWORD_CREDENTIAL, Secret::new("correct horse")).unwrap();
        assert!(
            stored
                .expose()
                .starts_with("$argon2id$v=19$m=7168,t=5,p=1$")
        );
        assert!(!stored.expose().contains("correct horse"));
        // Already a hash: kept; other credentials: unchanged.
        assert_eq!(
            stored_form(PASSWORD_CREDENTIAL, stored.clone()).unwrap(),
            stored
        );
        assert_eq!(
            stored_form("SIG_TOKEN", Secret::new("x")).unwrap().expose(),
            "x"
        );
        let auth = BasicAuth::new(Some(&stored)).unwrap();
        assert!(auth.check(Some(&basic("ops:correct horse"))));
        // The remembered value passes again (no second hash).
        assert!(auth.check(Some(&basic("ops:correct horse"))));
        assert!(auth.check(Some(&basic(":correct horse"))));
        assert!(!auth.check(Some(&basic("ops:wrong"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(Some("Basic !!!")));
        assert!(!auth.check(None));
    }

    #[test]
    fn a_missing_or_plain_value_is_refused_with_the_fix() {
        let e = BasicAuth::new(None).err().unwrap();
        assert!(e.to_string().contains("set-credential HTTP_PASSWORD"));
        let e = BasicAuth::new(Some(&Secret::new("hunter2"))).err().unwrap();
        assert_eq!(e, AuthError::NotAHash);
        assert!(!e.to_string().contains("hunter2"));
    }
}
