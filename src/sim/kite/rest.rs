//! The simulator's Kite Connect REST: a small HTTP/1.1 server (one request
//! per connection, answered with `Connection: close`) with the two calls a
//! login and a credential check need, in Kite's documented shapes:
//!
//! - `POST /session/token` (form: `api_key`, `request_token`, `checksum`):
//!   the checksum must be hex SHA-256(api_key + request_token + api_secret);
//!   each request token works once. Success issues a new access token that
//!   the ticker and `/user/profile` accept from then on.
//! - `GET /user/profile` with `Authorization: token api_key:access_token`.
//!
//! Errors are `{"status":"error","message":…,"data":null,"error_type":…}`:
//! a wrong checksum 403 `TokenException` "Invalid `checksum`."; an unknown
//! or used request token 403 `TokenException` "Token is invalid or has
//! expired."; an unknown api_key 400 `InputException` "Invalid `api_key`."
//! (an assumption: Kite's exact answer is not documented); a bad access
//! token 403 `TokenException` "Incorrect `api_key` or `access_token`.".
//! A simulator rule beyond Kite's documentation: a request without
//! `X-Kite-Version: 3` is refused (400 `InputException`), so a client that
//! forgets the header is caught here.

use super::server::{Redeem, Shared};
use super::ticker::{percent_decode, query_value};
use crate::sim::shared::net::is_timeout;
use crate::sim::shared::{Host, TICK};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REQUEST_LIMIT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a request head and body, or says why it cannot.
pub(crate) fn parse_request(raw: &[u8]) -> Result<Option<HttpRequest>, String> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        if raw.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {request_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: String::new(),
    };
    let length: usize = match req.header("content-length") {
        None => 0,
        Some(v) => v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?,
    };
    if length > MAX_BODY {
        return Err("body too large".into());
    }
    let body_start = head_end + 4;
    if raw.len() < body_start + length {
        return Ok(None);
    }
    req.body = String::from_utf8_lossy(&raw[body_start..body_start + length]).into_owned();
    Ok(Some(req))
}

/// An answer: status and a JSON body.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

fn error(status: u16, error_type: &str, message: &str) -> Reply {
    Reply {
        status,
        body: json!({"status": "error", "message": message, "data": null, "error_type": error_type}),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` in IST (UTC+05:30), as Kite writes `login_time`.
fn ist_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
        + 19_800;
    let (y, m, d) = crate::timefmt::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

fn user(shared: &Shared) -> serde_json::Map<String, Value> {
    let v = json!({
        "user_id": shared.user_id,
        "user_type": "individual",
        "email": "sim@example.invalid",
        "user_name": "Simulated User",
        "user_shortname": "Sim",
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BSE", "BFO", "CDS", "BCD", "MCX"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": null,
        "meta": {"demat_consent": "consent"}
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Answers one request (pure but for the shared token state).
pub(crate) fn answer(shared: &Shared, req: &HttpRequest) -> Reply {
    shared.stats.update(|s| s.rest_requests += 1);
    if let Some(status) = shared.rest_fault() {
        let (ty, msg) = match status {
            429 => ("NetworkException", "Too many requests"),
            502 => ("DataException", "Couldn't parse the response from the OMS"),
            503 | 504 => ("NetworkException", "The API is unavailable"),
            _ => ("GeneralException", "Something went wrong"),
        };
        return error(status, ty, msg);
    }
    if req.header("x-kite-version") != Some("3") {
        return error(
            400,
            "InputException",
            "the X-Kite-Version: 3 header is missing (simulator rule)",
        );
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/session/token") => session_token(shared, req),
        ("GET", "/user/profile") => profile(shared, req),
        (_, "/session/token" | "/user/profile") => {
            error(405, "GeneralException", "Method not allowed")
        }
        _ => error(404, "GeneralException", "Route not found"),
    }
}

fn session_token(shared: &Shared, req: &HttpRequest) -> Reply {
    let field = |name: &str| query_value(&req.body, name).filter(|v| !v.is_empty());
    let refuse = |r: Reply| {
        let message = r.body["message"].as_str().unwrap_or("").to_string();
        shared.stats.update(|s| s.session_refusals.push(message));
        r
    };
    let Some(api_key) = field("api_key") else {
        return refuse(error(400, "InputException", "Missing `api_key`"));
    };
    let Some(request_token) = field("request_token") else {
        return refuse(error(400, "InputException", "Missing `request_token`"));
    };
    let Some(checksum) = field("checksum") else {
        return refuse(error(400, "InputException", "Missing `checksum`"));
    };
    if api_key != shared.api_key {
        return refuse(error(400, "InputException", "Invalid `api_key`."));
    }
    let want = hex_sha256(&format!("{api_key}{request_token}{}", shared.api_secret));
    let checksum_ok = checksum.eq_ignore_ascii_case(&want);
    match shared.redeem(&request_token, checksum_ok) {
        Err(Redeem::Unknown | Redeem::Used) => {
            return refuse(error(
                403,
                "TokenException",
                "Token is invalid or has expired.",
            ));
        }
        Ok(()) if !checksum_ok => {
            return refuse(error(403, "TokenException", "Invalid `checksum`."));
        }
        Ok(()) => {}
    }
    let access_token = shared.mint("access");
    shared.add_access_token(access_token.clone());
    shared.stats.update(|s| s.sessions_issued += 1);
    shared.event("rest: session issued".into());
    let mut data = user(shared);
    data.insert("api_key".into(), json!(shared.api_key));
    data.insert("access_token".into(), json!(access_token));
    data.insert("public_token".into(), json!(shared.mint("public")));
    data.insert("refresh_token".into(), json!(""));
    data.insert("enctoken".into(), json!(""));
    data.insert("login_time".into(), json!(ist_now()));
    Reply {
        status: 200,
        body: json!({"status": "success", "data": data}),
    }
}

fn profile(shared: &Shared, req: &HttpRequest) -> Reply {
    let ok = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("token "))
        .and_then(|v| v.split_once(':'))
        .is_some_and(|(key, token)| key == shared.api_key && shared.access_token_ok(token));
    if !ok {
        shared.stats.update(|s| s.profile_refused += 1);
        return error(
            403,
            "TokenException",
            "Incorrect `api_key` or `access_token`.",
        );
    }
    shared.stats.update(|s| s.profile_ok += 1);
    Reply {
        status: 200,
        body: json!({"status": "success", "data": user(shared)}),
    }
}

fn write_reply(tcp: &mut TcpStream, r: &Reply) -> io::Result<()> {
    let body = r.body.to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        body.len()
    );
    tcp.write_all(head.as_bytes())?;
    tcp.write_all(body.as_bytes())?;
    tcp.flush()
}

/// Serves one connection: reads one request (within a few seconds),
/// answers it, closes.
pub(crate) fn serve(shared: &Shared, mut tcp: TcpStream) {
    if tcp
        .set_nonblocking(false)
        .and_then(|_| tcp.set_read_timeout(Some(TICK)))
        .and_then(|_| tcp.set_write_timeout(Some(Duration::from_secs(1))))
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + REQUEST_LIMIT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let req = loop {
        if shared.stopping() || Instant::now() >= deadline {
            return;
        }
        match parse_request(&raw) {
            Ok(Some(r)) => break r,
            Ok(None) => {}
            Err(why) => {
                let _ = write_reply(&mut tcp, &error(400, "InputException", &why));
                return;
            }
        }
        match tcp.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    };
    let reply = answer(shared, &req);
    shared.event(format!(
        "rest: {} {} -> {}",
        req.method,
        percent_decode(&req.path),
        reply.status
    ));
    if write_reply(&mut tcp, &reply).is_ok() {
        // Let the client read the answer before the socket goes away.
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_in_pieces() {
        let raw = b"POST /session/token?x=1 HTTP/1.1\r\nHost: h\r\nX-Kite-Version: 3\r\nContent-Length: 5\r\n\r\nab=cd";
        for cut in [0, 10, raw.len() - 6, raw.len() - 1] {
            assert_eq!(parse_request(&raw[..cut]), Ok(None), "cut at {cut}");
        }
        let r = parse_request(raw).unwrap().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/session/token", "x=1")
        );
        assert_eq!(r.header("x-kite-version"), Some("3"));
        assert_eq!(r.body, "ab=cd");
        assert!(parse_request(b"GARBAGE\r\n\r\n").is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\nno colon\r\n\r\n").is_err());
    }

    #[test]
    fn checksum_is_the_documented_sha256() {
        // Computed with Python: hashlib.sha256(b"abc").hexdigest()
        assert_eq!(
            hex_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn login_time_shape() {
        let t = ist_now();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[10..11], " ");
    }
}
