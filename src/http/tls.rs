//! TLS for a listener reachable from other hosts: a native-tls acceptor
//! from the certificate chain and key files (PEM, as certbot writes them;
//! the key must be PKCS#8, `-----BEGIN PRIVATE KEY-----`). The files are
//! read once at start; a renewed certificate takes a restart (certbot's
//! deploy hook: `systemctl restart brokerguard`).

use super::server::{Conn, Wrap};
use native_tls::{Identity, TlsAcceptor, TlsStream};
use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

/// Why the certificate or key cannot be used.
#[derive(Debug)]
pub enum TlsError {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    /// The key is not PKCS#8 PEM.
    NotPkcs8 {
        key: PathBuf,
    },
    /// The pair was refused (mismatched, damaged).
    Identity {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => write!(
                f,
                "cannot read {} ([http] tls_cert/tls_key): {source}; the agent's user must be able to read it \
                 (certbot: give group brokerguard read access to the live/ and archive/ folders)",
                path.display()
            ),
            TlsError::NotPkcs8 { key } => write!(
                f,
                "{} is not a PKCS#8 key (-----BEGIN PRIVATE KEY-----); convert it once with: \
                 openssl pkcs8 -topk8 -nocrypt -in {} -out {}.pk8",
                key.display(),
                key.display(),
                key.display()
            ),
            TlsError::Identity { cert, key, detail } => write!(
                f,
                "{} and {} do not make a usable certificate and key ({detail}); check that the key belongs \
                 to the certificate (certbot: fullchain.pem with privkey.pem)",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// Accepts TLS on each connection (under its read and write timeouts).
pub struct TlsWrap(TlsAcceptor);

impl TlsWrap {
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsWrap, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        if !key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----") {
            return Err(TlsError::NotPkcs8 {
                key: key.to_path_buf(),
            });
        }
        let identity = |detail: String| TlsError::Identity {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            detail,
        };
        let id = Identity::from_pkcs8(&cert_pem, &key_pem).map_err(|e| identity(e.to_string()))?;
        TlsAcceptor::new(id)
            .map(TlsWrap)
            .map_err(|e| identity(e.to_string()))
    }
}

impl Conn for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

impl Wrap for TlsWrap {
    fn wrap(&self, conn: TcpStream) -> io::Result<Box<dyn Conn>> {
        self.0
            .accept(conn)
            .map(|s| Box::new(s) as Box<dyn Conn>)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn the_fixture_pair_loads_and_bad_files_say_why() {
        assert!(TlsWrap::from_files(&fixture("server.pem"), &fixture("server.key")).is_ok());
        let missing = TlsWrap::from_files(&fixture("nosuch.pem"), &fixture("server.key"));
        assert!(missing.err().unwrap().to_string().contains("nosuch.pem"));
        // A certificate where the key should be.
        let e = TlsWrap::from_files(&fixture("server.pem"), &fixture("server.pem"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a PKCS#8 key"), "{e}");
        // Something that is no certificate where the certificate should be.
        let e = TlsWrap::from_files(&fixture("README.md"), &fixture("server.key"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("do not make a usable"), "{e}");
    }
}
