//! Format checks of credential values, one clear message per problem.
//!
//! Messages describe the value (its length, which characters are wrong)
//! and never contain it. Two levels:
//! - **Error**: the value cannot work as written — empty, whitespace at an
//!   end, surrounding quotes, a CR or newline inside (except in a PEM key),
//!   a Kraken secret that is not base64 of 64 bytes, a Coinbase key name or
//!   private key that is not in the documented shape.
//! - **Warning**: the value deviates from the shape the broker has issued so
//!   far (lengths, alphabets, prefixes). Brokers change key formats without
//!   notice, so these never stop a feed; they only point at a likely typo.

use super::Secret;
use crate::config::BrokerKind;
use base64::Engine;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FormatProblem {
    pub severity: Severity,
    /// Fixed text plus lengths/counts; never any part of the value.
    pub message: String,
}

impl fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(m: impl Into<String>) -> FormatProblem {
    FormatProblem {
        severity: Severity::Error,
        message: m.into(),
    }
}
fn warn(m: impl Into<String>) -> FormatProblem {
    FormatProblem {
        severity: Severity::Warning,
        message: m.into(),
    }
}

/// Whether a field holds a multi-line PEM key (newlines allowed).
fn is_pem_field(broker: BrokerKind, field: &str) -> bool {
    broker == BrokerKind::Coinbase && field == "API_PRIVATE_KEY"
}

/// Every problem with `value` as the `field` of a `broker` feed.
/// `field` is as in [`super::required::Required::field`].
pub fn check(broker: BrokerKind, field: &str, value: &Secret) -> Vec<FormatProblem> {
    let v = value.expose();
    let mut out = Vec::new();
    if v.is_empty() {
        out.push(err("is empty"));
        return out;
    }
    if v.contains('\r') {
        out.push(err(
            "contains a carriage return (CR); remove it (file edited on Windows?)",
        ));
    }
    if v.contains('\n') && !is_pem_field(broker, field) {
        out.push(err("contains a newline; a value is one line"));
    }
    let pem = is_pem_field(broker, field);
    if !pem && (v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace)) {
        out.push(err("has whitespace at the start or end; remove it"));
    }
    let t = v.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        out.push(err(
            "is wrapped in quotes that are part of the value; remove them",
        ));
    }
    if !out.is_empty() {
        // The shape checks below would only repeat the same mistake.
        return out;
    }
    out.extend(broker_checks(broker, field, v));
    out
}

fn broker_checks(broker: BrokerKind, field: &str, v: &str) -> Vec<FormatProblem> {
    let n = v.chars().count();
    let mut out = Vec::new();
    match (broker, field) {
        (BrokerKind::Kraken, "API_SECRET") => {
            match base64::engine::general_purpose::STANDARD.decode(v) {
                Ok(bytes) if bytes.len() == 64 => {}
                Ok(bytes) => out.push(err(format!(
                    "decodes to {} bytes; a Kraken private key is base64 of 64 bytes (88 characters)",
                    bytes.len()
                ))),
                Err(_) => out.push(err(format!(
                    "is not valid base64 ({n} characters); a Kraken private key is base64 of 64 bytes (88 characters)"
                ))),
            }
        }
        (BrokerKind::Kraken, "API_KEY") => {
            let base64ish = v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
            if n != 56 || !base64ish {
                out.push(warn(format!(
                    "is {n} characters{}; Kraken API keys so far are 56 base64 characters",
                    if base64ish {
                        ""
                    } else {
                        " with characters outside base64"
                    }
                )));
            }
        }
        (BrokerKind::Alpaca, "API_KEY") => {
            let upper = v
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            let prefix = ["PK", "AK", "CK"].iter().any(|p| v.starts_with(p));
            if n != 20 || !upper || !prefix {
                out.push(warn(format!(
                    "is {n} characters; Alpaca key ids so far are 20 upper-case letters and digits starting with PK (paper) or AK (live)"
                )));
            }
        }
        (BrokerKind::Alpaca, "API_SECRET")
            if n != 40 || !v.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            out.push(warn(format!(
                "is {n} characters; Alpaca secret keys so far are 40 letters and digits"
            )));
        }
        (BrokerKind::Kite, "API_KEY")
            if n != 16
                || !v
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
        {
            out.push(warn(format!(
                "is {n} characters; Kite api_keys so far are 16 lower-case letters and digits"
            )));
        }
        (BrokerKind::Kite, "ACCESS_TOKEN")
            if n != 32 || !v.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            out.push(warn(format!(
                "is {n} characters; Kite access tokens so far are 32 letters and digits (paste the access_token, not the request_token)"
            )));
        }
        (BrokerKind::Coinbase, "API_KEY_NAME") => {
            let parts: Vec<&str> = v.split('/').collect();
            let ok = parts.len() == 4
                && parts[0] == "organizations"
                && !parts[1].is_empty()
                && parts[2] == "apiKeys"
                && !parts[3].is_empty();
            if !ok {
                out.push(err(
                    "is not of the form organizations/<org id>/apiKeys/<key id> (the key's full name)",
                ));
            }
        }
        (BrokerKind::Coinbase, "API_PRIVATE_KEY") => {
            let t = v.trim();
            if t.starts_with("-----BEGIN EC PRIVATE KEY-----") {
                if !t.ends_with("-----END EC PRIVATE KEY-----") {
                    out.push(err(
                        "PEM key is cut short: no -----END EC PRIVATE KEY----- line",
                    ));
                }
            } else if t.starts_with("-----BEGIN PRIVATE KEY-----") {
                if !t.ends_with("-----END PRIVATE KEY-----") {
                    out.push(err(
                        "PEM key is cut short: no -----END PRIVATE KEY----- line",
                    ));
                }
            } else {
                out.push(err(
                    "is not a PEM EC private key (-----BEGIN EC PRIVATE KEY----- ... -----END EC PRIVATE KEY-----); in a credentials file write it in double quotes with \\n for each newline",
                ));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn probs(b: BrokerKind, field: &str, v: &str) -> Vec<FormatProblem> {
        let p = check(b, field, &Secret::new(v));
        for x in &p {
            if v.len() > 3 {
                assert!(!x.message.contains(v), "{x}");
            }
        }
        p
    }

    fn kraken_secret(n: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    }

    #[test]
    fn generic_mistakes_are_errors() {
        let w = BrokerKind::Websocket;
        for (v, needle) in [
            ("", "empty"),
            (" tok", "whitespace"),
            ("tok\t", "whitespace"),
            ("\"tok\"", "quotes"),
            ("'tok'", "quotes"),
            ("to\rk", "carriage return"),
            ("to\nk", "newline"),
        ] {
            let p = probs(w, "TEMPLATE", v);
            assert!(
                p.iter()
                    .any(|x| x.severity == Severity::Error && x.message.contains(needle)),
                "{v:?}: {p:?}"
            );
        }
        assert!(probs(w, "TEMPLATE", "fine-token").is_empty());
    }

    #[test]
    fn kraken() {
        assert!(probs(BrokerKind::Kraken, "API_SECRET", &kraken_secret(64)).is_empty());
        let p = probs(BrokerKind::Kraken, "API_SECRET", &kraken_secret(63));
        assert_eq!(p[0].severity, Severity::Error);
        assert!(p[0].message.contains("63 bytes"), "{}", p[0]);
        let p = probs(BrokerKind::Kraken, "API_SECRET", "not*base64");
        assert!(p[0].message.contains("not valid base64"));
        assert!(probs(BrokerKind::Kraken, "API_KEY", &"A".repeat(56)).is_empty());
        let p = probs(BrokerKind::Kraken, "API_KEY", &"A".repeat(55));
        assert_eq!(p[0].severity, Severity::Warning);
    }

    #[test]
    fn alpaca_kite_coinbase() {
        assert!(probs(BrokerKind::Alpaca, "API_KEY", "PKABCDEFGHIJ12345678").is_empty());
        assert_eq!(
            probs(BrokerKind::Alpaca, "API_KEY", "pkabcdefghij12345678")[0].severity,
            Severity::Warning
        );
        assert!(probs(BrokerKind::Alpaca, "API_SECRET", &"a1".repeat(20)).is_empty());
        assert_eq!(probs(BrokerKind::Alpaca, "API_SECRET", "short").len(), 1);
        assert!(probs(BrokerKind::Kite, "API_KEY", "abcdefgh12345678").is_empty());
        assert_eq!(
            probs(BrokerKind::Kite, "API_KEY", "ABCDEFGH12345678").len(),
            1
        );
        assert!(probs(BrokerKind::Kite, "ACCESS_TOKEN", &"aB3".repeat(10)[..30]).len() == 1);
        assert!(probs(BrokerKind::Kite, "ACCESS_TOKEN", &"aB".repeat(16)).is_empty());
        assert!(
            probs(
                BrokerKind::Coinbase,
                "API_KEY_NAME",
                "organizations/o-1/apiKeys/k-2"
            )
            .is_empty()
        );
        assert_eq!(
            probs(BrokerKind::Coinbase, "API_KEY_NAME", "k-2")[0].severity,
            Severity::Error
        );
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----";
        assert!(probs(BrokerKind::Coinbase, "API_PRIVATE_KEY", pem).is_empty());
        assert_eq!(
            probs(BrokerKind::Coinbase, "API_PRIVATE_KEY", &pem[..40]).len(),
            1
        );
        assert_eq!(
            probs(BrokerKind::Coinbase, "API_PRIVATE_KEY", "MHcCAQEE").len(),
            1
        );
    }
}
