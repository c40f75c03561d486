//! The fan-out wire format: one JSON object per line, built by hand so the
//! broker's message is embedded verbatim (no re-parse into a map that would
//! reorder its keys) and each line is serialised exactly once.
//!
//! Pure functions, no I/O: the socket side only moves the bytes made here.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::timefmt;

/// The floor of [`max_request_len`].
pub const MIN_REQUEST_LEN: usize = 4 * 1024;

/// Requests longer than this are refused unread (a subscriber only ever
/// names configured feeds, so anything longer is a confused or hostile
/// client, and parsing it would cost the I/O thread for nothing): 4 KiB
/// plus twice a request naming every configured feed once, room for any
/// spacing a client adds.
pub fn max_request_len(feeds: &[String]) -> usize {
    let all: usize = feeds.iter().map(|f| f.len() + 4).sum();
    MIN_REQUEST_LEN + 2 * (all + b"{\"subscribe\":[]}".len())
}

/// `{"feed":"signals","seq":42,"ts":"2026-11-22T09:00:01.123Z","data":...}\n`
///
/// `message` is embedded as JSON when it is one valid JSON value, otherwise as
/// a JSON string, so a subscriber can always parse the line.
pub fn data_line(feed: &str, seq: u64, ts: SystemTime, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + feed.len() + 64);
    out.extend_from_slice(b"{\"feed\":");
    push_json_str(&mut out, feed);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":\"");
    out.extend_from_slice(timefmt::rfc3339_millis(ts).as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    push_message(&mut out, message);
    out.extend_from_slice(b"}\n");
    out
}

/// `{"feed":"signals","event":"reconnected","down_ms":812}\n`
pub fn reconnected_line(feed: &str, down: Duration) -> Vec<u8> {
    let mut out = Vec::with_capacity(feed.len() + 64);
    out.extend_from_slice(b"{\"feed\":");
    push_json_str(&mut out, feed);
    out.extend_from_slice(b",\"event\":\"reconnected\",\"down_ms\":");
    let down_ms = u64::try_from(down.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(down_ms.to_string().as_bytes());
    out.extend_from_slice(b"}\n");
    out
}

/// `{"feed":"signals","event":"state","state":"backoff","error":"..."}\n`,
/// without `error` when there is none.
pub fn state_line(feed: &str, state: &str, error: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(feed.len() + state.len() + 64);
    out.extend_from_slice(b"{\"feed\":");
    push_json_str(&mut out, feed);
    out.extend_from_slice(b",\"event\":\"state\",\"state\":");
    push_json_str(&mut out, state);
    if let Some(error) = error {
        out.extend_from_slice(b",\"error\":");
        push_json_str(&mut out, error);
    }
    out.extend_from_slice(b"}\n");
    out
}

/// `{"feed":"kbook","event":"resync","reason":"checksum","symbol":"BTC/USD"}\n`:
/// a broker-specific event; `fields` must not contain `feed` or `event`
/// (they are dropped if they do, so the line keeps its shape).
pub fn event_line(
    feed: &str,
    event: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(feed.len() + event.len() + 64);
    out.extend_from_slice(b"{\"feed\":");
    push_json_str(&mut out, feed);
    out.extend_from_slice(b",\"event\":");
    push_json_str(&mut out, event);
    for (k, v) in fields {
        if k == "feed" || k == "event" {
            continue;
        }
        out.push(b',');
        push_json_str(&mut out, k);
        out.push(b':');
        out.extend_from_slice(v.to_string().as_bytes());
    }
    out.extend_from_slice(b"}\n");
    out
}

/// `{"error":"..."}\n`: the answer to a request the fan-out could not use.
pub fn error_line(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"error\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}\n");
    out
}

/// `{"subscribed":["a","b"]}\n`: confirms a subscribe request; every line
/// after it in the stream follows the new set.
pub fn subscribed_line(feeds: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + feeds.iter().map(|f| f.len() + 3).sum::<usize>());
    out.extend_from_slice(b"{\"subscribed\":[");
    for (i, feed) in feeds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, feed);
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// What a subscriber asked for in one request line.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A blank line: nothing to do, no answer.
    Blank,
    /// `{"subscribe": [...]}`: only these feeds from now on (empty = none).
    Subscribe(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeRequest {
    subscribe: Vec<String>,
}

/// Parses one request line (without its `\n`). The error text is sent back
/// to the subscriber in an [`error_line`].
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| {
        "request is not UTF-8; expected {\"subscribe\": [\"feed\", ...]}".to_string()
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Request::Blank);
    }
    match serde_json::from_str::<SubscribeRequest>(text) {
        Ok(req) => {
            let mut feeds = req.subscribe;
            feeds.sort();
            feeds.dedup();
            Ok(Request::Subscribe(feeds))
        }
        Err(e) => Err(format!(
            "bad request ({e}); expected {{\"subscribe\": [\"feed\", ...]}}"
        )),
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("string serialises to JSON");
}

fn push_message(out: &mut Vec<u8>, message: &str) {
    let trimmed = message.trim();
    if serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_err() {
        push_json_str(out, message);
        return;
    }
    // Valid JSON has no raw CR/LF inside strings, so any here is whitespace
    // between tokens; a space keeps the value and the one-line framing.
    if trimmed.bytes().any(|b| b == b'\n' || b == b'\r') {
        out.extend(
            trimmed
                .bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(trimmed.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_deeply_nested_request_is_refused_on_the_io_threads_stack() {
        // The fan-out I/O thread parses requests on a SMALL_STACK thread:
        // nesting a bot sends must end in an error line, never a stack
        // overflow (which would abort every feed). Debug builds have the
        // largest frames, so this is where it would show.
        let run = |line: String| {
            std::thread::Builder::new()
                .stack_size(crate::threads::SMALL_STACK)
                .spawn(move || parse_request(line.as_bytes()).is_err())
                .unwrap()
                .join()
                .expect("no stack overflow")
        };
        for depth in [127, 100_000] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(
                run(format!("{{\"subscribe\":{deep}}}")),
                "{depth} in subscribe"
            );
            assert!(run(format!("{{\"x\":{deep}}}")), "{depth} in another key");
            assert!(run(deep), "{depth} alone");
        }
    }

    fn parse(line: &[u8]) -> Value {
        assert_eq!(line.last(), Some(&b'\n'), "line ends with a newline");
        assert_eq!(
            line.iter().filter(|&&b| b == b'\n').count(),
            1,
            "exactly one newline"
        );
        serde_json::from_slice(line).expect("line is JSON")
    }

    fn ts() -> SystemTime {
        // 2026-11-22T09:00:01.123Z
        UNIX_EPOCH + Duration::from_millis(1_795_338_001_123)
    }

    #[test]
    fn data_line_embeds_json_message_as_json() {
        let line = data_line("signals", 42, ts(), r#"{"b":1,"a":[true,null]}"#);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"feed\":\"signals\",\"seq\":42,\"ts\":\"2026-11-22T09:00:01.123Z\",\
             \"data\":{\"b\":1,\"a\":[true,null]}}\n"
        );
        assert_eq!(
            parse(&line),
            json!({"feed":"signals","seq":42,"ts":"2026-11-22T09:00:01.123Z","data":{"a":[true,null],"b":1}})
        );
    }

    #[test]
    fn data_line_embeds_non_json_as_string() {
        for msg in [
            "hello",
            "",
            "{\"a\":1} trailing",
            "{\"a\":",
            "1 2",
            "\"unterminated",
        ] {
            let v = parse(&data_line("f", 1, ts(), msg));
            assert_eq!(v["data"], Value::String(msg.into()), "message {msg:?}");
        }
    }

    #[test]
    fn data_line_scalars_are_json() {
        assert_eq!(parse(&data_line("f", 1, ts(), "17"))["data"], json!(17));
        assert_eq!(parse(&data_line("f", 1, ts(), "\"x\""))["data"], json!("x"));
        assert_eq!(
            parse(&data_line("f", 1, ts(), " null "))["data"],
            json!(null)
        );
    }

    #[test]
    fn pretty_printed_message_stays_on_one_line() {
        let msg = "{\r\n  \"a\": \"x\\ny\",\n  \"b\": [1,\n 2]\n}\n";
        let v = parse(&data_line("f", 7, ts(), msg));
        assert_eq!(v["data"], json!({"a":"x\ny","b":[1,2]}));
    }

    #[test]
    fn control_characters_in_text_message_are_escaped() {
        let msg = "line1\nline2\u{1}";
        let v = parse(&data_line("f", 1, ts(), msg));
        assert_eq!(v["data"], json!(msg));
    }

    #[test]
    fn feed_names_are_escaped() {
        let v = parse(&data_line("we\"ird\\feed", 3, ts(), "{}"));
        assert_eq!(v["feed"], json!("we\"ird\\feed"));
        assert_eq!(v["seq"], json!(3));
    }

    #[test]
    fn reconnected_line_format() {
        let line = reconnected_line("signals", Duration::from_micros(812_900));
        assert_eq!(
            line,
            b"{\"feed\":\"signals\",\"event\":\"reconnected\",\"down_ms\":812}\n"
        );
        parse(&line);
    }

    #[test]
    fn state_line_with_and_without_error() {
        assert_eq!(
            state_line("signals", "backoff", Some("closed: 1000 \"bye\"")),
            b"{\"feed\":\"signals\",\"event\":\"state\",\"state\":\"backoff\",\"error\":\"closed: 1000 \\\"bye\\\"\"}\n"
        );
        let v = parse(&state_line("signals", "live", None));
        assert_eq!(v, json!({"feed":"signals","event":"state","state":"live"}));
    }

    #[test]
    fn event_line_keeps_its_shape() {
        let mut fields = serde_json::Map::new();
        fields.insert("reason".into(), json!("checksum"));
        fields.insert("symbol".into(), json!("BTC/USD"));
        fields.insert("feed".into(), json!("spoofed"));
        let v = parse(&event_line("kbook", "resync", &fields));
        assert_eq!(
            v,
            json!({"feed":"kbook","event":"resync","reason":"checksum","symbol":"BTC/USD"})
        );
    }

    #[test]
    fn error_and_subscribed_lines() {
        assert_eq!(
            parse(&error_line("no \"good\"")),
            json!({"error":"no \"good\""})
        );
        assert_eq!(
            parse(&subscribed_line(&["a".into(), "b".into()])),
            json!({"subscribed":["a","b"]})
        );
        assert_eq!(parse(&subscribed_line(&[])), json!({"subscribed":[]}));
    }

    #[test]
    fn the_request_cap_fits_a_request_for_every_feed() {
        assert_eq!(max_request_len(&[]), MIN_REQUEST_LEN + 32);
        let feeds: Vec<String> = (0..500)
            .map(|i| format!("feed-with-a-long-name-{i}"))
            .collect();
        let spaced = format!(
            "{{ \"subscribe\": [ {} ] }}",
            feeds
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(spaced.len() < max_request_len(&feeds));
        assert!(max_request_len(&feeds) < 64 * 1024);
    }

    #[test]
    fn parse_subscribe_requests() {
        assert_eq!(
            parse_request(br#"{"subscribe": ["b", "a", "b"]}"#),
            Ok(Request::Subscribe(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_request(b" {\"subscribe\":[]}\r"),
            Ok(Request::Subscribe(vec![]))
        );
        assert_eq!(parse_request(b"  \r"), Ok(Request::Blank));
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [
            &b"subscribe a"[..],
            b"{\"subscribe\": \"a\"}",
            b"{\"subscribe\": [1]}",
            b"{\"subscrib\": [\"a\"]}",
            b"{\"subscribe\": [\"a\"], \"x\": 1}",
            b"[\"a\"]",
            b"\xff\xfe",
        ] {
            let err = parse_request(bad).unwrap_err();
            assert!(err.contains("expected {\"subscribe\""), "{err}");
        }
    }
}
