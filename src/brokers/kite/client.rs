//! Kite's REST calls over the agent's HTTP client (`crate::net::http`):
//! the pure requests of [`super::rest`] and [`super::login`] sent, and
//! their replies classified. Transport failures are kept apart from Kite's
//! answers, so an outage is never mistaken for a rejected credential.

use super::login::{Session, parse_session, session_token_request};
use super::rest::{KiteRequest, Method, Profile, RestError, parse_profile, profile_request};
use crate::feed::{FeedError, Layer};
use crate::net::NetError;
use crate::net::http::{Body, HttpClient, Request};
use crate::secret::Secret;
use std::fmt;

/// What a REST call ended with, when it did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// No answer: DNS, TCP, TLS, a timeout (the message names the phase
    /// and the redacted URL).
    Net(NetError),
    /// Kite answered, and not with success.
    Kite(RestError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Net(e) => write!(f, "no answer from Kite's REST API: {e}"),
            CallError::Kite(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// As a feed error at the auth layer: Kite's class, or network.
    pub fn to_feed_error(&self) -> FeedError {
        match self {
            CallError::Net(_) => FeedError::network(self.to_string()).at(Layer::Auth),
            CallError::Kite(e) => e.to_feed_error(),
        }
    }
}

/// `req` as the HTTP client's request under `rest_root`.
pub fn to_http(req: &KiteRequest, rest_root: &str) -> Request {
    let url = req.url(rest_root);
    let body = req
        .body
        .as_ref()
        .map_or(Body::Empty, |b| Body::Form(b.expose().to_string()));
    let mut out = match req.method {
        Method::Get => Request::get(url),
        Method::Post => Request::post(url, body),
    };
    // The client sets a body's Content-Type itself.
    out.headers = req
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
        .cloned()
        .collect();
    out
}

/// `GET /user/profile` with `Authorization: token api_key:access_token`.
pub fn profile(
    client: &HttpClient,
    rest_root: &str,
    api_key: &Secret,
    access_token: &Secret,
    account: &str,
) -> Result<Profile, CallError> {
    let resp = client
        .send(&to_http(&profile_request(api_key, access_token), rest_root))
        .map_err(CallError::Net)?;
    parse_profile(resp.status, &resp.body, account).map_err(CallError::Kite)
}

/// `POST /session/token`: the request token exchanged for the day's session.
pub fn exchange(
    client: &HttpClient,
    rest_root: &str,
    api_key: &Secret,
    request_token: &Secret,
    api_secret: &Secret,
    account: &str,
) -> Result<Session, CallError> {
    let req = session_token_request(api_key, request_token, api_secret);
    let resp = client
        .send(&to_http(&req, rest_root))
        .map_err(CallError::Net)?;
    parse_session(resp.status, &resp.body, account).map_err(CallError::Kite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_headers_and_form_body() {
        let r = session_token_request(&Secret::new("k"), &Secret::new("r"), &Secret::new("s"));
        let h = to_http(&r, "http://127.0.0.1:9/");
        assert_eq!(h.url, "http://127.0.0.1:9/session/token");
        assert!(
            matches!(&h.body, Body::Form(b) if b.starts_with("api_key=k&request_token=r&checksum="))
        );
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Kite-Version"]);
        let p = to_http(
            &profile_request(&Secret::new("k"), &Secret::new("t")),
            "https://api.kite.trade",
        );
        assert_eq!(p.url, "https://api.kite.trade/user/profile");
        assert!(matches!(p.body, Body::Empty));
        assert_eq!(p.headers.len(), 2);
        // The debug print shows neither the token nor the request token.
        assert!(!format!("{h:?}{p:?}").contains("token k:t"));
    }
}
