//! The walker over toml's span-carrying tree: typed value readers that
//! report each problem at its line:col and return `None`, plus the text
//! helpers (credential references, typo suggestions, path resolution).
//! Messages never quote auth, subscribe, poll or URL text: those may carry secrets.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::error::Problem;
use crate::config::{format_duration, parse_duration};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Byte offset → 1-based line and column.
pub(super) struct Lines<'s> {
    text: &'s str,
    starts: Vec<usize>,
}

impl<'s> Lines<'s> {
    pub(super) fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    pub(super) fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let col = self
            .text
            .get(self.starts[line]..offset)
            .map_or(offset - self.starts[line], |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Where each key of a table was written: key span and value span.
pub(super) type Seen = HashMap<String, (Range<usize>, Range<usize>)>;

pub(super) struct Walker<'s, 'b> {
    pub(super) lines: Lines<'s>,
    pub(super) base: Option<&'b Path>,
    pub(super) problems: Vec<Problem>,
}

impl Walker<'_, '_> {
    pub(super) fn report(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, col) = self.lines.locate(span.start);
        self.problems.push(Problem {
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_key(
        &mut self,
        span: Range<usize>,
        keypath: &str,
        key: &str,
        place: &str,
        allowed: &[&str],
    ) {
        let message = match suggest(key, allowed) {
            Some(s) => format!("unknown key \"{key}\" in {place}; did you mean \"{s}\"?"),
            None => format!(
                "unknown key \"{key}\" in {place}; remove it (the keys allowed there are {})",
                allowed.join(", ")
            ),
        };
        self.report(span, keypath, message);
    }

    pub(super) fn wrong_type(&mut self, v: &Value<'_>, key: &str, expected: &str) {
        let found = v.get_ref().type_str();
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        self.report(
            v.span(),
            key,
            format!("expected {expected}, found {article} {found}"),
        );
    }

    // ---- typed values ----

    pub(super) fn table<'a, 'i>(
        &mut self,
        v: &'a Value<'i>,
        key: &str,
        expected: &str,
    ) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, key, expected);
                None
            }
        }
    }

    pub(super) fn string(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(v, key, "a string in quotes");
                None
            }
        }
    }

    pub(super) fn nonempty_string(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.string(v, key)?;
        if s.is_empty() {
            self.report(v.span(), key, "is empty; write a value or remove the key");
            return None;
        }
        Some(s)
    }

    pub(super) fn integer(&mut self, v: &Value<'_>, key: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.report(v.span(), key, "integer out of range; use a smaller number");
                    None
                }
            },
            _ => {
                self.wrong_type(v, key, "an integer");
                None
            }
        }
    }

    pub(super) fn integer_at_least(&mut self, v: &Value<'_>, key: &str, min: i64) -> Option<i64> {
        let n = self.integer(v, key)?;
        if n < min {
            self.report(
                v.span(),
                key,
                format!("{n} is too small; use at least {min}"),
            );
            return None;
        }
        Some(n)
    }

    pub(super) fn boolean(&mut self, v: &Value<'_>, key: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(v, key, "true or false");
                None
            }
        }
    }

    pub(super) fn float(&mut self, v: &Value<'_>, key: &str) -> Option<f64> {
        let f = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(_) => self.integer(v, key).map(|n| n as f64),
            _ => {
                self.wrong_type(v, key, "a number such as 2.0");
                return None;
            }
        };
        match f {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.report(v.span(), key, "must be a finite number such as 2.0");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, v: &Value<'_>, key: &str) -> Option<Duration> {
        match v.get_ref() {
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.report(v.span(), key, e);
                    None
                }
            },
            DeValue::Integer(i) => {
                let n = i.as_str();
                self.report(
                    v.span(),
                    key,
                    format!("a duration is a string with a unit; write \"{n}s\" or \"{n}ms\" (in quotes)"),
                );
                None
            }
            _ => {
                self.wrong_type(v, key, "a duration string such as \"10s\"");
                None
            }
        }
    }

    /// A duration within `[min, max]`; `min` of 1ms means "more than zero".
    pub(super) fn duration_within(
        &mut self,
        v: &Value<'_>,
        key: &str,
        min: Duration,
        max: Option<Duration>,
    ) -> Option<Duration> {
        let d = self.duration(v, key)?;
        let shown = format_duration(d);
        let range = match max {
            Some(max) => format!(
                "between {} and {}",
                format_duration(min),
                format_duration(max)
            ),
            None if min <= Duration::from_millis(1) => "more than 0s".to_string(),
            None => format!("at least {}", format_duration(min)),
        };
        if d < min {
            self.report(
                v.span(),
                key,
                format!("\"{shown}\" is too short; use {range}"),
            );
            return None;
        }
        if max.is_some_and(|max| d > max) {
            self.report(
                v.span(),
                key,
                format!("\"{shown}\" is too long; use {range}"),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn positive_duration(&mut self, v: &Value<'_>, key: &str) -> Option<Duration> {
        self.duration_within(v, key, Duration::from_millis(1), None)
    }

    pub(super) fn choice<'c>(
        &mut self,
        v: &Value<'_>,
        key: &str,
        what: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let s = self.string(v, key)?;
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let mut message = format!("unknown {what} \"{s}\"; use one of {}", choices.join(", "));
        if let Some(close) = suggest(&s.to_lowercase(), choices) {
            message += &format!(" (did you mean \"{close}\"?)");
        }
        self.report(v.span(), key, message);
        None
    }

    /// A file or directory path, made absolute against the working directory.
    pub(super) fn path(&mut self, v: &Value<'_>, key: &str) -> Option<PathBuf> {
        let s = self.nonempty_string(v, key)?;
        Some(absolutize(self.base, Path::new(&s)))
    }

    /// A message template: `${NAME}` references must be closed and well named.
    pub(super) fn template(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.nonempty_string(v, key)?;
        let problems = template_problems(&s);
        let ok = problems.is_empty();
        for p in problems {
            self.report(v.span(), key, p);
        }
        ok.then_some(s)
    }

    pub(super) fn array<'a, 'i>(
        &mut self,
        v: &'a Value<'i>,
        key: &str,
        expected: &str,
    ) -> Option<&'a [Value<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(v, key, expected);
                None
            }
        }
    }
}

/// `base.join(p)` without `.` components; `p` unchanged when absolute or no base is known.
pub(super) fn absolutize(base: Option<&Path>, p: &Path) -> PathBuf {
    let joined = match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    };
    joined
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

pub(super) fn valid_credential_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z'))
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// What is wrong with the `${NAME}` references of a template. Only names
/// are quoted, never the surrounding text.
pub(super) fn template_problems(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let run = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..run];
        let shown: String = name.chars().take(40).collect();
        if !after[run..].starts_with('}') {
            out.push(format!(
                "\"${{{shown}\" is not closed; write credential references as ${{NAME}} \
                 (upper-case letters, digits and _, then \"}}\")"
            ));
            rest = &after[run..];
            continue;
        }
        if !valid_credential_name(name) {
            let upper = name.to_uppercase().replace('-', "_");
            let hint = if valid_credential_name(&upper) {
                format!("write ${{{upper}}}")
            } else {
                "write e.g. ${SIGNALS_TOKEN}".to_string()
            };
            out.push(format!(
                "\"${{{shown}}}\" is not a valid credential name: use upper-case letters, digits and _, \
                 starting with a letter; {hint}"
            ));
        }
        rest = &after[run + 1..];
    }
    out
}

/// The closest allowed word, if it is close enough to be a likely typo.
pub(super) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours each cost 1.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::feed::all_feed_keys;

    const ROOT_KEYS: &[&str] = &["agent", "feed"];

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = all_feed_keys();
        #[allow(non_snake_case)]
        let FEED_KEYS: &[&str] = &keys;
        assert_eq!(suggest("stal_after", FEED_KEYS), Some("stall_after"));
        assert_eq!(suggest("urls", FEED_KEYS), Some("url"));
        assert_eq!(suggest("zzzzzz", FEED_KEYS), None);
        assert_eq!(suggest("x", FEED_KEYS), None);
        assert_eq!(suggest("agnet", ROOT_KEYS), Some("agent"));
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn template_problems_name_the_reference_only() {
        assert!(template_problems("{\"t\":\"${A_1}\"} ${B}").is_empty());
        let p = template_problems("secret ${lower} ${OPEN");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("${LOWER}") && p[1].contains("\"${OPEN\" is not closed"));
        assert!(!p.concat().contains("secret"));
    }

    #[test]
    fn lines_locate_offsets() {
        let l = Lines::new("ab\ncé\nx");
        assert_eq!(l.locate(0), (1, 1));
        assert_eq!(l.locate(3), (2, 1));
        assert_eq!(l.locate(6), (2, 3));
        assert_eq!(l.locate(7), (3, 1));
        assert_eq!(l.locate(99), (3, 2));
    }
}
