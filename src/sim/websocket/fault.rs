//! The faults the simulator can inject, and their command-line spelling
//! (`close-on-send:1000`, `reject-auth`, ...), which round-trips through
//! `FromStr`/`Display`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour of the simulated broker. Set one at a time with
/// `SimHandle::set_fault`; what it does to connections that already exist
/// and to new ones is documented per variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The listener is closed so connect() is refused; existing connections
    /// end without a close frame (the broker process died). Clearing the
    /// fault binds the same port again.
    RefuseConnections,
    /// New connections are accepted at TCP level and never answered (no TLS,
    /// no WebSocket upgrade). Existing connections are unaffected.
    AcceptNoHandshake,
    /// Every auth message gets `auth_failed` and close 1008, whatever the token.
    RejectAuth,
    /// Each connection is closed with `code` after it was sent `messages`
    /// data messages (counted from when the fault was set, or from connect).
    CloseAfter { messages: u64, code: u16 },
    /// Every message the client sends after auth is answered by a close with
    /// `code` (the "1000 on every send" outage).
    CloseOnClientMessage { code: u16 },
    /// No data and no heartbeats; requests and pings are still answered.
    SilentWithPongs,
    /// Existing connections stop reading and writing entirely (no pongs) but
    /// keep the TCP socket open; new connections get no handshake.
    SilentNoPongs,
    /// Existing connections are reset (RST via SO_LINGER 0); new ones are
    /// reset right after accept.
    Reset,
    /// Bytes that are not a valid WebSocket frame are written to existing
    /// connections, and to new ones right after the upgrade.
    Malformed,
    /// Data messages at this rate to subscribed connections, instead of
    /// `data_every`.
    Flood { per_sec: u32 },
    /// Existing connections are closed once with `code` (e.g. 1001, 1012);
    /// new connections are unaffected.
    CloseWithCode { code: u16 },
    /// New connections' WebSocket upgrade is answered with this HTTP status
    /// (401/403: credentials rejected, 429: rate limited, 503: maintenance).
    /// Existing connections are unaffected.
    RejectUpgrade { status: u16 },
    /// New connections' WebSocket upgrade is answered only after `delay_ms`
    /// (an overloaded broker). Existing connections are unaffected.
    SlowHandshake { delay_ms: u64 },
}

/// The `--fault` spellings, for `--help`.
pub const FAULT_HELP: &str = "refuse | no-handshake | reject-auth | close-after:N[:CODE] | \
close-on-send[:CODE] | silent | silent-no-pongs | reset | malformed | flood:PER_SEC | close:CODE | \
http:STATUS | slow-handshake:MS";

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RefuseConnections => f.write_str("refuse"),
            Fault::AcceptNoHandshake => f.write_str("no-handshake"),
            Fault::RejectAuth => f.write_str("reject-auth"),
            Fault::CloseAfter { messages, code } => write!(f, "close-after:{messages}:{code}"),
            Fault::CloseOnClientMessage { code } => write!(f, "close-on-send:{code}"),
            Fault::SilentWithPongs => f.write_str("silent"),
            Fault::SilentNoPongs => f.write_str("silent-no-pongs"),
            Fault::Reset => f.write_str("reset"),
            Fault::Malformed => f.write_str("malformed"),
            Fault::Flood { per_sec } => write!(f, "flood:{per_sec}"),
            Fault::CloseWithCode { code } => write!(f, "close:{code}"),
            Fault::RejectUpgrade { status } => write!(f, "http:{status}"),
            Fault::SlowHandshake { delay_ms } => write!(f, "slow-handshake:{delay_ms}"),
        }
    }
}

fn number<T: FromStr>(s: &str, what: &str, spec: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("fault \"{spec}\": {what} \"{s}\" is not a number"))
}

fn close_code(s: &str, spec: &str) -> Result<u16, String> {
    let code: u16 = number(s, "close code", spec)?;
    if !(1000..=4999).contains(&code) {
        return Err(format!(
            "fault \"{spec}\": close code {code} is outside 1000-4999"
        ));
    }
    Ok(code)
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let mut parts = spec.trim().split(':');
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<&str> = parts.collect();
        let arity = |min: usize, max: usize| {
            if args.len() < min || args.len() > max {
                Err(format!(
                    "fault \"{spec}\" has the wrong number of arguments; expected one of: {FAULT_HELP}"
                ))
            } else {
                Ok(())
            }
        };
        let fault = match name.as_str() {
            "refuse" => {
                arity(0, 0)?;
                Fault::RefuseConnections
            }
            "no-handshake" => {
                arity(0, 0)?;
                Fault::AcceptNoHandshake
            }
            "reject-auth" => {
                arity(0, 0)?;
                Fault::RejectAuth
            }
            "close-after" => {
                arity(1, 2)?;
                let messages = number(args[0], "message count", spec)?;
                let code = args.get(1).map_or(Ok(1000), |c| close_code(c, spec))?;
                Fault::CloseAfter { messages, code }
            }
            "close-on-send" => {
                arity(0, 1)?;
                Fault::CloseOnClientMessage {
                    code: args.first().map_or(Ok(1000), |c| close_code(c, spec))?,
                }
            }
            "silent" => {
                arity(0, 0)?;
                Fault::SilentWithPongs
            }
            "silent-no-pongs" | "frozen" => {
                arity(0, 0)?;
                Fault::SilentNoPongs
            }
            "reset" => {
                arity(0, 0)?;
                Fault::Reset
            }
            "malformed" => {
                arity(0, 0)?;
                Fault::Malformed
            }
            "flood" => {
                arity(1, 1)?;
                let per_sec: u32 = number(args[0], "rate", spec)?;
                if per_sec == 0 {
                    return Err(format!(
                        "fault \"{spec}\": the rate must be at least 1 per second"
                    ));
                }
                Fault::Flood { per_sec }
            }
            "close" => {
                arity(1, 1)?;
                Fault::CloseWithCode {
                    code: close_code(args[0], spec)?,
                }
            }
            "http" => {
                arity(1, 1)?;
                let status: u16 = number(args[0], "HTTP status", spec)?;
                if !(400..=599).contains(&status) {
                    return Err(format!(
                        "fault \"{spec}\": HTTP status {status} is not an error (400-599)"
                    ));
                }
                Fault::RejectUpgrade { status }
            }
            "slow-handshake" => {
                arity(1, 1)?;
                Fault::SlowHandshake {
                    delay_ms: number(args[0], "delay in milliseconds", spec)?,
                }
            }
            _ => {
                return Err(format!(
                    "unknown fault \"{spec}\"; expected one of: {FAULT_HELP}"
                ));
            }
        };
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_through_its_spelling() {
        let all = [
            Fault::RefuseConnections,
            Fault::AcceptNoHandshake,
            Fault::RejectAuth,
            Fault::CloseAfter {
                messages: 5,
                code: 1011,
            },
            Fault::CloseOnClientMessage { code: 1000 },
            Fault::SilentWithPongs,
            Fault::SilentNoPongs,
            Fault::Reset,
            Fault::Malformed,
            Fault::Flood { per_sec: 500 },
            Fault::CloseWithCode { code: 1012 },
            Fault::RejectUpgrade { status: 429 },
            Fault::SlowHandshake { delay_ms: 1500 },
        ];
        for f in all {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f.clone()), "{f}");
        }
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(
            "close-on-send".parse(),
            Ok(Fault::CloseOnClientMessage { code: 1000 })
        );
        assert_eq!(
            "close-after:3".parse(),
            Ok(Fault::CloseAfter {
                messages: 3,
                code: 1000
            })
        );
        assert!(
            "close:99"
                .parse::<Fault>()
                .unwrap_err()
                .contains("1000-4999")
        );
        assert!("flood:0".parse::<Fault>().is_err());
        assert!(
            "explode"
                .parse::<Fault>()
                .unwrap_err()
                .contains("expected one of")
        );
        assert!("reset:1".parse::<Fault>().is_err());
        assert!("http:200".parse::<Fault>().is_err());
    }
}
