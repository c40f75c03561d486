//! The faults the Kraken simulator can inject, and their command-line
//! spelling (`lockout`, `lockout:KEY`, `corrupt-checksum-once`, …), which
//! round-trips through `FromStr`/`Display`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour of the simulated Kraken, one at a time
/// (`KrakenSimHandle::set_fault`). REST faults may name one API key (the
/// others are served normally).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KrakenFault {
    /// Private calls answer `EGeneral:Temporary lockout`.
    Lockout { key: Option<String> },
    /// Private calls answer `EAPI:Invalid key`.
    InvalidKey { key: Option<String> },
    /// Private calls answer `EGeneral:Permission denied`.
    PermissionDenied { key: Option<String> },
    /// Private calls answer `EAPI:Rate limit exceeded`.
    RateLimit { key: Option<String> },
    /// Private calls answer `EService:Unavailable`.
    Unavailable,
    /// Every private call answers `EAPI:Invalid nonce`, whatever its nonce.
    InvalidNonce { key: Option<String> },
    /// The next private call answers `EAPI:Invalid nonce`, then the fault ends.
    InvalidNonceOnce,
    /// The next book message sent carries a wrong checksum, then the fault ends.
    CorruptChecksumOnce,
    /// Every book message carries a wrong checksum.
    CorruptChecksumAlways,
    /// The status is `maintenance` (sent to open connections and on
    /// connect) and no market data flows; clearing sends `online`.
    Maintenance,
    /// Subscribes for this symbol are refused, as for a symbol not listed.
    RejectSymbol { symbol: String },
    /// The status says online and subscribes are acknowledged, but nothing
    /// follows: no snapshot, no data, no heartbeat (a silent feed).
    Silent,
}

/// The `--fault` spellings, for `--help`.
pub const KRAKEN_FAULT_HELP: &str = "lockout[:KEY] | invalid-key[:KEY] | permission-denied[:KEY] | \
rate-limit[:KEY] | unavailable | invalid-nonce[:KEY] | invalid-nonce-once | corrupt-checksum-once | \
corrupt-checksum | maintenance | reject-symbol:SYMBOL | silent";

impl KrakenFault {
    /// Whether the fault is about REST calls made with `key`.
    pub fn applies_to_key(&self, key: &str) -> bool {
        match self {
            KrakenFault::Lockout { key: k }
            | KrakenFault::InvalidKey { key: k }
            | KrakenFault::PermissionDenied { key: k }
            | KrakenFault::RateLimit { key: k }
            | KrakenFault::InvalidNonce { key: k } => k.as_deref().is_none_or(|k| k == key),
            KrakenFault::Unavailable | KrakenFault::InvalidNonceOnce => true,
            _ => false,
        }
    }
}

fn with_key(f: &mut fmt::Formatter<'_>, name: &str, key: &Option<String>) -> fmt::Result {
    match key {
        Some(k) => write!(f, "{name}:{k}"),
        None => f.write_str(name),
    }
}

impl fmt::Display for KrakenFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KrakenFault::Lockout { key } => with_key(f, "lockout", key),
            KrakenFault::InvalidKey { key } => with_key(f, "invalid-key", key),
            KrakenFault::PermissionDenied { key } => with_key(f, "permission-denied", key),
            KrakenFault::RateLimit { key } => with_key(f, "rate-limit", key),
            KrakenFault::Unavailable => f.write_str("unavailable"),
            KrakenFault::InvalidNonce { key } => with_key(f, "invalid-nonce", key),
            KrakenFault::InvalidNonceOnce => f.write_str("invalid-nonce-once"),
            KrakenFault::CorruptChecksumOnce => f.write_str("corrupt-checksum-once"),
            KrakenFault::CorruptChecksumAlways => f.write_str("corrupt-checksum"),
            KrakenFault::Maintenance => f.write_str("maintenance"),
            KrakenFault::RejectSymbol { symbol } => write!(f, "reject-symbol:{symbol}"),
            KrakenFault::Silent => f.write_str("silent"),
        }
    }
}

impl FromStr for KrakenFault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (name, arg) = match spec.split_once(':') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (spec, None),
        };
        let no_arg = |f: KrakenFault| match &arg {
            None => Ok(f),
            Some(_) => Err(format!(
                "fault \"{spec}\" takes no argument; expected one of: {KRAKEN_FAULT_HELP}"
            )),
        };
        let key = arg.clone().filter(|k| !k.is_empty());
        match name {
            "lockout" => Ok(KrakenFault::Lockout { key }),
            "invalid-key" => Ok(KrakenFault::InvalidKey { key }),
            "permission-denied" => Ok(KrakenFault::PermissionDenied { key }),
            "rate-limit" => Ok(KrakenFault::RateLimit { key }),
            "invalid-nonce" => Ok(KrakenFault::InvalidNonce { key }),
            "unavailable" => no_arg(KrakenFault::Unavailable),
            "invalid-nonce-once" => no_arg(KrakenFault::InvalidNonceOnce),
            "corrupt-checksum-once" => no_arg(KrakenFault::CorruptChecksumOnce),
            "corrupt-checksum" => no_arg(KrakenFault::CorruptChecksumAlways),
            "maintenance" => no_arg(KrakenFault::Maintenance),
            "silent" => no_arg(KrakenFault::Silent),
            "reject-symbol" => match key {
                Some(symbol) => Ok(KrakenFault::RejectSymbol { symbol }),
                None => Err(format!(
                    "fault \"{spec}\" needs the symbol, e.g. reject-symbol:BTC/USD"
                )),
            },
            _ => Err(format!(
                "unknown fault \"{spec}\"; expected one of: {KRAKEN_FAULT_HELP}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_its_spelling() {
        let all = [
            KrakenFault::Lockout { key: None },
            KrakenFault::Lockout {
                key: Some("k1".into()),
            },
            KrakenFault::InvalidKey { key: None },
            KrakenFault::PermissionDenied {
                key: Some("k2".into()),
            },
            KrakenFault::RateLimit { key: None },
            KrakenFault::Unavailable,
            KrakenFault::InvalidNonce { key: None },
            KrakenFault::InvalidNonceOnce,
            KrakenFault::CorruptChecksumOnce,
            KrakenFault::CorruptChecksumAlways,
            KrakenFault::Maintenance,
            KrakenFault::RejectSymbol {
                symbol: "XDG/USD".into(),
            },
            KrakenFault::Silent,
        ];
        for f in all {
            assert_eq!(f.to_string().parse::<KrakenFault>(), Ok(f.clone()), "{f}");
        }
        assert!("explode".parse::<KrakenFault>().is_err());
        assert!("maintenance:1".parse::<KrakenFault>().is_err());
        assert!("reject-symbol".parse::<KrakenFault>().is_err());
    }

    #[test]
    fn key_filters() {
        let f = KrakenFault::Lockout {
            key: Some("k1".into()),
        };
        assert!(f.applies_to_key("k1") && !f.applies_to_key("k2"));
        assert!(KrakenFault::Lockout { key: None }.applies_to_key("k2"));
        assert!(!KrakenFault::Maintenance.applies_to_key("k1"));
    }
}
