//! The faults the Kite simulator's ticker can inject, and their
//! command-line spelling (`lie-once:count`, `http:429`, …), which
//! round-trips through `FromStr`/`Display`. A wrong api_key or access
//! token is not a fault: it always gets HTTP 403 on the upgrade.

use super::encode::Lie;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KiteFault {
    /// Each connection open when the fault is set (or opened while it is in
    /// force) sends one lying frame in place of its next data frame, then
    /// streams normally.
    LieOnce(Lie),
    /// Every data frame lies.
    LieAlways(Lie),
    /// No data; the 1-byte heartbeats go on.
    HeartbeatsOnly,
    /// No data and no heartbeats; WebSocket pings are still answered.
    Silent,
    /// Nothing at all, not even pongs; the socket stays open.
    Frozen,
    /// Connections open when the fault is set are closed with this code.
    Close { code: u16 },
    /// New connections' upgrade is answered with this HTTP status (429:
    /// the key's connections are used up; 503: maintenance).
    RejectUpgrade { status: u16 },
}

pub const KITE_FAULT_HELP: &str = "lie-once[:count|length|unknown|trailing] | lie-always[:KIND] | \
heartbeats-only | silent | frozen | close:CODE | http:STATUS";

impl fmt::Display for KiteFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KiteFault::LieOnce(l) => write!(f, "lie-once:{}", l.as_str()),
            KiteFault::LieAlways(l) => write!(f, "lie-always:{}", l.as_str()),
            KiteFault::HeartbeatsOnly => f.write_str("heartbeats-only"),
            KiteFault::Silent => f.write_str("silent"),
            KiteFault::Frozen => f.write_str("frozen"),
            KiteFault::Close { code } => write!(f, "close:{code}"),
            KiteFault::RejectUpgrade { status } => write!(f, "http:{status}"),
        }
    }
}

impl FromStr for KiteFault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (name, arg) = match spec.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (spec, None),
        };
        let bad = || format!("unknown fault \"{spec}\"; expected one of: {KITE_FAULT_HELP}");
        let no_arg = |f: KiteFault| if arg.is_none() { Ok(f) } else { Err(bad()) };
        let number = |what: &str| -> Result<u16, String> {
            arg.ok_or_else(bad)?
                .parse()
                .map_err(|_| format!("fault \"{spec}\": the {what} is not a number"))
        };
        match name {
            "lie-once" => Ok(KiteFault::LieOnce(arg.map_or(Ok(Lie::Count), str::parse)?)),
            "lie-always" => Ok(KiteFault::LieAlways(
                arg.map_or(Ok(Lie::Count), str::parse)?,
            )),
            "heartbeats-only" => no_arg(KiteFault::HeartbeatsOnly),
            "silent" => no_arg(KiteFault::Silent),
            "frozen" => no_arg(KiteFault::Frozen),
            "close" => {
                let code = number("close code")?;
                if !(1000..=4999).contains(&code) {
                    return Err(format!(
                        "fault \"{spec}\": close code {code} is outside 1000-4999"
                    ));
                }
                Ok(KiteFault::Close { code })
            }
            "http" => {
                let status = number("HTTP status")?;
                if !(400..=599).contains(&status) {
                    return Err(format!(
                        "fault \"{spec}\": HTTP status {status} is not an error (400-599)"
                    ));
                }
                Ok(KiteFault::RejectUpgrade { status })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for f in [
            KiteFault::LieOnce(Lie::Count),
            KiteFault::LieOnce(Lie::Unknown),
            KiteFault::LieAlways(Lie::Length),
            KiteFault::LieAlways(Lie::Trailing),
            KiteFault::HeartbeatsOnly,
            KiteFault::Silent,
            KiteFault::Frozen,
            KiteFault::Close { code: 1001 },
            KiteFault::RejectUpgrade { status: 429 },
        ] {
            assert_eq!(f.to_string().parse::<KiteFault>(), Ok(f.clone()), "{f}");
        }
        assert_eq!("lie-once".parse(), Ok(KiteFault::LieOnce(Lie::Count)));
        for bad in [
            "lie-once:fib",
            "silent:1",
            "close:99",
            "http:200",
            "http",
            "explode",
        ] {
            assert!(bad.parse::<KiteFault>().is_err(), "{bad}");
        }
    }
}
