//! Reading one request off a connection, within bounds: the head (request
//! line and headers) must fit [`Limits::max_head`] bytes and arrive, whole,
//! before the connection's deadline (a client dripping one byte a second —
//! slow-loris — is cut off when the deadline passes, not when a single read
//! times out), and a body is accepted only up to [`Limits::max_body`].
//! Parsing is httparse's; nothing here allocates per header.

use std::io::{self, Read};
use std::time::Instant;

/// The bounds of one request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line and headers together.
    pub max_head: usize,
    /// A body (only a form would have one; no route needs more).
    pub max_body: usize,
}

/// Most headers a request may carry.
const MAX_HEADERS: usize = 32;

/// What a route sees of a request.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path without its query.
    pub path: String,
    /// The raw query (after `?`), percent-encoded as sent.
    pub query: String,
    /// The `Authorization` header's value, when sent.
    pub authorization: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Anything else: answered 405.
    Other,
}

/// Why no request could be read; each maps to an answer (or to none, when
/// the client is gone).
#[derive(Debug)]
pub enum RequestError {
    /// The client closed or reset the connection before a whole head.
    Gone,
    /// The head did not arrive before the deadline (408).
    Timeout,
    /// The head is larger than [`Limits::max_head`] (431).
    HeadTooLarge,
    /// The declared body is larger than [`Limits::max_body`] (413).
    BodyTooLarge,
    /// Not HTTP/1.x, or unparsable (400); the text says what.
    Malformed(&'static str),
}

impl RequestError {
    /// The status to answer with; `None`: nobody to answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Gone => None,
            RequestError::Timeout => Some(408),
            RequestError::HeadTooLarge => Some(431),
            RequestError::BodyTooLarge => Some(413),
            RequestError::Malformed(_) => Some(400),
        }
    }
}

/// A connection that can be told how long its next read may block.
pub trait TimedRead: Read {
    fn set_read_deadline(&mut self, deadline: Instant) -> io::Result<()>;
}

/// Reads and parses one request head into `buf` (its capacity is the
/// head limit), then reads and drops a body within the body limit (no
/// route reads one: a form's fields come in its query).
pub fn read_request(
    conn: &mut impl TimedRead,
    buf: &mut [u8],
    limits: Limits,
    deadline: Instant,
) -> Result<Request, RequestError> {
    let cap = buf.len().min(limits.max_head);
    let mut filled = 0;
    loop {
        if filled == cap {
            return Err(RequestError::HeadTooLarge);
        }
        if Instant::now() >= deadline {
            return Err(RequestError::Timeout);
        }
        filled += read_by(conn, &mut buf[filled..cap], deadline)?;
        match parse_head(&buf[..filled])? {
            Some((req, head_len, body_len)) => {
                if body_len > limits.max_body {
                    return Err(RequestError::BodyTooLarge);
                }
                drain_body(conn, buf, filled - head_len, body_len, deadline)?;
                return Ok(req);
            }
            None => continue,
        }
    }
}

/// Reads what is left of a body of `body_len` bytes (`have` already read).
fn drain_body(
    conn: &mut impl TimedRead,
    buf: &mut [u8],
    have: usize,
    body_len: usize,
    deadline: Instant,
) -> Result<(), RequestError> {
    let mut left = body_len.saturating_sub(have);
    while left > 0 {
        if Instant::now() >= deadline {
            return Err(RequestError::Timeout);
        }
        let take = left.min(buf.len());
        left -= read_by(conn, &mut buf[..take], deadline)?;
    }
    Ok(())
}

/// One read that may block until `deadline`: the bytes read (0 after a
/// signal), or why there will be none.
fn read_by(
    conn: &mut impl TimedRead,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, RequestError> {
    conn.set_read_deadline(deadline)
        .map_err(|_| RequestError::Gone)?;
    match conn.read(buf) {
        Ok(0) => Err(RequestError::Gone),
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(RequestError::Timeout)
        }
        Err(_) => Err(RequestError::Gone),
    }
}

/// A complete head: the request, its length, and the declared body length.
/// `None`: not complete yet.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(Request, usize, usize)>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(_) => return Err(RequestError::Malformed("the request is not valid HTTP/1.1")),
    };
    let method = match req.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(RequestError::Malformed(
            "the request target must be a path starting with /",
        ));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut body_len = 0usize;
    let mut authorization = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value)
                .map_err(|_| RequestError::Malformed("Content-Length is not a number"))?;
            body_len = text
                .trim()
                .parse()
                .map_err(|_| RequestError::Malformed("Content-Length is not a number"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::Malformed(
                "chunked bodies are not accepted; send Content-Length",
            ));
        } else if h.name.eq_ignore_ascii_case("authorization") {
            authorization = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
    }
    Ok(Some((
        Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            authorization,
        },
        head_len,
        body_len,
    )))
}

/// The value of `name` in a query string, percent-decoded; `None` when it
/// is absent or not valid UTF-8 once decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Hands out its chunks one read at a time, then blocks (times out).
    struct Drip(Vec<Vec<u8>>);

    impl Read for Drip {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let chunk = self.0.remove(0);
            let n = chunk.len().min(out.len());
            out[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.insert(0, chunk[n..].to_vec());
            }
            Ok(n)
        }
    }

    impl TimedRead for Drip {
        fn set_read_deadline(&mut self, _: Instant) -> io::Result<()> {
            Ok(())
        }
    }

    const LIMITS: Limits = Limits {
        max_head: 256,
        max_body: 16,
    };

    fn read(chunks: &[&[u8]]) -> Result<Request, RequestError> {
        let mut d = Drip(chunks.iter().map(|c| c.to_vec()).collect());
        let mut buf = [0u8; 512];
        read_request(
            &mut d,
            &mut buf,
            LIMITS,
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[test]
    fn a_head_in_pieces_is_read_whole() {
        let r = read(&[
            b"GET /websocket/callback?request_token=ab%2Bc&status=success HT",
            b"TP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n",
        ])
        .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/websocket/callback");
        assert_eq!(
            query_param(&r.query, "request_token").as_deref(),
            Some("ab+c")
        );
        assert_eq!(query_param(&r.query, "status").as_deref(), Some("success"));
        assert_eq!(query_param(&r.query, "nosuch"), None);
        assert_eq!(r.authorization.as_deref(), Some("Basic eDp5"));
    }

    #[test]
    fn each_bad_request_gets_its_status() {
        let status = |chunks: &[&[u8]]| read(chunks).unwrap_err().status();
        assert_eq!(status(&[b"GET / HTTP/1.1\r\nHost"]), Some(408));
        assert_eq!(status(&[b"G\x01T / HTTP/1.1\r\n\r\n"]), Some(400));
        // A method name that never ends fills the head.
        assert_eq!(status(&[&[b'a'; 300]]), Some(431));
        let big = format!("GET /{} HTTP/1.1\r\n", "x".repeat(300));
        assert_eq!(status(&[big.as_bytes()]), Some(431));
        assert_eq!(
            status(&[b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n"]),
            Some(413)
        );
        assert_eq!(
            status(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]),
            Some(400)
        );
        assert_eq!(status(&[b"GET http://x/ HTTP/1.1\r\n\r\n"]), Some(400));
        assert_eq!(status(&[]), Some(408));
        // A small body within the limit is drained and the request served.
        let r = read(&[b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", b"cd"]).unwrap();
        assert_eq!((r.method, r.path.as_str()), (Method::Post, "/x"));
        assert_eq!(
            read(&[b"DELETE / HTTP/1.1\r\n\r\n"]).unwrap().method,
            Method::Other
        );
    }

    #[test]
    fn percent_decoding_rejects_broken_escapes() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
