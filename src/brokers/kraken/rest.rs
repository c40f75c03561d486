//! Kraken's private REST calls as pure pieces: the request (path, the exact
//! form body, the `API-Key`/`API-Sign` headers as [`Secret`]s) and the
//! classification of the answer (`{"error":[…],"result":…}`) into a result
//! or a typed [`KrakenError`] with its [`ErrorClass`] (PROTOCOLS.md §1.1–1.6).
//! No I/O: the HTTP client sends [`PrivateRequest`]s and hands the status
//! and body back to [`parse_response`].

use super::sign::{ApiSecret, api_sign};
use crate::feed::{ErrorClass, FeedError, Layer};
use crate::peertext::short as sanitize;
use crate::secret::Secret;
use serde_json::Value;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Where private methods live under the REST base URL.
pub const PRIVATE_PREFIX: &str = "/0/private/";
/// The body's content type.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// Kraken says a temporary lockout "typically last[s] approximately 15 minutes".
pub const LOCKOUT_WAIT: Duration = Duration::from_secs(15 * 60);

/// One signed private call, ready for the HTTP client.
#[derive(Clone, Debug)]
pub struct PrivateRequest {
    /// The method, e.g. `Balance`.
    pub method: String,
    /// `/0/private/<Method>`: the signed path, appended to the REST base URL.
    pub path: String,
    /// The exact form body that was signed (`nonce=<n>&…`).
    pub body: String,
    pub nonce: u64,
    /// `API-Key` and `API-Sign`, in that order.
    pub headers: Vec<(String, Secret)>,
}

impl PrivateRequest {
    /// The full URL under `rest_base` (e.g. `https://api.kraken.com`).
    pub fn url(&self, rest_base: &str) -> String {
        format!("{}{}", rest_base.trim_end_matches('/'), self.path)
    }
}

/// A request that cannot be built (a bug in the caller, not peer data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The method name is not letters only (it becomes part of the path).
    BadMethod { len: usize },
    /// `nonce` is added by the builder and must not be among the parameters.
    NonceParam,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadMethod { len } => write!(
                f,
                "a Kraken method name is letters only, e.g. Balance (got {len} characters)"
            ),
            RequestError::NonceParam => f.write_str("the nonce is added by the request builder"),
        }
    }
}

impl std::error::Error for RequestError {}

/// `application/x-www-form-urlencoded` as Kraken's own example writes it
/// (Python's `urllib.parse.urlencode`: letters, digits and `_.-~` as they
/// are, a space as `+`, every other byte as `%XX` in upper case).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus(k, &mut out);
        out.push('=');
        quote_plus(v, &mut out);
    }
    out
}

fn quote_plus(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Builds and signs `POST /0/private/<method>` with body
/// `nonce=<nonce>&<params…>` (in the order given).
pub fn private_request(
    method: &str,
    params: &[(&str, &str)],
    nonce: u64,
    api_key: &Secret,
    secret: &ApiSecret,
) -> Result<PrivateRequest, RequestError> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(RequestError::BadMethod { len: method.len() });
    }
    if params.iter().any(|(k, _)| *k == "nonce") {
        return Err(RequestError::NonceParam);
    }
    let nonce_text = nonce.to_string();
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
    pairs.push(("nonce", &nonce_text));
    pairs.extend_from_slice(params);
    let body = form_encode(&pairs);
    let path = format!("{PRIVATE_PREFIX}{method}");
    let sign = api_sign(&path, nonce, &body, secret);
    Ok(PrivateRequest {
        method: method.to_string(),
        path,
        body,
        nonce,
        headers: vec![
            ("API-Key".to_string(), api_key.clone()),
            ("API-Sign".to_string(), sign),
        ],
    })
}

/// A successful answer: `result`, and any warnings (`W…` entries) that
/// came with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub result: Value,
    pub warnings: Vec<String>,
}

/// What Kraken (or the way to it) answered instead of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KrakenError {
    /// `EAPI:Invalid nonce`: a nonce not above the last one Kraken saw for the key.
    InvalidNonce,
    /// `EAPI:Invalid key`.
    InvalidKey,
    /// `EAPI:Invalid signature`.
    InvalidSignature,
    /// `EGeneral:Permission denied`.
    PermissionDenied,
    /// `EGeneral:Temporary lockout`.
    TemporaryLockout,
    /// `EAPI:Rate limit exceeded`.
    RateLimitExceeded,
    /// `EService: Throttled: <unix time>`: retry after that time.
    Throttled { until_unix: Option<u64> },
    /// `EService:Unavailable`.
    ServiceUnavailable,
    /// `EService:Busy`.
    ServiceBusy,
    /// Any other error, as Kraken wrote it (sanitized, long tokens redacted).
    Other { errors: String },
    /// An HTTP error status without a Kraken answer (a proxy, Cloudflare).
    Http { status: u16 },
    /// A body that is not Kraken's `{"error":[…],"result":…}`.
    Malformed { detail: String },
}

impl KrakenError {
    /// Kraken's own code for the error (for status lines and alert reasons).
    pub fn code(&self) -> &str {
        match self {
            KrakenError::InvalidNonce => "EAPI:Invalid nonce",
            KrakenError::InvalidKey => "EAPI:Invalid key",
            KrakenError::InvalidSignature => "EAPI:Invalid signature",
            KrakenError::PermissionDenied => "EGeneral:Permission denied",
            KrakenError::TemporaryLockout => "EGeneral:Temporary lockout",
            KrakenError::RateLimitExceeded => "EAPI:Rate limit exceeded",
            KrakenError::Throttled { .. } => "EService:Throttled",
            KrakenError::ServiceUnavailable => "EService:Unavailable",
            KrakenError::ServiceBusy => "EService:Busy",
            KrakenError::Other { errors } => errors,
            KrakenError::Http { .. } => "http",
            KrakenError::Malformed { .. } => "malformed",
        }
    }

    /// The class that decides what happens next. `now` (the response's
    /// `Date` when known) turns a throttle deadline into a wait.
    pub fn class(&self, now: SystemTime) -> ErrorClass {
        match self {
            KrakenError::InvalidNonce
            | KrakenError::InvalidKey
            | KrakenError::InvalidSignature
            | KrakenError::PermissionDenied => ErrorClass::Auth,
            KrakenError::TemporaryLockout => ErrorClass::RateLimited {
                retry_after: Some(LOCKOUT_WAIT),
            },
            KrakenError::Throttled {
                until_unix: Some(until),
            } => {
                let now = crate::timefmt::unix_secs(now);
                ErrorClass::RateLimited {
                    retry_after: Some(Duration::from_secs(until.saturating_sub(now).max(1))),
                }
            }
            KrakenError::RateLimitExceeded
            | KrakenError::Throttled { until_unix: None }
            | KrakenError::ServiceUnavailable
            | KrakenError::ServiceBusy
            | KrakenError::Http { status: 429 } => ErrorClass::RateLimited { retry_after: None },
            KrakenError::Http { status } if *status >= 500 => ErrorClass::Network,
            KrakenError::Other { .. }
            | KrakenError::Http { .. }
            | KrakenError::Malformed { .. } => ErrorClass::Protocol,
        }
    }

    /// The feed error for the engine, at the auth layer (REST calls are
    /// how a Kraken feed authenticates).
    pub fn to_feed_error(&self, now: SystemTime) -> FeedError {
        FeedError::new(self.class(now), self.to_string()).at(Layer::Auth)
    }

    /// A nonce conflict: one fresh draw and a retry may cure it.
    pub fn is_nonce_conflict(&self) -> bool {
        *self == KrakenError::InvalidNonce
    }

    /// An error that says something about the key set in use (nonce
    /// conflicts, lockouts, rejections, the per-key rate limit), as opposed
    /// to the exchange or the network.
    pub fn is_key_error(&self) -> bool {
        matches!(
            self,
            KrakenError::InvalidNonce
                | KrakenError::InvalidKey
                | KrakenError::InvalidSignature
                | KrakenError::PermissionDenied
                | KrakenError::TemporaryLockout
                | KrakenError::RateLimitExceeded
        )
    }
}

impl fmt::Display for KrakenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KrakenError::InvalidNonce => f.write_str(
                "Kraken rejected the nonce (EAPI:Invalid nonce): another client of the same API key \
                 sent a larger one first; give each program its own API key",
            ),
            KrakenError::InvalidKey => write!(
                f,
                "Kraken does not know the API key (EAPI:Invalid key): it was mistyped, deleted or \
                 replaced; {}",
                crate::brokers::set_credential_hint()
            ),
            KrakenError::InvalidSignature => f.write_str(
                "Kraken rejected the request signature (EAPI:Invalid signature): the private key \
                 does not belong to this API key, or was copied wrongly",
            ),
            KrakenError::PermissionDenied => f.write_str(
                "Kraken refused the call (EGeneral:Permission denied): the API key lacks a permission; \
                 Balance needs \"Funds permissions - Query\", GetWebSocketsToken needs \
                 \"WebSocket interface - On\"",
            ),
            KrakenError::TemporaryLockout => f.write_str(
                "Kraken locked the API key out (EGeneral:Temporary lockout, typically about 15 minutes) \
                 after too many failed calls; waiting before trying again",
            ),
            KrakenError::RateLimitExceeded => f.write_str(
                "Kraken's REST call counter for this API key is full (EAPI:Rate limit exceeded); \
                 waiting for it to decay",
            ),
            KrakenError::Throttled {
                until_unix: Some(t),
            } => write!(
                f,
                "Kraken is throttling concurrent requests (EService: Throttled) until {}",
                crate::timefmt::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(*t))
            ),
            KrakenError::Throttled { until_unix: None } => {
                f.write_str("Kraken is throttling concurrent requests (EService: Throttled)")
            }
            KrakenError::ServiceUnavailable => f.write_str(
                "Kraken says its API is unavailable (EService:Unavailable); waiting before trying again",
            ),
            KrakenError::ServiceBusy => f.write_str(
                "Kraken says its API is busy (EService:Busy); waiting before trying again",
            ),
            KrakenError::Other { errors } => write!(f, "Kraken answered with an error: {errors}"),
            KrakenError::Http { status } => {
                write!(f, "the Kraken REST endpoint answered HTTP {status} without an API reply")
            }
            KrakenError::Malformed { detail } => {
                write!(f, "the Kraken REST endpoint sent an answer that is not Kraken's: {detail}")
            }
        }
    }
}

impl std::error::Error for KrakenError {}

/// Classifies one entry of `error`.
pub fn classify_error(entry: &str) -> KrakenError {
    let e = entry.trim();
    match e {
        "EAPI:Invalid nonce" => return KrakenError::InvalidNonce,
        "EAPI:Invalid key" => return KrakenError::InvalidKey,
        "EAPI:Invalid signature" => return KrakenError::InvalidSignature,
        "EGeneral:Permission denied" => return KrakenError::PermissionDenied,
        "EGeneral:Temporary lockout" => return KrakenError::TemporaryLockout,
        "EAPI:Rate limit exceeded" => return KrakenError::RateLimitExceeded,
        _ => {}
    }
    if let Some(rest) = e.strip_prefix("EService:") {
        let rest = rest.trim();
        if let Some(after) = rest.strip_prefix("Throttled") {
            let digits = after.trim_start_matches([':', ' ']).trim();
            return KrakenError::Throttled {
                until_unix: digits.parse().ok(),
            };
        }
        match rest {
            "Unavailable" => return KrakenError::ServiceUnavailable,
            "Busy" => return KrakenError::ServiceBusy,
            _ => {}
        }
    }
    KrakenError::Other {
        errors: redact(&sanitize(e)),
    }
}

/// Replaces every run of 32 or more base64 characters (what a key, a
/// secret, a token or a signature looks like) with `[redacted]`, so an
/// error that echoes one cannot carry it into a log.
pub fn redact(s: &str) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 32 {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if is_b64(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Classifies an answer to a private call. Errors win over `result`; an
/// `error` array of warnings only (`W…`) is a success. A body that is not
/// Kraken's JSON is judged by its HTTP status.
pub fn parse_response(http_status: u16, body: &str) -> Result<Reply, KrakenError> {
    let parsed: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if !(200..300).contains(&http_status) => {
            return Err(KrakenError::Http {
                status: http_status,
            });
        }
        Err(e) => {
            return Err(KrakenError::Malformed {
                detail: format!("not JSON ({} bytes, HTTP {http_status}): {}", body.len(), e),
            });
        }
    };
    let Some(obj) = parsed.as_object() else {
        return Err(KrakenError::Malformed {
            detail: "not a JSON object".into(),
        });
    };
    let entries: Vec<&str> = match obj.get("error") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut v = Vec::with_capacity(a.len());
            for item in a {
                match item.as_str() {
                    Some(s) => v.push(s),
                    None => {
                        return Err(KrakenError::Malformed {
                            detail: "an entry of \"error\" is not a string".into(),
                        });
                    }
                }
            }
            v
        }
        Some(_) => {
            return Err(KrakenError::Malformed {
                detail: "\"error\" is not an array".into(),
            });
        }
    };
    let (warnings, errors): (Vec<&str>, Vec<&str>) = entries
        .into_iter()
        .partition(|e| e.trim_start().starts_with('W'));
    if !errors.is_empty() {
        // The first recognised error decides; unknown ones are kept together.
        let classified: Vec<KrakenError> = errors.iter().map(|e| classify_error(e)).collect();
        if let Some(known) = classified
            .iter()
            .find(|k| !matches!(k, KrakenError::Other { .. }))
        {
            return Err(known.clone());
        }
        return Err(KrakenError::Other {
            errors: redact(&sanitize(&errors.join("; "))),
        });
    }
    if !(200..300).contains(&http_status) {
        return Err(KrakenError::Http {
            status: http_status,
        });
    }
    match obj.get("result") {
        Some(result) if !result.is_null() => Ok(Reply {
            result: result.clone(),
            warnings: warnings.into_iter().map(|w| redact(&sanitize(w))).collect(),
        }),
        _ => Err(KrakenError::Malformed {
            detail: "no \"result\" and no error".into(),
        }),
    }
}

/// A WebSocket token from `GetWebSocketsToken`.
#[derive(Clone, Debug)]
pub struct WsToken {
    pub token: Secret,
    /// How long it may be used to connect (Kraken: 900 s).
    pub expires: Option<Duration>,
}

/// Reads `{"token":"…","expires":900}` out of a `GetWebSocketsToken` result.
pub fn parse_ws_token(result: &Value) -> Result<WsToken, KrakenError> {
    let token = result
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| KrakenError::Malformed {
            detail: "GetWebSocketsToken result has no \"token\" string".into(),
        })?;
    Ok(WsToken {
        token: Secret::new(token),
        expires: result
            .get("expires")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    })
}

/// Reads a `Balance` result: asset code → balance as the decimal text Kraken sent.
pub fn parse_balance(result: &Value) -> Result<Vec<(String, String)>, KrakenError> {
    let obj = result.as_object().ok_or_else(|| KrakenError::Malformed {
        detail: "Balance result is not an object".into(),
    })?;
    obj.iter()
        .map(|(asset, v)| match v {
            Value::String(s) => Ok((asset.clone(), s.clone())),
            Value::Number(n) => Ok((asset.clone(), n.to_string())),
            _ => Err(KrakenError::Malformed {
                detail: format!("Balance of {} is not a decimal", sanitize(asset)),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const DOC_SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    fn secret() -> ApiSecret {
        ApiSecret::from_base64(&Secret::new(DOC_SECRET)).unwrap()
    }

    #[test]
    fn builds_the_published_example_byte_for_byte() {
        let key = Secret::new("doc-api-key");
        let req = private_request(
            "AddOrder",
            &[
                ("ordertype", "limit"),
                ("pair", "XBTUSD"),
                ("price", "37500"),
                ("type", "buy"),
                ("volume", "1.25"),
            ],
            1616492376594,
            &key,
            &secret(),
        )
        .unwrap();
        assert_eq!(req.path, "/0/private/AddOrder");
        assert_eq!(
            req.body,
            "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
        );
        assert_eq!(req.headers[0].0, "API-Key");
        assert_eq!(req.headers[0].1.expose(), "doc-api-key");
        assert_eq!(req.headers[1].0, "API-Sign");
        assert_eq!(
            req.headers[1].1.expose(),
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
        assert_eq!(
            req.url("https://api.kraken.com/"),
            "https://api.kraken.com/0/private/AddOrder"
        );
        // Debug of a request shows fingerprints only.
        let shown = format!("{req:?}");
        assert!(
            !shown.contains("doc-api-key") && !shown.contains("4/dp"),
            "{shown}"
        );
    }

    #[test]
    fn balance_body_is_the_nonce_alone() {
        let req = private_request("Balance", &[], 7, &Secret::new("k"), &secret()).unwrap();
        assert_eq!(req.body, "nonce=7");
        assert_eq!(req.path, "/0/private/Balance");
    }

    #[test]
    fn form_encoding_matches_urllib_urlencode() {
        // urllib.parse.urlencode({"a b": "x&y=z", "t": "~_.-", "u": "é/+"})
        assert_eq!(
            form_encode(&[("a b", "x&y=z"), ("t", "~_.-"), ("u", "é/+")]),
            "a+b=x%26y%3Dz&t=~_.-&u=%C3%A9%2F%2B"
        );
        assert_eq!(form_encode(&[]), "");
    }

    #[test]
    fn bad_requests_are_refused() {
        let k = Secret::new("k");
        for m in ["", "Bal/ance", "../Balance", "Balance?x=1"] {
            assert!(matches!(
                private_request(m, &[], 1, &k, &secret()),
                Err(RequestError::BadMethod { .. })
            ));
        }
        assert_eq!(
            private_request("Balance", &[("nonce", "1")], 1, &k, &secret()).unwrap_err(),
            RequestError::NonceParam
        );
    }

    /// (HTTP status, body, Ok or the error and its class)
    type ResponseRow = (u16, &'static str, Result<(), (KrakenError, ErrorClass)>);

    #[test]
    fn responses_map_to_results_and_classes() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let rl = |d: Option<u64>| ErrorClass::RateLimited {
            retry_after: d.map(Duration::from_secs),
        };
        let table: &[ResponseRow] = &[
            (200, r#"{"error":[],"result":{"ZUSD":"1.0000"}}"#, Ok(())),
            (
                200,
                r#"{"error":["WGeneral:Something soon"],"result":{}}"#,
                Ok(()),
            ),
            (
                200,
                r#"{"error":["EAPI:Invalid nonce"]}"#,
                Err((KrakenError::InvalidNonce, ErrorClass::Auth)),
            ),
            (
                200,
                r#"{"error":["EAPI:Invalid key"]}"#,
                Err((KrakenError::InvalidKey, ErrorClass::Auth)),
            ),
            (
                200,
                r#"{"error":["EAPI:Invalid signature"]}"#,
                Err((KrakenError::InvalidSignature, ErrorClass::Auth)),
            ),
            (
                200,
                r#"{"error":["EGeneral:Permission denied"]}"#,
                Err((KrakenError::PermissionDenied, ErrorClass::Auth)),
            ),
            (
                200,
                r#"{"error":["EGeneral:Temporary lockout"]}"#,
                Err((KrakenError::TemporaryLockout, rl(Some(900)))),
            ),
            (
                200,
                r#"{"error":["EAPI:Rate limit exceeded"]}"#,
                Err((KrakenError::RateLimitExceeded, rl(None))),
            ),
            (
                200,
                r#"{"error":["EService: Throttled: 1700000042"]}"#,
                Err((
                    KrakenError::Throttled {
                        until_unix: Some(1_700_000_042),
                    },
                    rl(Some(42)),
                )),
            ),
            (
                200,
                r#"{"error":["EService:Throttled:1699999000"]}"#,
                Err((
                    KrakenError::Throttled {
                        until_unix: Some(1_699_999_000),
                    },
                    rl(Some(1)),
                )),
            ),
            (
                200,
                r#"{"error":["EService:Unavailable"]}"#,
                Err((KrakenError::ServiceUnavailable, rl(None))),
            ),
            (
                200,
                r#"{"error":["EService:Busy"]}"#,
                Err((KrakenError::ServiceBusy, rl(None))),
            ),
            (
                200,
                r#"{"error":["EQuery:Unknown asset pair"]}"#,
                Err((
                    KrakenError::Other {
                        errors: "EQuery:Unknown asset pair".into(),
                    },
                    ErrorClass::Protocol,
                )),
            ),
            (
                200,
                r#"{"error":["EFoo:one","EAPI:Invalid key"]}"#,
                Err((KrakenError::InvalidKey, ErrorClass::Auth)),
            ),
            (
                520,
                "<html>cloudflare</html>",
                Err((KrakenError::Http { status: 520 }, ErrorClass::Network)),
            ),
            (
                429,
                "Too Many Requests",
                Err((KrakenError::Http { status: 429 }, rl(None))),
            ),
            (
                403,
                "forbidden",
                Err((KrakenError::Http { status: 403 }, ErrorClass::Protocol)),
            ),
        ];
        for (status, body, want) in table {
            let got = parse_response(*status, body);
            match (got, want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err((we, wc))) => {
                    assert_eq!(&e, we, "{body}");
                    assert_eq!(e.class(now), *wc, "{body}");
                    let fe = e.to_feed_error(now);
                    assert_eq!(fe.layer, Some(Layer::Auth));
                    assert!(!fe.message.is_empty());
                }
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"error":"EAPI:Invalid key"}"#,
            r#"{"error":[1]}"#,
            r#"{"error":[],"result":null}"#,
            "{\"error\":[\"",
        ] {
            let e = parse_response(200, body).unwrap_err();
            assert!(matches!(e, KrakenError::Malformed { .. }), "{body}: {e:?}");
            assert_eq!(e.class(SystemTime::now()), ErrorClass::Protocol);
        }
    }

    #[test]
    fn unknown_errors_are_kept_but_never_carry_a_key() {
        let canary_key = base64::engine::general_purpose::STANDARD.encode([0x5au8; 42]);
        let body = format!(r#"{{"error":["EGeneral:Invalid arguments:key {canary_key}\n"]}}"#);
        let e = parse_response(200, &body).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("EGeneral:Invalid arguments:key [redacted]"),
            "{shown}"
        );
        assert!(!shown.contains(&canary_key));
        assert!(!shown.contains('\n'));
        let fe = e.to_feed_error(SystemTime::now());
        assert!(!fe.message.contains(&canary_key));
    }

    #[test]
    fn ws_token_and_balance_results() {
        let t = parse_ws_token(&serde_json::json!({"token": "tok-123", "expires": 900})).unwrap();
        assert_eq!(t.token.expose(), "tok-123");
        assert_eq!(t.expires, Some(Duration::from_secs(900)));
        assert!(!format!("{t:?}").contains("tok-123"));
        assert!(parse_ws_token(&serde_json::json!({"expires": 900})).is_err());
        assert!(parse_ws_token(&serde_json::json!({"token": ""})).is_err());
        let b = parse_balance(&serde_json::json!({"ZUSD": "171288.6158", "XXBT": "0.0100000000"}))
            .unwrap();
        assert!(b.contains(&("XXBT".into(), "0.0100000000".into())));
        assert!(parse_balance(&serde_json::json!({"ZUSD": [1]})).is_err());
        assert!(parse_balance(&serde_json::json!([1])).is_err());
    }
}
