//! The MessagePack framing Alpaca speaks to a client that asks for it
//! (`Content-Type: application/msgpack` on the handshake; alpaca-py and
//! Alpaca's Go client always do): the simulator's own small codec for the
//! shapes Alpaca uses — maps, arrays, strings, integers, floats, booleans,
//! nil — with timestamps (`t`) as the MessagePack timestamp extension
//! (type -1, 96-bit form), as Alpaca sends them.
//!
//! The agent reads JSON (see bench/alpaca_decode.rs for why); this codec
//! serves reference clients in the interop suite and the benchmark.

use serde_json::{Map, Number, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `v` as MessagePack; a map entry `"t": null` is written as the
/// timestamp `ts` (the message's time).
pub fn encode(v: &Value, ts: SystemTime, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(0xd3);
                out.extend_from_slice(&i.to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        }
        Value::String(s) => {
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n < 256 {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(0xdd);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode(i, ts, out);
            }
        }
        Value::Object(m) => {
            out.push(0xdf);
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            for (k, v) in m {
                encode(&Value::String(k.clone()), ts, out);
                if k == "t" && v.is_null() {
                    timestamp(ts, out);
                } else {
                    encode(v, ts, out);
                }
            }
        }
    }
}

/// The timestamp extension, 96-bit form: ext8, length 12, type -1,
/// nanoseconds (u32) then seconds (i64), big-endian.
fn timestamp(t: SystemTime, out: &mut Vec<u8>) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    out.extend_from_slice(&[0xc7, 12, 0xff]);
    out.extend_from_slice(&d.subsec_nanos().to_be_bytes());
    out.extend_from_slice(&(d.as_secs() as i64).to_be_bytes());
}

/// Reads one MessagePack value as JSON (a timestamp as its RFC 3339
/// text); `None` for bytes that are not one whole value.
pub fn decode(bytes: &[u8]) -> Option<Value> {
    let mut pos = 0;
    let v = value(bytes, &mut pos)?;
    (pos == bytes.len()).then_some(v)
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = b.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(s)
}

fn uint(b: &[u8], pos: &mut usize, n: usize) -> Option<u64> {
    Some(
        take(b, pos, n)?
            .iter()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
    )
}

fn value(b: &[u8], pos: &mut usize) -> Option<Value> {
    let tag = *take(b, pos, 1)?.first()?;
    let str_of = |b: &[u8], pos: &mut usize, n: usize| -> Option<Value> {
        Some(Value::String(
            String::from_utf8(take(b, pos, n)?.to_vec()).ok()?,
        ))
    };
    let array = |b: &[u8], pos: &mut usize, n: usize| -> Option<Value> {
        (0..n)
            .map(|_| value(b, pos))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array)
    };
    let map = |b: &[u8], pos: &mut usize, n: usize| -> Option<Value> {
        let mut m = Map::new();
        for _ in 0..n {
            let Value::String(k) = value(b, pos)? else {
                return None;
            };
            m.insert(k, value(b, pos)?);
        }
        Some(Value::Object(m))
    };
    match tag {
        0x00..=0x7f => Some(Value::from(tag)),
        0x80..=0x8f => map(b, pos, usize::from(tag & 0x0f)),
        0x90..=0x9f => array(b, pos, usize::from(tag & 0x0f)),
        0xa0..=0xbf => str_of(b, pos, usize::from(tag & 0x1f)),
        0xc0 => Some(Value::Null),
        0xc2 => Some(Value::Bool(false)),
        0xc3 => Some(Value::Bool(true)),
        0xca => {
            let bits = uint(b, pos, 4)? as u32;
            Number::from_f64(f64::from(f32::from_bits(bits))).map(Value::Number)
        }
        0xcb => Number::from_f64(f64::from_bits(uint(b, pos, 8)?)).map(Value::Number),
        0xcc => uint(b, pos, 1).map(Value::from),
        0xcd => uint(b, pos, 2).map(Value::from),
        0xce => uint(b, pos, 4).map(Value::from),
        0xcf => uint(b, pos, 8).map(Value::from),
        0xd0 => Some(Value::from(uint(b, pos, 1)? as u8 as i8)),
        0xd1 => Some(Value::from(uint(b, pos, 2)? as u16 as i16)),
        0xd2 => Some(Value::from(uint(b, pos, 4)? as u32 as i32)),
        0xd3 => Some(Value::from(uint(b, pos, 8)? as i64)),
        0xd9 => {
            let n = uint(b, pos, 1)? as usize;
            str_of(b, pos, n)
        }
        0xda => {
            let n = uint(b, pos, 2)? as usize;
            str_of(b, pos, n)
        }
        0xdb => {
            let n = uint(b, pos, 4)? as usize;
            str_of(b, pos, n)
        }
        0xdc => {
            let n = uint(b, pos, 2)? as usize;
            array(b, pos, n)
        }
        0xdd => {
            let n = uint(b, pos, 4)? as usize;
            array(b, pos, n)
        }
        0xde => {
            let n = uint(b, pos, 2)? as usize;
            map(b, pos, n)
        }
        0xdf => {
            let n = uint(b, pos, 4)? as usize;
            map(b, pos, n)
        }
        0xc7 => {
            let n = uint(b, pos, 1)? as usize;
            let kind = *take(b, pos, 1)?.first()?;
            let body = take(b, pos, n)?;
            (kind == 0xff && n == 12).then(|| {
                let nanos = u32::from_be_bytes(body[..4].try_into().unwrap_or_default());
                let secs = i64::from_be_bytes(body[4..].try_into().unwrap_or_default());
                let t = UNIX_EPOCH
                    + std::time::Duration::new(secs.max(0) as u64, nanos.min(999_999_999));
                Value::String(crate::timefmt::rfc3339_millis(t))
            })
        }
        0xe0..=0xff => Some(Value::from(tag as i8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn round_trips_alpaca_shapes_with_timestamps() {
        let ts = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        let msg = json!([{"T":"t","S":"AAPL","i":42,"p":189.5,"s":100,"t":null,"c":["@","I"],"z":"C","neg":-3}]);
        let mut out = Vec::new();
        encode(&msg, ts, &mut out);
        let back = decode(&out).unwrap();
        assert_eq!(back[0]["t"], "2023-11-14T22:13:20.123Z");
        assert_eq!(back[0]["p"], 189.5);
        assert_eq!(back[0]["neg"], -3);
        assert_eq!(back[0]["c"], json!(["@", "I"]));
        // What alpaca-py sends: fixmap/fixstr.
        let auth = [
            0x83, 0xa6, b'a', b'c', b't', b'i', b'o', b'n', 0xa4, b'a', b'u', b't', b'h', 0xa3,
            b'k', b'e', b'y', 0xa1, b'k', 0xa6, b's', b'e', b'c', b'r', b'e', b't', 0xa1, b's',
        ];
        assert_eq!(
            decode(&auth),
            Some(json!({"action":"auth","key":"k","secret":"s"}))
        );
        assert_eq!(decode(&auth[..5]), None);
    }
}
