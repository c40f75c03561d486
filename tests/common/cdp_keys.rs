//! Coinbase CDP test keys, made at test time from the OS random source
//! (no private key is committed): the private key as an operator stores
//! it and the public key the simulator verifies JWTs with.

use base64::Engine;

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// A key made now.
pub struct TestKey {
    /// SEC1 PEM (P-256) or the portal's base64 seed (Ed25519).
    pub secret: String,
    /// A SEC1 uncompressed point, or 32 bytes of Ed25519.
    pub public: Vec<u8>,
}

/// An EC P-256 key as SEC1 PEM ("BEGIN EC PRIVATE KEY").
pub fn ec_key() -> TestKey {
    let sk = loop {
        if let Ok(k) = p256::SecretKey::from_slice(&random32()) {
            break k;
        }
    };
    let public = p256::ecdsa::SigningKey::from(&sk)
        .verifying_key()
        .to_sec1_point(false)
        .as_bytes()
        .to_vec();
    TestKey {
        secret: sk
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string(),
        public,
    }
}

/// An Ed25519 key as the CDP portal shows it: base64 of the 32-byte seed.
pub fn ed25519_key() -> TestKey {
    let seed = random32();
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    TestKey {
        secret: base64::engine::general_purpose::STANDARD.encode(seed),
        public: sk.verifying_key().to_bytes().to_vec(),
    }
}
