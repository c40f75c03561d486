//! The TWS API's field encoding: a message is a list of `\0`-terminated
//! strings (PROTOCOLS.md §4.1). [`Writer`] builds one message body;
//! [`Fields`] reads one, every access bounds- and parse-checked, so a
//! malformed message from the peer is a [`ProtocolError`], never a panic.

use std::fmt;

/// Why a message from TWS could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The frame held no field at all.
    Empty,
    /// The last field was not terminated by `\0`.
    Unterminated { msg: &'static str },
    /// The first field is not a message id.
    BadMessageId { value: String },
    /// A field the message must have is missing.
    MissingField {
        msg: &'static str,
        field: &'static str,
        index: usize,
    },
    /// More fields than any TWS message has: a frame of NULs would
    /// otherwise become millions of empty strings.
    TooManyFields { count: usize },
    /// A field does not hold what it must (a number, a known value).
    BadField {
        msg: &'static str,
        field: &'static str,
        index: usize,
        value: String,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Empty => f.write_str("malformed TWS message: empty frame"),
            ProtocolError::Unterminated { msg } => {
                write!(f, "malformed TWS {msg}: last field not terminated by NUL")
            }
            ProtocolError::BadMessageId { value } => {
                write!(
                    f,
                    "malformed TWS message: message id \"{value}\" is not a number"
                )
            }
            ProtocolError::TooManyFields { count } => write!(
                f,
                "malformed TWS message: {count} fields, more than the {MAX_FIELDS} any message has"
            ),
            ProtocolError::MissingField { msg, field, index } => {
                write!(f, "malformed TWS {msg}: field {index} ({field}) is missing")
            }
            ProtocolError::BadField {
                msg,
                field,
                index,
                value,
            } => write!(
                f,
                "malformed TWS {msg}: field {index} ({field}) is \"{value}\""
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// At most this many characters of a bad field are quoted in an error.
const QUOTE_MAX: usize = 40;

fn quote(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTE_MAX)
        .collect();
    if s.chars().count() > QUOTE_MAX {
        out.push('…');
    }
    out
}

/// The most fields one message may have. The largest TWS messages
/// (historical bars, contract details) have thousands; a peer's frame of
/// NULs is refused before a list of empty fields is allocated for it.
pub const MAX_FIELDS: usize = 65_536;

/// Splits a message body into its fields. The body must end with `\0`
/// (the reader drops the empty element after the last one, as every IB
/// client does); an unterminated tail is an error, not a silently lost field.
pub fn split(payload: &[u8]) -> Result<Vec<&[u8]>, ProtocolError> {
    if payload.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let Some(body) = payload.strip_suffix(b"\0") else {
        return Err(ProtocolError::Unterminated { msg: "message" });
    };
    let count = body.iter().filter(|b| **b == 0).count() + 1;
    if count > MAX_FIELDS {
        return Err(ProtocolError::TooManyFields { count });
    }
    Ok(body.split(|b| *b == 0).collect())
}

/// A cursor over one message's fields, named after the message so errors
/// say which message and which field was wrong.
#[derive(Debug)]
pub struct Fields<'a> {
    fields: Vec<&'a [u8]>,
    next: usize,
    msg: &'static str,
}

impl<'a> Fields<'a> {
    /// Reads the fields of an already split message, starting at `start`
    /// (1 skips the message id).
    pub fn new(fields: Vec<&'a [u8]>, msg: &'static str, start: usize) -> Self {
        Fields {
            fields,
            next: start,
            msg,
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The index of the next field.
    pub fn position(&self) -> usize {
        self.next
    }

    fn raw(&mut self, field: &'static str) -> Result<(&'a [u8], usize), ProtocolError> {
        let index = self.next;
        let raw = self
            .fields
            .get(index)
            .copied()
            .ok_or(ProtocolError::MissingField {
                msg: self.msg,
                field,
                index,
            })?;
        self.next += 1;
        Ok((raw, index))
    }

    fn bad(&self, field: &'static str, index: usize, raw: &[u8]) -> ProtocolError {
        ProtocolError::BadField {
            msg: self.msg,
            field,
            index,
            value: quote(raw),
        }
    }

    /// The next field as text (invalid UTF-8 is replaced, as ib_async does).
    pub fn text(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let (raw, _) = self.raw(field)?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    /// Skips a field that must be present.
    pub fn skip(&mut self, field: &'static str) -> Result<(), ProtocolError> {
        self.raw(field).map(|_| ())
    }

    /// The next field as a decimal integer; empty is an error.
    pub fn int(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        let (raw, index) = self.raw(field)?;
        parse_int(raw).ok_or_else(|| self.bad(field, index, raw))
    }

    /// The next field as an integer, empty meaning `None` (IB's "unset").
    pub fn opt_int(&mut self, field: &'static str) -> Result<Option<i64>, ProtocolError> {
        let (raw, index) = self.raw(field)?;
        if raw.is_empty() {
            return Ok(None);
        }
        parse_int(raw)
            .map(Some)
            .ok_or_else(|| self.bad(field, index, raw))
    }

    /// The next field as a decimal number, empty meaning `None`. Only
    /// plain decimal notation (with an optional exponent) is accepted, and
    /// values that do not fit an f64 are errors.
    pub fn opt_number(&mut self, field: &'static str) -> Result<Option<f64>, ProtocolError> {
        let (raw, index) = self.raw(field)?;
        if raw.is_empty() {
            return Ok(None);
        }
        parse_number(raw)
            .map(Some)
            .ok_or_else(|| self.bad(field, index, raw))
    }

    /// A field that may be absent at the end of the message (added in a
    /// later version than the peer's): `None` when there are no more fields.
    pub fn has_more(&self) -> bool {
        self.next < self.fields.len()
    }
}

fn parse_int(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.parse().ok()
}

/// A decimal number as TWS writes one (`187.25`, `-1`, `100`, `1.5E-4`).
/// Rust's parser also takes `inf`/`NaN` spellings; those are refused so
/// only finite values reach the bot.
pub fn parse_number(raw: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plain || !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Builds one message body: each field written as text and terminated by
/// `\0`. A field can never hold `\0` itself: text fields come from checked
/// configuration (see `contract::check`), and `text` replaces a stray NUL
/// rather than let it split the message.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.buf
            .extend(s.bytes().map(|b| if b == 0 { b'?' } else { b }));
        self.buf.push(0);
        self
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.text(&v.to_string())
    }

    /// `1` or `0`, as every IB client writes booleans.
    pub fn flag(&mut self, v: bool) -> &mut Self {
        self.text(if v { "1" } else { "0" })
    }

    /// A float as Python's `str(float)` writes it (ib_async formats
    /// strikes that way): always with a decimal point, `0.0` for zero.
    pub fn float(&mut self, v: f64) -> &mut Self {
        self.text(&python_float(v))
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Python's `str()` of a finite float in the range strikes live in: Rust's
/// shortest round-trip digits, with `.0` added to whole numbers.
pub fn python_float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E']) || !v.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// Prefixes `body` with its length as a 4-byte big-endian integer (the
/// framing of every message after `API\0`).
pub fn length_prefixed(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_of_nuls_is_refused_without_allocating_its_fields() {
        let nuls = vec![0u8; 16 << 20];
        assert_eq!(
            split(&nuls),
            Err(ProtocolError::TooManyFields { count: 16 << 20 })
        );
        let mut most = vec![b'1'; 1];
        most.extend(std::iter::repeat_n(0u8, MAX_FIELDS));
        assert_eq!(split(&most).map(|f| f.len()), Ok(MAX_FIELDS));
    }

    #[test]
    fn split_needs_the_terminator_and_keeps_empty_fields() {
        assert_eq!(split(b"4\0\0x\0").unwrap(), vec![&b"4"[..], b"", b"x"]);
        assert_eq!(split(b""), Err(ProtocolError::Empty));
        assert_eq!(
            split(b"15\x001\x00DU1"),
            Err(ProtocolError::Unterminated { msg: "message" })
        );
        assert_eq!(split(b"\0").unwrap(), vec![&b""[..]]);
    }

    #[test]
    fn typed_fields_are_checked() {
        let f = split(b"1\x00 6\x00-1\x00abc\x00\x00 1e400\x00nan\x001.5E-2\x00").unwrap();
        let mut r = Fields::new(f, "test", 1);
        assert!(matches!(
            r.int("v"),
            Err(ProtocolError::BadField { index: 1, .. })
        ));
        assert_eq!(r.int("req"), Ok(-1));
        assert!(r.int("n").is_err());
        assert_eq!(r.opt_number("empty"), Ok(None));
        assert!(r.opt_number("huge").is_err());
        assert!(r.opt_number("nan").is_err());
        assert_eq!(r.opt_number("exp"), Ok(Some(0.015)));
        assert!(!r.has_more());
        assert_eq!(
            r.text("gone"),
            Err(ProtocolError::MissingField {
                msg: "test",
                field: "gone",
                index: 8
            })
        );
    }

    #[test]
    fn overlong_integers_are_errors_not_wraps() {
        let f = split(b"99999999999999999999999\0").unwrap();
        assert!(Fields::new(f, "t", 0).int("x").is_err());
    }

    #[test]
    fn writer_formats_like_ib_async() {
        let mut w = Writer::new();
        w.int(71)
            .int(2)
            .flag(true)
            .float(0.0)
            .float(150.0)
            .float(12.5)
            .text("a\0b");
        assert_eq!(
            w.finish(),
            b"71\x002\x001\x000.0\x00150.0\x0012.5\x00a?b\x00"
        );
        assert_eq!(length_prefixed(b"abc"), b"\0\0\0\x03abc");
    }

    #[test]
    fn errors_quote_short_printable_values() {
        let f = split(b"x\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\0").unwrap();
        let e = Fields::new(f, "tickPrice", 0).int("price").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("malformed TWS tickPrice: field 0 (price) is \"x y"),
            "{text}"
        );
        assert!(text.ends_with("…\""), "{text}");
    }
}
