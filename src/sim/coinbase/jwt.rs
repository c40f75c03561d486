//! The simulator's own check of a Coinbase JWT (written from PROTOCOLS.md
//! §5.2, not the agent's code): three base64url parts; a header with
//! `alg` matching the key's kind (ES256 for P-256, EdDSA for Ed25519),
//! `kid` naming a known key, a `nonce` and `typ` "JWT"; a signature that
//! verifies with the key's public key (ES256 as the fixed 64-byte r‖s);
//! claims `sub` = `kid`, `iss` = "cdp", `nbf` not in the future, `exp`
//! not past and at most 120 s after `nbf`; and `uri` exactly the
//! request's on REST, absent on the WebSocket.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::fmt;

/// Clock difference tolerated on `nbf` and `exp`, in seconds.
const LEEWAY: u64 = 5;
/// Longest life Coinbase allows a JWT.
const MAX_LIFETIME: u64 = 120;

/// A public key the simulator accepts JWTs from.
#[derive(Clone, Debug)]
pub(crate) enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// A SEC1 P-256 point (33 or 65 bytes) or a 32-byte Ed25519 key.
    pub fn from_bytes(bytes: &[u8]) -> Option<PublicKey> {
        if bytes.len() == 32 {
            let arr: [u8; 32] = bytes.try_into().ok()?;
            return ed25519_dalek::VerifyingKey::from_bytes(&arr)
                .ok()
                .map(PublicKey::Ed25519);
        }
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .ok()
            .map(PublicKey::P256)
    }

    fn alg(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ES256",
            PublicKey::Ed25519(_) => "EdDSA",
        }
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::Verifier;
                sig.len() == 64
                    && p256::ecdsa::Signature::from_slice(sig)
                        .is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            PublicKey::Ed25519(k) => {
                use ed25519_dalek::Verifier;
                ed25519_dalek::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify(message, &s).is_ok())
            }
        }
    }
}

/// A JWT that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    pub kid: String,
    pub nonce: String,
    pub alg: String,
}

/// Why a JWT was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Malformed(&'static str),
    UnknownKey,
    WrongAlgorithm,
    BadSignature,
    Claims(&'static str),
    UriOnWebSocket,
    UriMismatch,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "malformed JWT ({what})"),
            Refusal::UnknownKey => f.write_str("unknown key"),
            Refusal::WrongAlgorithm => f.write_str("alg does not match the key"),
            Refusal::BadSignature => f.write_str("bad signature"),
            Refusal::Claims(what) => write!(f, "claims: {what}"),
            Refusal::UriOnWebSocket => f.write_str("uri claim on a WebSocket JWT"),
            Refusal::UriMismatch => f.write_str("uri claim does not match the request"),
        }
    }
}

fn part(s: &str) -> Result<Value, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Refusal::Malformed("base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed("json"))
}

/// Checks `token` against `keys` (by name) at `now_unix`. `uri`: the
/// request's `"<METHOD> <host><path>"` on REST, `None` on the WebSocket.
pub(crate) fn verify(
    token: &str,
    key: impl Fn(&str) -> Option<PublicKey>,
    now_unix: u64,
    uri: Option<&str>,
) -> Result<Verified, Refusal> {
    let mut it = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(Refusal::Malformed("not three parts"));
    };
    let header = part(h)?;
    let claims = part(c)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Refusal::Malformed("signature"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let kid = text(&header, "kid").ok_or(Refusal::Malformed("no kid"))?;
    let nonce = text(&header, "nonce")
        .filter(|n| !n.is_empty())
        .ok_or(Refusal::Malformed("no nonce"))?;
    if text(&header, "typ").as_deref() != Some("JWT") {
        return Err(Refusal::Malformed("typ is not JWT"));
    }
    let alg = text(&header, "alg").unwrap_or_default();
    let public = key(&kid).ok_or(Refusal::UnknownKey)?;
    if alg != public.alg() {
        return Err(Refusal::WrongAlgorithm);
    }
    if !public.verifies(format!("{h}.{c}").as_bytes(), &sig) {
        return Err(Refusal::BadSignature);
    }
    if text(&claims, "sub").as_deref() != Some(kid.as_str()) {
        return Err(Refusal::Claims("sub is not the key name"));
    }
    if text(&claims, "iss").as_deref() != Some("cdp") {
        return Err(Refusal::Claims("iss is not cdp"));
    }
    let (Some(nbf), Some(exp)) = (claims["nbf"].as_u64(), claims["exp"].as_u64()) else {
        return Err(Refusal::Claims("nbf and exp must be integers"));
    };
    if nbf > now_unix + LEEWAY {
        return Err(Refusal::Claims("nbf is in the future"));
    }
    if exp + LEEWAY <= now_unix {
        return Err(Refusal::Claims("expired"));
    }
    if exp < nbf || exp - nbf > MAX_LIFETIME {
        return Err(Refusal::Claims("lives longer than 120 s"));
    }
    match (uri, text(&claims, "uri")) {
        (None, Some(_)) => return Err(Refusal::UriOnWebSocket),
        (Some(want), got) if got.as_deref() != Some(want) => return Err(Refusal::UriMismatch),
        _ => {}
    }
    Ok(Verified { kid, nonce, alg })
}
