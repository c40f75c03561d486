//! The faults the Alpaca simulator can inject, and their command-line
//! spelling (`connection-limit`, `error:409`, `close:1001`, …), which
//! round-trips through `FromStr`/`Display`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour of the simulated Alpaca, one at a time
/// (`AlpacaSimHandle::set_fault`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlpacaFault {
    /// Every authentication is answered 406 "connection limit exceeded"
    /// and closed, as when another program holds the key's stream (a
    /// second connection on a key gets that anyway).
    ConnectionLimit,
    /// After `connected`, the auth is never waited for: 404 "auth timeout"
    /// and a close, as Alpaca does 10 s after a silent client.
    AuthTimeout,
    /// The authentication (or, for 405 and 410, the subscription) is
    /// answered with this error code and Alpaca's message for it.
    Error(u16),
    /// Subscribed connections get 407 "slow client", then a close.
    SlowClient,
    /// Subscriptions are answered but no data follows; the socket stays
    /// open and pings are still answered.
    Silent,
    /// Open connections are closed with this code (1000, 1001, …), once.
    Close(u16),
    /// Open connections are dropped without a close frame (1006), once.
    Drop,
}

/// The `--fault` spellings, for `--help`.
pub const ALPACA_FAULT_HELP: &str = "connection-limit | auth-timeout | error:CODE (400-411, 500) | slow-client | silent | close:CODE | drop";

/// Alpaca's message for an error code (alpaca-docs realtime.md).
pub fn message_of(code: u16) -> &'static str {
    match code {
        400 => "invalid syntax",
        401 => "not authenticated",
        402 => "auth failed",
        403 => "already authenticated",
        404 => "auth timeout",
        405 => "symbol limit exceeded",
        406 => "connection limit exceeded",
        407 => "slow client",
        408 => "v2 not enabled",
        409 => "insufficient subscription",
        410 => "invalid subscribe action for this feed",
        411 => "insufficient scope",
        _ => "internal error",
    }
}

impl fmt::Display for AlpacaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlpacaFault::ConnectionLimit => f.write_str("connection-limit"),
            AlpacaFault::AuthTimeout => f.write_str("auth-timeout"),
            AlpacaFault::Error(c) => write!(f, "error:{c}"),
            AlpacaFault::SlowClient => f.write_str("slow-client"),
            AlpacaFault::Silent => f.write_str("silent"),
            AlpacaFault::Close(c) => write!(f, "close:{c}"),
            AlpacaFault::Drop => f.write_str("drop"),
        }
    }
}

impl FromStr for AlpacaFault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let bad = || format!("unknown fault \"{spec}\"; expected one of: {ALPACA_FAULT_HELP}");
        let code = |s: &str| s.parse::<u16>().map_err(|_| bad());
        match spec.split_once(':') {
            None => match spec {
                "connection-limit" => Ok(AlpacaFault::ConnectionLimit),
                "auth-timeout" => Ok(AlpacaFault::AuthTimeout),
                "slow-client" => Ok(AlpacaFault::SlowClient),
                "silent" => Ok(AlpacaFault::Silent),
                "drop" => Ok(AlpacaFault::Drop),
                _ => Err(bad()),
            },
            Some(("error", c)) => match code(c)? {
                c @ (400..=411 | 500) => Ok(AlpacaFault::Error(c)),
                c => Err(format!("error:{c}: Alpaca's codes are 400 to 411 and 500")),
            },
            Some(("close", c)) => match code(c)? {
                c @ 1000..=4999 if c != 1005 && c != 1006 => Ok(AlpacaFault::Close(c)),
                c => Err(format!(
                    "close:{c}: a close frame carries 1000-4999 except 1005 and 1006 (use `drop` for 1006)"
                )),
            },
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_its_spelling() {
        for f in [
            AlpacaFault::ConnectionLimit,
            AlpacaFault::AuthTimeout,
            AlpacaFault::Error(409),
            AlpacaFault::SlowClient,
            AlpacaFault::Silent,
            AlpacaFault::Close(1001),
            AlpacaFault::Drop,
        ] {
            assert_eq!(f.to_string().parse::<AlpacaFault>(), Ok(f.clone()), "{f}");
        }
        for bad in ["explode", "error:999", "close:1006", "close:x"] {
            assert!(bad.parse::<AlpacaFault>().is_err(), "{bad}");
        }
        assert_eq!(message_of(406), "connection limit exceeded");
    }
}
