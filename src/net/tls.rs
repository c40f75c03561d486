//! The TLS client configuration shared by every transport: SNI and
//! certificate verification are always on (there is deliberately no switch
//! to turn them off); a private CA can be added for self-hosted servers.

use super::error::NetError;
use native_tls::{Certificate, Protocol, TlsConnector};
use std::path::Path;

/// A connector trusting the system roots (found by native-tls's own probing)
/// plus every certificate in `ca_file` (PEM), if given.
pub fn connector(ca_file: Option<&Path>) -> Result<TlsConnector, NetError> {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(Protocol::Tlsv12));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            NetError::Tls(format!(
                "cannot read CA file {}: {e}; fix the path in ca_file",
                path.display()
            ))
        })?;
        let certs = Certificate::stack_from_pem(&pem).map_err(|e| {
            NetError::Tls(format!(
                "CA file {} is not PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(NetError::Tls(format!(
                "CA file {} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        for cert in certs {
            builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| NetError::Tls(format!("cannot set up TLS: {e}")))
}

/// Turns a native-tls handshake error into an operator's message; a
/// verification failure says that the certificate is not trusted and what to do.
pub fn describe_handshake_error(host: &str, e: &native_tls::Error) -> String {
    let detail = e.to_string();
    if detail.contains("certificate verify failed") || detail.contains("certificate") {
        format!(
            "certificate of {host} not accepted: {detail}; the server's certificate must be valid for \
             {host} and signed by a trusted CA (add a private CA with ca_file)"
        )
    } else {
        format!("handshake with {host} failed: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ca_file_is_a_tls_error_naming_the_file() {
        let p = Path::new("/nonexistent/brokerguard-ca.pem");
        match connector(Some(p)) {
            Err(NetError::Tls(m)) => assert!(m.contains("/nonexistent/brokerguard-ca.pem"), "{m}"),
            other => panic!("expected Tls error, got {other:?}"),
        }
    }

    #[test]
    fn system_roots_only_builds() {
        assert!(connector(None).is_ok());
    }
}
