//! Kite Connect REST, as pure pieces: the requests we send (method, path,
//! headers with credentials as [`Secret`]s, the exact form body) and the
//! classification of what comes back. The HTTP client (`crate::net::http`)
//! sends them; nothing here does I/O.
//!
//! Every Kite response is an envelope (PROTOCOLS.md §3.1):
//! `{"status":"success","data":{…}}` or
//! `{"status":"error","message":"…","error_type":"TokenException"}`, the
//! HTTP status saying the same (403 for `TokenException`). pykiteconnect
//! treats a body with `status: "error"` or any `error_type` as an error,
//! whatever the HTTP status; so do we.
//!
//! `GET /user/profile` with `Authorization: token api_key:access_token` is
//! the credential check (`doctor --online`, the monitor, `check`'s auth
//! layer): a 403 `TokenException` means the access token is dead, and the
//! message tells the operator the one command that fixes it.

use crate::feed::{ErrorClass, FeedError, Layer};
use crate::peertext::short as sanitize;
use crate::secret::Secret;
use serde_json::Value;
use std::fmt;

/// `X-Kite-Version`, sent with every REST request (and the ticker upgrade).
pub const KITE_VERSION: &str = "3";
/// The profile endpoint used to validate an access token.
pub const PROFILE_PATH: &str = "/user/profile";
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One REST request, ready for the HTTP client. Header values are
/// [`Secret`]s (the `Authorization` header carries the access token), and
/// so is the form body (request token, checksum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KiteRequest {
    pub method: Method,
    /// From the REST root, e.g. `/session/token`.
    pub path: &'static str,
    pub headers: Vec<(String, Secret)>,
    /// An `application/x-www-form-urlencoded` body (a `Content-Type`
    /// header for it is in `headers`).
    pub body: Option<Secret>,
}

impl KiteRequest {
    /// The request's URL under `rest_root` (the feed's `rest_url`, default
    /// [`super::DEFAULT_REST_URL`]); no secret is ever in it.
    pub fn url(&self, rest_root: &str) -> String {
        format!("{}{}", rest_root.trim_end_matches('/'), self.path)
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&Secret> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// The `X-Kite-Version` header pair.
pub(crate) fn version_header() -> (String, Secret) {
    ("X-Kite-Version".to_string(), Secret::new(KITE_VERSION))
}

/// `GET /user/profile` authenticated by `api_key:access_token`.
pub fn profile_request(api_key: &Secret, access_token: &Secret) -> KiteRequest {
    KiteRequest {
        method: Method::Get,
        path: PROFILE_PATH,
        headers: vec![
            version_header(),
            (
                "Authorization".to_string(),
                Secret::new(format!(
                    "token {}:{}",
                    api_key.expose(),
                    access_token.expose()
                )),
            ),
        ],
        body: None,
    }
}

/// The `error_type` of a Kite error (pykiteconnect `exceptions.py`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Token,
    Permission,
    Input,
    Order,
    Data,
    Network,
    General,
    User,
    /// A type Kite has not documented (or none given).
    Other(String),
}

impl ErrorType {
    pub fn parse(s: &str) -> ErrorType {
        match s {
            "TokenException" => ErrorType::Token,
            "PermissionException" => ErrorType::Permission,
            "InputException" => ErrorType::Input,
            "OrderException" => ErrorType::Order,
            "DataException" => ErrorType::Data,
            "NetworkException" => ErrorType::Network,
            "GeneralException" => ErrorType::General,
            "UserException" => ErrorType::User,
            other => ErrorType::Other(sanitize(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrorType::Token => "TokenException",
            ErrorType::Permission => "PermissionException",
            ErrorType::Input => "InputException",
            ErrorType::Order => "OrderException",
            ErrorType::Data => "DataException",
            ErrorType::Network => "NetworkException",
            ErrorType::General => "GeneralException",
            ErrorType::User => "UserException",
            ErrorType::Other(s) => s,
        }
    }
}

/// A Kite error envelope, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error_type: ErrorType,
    /// Kite's message, made printable and short (it names fields, never
    /// values: "Invalid `checksum`.").
    pub message: String,
}

/// What a REST exchange ended with, when it did not succeed. Messages are
/// for the operator: plain, with what to do, and never a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestError {
    /// `/session/token` refused the checksum: the api_secret is not this api_key's.
    InvalidChecksum { account: String },
    /// The request token is invalid, expired (it lives a few minutes) or used.
    RequestTokenRejected { account: String },
    /// Kite does not know the api_key.
    InvalidApiKey { account: String },
    /// A 403 `TokenException` on an authenticated call: the access token is dead.
    AccessTokenRejected { account: String },
    /// `PermissionException`: the app or user lacks the permission.
    PermissionDenied { account: String, message: String },
    /// HTTP 429.
    RateLimited,
    /// Another Kite error.
    Api(ApiError),
    /// The reply is not the documented envelope.
    Malformed { status: u16, detail: String },
}

impl RestError {
    /// What the feed engine (or `check`, `doctor`) should do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            RestError::InvalidChecksum { .. }
            | RestError::RequestTokenRejected { .. }
            | RestError::InvalidApiKey { .. }
            | RestError::AccessTokenRejected { .. }
            | RestError::PermissionDenied { .. } => ErrorClass::Auth,
            RestError::RateLimited => ErrorClass::RateLimited { retry_after: None },
            RestError::Api(e) if e.status >= 500 => ErrorClass::Network,
            RestError::Api(e) if e.error_type == ErrorType::Token => ErrorClass::Auth,
            RestError::Api(_) | RestError::Malformed { .. } => ErrorClass::Protocol,
        }
    }

    /// As a feed error at the auth layer.
    pub fn to_feed_error(&self) -> FeedError {
        FeedError::new(self.class(), self.to_string()).at(Layer::Auth)
    }
}

/// Kite refused a request token; `login` is the kite-login command to run
/// again, as the operator types it (with their `--config`, if any).
pub fn request_token_rejected(login: &str) -> String {
    format!(
        "Kite refused the request token: it is invalid, expired (it lives a few minutes) \
         or already used; log in again and run at once: {login} --request-token <new token>"
    )
}

/// The remedy for a dead access token, as the operator types it.
pub fn login_command(account: &str) -> String {
    crate::fixcmd::command(&format!("kite-login --account {account}"))
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::InvalidChecksum { account } => write!(
                f,
                "Kite refused the checksum: the api_secret does not belong to this api_key \
                 (check KITE_{}_API_SECRET against the Kite developer console)",
                account.to_ascii_uppercase()
            ),
            RestError::RequestTokenRejected { account } => {
                f.write_str(&request_token_rejected(&login_command(account)))
            }
            RestError::InvalidApiKey { account } => write!(
                f,
                "Kite does not know this api_key (check KITE_{}_API_KEY against the Kite developer console)",
                account.to_ascii_uppercase()
            ),
            RestError::AccessTokenRejected { account } => write!(
                f,
                "access token rejected (expired?) — run: {}",
                login_command(account)
            ),
            RestError::PermissionDenied { message, .. } => {
                write!(f, "Kite denied permission: {message}")
            }
            RestError::RateLimited => {
                f.write_str("Kite answered HTTP 429 (too many requests); retrying later")
            }
            RestError::Api(e) => write!(
                f,
                "Kite answered HTTP {} {}: {}",
                e.status,
                e.error_type.as_str(),
                e.message
            ),
            RestError::Malformed { status, detail } => {
                write!(
                    f,
                    "Kite answered HTTP {status} with an unexpected body: {detail}"
                )
            }
        }
    }
}

impl std::error::Error for RestError {}

/// Unwraps the envelope: `Ok(data)` on success, the error otherwise.
pub fn parse_envelope(status: u16, body: &str) -> Result<Value, Result<ApiError, RestError>> {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if status == 429 => return Err(Err(RestError::RateLimited)),
        Err(e) => {
            return Err(Err(RestError::Malformed {
                status,
                detail: format!("not JSON ({e})"),
            }));
        }
    };
    let kind = v.get("status").and_then(Value::as_str);
    let error_type = v.get("error_type").and_then(Value::as_str);
    if kind == Some("error") || error_type.is_some() || !(200..300).contains(&status) {
        if status == 429 {
            return Err(Err(RestError::RateLimited));
        }
        let Some(error_type) = error_type else {
            return Err(Err(RestError::Malformed {
                status,
                detail: "an error without an error_type".into(),
            }));
        };
        let message = v
            .get("message")
            .and_then(Value::as_str)
            .map(sanitize)
            .unwrap_or_default();
        return Err(Ok(ApiError {
            status,
            error_type: ErrorType::parse(error_type),
            message,
        }));
    }
    if kind != Some("success") {
        return Err(Err(RestError::Malformed {
            status,
            detail: "no \"status\": \"success\"".into(),
        }));
    }
    match v.get("data") {
        Some(d) if d.is_object() => Ok(d.clone()),
        _ => Err(Err(RestError::Malformed {
            status,
            detail: "no \"data\" object".into(),
        })),
    }
}

/// What `/user/profile` says about the account behind a working token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub user_id: String,
    pub user_name: Option<String>,
    pub broker: Option<String>,
}

/// Classifies the reply to [`profile_request`]. `account` names the
/// feed's account for the remedy in the message.
pub fn parse_profile(status: u16, body: &str, account: &str) -> Result<Profile, RestError> {
    let data = match parse_envelope(status, body) {
        Ok(d) => d,
        Err(Err(e)) => return Err(e),
        Err(Ok(api)) => return Err(classify_authenticated(api, account)),
    };
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(sanitize);
    let Some(user_id) = text("user_id") else {
        return Err(RestError::Malformed {
            status,
            detail: "the profile has no user_id".into(),
        });
    };
    Ok(Profile {
        user_id,
        user_name: text("user_name"),
        broker: text("broker"),
    })
}

/// An error from a call authenticated by an access token.
pub fn classify_authenticated(api: ApiError, account: &str) -> RestError {
    let account = account.to_string();
    match api.error_type {
        ErrorType::Token => RestError::AccessTokenRejected { account },
        ErrorType::Permission => RestError::PermissionDenied {
            account,
            message: api.message,
        },
        _ if api.status == 403 => RestError::AccessTokenRejected { account },
        _ => RestError::Api(api),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY_KEY: &str = "canarykey0000001";
    const CANARY_TOKEN: &str = "CanaryAccessToken9f2e4c1b7a3d5e6f";

    #[test]
    fn profile_request_carries_the_token_header() {
        let r = profile_request(&Secret::new(CANARY_KEY), &Secret::new(CANARY_TOKEN));
        assert_eq!(r.method, Method::Get);
        assert_eq!(
            r.url("https://api.kite.trade/"),
            "https://api.kite.trade/user/profile"
        );
        assert_eq!(r.header("x-kite-version").unwrap().expose(), "3");
        assert_eq!(
            r.header("Authorization").unwrap().expose(),
            format!("token {CANARY_KEY}:{CANARY_TOKEN}")
        );
        assert!(r.body.is_none());
        assert!(!format!("{r:?}").contains(CANARY_TOKEN));
    }

    #[test]
    fn profile_replies_are_classified() {
        let ok = r#"{"status":"success","data":{"user_id":"AB1234","user_name":"A B","broker":"ZERODHA","email":"x@y"}}"#;
        assert_eq!(
            parse_profile(200, ok, "main"),
            Ok(Profile {
                user_id: "AB1234".into(),
                user_name: Some("A B".into()),
                broker: Some("ZERODHA".into())
            })
        );
        let expired = r#"{"status":"error","message":"Incorrect `api_key` or `access_token`.","data":null,"error_type":"TokenException"}"#;
        let cases: Vec<(u16, &str, ErrorClass, &str)> = vec![
            (
                403,
                expired,
                ErrorClass::Auth,
                "access token rejected (expired?) — run: sudo brokerguard kite-login --account main",
            ),
            (
                403,
                r#"{"status":"error","message":"Insufficient permission","error_type":"PermissionException"}"#,
                ErrorClass::Auth,
                "Kite denied permission: Insufficient permission",
            ),
            (
                429,
                "Too many requests",
                ErrorClass::RateLimited { retry_after: None },
                "HTTP 429",
            ),
            (
                429,
                r#"{"status":"error","message":"Too many requests","error_type":"NetworkException"}"#,
                ErrorClass::RateLimited { retry_after: None },
                "HTTP 429",
            ),
            (
                502,
                r#"{"status":"error","message":"OMS down","error_type":"DataException"}"#,
                ErrorClass::Network,
                "HTTP 502 DataException: OMS down",
            ),
            (200, "<html>", ErrorClass::Protocol, "not JSON"),
            (
                200,
                r#"{"status":"success"}"#,
                ErrorClass::Protocol,
                "no \"data\" object",
            ),
            (
                200,
                r#"{"status":"success","data":{}}"#,
                ErrorClass::Protocol,
                "no user_id",
            ),
            (
                500,
                r#"{"status":"error"}"#,
                ErrorClass::Protocol,
                "without an error_type",
            ),
            // An error_type wins over a 200, as in pykiteconnect.
            (
                200,
                r#"{"status":"success","error_type":"TokenException","message":"x"}"#,
                ErrorClass::Auth,
                "access token rejected",
            ),
        ];
        for (status, body, class, needle) in cases {
            let e = parse_profile(status, body, "main").unwrap_err();
            assert_eq!(e.class(), class, "{status} {body}");
            assert!(e.to_string().contains(needle), "{status} {body}: {e}");
            let fe = e.to_feed_error();
            assert_eq!(fe.layer, Some(Layer::Auth));
            assert_eq!(fe.class, class);
        }
    }

    #[test]
    fn peer_messages_are_kept_printable() {
        let body = "{\"status\":\"error\",\"message\":\"line1\\nline2\",\"error_type\":\"InputException\"}";
        let e = parse_profile(400, body, "main").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Kite answered HTTP 400 InputException: line1 line2"
        );
    }
}
