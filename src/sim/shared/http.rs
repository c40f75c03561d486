//! The HTTP/1.1 end of a simulated REST API (keep-alive): reading one
//! request at a time across the connection's read ticks (bounded head and
//! body, idle connections closed, the stop flag looked at every tick), the
//! IMF-fixdate `Date` every answer carries (skewed as the simulator is
//! told, for the agent's clock-drift check), and writing a JSON answer.

use super::Base;
use super::net::is_timeout;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

/// Largest request head and body the simulator reads.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(10);

/// One parsed HTTP request.
pub(crate) struct Request {
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to close the connection after this one.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// Reads what has arrived (at most a tick's wait) onto `buf`; false when
/// the peer closed, went idle since `started`, or the simulator stops.
fn read_more(
    base: &Base,
    started: Instant,
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    if base.stopping() || started.elapsed() > IDLE {
        return Ok(false);
    }
    let mut chunk = [0u8; 4096];
    match tcp.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if is_timeout(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Reads one request; `Ok(None)` when the peer closed or went idle.
pub(crate) fn read_request(
    base: &Base,
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Request>> {
    let started = Instant::now();
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
        if !read_more(base, started, tcp, buf)? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
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
        if !read_more(base, started, tcp, buf)? {
            return Ok(None);
        }
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

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

/// Now, as a server whose clock is `skew_secs` ahead (negative: behind)
/// reads it: the `Date` a simulator sends to show the agent's drift check.
pub(crate) fn skewed_now(skew_secs: i64) -> SystemTime {
    let now = SystemTime::now();
    let skew = Duration::from_secs(skew_secs.unsigned_abs());
    if skew_secs >= 0 {
        now + skew
    } else {
        now.checked_sub(skew).unwrap_or(now)
    }
}

/// Writes a JSON answer with `status`, dated `date`.
pub(crate) fn respond(
    tcp: &mut TcpStream,
    date: SystemTime,
    status: u16,
    body: &str,
    close: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {}\r\n\r\n",
        http_date(date),
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    tcp.write_all(head.as_bytes())?;
    tcp.write_all(body.as_bytes())?;
    tcp.flush()
}

/// Answers requests on one keep-alive connection with `route` until the
/// client closes (or asks to), goes idle, or the simulator stops; a
/// request that cannot be read gets a 400 with `bad_request` and the end.
pub(crate) fn serve(
    base: &Base,
    mut tcp: TcpStream,
    date_now: impl Fn() -> SystemTime,
    bad_request: &str,
    mut route: impl FnMut(&Request) -> (u16, String),
) {
    let mut buf = Vec::new();
    loop {
        let req = match read_request(base, &mut tcp, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(_) => {
                let _ = respond(&mut tcp, date_now(), 400, bad_request, true);
                return;
            }
        };
        let close = req.wants_close();
        let (status, body) = route(&req);
        if respond(&mut tcp, date_now(), status, &body, close).is_err() || close {
            return;
        }
    }
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
}
