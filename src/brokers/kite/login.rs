//! The daily Kite login, as pure pieces for `brokerguard kite-login`.
//!
//! 1. The operator opens [`login_url`] and logs in; Kite redirects the
//!    browser to the app's redirect URL with `request_token=…`.
//! 2. We exchange it: `POST /session/token` (form body `api_key`,
//!    `request_token`, `checksum`; header `X-Kite-Version: 3`), where
//!    `checksum = hex(SHA-256(api_key + request_token + api_secret))`
//!    (pykiteconnect `generate_session`).
//! 3. The reply's `data.access_token` is the day's token (a [`Secret`]);
//!    `login_time` (IST) says when it was issued, so its expiry is known.
//!
//! A request token lives a few minutes and can be used once; Kite answers
//! a reused or stale one, and a wrong checksum, with a 403 `TokenException`.

use super::expiry::parse_ist_datetime;
use super::rest::{
    ApiError, ErrorType, FORM_CONTENT_TYPE, KiteRequest, Method, RestError, parse_envelope,
    version_header,
};
use super::url::{form_body, plain_url};
use crate::peertext::short as sanitize;
use crate::secret::Secret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// Where the operator logs in.
pub const LOGIN_URL: &str = "https://kite.zerodha.com/connect/login";
/// The token exchange endpoint.
pub const SESSION_TOKEN_PATH: &str = "/session/token";

/// `https://kite.zerodha.com/connect/login?v=3&api_key=…`. The api_key is
/// meant to be seen here (it is in the browser's address bar anyway), so
/// this is a plain string for the terminal.
pub fn login_url(api_key: &Secret) -> String {
    plain_url(LOGIN_URL, &[("v", "3"), ("api_key", api_key.expose())])
}

/// `hex(SHA-256(api_key + request_token + api_secret))`, lower case.
pub fn checksum(api_key: &Secret, request_token: &Secret, api_secret: &Secret) -> Secret {
    let mut h = Sha256::new();
    h.update(api_key.expose().as_bytes());
    h.update(request_token.expose().as_bytes());
    h.update(api_secret.expose().as_bytes());
    let digest = h.finalize();
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    Secret::new(hex)
}

/// `POST /session/token` with the checksum, as the HTTP client sends it.
pub fn session_token_request(
    api_key: &Secret,
    request_token: &Secret,
    api_secret: &Secret,
) -> KiteRequest {
    let sum = checksum(api_key, request_token, api_secret);
    KiteRequest {
        method: Method::Post,
        path: SESSION_TOKEN_PATH,
        headers: vec![
            version_header(),
            ("Content-Type".to_string(), Secret::new(FORM_CONTENT_TYPE)),
        ],
        body: Some(form_body(&[
            ("api_key", api_key.expose()),
            ("request_token", request_token.expose()),
            ("checksum", sum.expose()),
        ])),
    }
}

/// What a successful exchange gives us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub access_token: Secret,
    pub user_id: Option<String>,
    /// `login_time` (IST) as an instant, when Kite sent a parsable one.
    pub login_time: Option<SystemTime>,
}

/// Classifies the reply to [`session_token_request`]; `account` names the
/// account for the remedies in the messages.
pub fn parse_session(status: u16, body: &str, account: &str) -> Result<Session, RestError> {
    let data = match parse_envelope(status, body) {
        Ok(d) => d,
        Err(Err(e)) => return Err(e),
        Err(Ok(api)) => return Err(classify_exchange_error(api, account)),
    };
    let access_token = match data.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Secret::new(t),
        _ => {
            return Err(RestError::Malformed {
                status,
                detail: "the session has no access_token".into(),
            });
        }
    };
    Ok(Session {
        access_token,
        user_id: data.get("user_id").and_then(Value::as_str).map(sanitize),
        login_time: data
            .get("login_time")
            .and_then(Value::as_str)
            .and_then(parse_ist_datetime),
    })
}

/// Turns Kite's error for the exchange into what the operator must do.
fn classify_exchange_error(api: ApiError, account: &str) -> RestError {
    let account = account.to_string();
    let m = api.message.to_ascii_lowercase();
    match api.error_type {
        _ if m.contains("checksum") => RestError::InvalidChecksum { account },
        _ if m.contains("api_key") => RestError::InvalidApiKey { account },
        ErrorType::Token => RestError::RequestTokenRejected { account },
        _ if m.contains("request_token") => RestError::RequestTokenRejected { account },
        _ => RestError::Api(api),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::ErrorClass;

    const KEY: &str = "abcdefgh12345678";
    const REQUEST: &str = "Kx7QrTq0wLmN2pZs9VbC4dEf6GhJ8kLa";
    const SECRET: &str = "0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn checksum_matches_an_independent_sha256() {
        // Computed with Python:
        //   hashlib.sha256(b"abcdefgh12345678" b"Kx7QrTq0wLmN2pZs9VbC4dEf6GhJ8kLa"
        //                  b"0123456789abcdefghijklmnopqrstuv").hexdigest()
        let sum = checksum(
            &Secret::new(KEY),
            &Secret::new(REQUEST),
            &Secret::new(SECRET),
        );
        assert_eq!(
            sum.expose(),
            "6236401aa6745a1acf35af5f9c03a4e29639d1f81d8a7ccd0ec4201fb7562f4a"
        );
        // hashlib.sha256(b"").hexdigest()
        let empty = checksum(&Secret::new(""), &Secret::new(""), &Secret::new(""));
        assert_eq!(
            empty.expose(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn login_url_is_v3_with_the_key() {
        assert_eq!(
            login_url(&Secret::new(KEY)),
            "https://kite.zerodha.com/connect/login?v=3&api_key=abcdefgh12345678"
        );
    }

    #[test]
    fn session_request_is_the_documented_form() {
        let r = session_token_request(
            &Secret::new(KEY),
            &Secret::new(REQUEST),
            &Secret::new(SECRET),
        );
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            r.url("https://api.kite.trade"),
            "https://api.kite.trade/session/token"
        );
        assert_eq!(r.header("X-Kite-Version").unwrap().expose(), "3");
        assert_eq!(
            r.header("content-type").unwrap().expose(),
            FORM_CONTENT_TYPE
        );
        assert_eq!(
            r.body.as_ref().unwrap().expose(),
            "api_key=abcdefgh12345678&request_token=Kx7QrTq0wLmN2pZs9VbC4dEf6GhJ8kLa\
             &checksum=6236401aa6745a1acf35af5f9c03a4e29639d1f81d8a7ccd0ec4201fb7562f4a"
        );
        // Neither the secret nor the request token shows in a debug print.
        let shown = format!("{r:?}");
        assert!(
            !shown.contains(SECRET) && !shown.contains(REQUEST),
            "{shown}"
        );
    }

    #[test]
    fn a_good_session_gives_the_token_as_a_secret() {
        let body = r#"{"status":"success","data":{"user_type":"individual","user_id":"AB1234",
            "access_token":"CanaryAccessToken0123456789abcdef","public_token":"p","login_time":"2026-11-23 08:45:10"}}"#;
        let s = parse_session(200, body, "main").unwrap();
        assert_eq!(s.access_token.expose(), "CanaryAccessToken0123456789abcdef");
        assert_eq!(s.user_id.as_deref(), Some("AB1234"));
        assert_eq!(
            s.login_time,
            Some(crate::brokers::kite::expiry::ist(2026, 11, 23, 8, 45, 10))
        );
        assert!(!format!("{s:?}").contains("CanaryAccessToken"));
    }

    #[test]
    fn exchange_errors_are_plain() {
        let err = |status: u16, msg: &str, ty: &str| {
            let body = serde_json::json!({"status": "error", "message": msg, "data": null, "error_type": ty});
            parse_session(status, &body.to_string(), "main").unwrap_err()
        };
        let cases: Vec<(RestError, &str)> = vec![
            (
                err(403, "Invalid `checksum`.", "TokenException"),
                "Kite refused the checksum: the api_secret does not belong to this api_key (check KITE_MAIN_API_SECRET",
            ),
            (
                err(403, "Token is invalid or has expired.", "TokenException"),
                "Kite refused the request token: it is invalid, expired (it lives a few minutes) or already used; log in again and run at once: sudo brokerguard kite-login --account main --request-token <new token>",
            ),
            (
                err(400, "Invalid `api_key`.", "InputException"),
                "Kite does not know this api_key (check KITE_MAIN_API_KEY",
            ),
            (
                err(400, "Missing `request_token`", "InputException"),
                "Kite refused the request token",
            ),
            (
                err(500, "Something went wrong", "GeneralException"),
                "Kite answered HTTP 500 GeneralException: Something went wrong",
            ),
        ];
        for (e, want) in cases {
            assert!(e.to_string().starts_with(want), "{e}");
        }
        assert_eq!(
            err(403, "Invalid `checksum`.", "TokenException").class(),
            ErrorClass::Auth
        );
        let e = parse_session(
            200,
            r#"{"status":"success","data":{"user_id":"x"}}"#,
            "main",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no access_token"));
    }
}
