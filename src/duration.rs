//! Durations written as `"250ms"`, `"10s"`, `"5m"`, `"1h"`, or a sum such as `"1m30s"`.
//!
//! A leaf (std only): the configuration reads them (and re-exports these
//! functions) and the simulators' command lines take them too.

use std::time::Duration;

/// Parses a duration string; the error says what was expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"250ms\", \"10s\", \"5m\" or \"1h\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "\"{s}\" is not a duration; write e.g. \"250ms\", \"10s\", \"5m\" or \"1h\""
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("\"{s}\": number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "\"{s}\" has no unit; write e.g. \"{n}s\" or \"{n}ms\""
                ));
            }
            u => {
                return Err(format!(
                    "\"{s}\": unknown unit \"{u}\"; use ms, s, m, h or d"
                ));
            }
        };
        total += d;
    }
    Ok(total)
}

/// The shortest exact spelling of a duration in the same syntax.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let mut out = String::new();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 {
        out += &format!("{sec}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_with_reasons() {
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["250ms", "10s", "5m", "1h", "1m30s", "1h1m1s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
