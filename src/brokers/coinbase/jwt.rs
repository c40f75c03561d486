//! Coinbase CDP API keys and the JWTs they sign (PROTOCOLS.md §5.2).
//!
//! The key's form decides the algorithm: an EC P-256 key (SEC1 PEM
//! `BEGIN EC PRIVATE KEY`, or PKCS#8 PEM) signs ES256 with the fixed
//! 64-byte r‖s signature JOSE requires (never DER); an Ed25519 key (PKCS#8
//! PEM, or the raw base64 32-byte seed or 64-byte seed‖public key the CDP
//! portal shows) signs EdDSA. Header `{"alg","kid": key name,"nonce","typ":"JWT"}`,
//! claims `{"sub": key name,"iss":"cdp","nbf","exp": nbf+120}` and, for
//! REST only, `"uri": "<METHOD> <host><path>"`.
//!
//! Signing is pure (time and nonce are arguments); [`Minter`] adds the
//! wall clock and a nonce from the OS random source for the adapter. No
//! crypto is written here: `p256` and `ed25519-dalek` sign, `base64`
//! encodes. A key's value never reaches a message: errors say which form
//! was recognised and what is wrong with it.

use crate::clock::Clock;
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::json;
use std::fmt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// How long a JWT may be used (Coinbase: 2 minutes).
pub const JWT_LIFETIME_SECS: u64 = 120;
/// The issuer claim Coinbase expects.
pub const ISSUER: &str = "cdp";
/// Random bytes in a nonce (hex-encoded, as `secrets.token_hex()` does).
const NONCE_BYTES: usize = 32;

/// What the accepted key forms are, for every message that refuses one.
pub const ACCEPTED_FORMS: &str = "an EC P-256 private key as PEM (\"-----BEGIN EC PRIVATE KEY-----\" \
or PKCS#8 \"-----BEGIN PRIVATE KEY-----\"), or an Ed25519 key as PKCS#8 PEM, or as the raw base64 \
of its 32-byte seed or 64-byte seed+public key that the CDP portal shows";

/// The JWT algorithm a key signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    EdDsa,
}

impl Algorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// How the key was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyForm {
    /// `-----BEGIN EC PRIVATE KEY-----` (P-256).
    Sec1Pem,
    /// `-----BEGIN PRIVATE KEY-----` holding a P-256 key.
    Pkcs8PemP256,
    /// `-----BEGIN PRIVATE KEY-----` holding an Ed25519 key.
    Pkcs8PemEd25519,
    /// Base64 of a 32-byte Ed25519 seed.
    Ed25519Seed,
    /// Base64 of a 64-byte Ed25519 seed followed by its public key.
    Ed25519Keypair,
}

impl KeyForm {
    pub fn describe(self) -> &'static str {
        match self {
            KeyForm::Sec1Pem => "EC P-256 (SEC1 PEM)",
            KeyForm::Pkcs8PemP256 => "EC P-256 (PKCS#8 PEM)",
            KeyForm::Pkcs8PemEd25519 => "Ed25519 (PKCS#8 PEM)",
            KeyForm::Ed25519Seed => "Ed25519 (base64 32-byte seed)",
            KeyForm::Ed25519Keypair => "Ed25519 (base64 64-byte seed+public key)",
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            KeyForm::Sec1Pem | KeyForm::Pkcs8PemP256 => Algorithm::Es256,
            _ => Algorithm::EdDsa,
        }
    }
}

/// Why a private key cannot be used. Never holds any part of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    /// A SEC1 PEM that does not decode to a P-256 key.
    BadSec1,
    /// A PKCS#8 PEM that holds neither a P-256 nor an Ed25519 key.
    BadPkcs8,
    /// Another PEM label (an RSA key, a public key, an encrypted key...).
    OtherPem,
    /// Base64 of a length that is no Ed25519 key.
    RawLength(usize),
    /// A 64-byte key whose second half is not the first half's public key.
    KeypairMismatch,
    /// Neither PEM nor base64.
    Unrecognized,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            KeyError::Empty => "is empty".to_string(),
            KeyError::BadSec1 => {
                "is an \"EC PRIVATE KEY\" PEM that does not decode to a P-256 key (copy every line, \
                 BEGIN and END included)"
                    .to_string()
            }
            KeyError::BadPkcs8 => {
                "is a \"PRIVATE KEY\" PEM that holds neither a P-256 nor an Ed25519 key".to_string()
            }
            KeyError::OtherPem => {
                "is a PEM of another kind (an RSA, public or encrypted key?)".to_string()
            }
            KeyError::RawLength(n) => {
                format!("is base64 of {n} bytes; an Ed25519 key is 32 (seed) or 64 (seed+public key)")
            }
            KeyError::KeypairMismatch => {
                "is 64 bytes whose last 32 are not the public key of the first 32".to_string()
            }
            KeyError::Unrecognized => "is neither PEM nor base64".to_string(),
        };
        write!(
            f,
            "the private key {what}; Coinbase accepts {ACCEPTED_FORMS}"
        )
    }
}

impl std::error::Error for KeyError {}

enum SigningKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A parsed CDP API key: its name (`organizations/…/apiKeys/…`) and
/// private key. `Debug` shows the form, never the key.
pub struct CdpKey {
    name: String,
    form: KeyForm,
    key: SigningKey,
}

impl fmt::Debug for CdpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdpKey")
            .field("form", &self.form)
            .finish_non_exhaustive()
    }
}

/// The key text as an operator may have stored it: surrounding blanks
/// removed, and `\n` written as two characters turned into newlines (a
/// PEM pasted into a single-quoted line).
fn normalize(secret: &str) -> String {
    let t = secret.trim();
    if t.contains("-----BEGIN") && !t.contains('\n') && t.contains("\\n") {
        t.replace("\\n", "\n")
    } else {
        t.to_string()
    }
}

/// Parses a private key in any accepted form (see [`ACCEPTED_FORMS`]).
pub fn parse_private_key(secret: &str) -> Result<(KeyForm, KeyKind), KeyError> {
    use p256::pkcs8::DecodePrivateKey;
    let text = normalize(secret);
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        let sk = p256::SecretKey::from_sec1_pem(&text).map_err(|_| KeyError::BadSec1)?;
        return Ok((KeyForm::Sec1Pem, KeyKind(SigningKey::P256(sk.into()))));
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        if let Ok(sk) = p256::SecretKey::from_pkcs8_pem(&text) {
            return Ok((KeyForm::Pkcs8PemP256, KeyKind(SigningKey::P256(sk.into()))));
        }
        if let Ok(sk) = ed25519_dalek::SigningKey::from_pkcs8_pem(&text) {
            return Ok((KeyForm::Pkcs8PemEd25519, KeyKind(SigningKey::Ed25519(sk))));
        }
        return Err(KeyError::BadPkcs8);
    }
    if text.contains("-----BEGIN") {
        return Err(KeyError::OtherPem);
    }
    let bytes = STANDARD
        .decode(&text)
        .or_else(|_| STANDARD_NO_PAD.decode(&text))
        .map_err(|_| KeyError::Unrecognized)?;
    match bytes.len() {
        32 => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&bytes);
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            Ok((KeyForm::Ed25519Seed, KeyKind(SigningKey::Ed25519(sk))))
        }
        64 => {
            let mut pair = [0u8; 64];
            pair.copy_from_slice(&bytes);
            let sk = ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                .map_err(|_| KeyError::KeypairMismatch)?;
            Ok((KeyForm::Ed25519Keypair, KeyKind(SigningKey::Ed25519(sk))))
        }
        n => Err(KeyError::RawLength(n)),
    }
}

/// A parsed private key of either kind (opaque; see [`CdpKey`]).
pub struct KeyKind(SigningKey);

/// What a JWT says besides the key: when it was made, its nonce and, for
/// REST, the request it is for.
#[derive(Clone, Copy, Debug)]
pub struct JwtClaims<'a> {
    /// Unix seconds: `nbf`; `exp` is 120 s later.
    pub now_unix: u64,
    /// The header's `nonce` (hex).
    pub nonce: &'a str,
    /// `"<METHOD> <host><path>"`: REST only, `None` on the WebSocket.
    pub uri: Option<&'a str>,
}

impl CdpKey {
    /// The key named `name` (`organizations/{org}/apiKeys/{id}`) with its
    /// private key in any accepted form.
    pub fn parse(name: &str, secret: &str) -> Result<CdpKey, KeyError> {
        let (form, KeyKind(key)) = parse_private_key(secret)?;
        Ok(CdpKey {
            name: name.trim().to_string(),
            form,
            key,
        })
    }

    pub fn form(&self) -> KeyForm {
        self.form
    }

    pub fn algorithm(&self) -> Algorithm {
        self.form.algorithm()
    }

    /// The public key, for a verifier (a simulator, a test): SEC1
    /// uncompressed point for P-256, 32 bytes for Ed25519.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.key {
            SigningKey::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            SigningKey::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
        }
    }

    /// A signed JWT (a [`Secret`]: it is a bearer credential for 2 minutes).
    pub fn sign(&self, claims: &JwtClaims<'_>) -> Secret {
        let header = json!({
            "alg": self.algorithm().as_str(),
            "kid": self.name,
            "nonce": claims.nonce,
            "typ": "JWT",
        });
        let mut body = json!({
            "sub": self.name,
            "iss": ISSUER,
            "nbf": claims.now_unix,
            "exp": claims.now_unix + JWT_LIFETIME_SECS,
        });
        if let Some(uri) = claims.uri {
            body["uri"] = uri.into();
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(body.to_string())
        );
        let signature: Vec<u8> = match &self.key {
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(signing_input.as_bytes());
                // JOSE wants the fixed-size r‖s form, not DER.
                sig.to_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(signing_input.as_bytes()).to_bytes().to_vec()
            }
        };
        Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Whether a key name has Coinbase's shape `organizations/{org}/apiKeys/{id}`.
pub fn key_name_shape_ok(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 4
        && parts[0] == "organizations"
        && parts[2] == "apiKeys"
        && !parts[1].is_empty()
        && !parts[3].is_empty()
}

/// The `uri` claim of a REST call: `"<METHOD> <host[:port]><path>"`, no
/// scheme and no query (coinbase-advanced-py's `f"{method} {base_url}{path}"`).
pub fn rest_uri(method: &str, url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_query = after_scheme.split(['?', '#']).next().unwrap_or("");
    format!("{method} {without_query}")
}

/// Why a JWT could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// The OS random source failed (no nonce).
    Random(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Random(e) => write!(
                f,
                "cannot draw a JWT nonce from the operating system's random source: {e}"
            ),
        }
    }
}

impl std::error::Error for JwtError {}

/// A fresh nonce from the OS random source, hex-encoded.
pub fn fresh_nonce() -> Result<String, JwtError> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| JwtError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a core gets a fresh JWT for each subscribe message.
pub trait TokenSource: Send + Sync {
    /// A new WebSocket JWT (no `uri`).
    fn ws_jwt(&self) -> Result<Secret, JwtError>;
    fn algorithm(&self) -> Algorithm;
}

/// Mints JWTs with the wall clock and OS nonces.
pub struct Minter {
    key: Arc<CdpKey>,
    clock: Arc<dyn Clock>,
}

impl Minter {
    pub fn new(key: Arc<CdpKey>, clock: Arc<dyn Clock>) -> Self {
        Minter { key, clock }
    }

    fn now_unix(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The JOSE `alg` of the key, for messages.
    pub fn algorithm_name(&self) -> &'static str {
        self.key.algorithm().as_str()
    }

    /// A JWT for one REST call to `url` with `method`.
    pub fn rest_jwt(&self, method: &str, url: &str) -> Result<Secret, JwtError> {
        let nonce = fresh_nonce()?;
        let uri = rest_uri(method, url);
        Ok(self.key.sign(&JwtClaims {
            now_unix: self.now_unix(),
            nonce: &nonce,
            uri: Some(&uri),
        }))
    }
}

impl TokenSource for Minter {
    fn ws_jwt(&self) -> Result<Secret, JwtError> {
        let nonce = fresh_nonce()?;
        Ok(self.key.sign(&JwtClaims {
            now_unix: self.now_unix(),
            nonce: &nonce,
            uri: None,
        }))
    }

    fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

/// Test keys made at test time from the OS random source (never a
/// committed private key), in every accepted form.
#[cfg(test)]
pub(crate) mod test_keys {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    pub fn random32() -> [u8; 32] {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        b
    }

    /// A fresh P-256 key as SEC1 PEM and as PKCS#8 PEM.
    pub fn p256_pems() -> (String, String) {
        let sk = loop {
            if let Ok(k) = p256::SecretKey::from_slice(&random32()) {
                break k;
            }
        };
        let sec1 = sk
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        let pkcs8 = sk
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        (sec1, pkcs8)
    }

    /// A fresh Ed25519 key as PKCS#8 PEM, base64 seed and base64 seed‖public.
    pub fn ed25519_forms() -> (String, String, String) {
        let seed = random32();
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let pem = sk
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        let raw = STANDARD.encode(seed);
        let pair = STANDARD.encode(sk.to_keypair_bytes());
        (pem, raw, pair)
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    const NAME: &str = "organizations/org-1/apiKeys/key-1";

    fn parts(jwt: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
        let p: Vec<&str> = jwt.split('.').collect();
        assert_eq!(p.len(), 3, "{jwt}");
        let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        (
            serde_json::from_slice(&dec(p[0])).unwrap(),
            serde_json::from_slice(&dec(p[1])).unwrap(),
            dec(p[2]),
        )
    }

    fn verify(key: &CdpKey, jwt: &str) {
        let (signing_input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let public = key.public_key_bytes();
        match key.algorithm() {
            Algorithm::Es256 => {
                use p256::ecdsa::signature::Verifier;
                assert_eq!(sig.len(), 64, "r||s, not DER");
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
                let s = p256::ecdsa::Signature::from_slice(&sig).unwrap();
                vk.verify(signing_input.as_bytes(), &s).unwrap();
            }
            Algorithm::EdDsa => {
                use ed25519_dalek::Verifier;
                let vk =
                    ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
                let s = ed25519_dalek::Signature::from_slice(&sig).unwrap();
                vk.verify(signing_input.as_bytes(), &s).unwrap();
            }
        }
    }

    #[test]
    fn every_accepted_form_parses_and_signs_a_verifiable_jwt() {
        let (sec1, pkcs8) = p256_pems();
        let (ed_pem, ed_seed, ed_pair) = ed25519_forms();
        let single_line = sec1.replace('\n', "\\n");
        let rows = [
            (sec1.as_str(), KeyForm::Sec1Pem, "ES256"),
            (single_line.as_str(), KeyForm::Sec1Pem, "ES256"),
            (pkcs8.as_str(), KeyForm::Pkcs8PemP256, "ES256"),
            (ed_pem.as_str(), KeyForm::Pkcs8PemEd25519, "EdDSA"),
            (ed_seed.as_str(), KeyForm::Ed25519Seed, "EdDSA"),
            (ed_pair.as_str(), KeyForm::Ed25519Keypair, "EdDSA"),
        ];
        for (secret, form, alg) in rows {
            let key = CdpKey::parse(NAME, &format!("\n{secret}  ")).unwrap();
            assert_eq!(key.form(), form);
            let jwt = key.sign(&JwtClaims {
                now_unix: 1_700_000_000,
                nonce: "ab12",
                uri: None,
            });
            let (h, c, _) = parts(jwt.expose());
            assert_eq!(
                h,
                json!({"alg": alg, "kid": NAME, "nonce": "ab12", "typ": "JWT"})
            );
            assert_eq!(
                c,
                json!({"sub": NAME, "iss": "cdp", "nbf": 1_700_000_000u64, "exp": 1_700_000_120u64})
            );
            verify(&key, jwt.expose());
            let rest = key.sign(&JwtClaims {
                now_unix: 1,
                nonce: "n",
                uri: Some("GET api.coinbase.com/api/v3/brokerage/accounts"),
            });
            let (_, c, _) = parts(rest.expose());
            assert_eq!(c["uri"], "GET api.coinbase.com/api/v3/brokerage/accounts");
            verify(&key, rest.expose());
            assert!(!format!("{key:?}").contains(secret.trim()));
        }
    }

    #[test]
    fn malformed_keys_are_refused_naming_the_accepted_forms() {
        let (sec1, _) = p256_pems();
        let (_, seed, pair) = ed25519_forms();
        let mut bad_pair = STANDARD.decode(&pair).unwrap();
        bad_pair[40] ^= 1;
        let corrupt_pem = sec1.replacen("M", "x", 3);
        let rows: Vec<(String, KeyError)> = vec![
            ("".into(), KeyError::Empty),
            ("CANARY-not-a-key!".into(), KeyError::Unrecognized),
            (STANDARD.encode([7u8; 48]), KeyError::RawLength(48)),
            (STANDARD.encode(&bad_pair), KeyError::KeypairMismatch),
            (corrupt_pem, KeyError::BadSec1),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----".into(),
                KeyError::OtherPem,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
                KeyError::BadPkcs8,
            ),
        ];
        for (secret, want) in rows {
            let err = CdpKey::parse(NAME, &secret).unwrap_err();
            assert_eq!(err, want, "{secret}");
            let text = err.to_string();
            assert!(
                text.contains("BEGIN EC PRIVATE KEY") && text.contains("Ed25519"),
                "{text}"
            );
            assert!(secret.len() < 4 || !text.contains(&secret), "{text}");
        }
        assert!(CdpKey::parse(NAME, &seed).is_ok());
    }

    #[test]
    fn rest_uris_and_key_names() {
        assert_eq!(
            rest_uri(
                "GET",
                "https://api.coinbase.com/api/v3/brokerage/accounts?limit=1"
            ),
            "GET api.coinbase.com/api/v3/brokerage/accounts"
        );
        assert_eq!(
            rest_uri("GET", "http://127.0.0.1:8080/api/v3/brokerage/accounts"),
            "GET 127.0.0.1:8080/api/v3/brokerage/accounts"
        );
        assert!(key_name_shape_ok("organizations/abc/apiKeys/def"));
        assert!(!key_name_shape_ok("abc"));
        assert!(!key_name_shape_ok("organizations//apiKeys/def"));
    }

    #[test]
    fn every_jwt_has_a_fresh_nonce_and_the_clock_s_time() {
        let (_, seed, _) = ed25519_forms();
        let key = Arc::new(CdpKey::parse(NAME, &seed).unwrap());
        let clock = Arc::new(crate::clock::FakeClock::at_unix(1_800_000_000));
        let m = Minter::new(key, clock);
        let a = m.ws_jwt().unwrap();
        let b = m.ws_jwt().unwrap();
        let (ha, ca, _) = parts(a.expose());
        let (hb, _, _) = parts(b.expose());
        assert_ne!(ha["nonce"], hb["nonce"]);
        assert_eq!(ha["nonce"].as_str().unwrap().len(), 64);
        assert_eq!(ca["nbf"], 1_800_000_000u64);
        assert!(ca.get("uri").is_none());
        let r = m
            .rest_jwt("GET", "https://api.coinbase.com/api/v3/brokerage/accounts")
            .unwrap();
        let (_, cr, _) = parts(r.expose());
        assert_eq!(cr["uri"], "GET api.coinbase.com/api/v3/brokerage/accounts");
    }
}
