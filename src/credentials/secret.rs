//! A secret value that cannot be printed.
//!
//! `Debug`, `Display` and serialization show only a fingerprint
//! (`sha256:` + 8 hex digits of the value's SHA-256). The value itself is
//! reached only through [`Secret::expose`], at the point of use (an auth
//! message, a signature, a header), which makes every use easy to audit.
//! Dropping one wipes the value (`zeroize`: writes the compiler may not
//! remove), so it does not linger in freed memory.

use sha2::{Digest, Sha256};
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

    /// `sha256:` + the first 8 hex digits of SHA-256(value).
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
    let digest = Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in &digest[..4] {
        s.push_str(&format!("{b:02x}"));
    }
    s
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
            assert!(shown.contains("sha256:"), "{shown}");
        }
    }

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // sha256("abc") = ba7816bf...
        assert_eq!(Secret::new("abc").fingerprint(), "sha256:ba7816bf");
    }
}
