//! Coinbase's REST credential check, pure (PROTOCOLS.md §5.2): `GET
//! /api/v3/brokerage/accounts` with `Authorization: Bearer <JWT>` and the
//! classification of its answer. A 401 when this host's clock is far from
//! Coinbase's says the clock is the likely cause: a JWT's `nbf`/`exp` are
//! checked against Coinbase's clock.

use crate::feed::{ErrorClass, FeedError, Layer};
use crate::net::http::ClockOffset;
use std::fmt;
use std::time::Duration;

/// The accounts call: cheap, needs only the "view" permission.
pub const ACCOUNTS_PATH: &str = "/api/v3/brokerage/accounts";
/// A clock further off than this makes a 401 likely the clock's doing.
pub const CLOCK_SUSPECT_AFTER: Duration = Duration::from_secs(10);

/// The accounts URL under a REST base (`https://api.coinbase.com`).
pub fn accounts_url(rest_base: &str) -> String {
    format!("{}{ACCOUNTS_PATH}", rest_base.trim_end_matches('/'))
}

/// A non-success answer to the accounts call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestError {
    /// 401: the JWT was refused; `clock` is this host's offset when known.
    Unauthorized { clock: Option<ClockOffset> },
    /// 403: the key is known but lacks the permission.
    Forbidden,
    /// 429.
    RateLimited,
    /// 5xx: Coinbase's outage, not the key's.
    Server(u16),
    /// Any other status, or a 200 whose body is not the accounts list.
    Unexpected(String),
}

fn clock_words(offset: &ClockOffset) -> String {
    format!(
        "this host's clock is {} {} Coinbase's",
        crate::timefmt::human(offset.by),
        if offset.server_ahead {
            "behind"
        } else {
            "ahead of"
        }
    )
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::Unauthorized { clock: Some(c) } if c.at_least() >= CLOCK_SUSPECT_AFTER => {
                write!(
                    f,
                    "Coinbase answered 401 Unauthorized and {}: a JWT is valid only from its nbf for \
                 2 minutes by Coinbase's clock, so the clock is the likely cause; synchronise it \
                 (`timedatectl set-ntp true`, chrony)",
                    clock_words(c)
                )
            }
            RestError::Unauthorized { .. } => f.write_str(
                "Coinbase answered 401 Unauthorized: the CDP API key was refused; check that \
                 COINBASE_<ACCOUNT>_API_KEY_NAME is the key's full organizations/…/apiKeys/… name \
                 and _API_SECRET its private key, and that the key is not deleted",
            ),
            RestError::Forbidden => f.write_str(
                "Coinbase answered 403 Forbidden: the key lacks the \"view\" permission",
            ),
            RestError::RateLimited => f.write_str("Coinbase answered 429 (rate limited)"),
            RestError::Server(s) => {
                write!(f, "Coinbase answered HTTP {s} (its outage, not the key's)")
            }
            RestError::Unexpected(what) => write!(f, "Coinbase answered unexpectedly: {what}"),
        }
    }
}

impl RestError {
    /// As a feed error at the auth layer with the class deciding what follows.
    pub fn to_feed_error(&self) -> FeedError {
        let class = match self {
            RestError::Unauthorized { .. } | RestError::Forbidden => ErrorClass::Auth,
            RestError::RateLimited => ErrorClass::RateLimited { retry_after: None },
            RestError::Server(_) => ErrorClass::Network,
            RestError::Unexpected(_) => ErrorClass::Protocol,
        };
        FeedError::new(class, self.to_string()).at(Layer::Auth)
    }
}

/// The accounts answer: the number of accounts listed, or why not.
pub fn classify_accounts(
    status: u16,
    body: &str,
    clock: Option<ClockOffset>,
) -> Result<usize, RestError> {
    match status {
        200 => serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["accounts"].as_array().map(Vec::len))
            .ok_or_else(|| RestError::Unexpected("a 200 without an accounts list".into())),
        401 => Err(RestError::Unauthorized { clock }),
        403 => Err(RestError::Forbidden),
        429 => Err(RestError::RateLimited),
        s if s >= 500 => Err(RestError::Server(s)),
        s => Err(RestError::Unexpected(format!("HTTP {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(secs: u64, server_ahead: bool) -> ClockOffset {
        ClockOffset {
            server_ahead,
            by: Duration::from_secs(secs),
            uncertainty: Duration::from_millis(500),
        }
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify_accounts(200, r#"{"accounts":[{},{}],"has_next":false}"#, None),
            Ok(2)
        );
        assert!(matches!(
            classify_accounts(200, "<html>", None),
            Err(RestError::Unexpected(_))
        ));
        assert_eq!(classify_accounts(403, "", None), Err(RestError::Forbidden));
        assert_eq!(
            classify_accounts(503, "", None),
            Err(RestError::Server(503))
        );
        let e = classify_accounts(429, "", None)
            .unwrap_err()
            .to_feed_error();
        assert_eq!(e.class, ErrorClass::RateLimited { retry_after: None });
        assert_eq!(
            accounts_url("http://h:1/"),
            "http://h:1/api/v3/brokerage/accounts"
        );
    }

    #[test]
    fn a_401_with_a_far_clock_blames_the_clock() {
        let far = classify_accounts(401, "", Some(offset(300, true))).unwrap_err();
        let text = far.to_string();
        assert!(
            text.contains("clock is the likely cause") && text.contains("behind"),
            "{text}"
        );
        assert_eq!(far.to_feed_error().class, ErrorClass::Auth);
        let near = classify_accounts(401, "", Some(offset(1, false))).unwrap_err();
        assert!(!near.to_string().contains("clock"), "{near}");
    }
}
