//! The simulator's own reading and writing of TWS API bytes (written from
//! PROTOCOLS.md §4 and ib_async's `client.py`, independently of the
//! agent's codec): 4-byte big-endian length prefixes, `\0`-terminated fields.

/// A client message longer than this ends the connection (TWS's limit is
/// of the same order; nothing brokerguard or ib_async sends comes close).
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// One message, length-prefixed, from its fields.
pub(crate) fn message<S: AsRef<str>>(fields: &[S]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fields {
        body.extend_from_slice(f.as_ref().as_bytes());
        body.push(0);
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// The fields of one message body; the empty element after the last `\0`
/// is dropped, as ib_async's reader does.
pub(crate) fn fields(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut parts: Vec<String> = text.split('\0').map(String::from).collect();
    parts.pop();
    parts
}

/// Bytes read from a client, cut into the greeting and frames.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
}

/// What the client sent is not TWS API framing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadFraming(pub String);

impl Inbox {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Consumes the `API\0` prefix once it has arrived.
    pub fn take_api_prefix(&mut self) -> Result<bool, BadFraming> {
        if self.buf.len() < 4 {
            return if b"API\0".starts_with(&self.buf) {
                Ok(false)
            } else {
                Err(BadFraming(
                    "the connection does not start with API\\0".into(),
                ))
            };
        }
        if &self.buf[..4] != b"API\0" {
            return Err(BadFraming(
                "the connection does not start with API\\0".into(),
            ));
        }
        self.buf.drain(..4);
        Ok(true)
    }

    /// The next complete frame's body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, BadFraming> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_FRAME {
            return Err(BadFraming(format!("a {len}-byte message")));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }
}

/// The version range of a greeting body: `v157..178` (connect options
/// after a space are ignored).
pub(crate) fn version_range(greeting: &str) -> Option<(u32, u32)> {
    let range = greeting.split(' ').next()?.strip_prefix('v')?;
    let (min, max) = range.split_once("..")?;
    Some((min.parse().ok()?, max.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_fields_round_trip() {
        let m = message(&["71", "2", "1", ""]);
        assert_eq!(m, b"\x00\x00\x00\x08\x37\x31\x00\x32\x00\x31\x00\x00");
        let mut inbox = Inbox::default();
        inbox.push(b"API\0\x00\x00\x00\x09v157..178");
        assert_eq!(inbox.take_api_prefix(), Ok(true));
        let greeting = inbox.next_frame().unwrap().unwrap();
        assert_eq!(
            version_range(&String::from_utf8_lossy(&greeting)),
            Some((157, 178))
        );
        inbox.push(&m[..5]);
        assert_eq!(inbox.next_frame(), Ok(None));
        inbox.push(&m[5..]);
        assert_eq!(
            fields(&inbox.next_frame().unwrap().unwrap()),
            ["71", "2", "1", ""]
        );
        let mut bad = Inbox::default();
        bad.push(b"GET / HTTP/1.1");
        assert!(bad.take_api_prefix().is_err());
        let mut huge = Inbox::default();
        huge.push(b"\x7f\xff\xff\xff");
        assert!(huge.next_frame().is_err());
        assert_eq!(version_range("v100..200 +PACEAPI"), Some((100, 200)));
        assert_eq!(version_range("x"), None);
    }
}
