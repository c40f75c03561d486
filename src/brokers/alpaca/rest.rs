//! Alpaca's REST account check as pure pieces (PROTOCOLS.md §2.3): the
//! `GET /v2/account` request with the key headers, the reading of its
//! answer, the other endpoint to try when the key is refused (paper and
//! live keys differ), and the verdict an operator reads. `client` sends
//! the requests; nothing here does I/O.

use crate::feed::{ErrorClass, FeedError, Layer};
use crate::net::http::Request;
use crate::peertext::short;
use crate::secret::Secret;
use serde_json::Value;
use std::fmt;

pub const ACCOUNT_PATH: &str = "/v2/account";
pub const KEY_HEADER: &str = "APCA-API-KEY-ID";
pub const SECRET_HEADER: &str = "APCA-API-SECRET-KEY";

/// `GET <base>/v2/account` with the key headers (their values are secrets
/// and never printed).
pub fn account_request(base: &str, key_id: &Secret, secret: &Secret) -> Request {
    Request::get(format!("{}{ACCOUNT_PATH}", base.trim_end_matches('/')))
        .header(KEY_HEADER, key_id.clone())
        .header(SECRET_HEADER, secret.clone())
}

/// What `/v2/account` says about the account (never a balance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    /// `ACTIVE`, `ACCOUNT_UPDATED`, …
    pub status: String,
    pub trading_blocked: bool,
}

/// Why `/v2/account` did not answer with an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestError {
    /// 401 or 403: the key is not known on this endpoint.
    Refused {
        status: u16,
        message: String,
    },
    RateLimited,
    Server {
        status: u16,
    },
    Malformed {
        status: u16,
        detail: String,
    },
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::Refused { status, message } => {
                write!(f, "refused the key (HTTP {status}: {message})")
            }
            RestError::RateLimited => f.write_str("rate limited the check (HTTP 429)"),
            RestError::Server { status } => write!(f, "failed (HTTP {status})"),
            RestError::Malformed { status, detail } => {
                write!(
                    f,
                    "answered HTTP {status} with an unexpected body ({detail})"
                )
            }
        }
    }
}

/// Reads `/v2/account`'s answer.
pub fn parse_account(status: u16, body: &str) -> Result<Account, RestError> {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(short)
    };
    match status {
        200..=299 => {
            let number = field("account_number").ok_or_else(|| RestError::Malformed {
                status,
                detail: "no account_number".into(),
            })?;
            Ok(Account {
                number,
                status: field("status").unwrap_or_else(|| "unknown".into()),
                trading_blocked: v
                    .as_ref()
                    .and_then(|v| v.get("trading_blocked"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        }
        401 | 403 => Err(RestError::Refused {
            status,
            message: field("message").unwrap_or_else(|| "no message".into()),
        }),
        429 => Err(RestError::RateLimited),
        500..=599 => Err(RestError::Server { status }),
        _ => Err(RestError::Malformed {
            status,
            detail: format!("{} bytes", body.len()),
        }),
    }
}

/// The REST base of the other kind of key (paper ↔ live): Alpaca's hosts
/// swapped (`paper-api.` ↔ `api.`), or a last path segment `/paper` ↔
/// `/live` (how the simulator serves both). `None` when neither applies.
pub fn other_base(base: &str) -> Option<String> {
    let b = base.trim_end_matches('/');
    if let Some(rest) = b.strip_prefix("https://paper-api.") {
        return Some(format!("https://api.{rest}"));
    }
    if let Some(rest) = b.strip_prefix("https://api.") {
        return Some(format!("https://paper-api.{rest}"));
    }
    if let Some(head) = b.strip_suffix("/paper") {
        return Some(format!("{head}/live"));
    }
    if let Some(head) = b.strip_suffix("/live") {
        return Some(format!("{head}/paper"));
    }
    None
}

/// The verdict of a check: what was proven, or the error with its class.
/// `other` is the answer of the other endpoint, asked only when this one
/// refused the key. `names` are the two credential names.
pub fn verdict(
    own: Result<Account, RestError>,
    other: Option<Result<Account, RestError>>,
    paper: bool,
    names: (&str, &str),
) -> Result<String, FeedError> {
    let kind = if paper { "paper" } else { "live" };
    let other_kind = if paper { "live" } else { "paper" };
    match own {
        Ok(a) => {
            let blocked = if a.trading_blocked {
                ", trading blocked"
            } else {
                ""
            };
            Ok(format!(
                "GET /v2/account on the {kind} endpoint answered: account {} ({}{blocked})",
                a.number, a.status
            ))
        }
        Err(e @ RestError::Refused { .. }) => {
            let fix = match other {
                Some(Ok(_)) => format!(
                    "the key is a {other_kind} key (the {other_kind} endpoint accepts it): set \
                     paper = {} on the feed, or set a {kind} key pair",
                    !paper
                ),
                _ => format!(
                    "set the current {kind} key pair with `sudo brokerguard set-credential {}` \
                     and `… {}` (paper and live keys differ)",
                    names.0, names.1
                ),
            };
            Err(FeedError::auth(format!("Alpaca's {kind} endpoint {e}: {fix}")).at(Layer::Auth))
        }
        Err(e @ RestError::RateLimited) => Err(FeedError::new(
            ErrorClass::RateLimited { retry_after: None },
            format!("Alpaca's {kind} endpoint {e}"),
        )
        .at(Layer::Auth)),
        Err(e @ RestError::Server { .. }) => {
            Err(FeedError::network(format!("Alpaca's {kind} endpoint {e}")).at(Layer::Auth))
        }
        Err(e @ RestError::Malformed { .. }) => {
            Err(FeedError::protocol(format!("Alpaca's {kind} endpoint {e}")).at(Layer::Auth))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: (&str, &str) = ("ALPACA_MAIN_API_KEY_ID", "ALPACA_MAIN_API_SECRET_KEY");

    #[test]
    fn the_request_carries_the_key_headers_and_prints_neither() {
        let r = account_request(
            "https://paper-api.alpaca.markets/",
            &Secret::new("PKKEY"),
            &Secret::new("canary-rest-secret"),
        );
        assert_eq!(r.url, "https://paper-api.alpaca.markets/v2/account");
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [KEY_HEADER, SECRET_HEADER]);
        assert_eq!(r.headers[1].1.expose(), "canary-rest-secret");
        assert!(!format!("{r:?}").contains("canary-rest-secret"));
    }

    #[test]
    fn answers_are_read() {
        let ok = parse_account(
            200,
            r#"{"id":"x","account_number":"PA3KQ1","status":"ACTIVE","trading_blocked":false,"cash":"100"}"#,
        )
        .unwrap();
        assert_eq!(ok.number, "PA3KQ1");
        assert_eq!(
            parse_account(401, r#"{"message": "unauthorized."}"#),
            Err(RestError::Refused {
                status: 401,
                message: "unauthorized.".into()
            })
        );
        assert_eq!(parse_account(429, ""), Err(RestError::RateLimited));
        assert_eq!(
            parse_account(503, ""),
            Err(RestError::Server { status: 503 })
        );
        assert!(matches!(
            parse_account(200, "{}"),
            Err(RestError::Malformed { .. })
        ));
    }

    #[test]
    fn the_other_endpoint() {
        assert_eq!(
            other_base("https://paper-api.alpaca.markets").as_deref(),
            Some("https://api.alpaca.markets")
        );
        assert_eq!(
            other_base("https://api.alpaca.markets/").as_deref(),
            Some("https://paper-api.alpaca.markets")
        );
        assert_eq!(
            other_base("http://127.0.0.1:9/paper").as_deref(),
            Some("http://127.0.0.1:9/live")
        );
        assert_eq!(other_base("http://127.0.0.1:9"), None);
    }

    #[test]
    fn verdicts_name_paper_or_live() {
        let refused = || {
            Err(RestError::Refused {
                status: 401,
                message: "unauthorized.".into(),
            })
        };
        let account = || {
            Ok(Account {
                number: "PA1".into(),
                status: "ACTIVE".into(),
                trading_blocked: false,
            })
        };
        let ok = verdict(account(), None, true, NAMES).unwrap();
        assert!(
            ok.contains("paper endpoint answered: account PA1 (ACTIVE)"),
            "{ok}"
        );
        let e = verdict(refused(), Some(account()), false, NAMES).unwrap_err();
        assert_eq!(e.class, ErrorClass::Auth);
        assert!(e.message.contains("the key is a paper key"), "{e}");
        assert!(e.message.contains("set paper = true"), "{e}");
        let e = verdict(refused(), Some(refused()), false, NAMES).unwrap_err();
        assert!(
            e.message.contains("set-credential ALPACA_MAIN_API_KEY_ID"),
            "{e}"
        );
        let e = verdict(Err(RestError::Server { status: 502 }), None, false, NAMES).unwrap_err();
        assert_eq!(e.class, ErrorClass::Network);
    }
}
