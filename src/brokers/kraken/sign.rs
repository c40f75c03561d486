//! Kraken's REST request signature (PROTOCOLS.md §1.1):
//! `API-Sign = base64(HMAC-SHA512(uri_path ‖ SHA-256(nonce ‖ body), base64-decode(secret)))`,
//! over the exact body bytes that go on the wire.
//!
//! The decoded private key is held in an [`ApiSecret`], which is built once
//! from the credential (a malformed one is a [`SecretFormatError`], never a
//! panic) and prints only a fingerprint.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;

/// Bytes in a Kraken private key (its base64 text is 88 characters).
pub const SECRET_BYTES: usize = 64;

/// Why a private key cannot be used. The message describes the value
/// (length, decoded size) and never holds any of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretFormatError {
    /// Not standard base64 (with padding).
    NotBase64 { chars: usize },
    /// Valid base64 of the wrong number of bytes.
    WrongLength { bytes: usize },
}

impl fmt::Display for SecretFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretFormatError::NotBase64 { chars } => write!(
                f,
                "is not valid base64 ({chars} characters); a Kraken private key is base64 of \
                 {SECRET_BYTES} bytes (88 characters): copy the \"Private Key\" of the API key again"
            ),
            SecretFormatError::WrongLength { bytes } => write!(
                f,
                "decodes to {bytes} bytes; a Kraken private key is base64 of {SECRET_BYTES} bytes \
                 (88 characters): was it cut short, or is this the API key instead?"
            ),
        }
    }
}

impl std::error::Error for SecretFormatError {}

/// A decoded Kraken private key. `Debug` shows the fingerprint of the
/// base64 text it came from (the one `status` and `doctor` show).
#[derive(Clone)]
pub struct ApiSecret {
    bytes: Vec<u8>,
    fingerprint: String,
}

impl ApiSecret {
    /// Decodes the base64 private key of a Kraken API key.
    pub fn from_base64(secret: &Secret) -> Result<Self, SecretFormatError> {
        let text = secret.expose();
        // Wiped also when the length is refused.
        let bytes = zeroize::Zeroizing::new(STANDARD.decode(text).map_err(|_| {
            SecretFormatError::NotBase64 {
                chars: text.chars().count(),
            }
        })?);
        if bytes.len() != SECRET_BYTES {
            return Err(SecretFormatError::WrongLength { bytes: bytes.len() });
        }
        Ok(ApiSecret {
            bytes: bytes.to_vec(),
            fingerprint: secret.fingerprint(),
        })
    }

    /// The fingerprint of the credential this key was decoded from.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiSecret({})", self.fingerprint)
    }
}

impl Drop for ApiSecret {
    fn drop(&mut self) {
        // Do not leave the key in freed memory.
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

/// The `API-Sign` value of a request to `uri_path` (e.g.
/// `/0/private/Balance`) whose form body is exactly `body` and holds
/// `nonce=<nonce>`.
pub fn api_sign(uri_path: &str, nonce: u64, body: &str, secret: &ApiSecret) -> Secret {
    let mut inner = Sha256::new();
    inner.update(nonce.to_string().as_bytes());
    inner.update(body.as_bytes());
    let inner = inner.finalize();
    // HMAC accepts keys of any length, so this cannot fail for 64 bytes.
    let mut mac = match Hmac::<Sha512>::new_from_slice(&secret.bytes) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(uri_path.as_bytes());
    mac.update(&inner);
    Secret::new(STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOLS.md §1.2: the Spot REST Authentication page's worked example.
    const DOC_SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    const DOC_NONCE: u64 = 1616492376594;
    const DOC_BODY: &str =
        "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25";
    const DOC_SIGN: &str =
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==";

    #[test]
    fn published_example_signs_exactly() {
        let secret = ApiSecret::from_base64(&Secret::new(DOC_SECRET)).unwrap();
        let sign = api_sign("/0/private/AddOrder", DOC_NONCE, DOC_BODY, &secret);
        assert_eq!(sign.expose(), DOC_SIGN);
    }

    #[test]
    fn any_change_to_path_nonce_or_body_changes_the_signature() {
        let secret = ApiSecret::from_base64(&Secret::new(DOC_SECRET)).unwrap();
        for (path, nonce, body) in [
            ("/0/private/Balance", DOC_NONCE, DOC_BODY),
            ("/0/private/AddOrder", DOC_NONCE + 1, DOC_BODY),
            (
                "/0/private/AddOrder",
                DOC_NONCE,
                &DOC_BODY.replace("1.25", "1.26"),
            ),
        ] {
            assert_ne!(api_sign(path, nonce, body, &secret).expose(), DOC_SIGN);
        }
    }

    #[test]
    fn malformed_secrets_are_errors_that_never_show_the_value() {
        let canary = "CANARY*not*base64*secret";
        let e = ApiSecret::from_base64(&Secret::new(canary)).unwrap_err();
        assert_eq!(e, SecretFormatError::NotBase64 { chars: 24 });
        assert!(!e.to_string().contains(canary));
        let short = STANDARD.encode([7u8; 63]);
        let e = ApiSecret::from_base64(&Secret::new(short.clone())).unwrap_err();
        assert_eq!(e, SecretFormatError::WrongLength { bytes: 63 });
        assert!(e.to_string().contains("63 bytes"), "{e}");
        assert!(!e.to_string().contains(&short));
        // Unpadded base64 of 64 bytes is not what Kraken issues either.
        let unpadded = DOC_SECRET.trim_end_matches('=');
        assert!(ApiSecret::from_base64(&Secret::new(unpadded)).is_err());
        assert!(ApiSecret::from_base64(&Secret::new("")).is_err());
    }

    #[test]
    fn debug_shows_only_the_fingerprint() {
        let secret = ApiSecret::from_base64(&Secret::new(DOC_SECRET)).unwrap();
        let shown = format!("{secret:?}");
        assert!(shown.starts_with("ApiSecret(hmac:"), "{shown}");
        assert!(!shown.contains("kQH5"));
        let sign = api_sign("/0/private/AddOrder", DOC_NONCE, DOC_BODY, &secret);
        assert!(!format!("{sign:?}").contains("4/dp"));
        assert!(sign.to_string().starts_with("hmac:"));
    }
}
