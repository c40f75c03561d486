//! The faults the Coinbase simulator can inject, and their command-line
//! spelling, which round-trips through `FromStr`/`Display`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour of the simulated Coinbase (`CoinbaseSimHandle::set_fault`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoinbaseFault {
    /// One connection skips one `sequence_num`, then the fault ends.
    DropSequenceOnce,
    /// Every open connection is closed with 1001 (going away); new
    /// connections are served as usual.
    GoAway,
    /// Subscribes are answered, then nothing follows: no heartbeat, no data.
    Silent,
    /// Every JWT is refused (`authentication failure`, REST 401).
    RejectJwt,
}

/// The `--fault` spellings, for `--help`.
pub const COINBASE_FAULT_HELP: &str = "drop-sequence-once | go-away | silent | reject-jwt";

impl fmt::Display for CoinbaseFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoinbaseFault::DropSequenceOnce => "drop-sequence-once",
            CoinbaseFault::GoAway => "go-away",
            CoinbaseFault::Silent => "silent",
            CoinbaseFault::RejectJwt => "reject-jwt",
        })
    }
}

impl FromStr for CoinbaseFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "drop-sequence-once" => Ok(CoinbaseFault::DropSequenceOnce),
            "go-away" => Ok(CoinbaseFault::GoAway),
            "silent" => Ok(CoinbaseFault::Silent),
            "reject-jwt" => Ok(CoinbaseFault::RejectJwt),
            other => Err(format!(
                "unknown fault \"{other}\"; expected one of: {COINBASE_FAULT_HELP}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_its_spelling() {
        for f in [
            CoinbaseFault::DropSequenceOnce,
            CoinbaseFault::GoAway,
            CoinbaseFault::Silent,
            CoinbaseFault::RejectJwt,
        ] {
            assert_eq!(f.to_string().parse::<CoinbaseFault>(), Ok(f.clone()));
        }
        assert!("explode".parse::<CoinbaseFault>().is_err());
    }
}
