//! A secret value that cannot be printed.
//!
//! `Debug`, `Display` and serialization show only a fingerprint
//! (`hmac:` + 8 hex digits of HMAC-SHA-256 under the host's key, see
//! [`fingerprint`]). The value itself is
//! reached only through [`Secret::expose`], at the point of use (an auth
//! message, a signature, a header), which makes every use easy to audit.
//! Dropping one wipes the value (`zeroize`: writes the compiler may not
//! remove), so it does not linger in freed memory.

pub mod fingerprint;

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
        }
    }

    /// The value, for the one place that must send or sign it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// `hmac:` + the first 8 hex digits of HMAC-SHA-256(host key, value).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.value.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// Fingerprint of arbitrary bytes, as shown for secrets.
pub fn fingerprint_of(bytes: &[u8]) -> String {
    self::fingerprint::of(bytes)
}

/// The unkeyed SHA-256 prefix fingerprints used to be, for a test that
/// shows they no longer are.
#[cfg(test)]
pub(crate) fn sha256_prefix_for_tests(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.fingerprint())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-5ecr3t-do-not-print";

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new(CANARY);
        for shown in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{s:#?}"),
            serde_json::to_string(&s).unwrap(),
        ] {
            assert!(!shown.contains(CANARY), "{shown}");
            assert!(shown.contains("hmac:"), "{shown}");
        }
    }

    #[test]
    fn the_fingerprint_is_keyed_and_stable_in_a_process() {
        let fp = Secret::new("abc").fingerprint();
        assert!(fp.starts_with("hmac:") && fp.len() == 13, "{fp}");
        assert_ne!(fp, "hmac:ba7816bf", "not the unkeyed sha256 prefix");
        assert_eq!(fp, Secret::new("abc").fingerprint());
        assert_ne!(fp, Secret::new("abd").fingerprint());
    }
}
