//! The TWS simulator's faults and script steps, and their command-line
//! spellings (`mute`, `no-next-valid-id`, `notify:1100`, ...), which
//! round-trip through `FromStr`/`Display`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour in force until cleared (`TwsSimHandle::set_fault`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwsFault {
    /// The listener is closed: connect() is refused. Existing connections
    /// end without a word (TWS was closed). Clearing binds the port again.
    RefuseConnections,
    /// New connections are accepted and their `API\0` greeting is read but
    /// never answered (socket clients disabled, a pending accept dialog).
    NoGreetingReply,
    /// The greeting is answered, START_API is not: no managedAccounts, no
    /// nextValidId (TWS still logging in, Read-Only API).
    NoNextValidId,
    /// reqCurrentTime is no longer answered, on every connection (a mute TWS).
    NoCurrentTime,
}

/// The `--fault` spellings, for `--help`.
pub const TWS_FAULT_HELP: &str = "refuse | mute | no-next-valid-id | no-current-time";

impl fmt::Display for TwsFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TwsFault::RefuseConnections => "refuse",
            TwsFault::NoGreetingReply => "mute",
            TwsFault::NoNextValidId => "no-next-valid-id",
            TwsFault::NoCurrentTime => "no-current-time",
        })
    }
}

impl FromStr for TwsFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "refuse" => TwsFault::RefuseConnections,
            "mute" | "no-greeting-reply" => TwsFault::NoGreetingReply,
            "no-next-valid-id" => TwsFault::NoNextValidId,
            "no-current-time" => TwsFault::NoCurrentTime,
            other => {
                return Err(format!(
                    "unknown TWS fault \"{other}\"; expected one of: {TWS_FAULT_HELP}"
                ));
            }
        })
    }
}

/// One step of a `--script`: set a fault, clear it, or send a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwsStep {
    Fault(TwsFault),
    Clear,
    /// Send this error/notice code (1100, 1101, 1102, 2103, 2104, 1300...)
    /// to every API session.
    Notify(i32),
}

impl fmt::Display for TwsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwsStep::Fault(x) => x.fmt(f),
            TwsStep::Clear => f.write_str("clear"),
            TwsStep::Notify(code) => write!(f, "notify:{code}"),
        }
    }
}

impl FromStr for TwsStep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "clear" {
            return Ok(TwsStep::Clear);
        }
        if let Some(code) = s.strip_prefix("notify:") {
            return code.parse().map(TwsStep::Notify).map_err(|_| {
                format!("\"{s}\": the code after notify: must be a number, e.g. notify:1100")
            });
        }
        s.parse().map(TwsStep::Fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for f in [
            TwsFault::RefuseConnections,
            TwsFault::NoGreetingReply,
            TwsFault::NoNextValidId,
            TwsFault::NoCurrentTime,
        ] {
            assert_eq!(f.to_string().parse::<TwsFault>(), Ok(f.clone()));
            let step = TwsStep::Fault(f);
            assert_eq!(step.to_string().parse::<TwsStep>(), Ok(step));
        }
        assert_eq!("notify:1101".parse(), Ok(TwsStep::Notify(1101)));
        assert_eq!("clear".parse(), Ok(TwsStep::Clear));
        assert!("notify:x".parse::<TwsStep>().is_err());
        assert!(
            "explode"
                .parse::<TwsFault>()
                .unwrap_err()
                .contains("expected one of")
        );
    }
}
