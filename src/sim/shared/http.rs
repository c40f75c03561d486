//! The HTTP/1.1 pieces a simulator's REST side needs: the `Date` header's
//! IMF-fixdate (the agent's clock-drift check reads it), reading one
//! request head (and its body, when it has a `Content-Length`) from a
//! socket whose reads time out every tick, and writing a JSON answer.

use super::Base;
use super::net::is_timeout;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime};

/// A request head and body larger than these are refused.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate).
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = crate::timefmt::unix_secs(t);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = crate::timefmt::civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days.rem_euclid(7)) as usize],
        d,
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The time a simulated server's `Date` shows: now moved by `skew_secs`
/// (negative: behind), to show the agent's clock-drift alert.
pub(crate) fn skewed_now(skew_secs: i64) -> SystemTime {
    let now = SystemTime::now();
    let skew = Duration::from_secs(skew_secs.unsigned_abs());
    if skew_secs >= 0 {
        now + skew
    } else {
        now.checked_sub(skew).unwrap_or(now)
    }
}

/// One request as read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request from `stream` onto `buf` (what follows it stays in
/// `buf` for the next one). `Ok(None)`: the peer closed, `idle` passed, or
/// the simulator stops.
pub(crate) fn read_request<S: Read>(
    base: &Base,
    stream: &mut S,
    buf: &mut Vec<u8>,
    idle: Duration,
) -> io::Result<Option<HttpRequest>> {
    let started = Instant::now();
    let mut more = |buf: &mut Vec<u8>| -> io::Result<bool> {
        if base.stopping() || started.elapsed() > idle {
            return Ok(false);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if is_timeout(&e) => Ok(true),
            Err(e) => Err(e),
        }
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        if !more(buf)? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request body too large",
        ));
    }
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        if !more(buf)? {
            return Ok(None);
        }
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Ok(Some(HttpRequest {
        method,
        path,
        headers,
        body,
    }))
}

/// Writes a JSON answer with a `Date` of `date`.
pub(crate) fn respond<S: Write>(
    stream: &mut S,
    status: u16,
    body: &str,
    date: SystemTime,
    close: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {}\r\n\r\n",
        http_date(date),
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn reads_one_request_and_keeps_the_next() {
        let base = Base::new(None);
        let raw = b"GET /paper/v2/account?x=1 HTTP/1.1\r\nHost: h\r\nAPCA-API-KEY-ID: k\r\n\r\n\
POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        let mut stream = &raw[..];
        let mut buf = Vec::new();
        let idle = Duration::from_secs(1);
        let r = read_request(&base, &mut stream, &mut buf, idle)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/paper/v2/account")
        );
        assert_eq!(r.header("apca-api-key-id"), Some("k"));
        let r = read_request(&base, &mut stream, &mut buf, idle)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, b"hi");
        assert_eq!(
            read_request(&base, &mut stream, &mut buf, idle).unwrap(),
            None
        );
        let mut out = Vec::new();
        respond(&mut out, 401, "{}", SystemTime::UNIX_EPOCH, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\nDate: Thu, 01 Jan 1970"));
    }
}
