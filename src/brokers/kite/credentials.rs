//! Kite's credential fields, their names in the credential store, and the
//! shape checks of their values.
//!
//! A ticker feed needs `API_KEY` and `ACCESS_TOKEN`; `kite-login` also
//! needs `API_SECRET` (to compute the checksum) and writes `ACCESS_TOKEN`.
//! Names are `KITE_<ACCOUNT>_<FIELD>`, e.g. `KITE_MAIN_ACCESS_TOKEN`.
//!
//! The shape checks are warnings only: they describe what Kite has issued
//! so far and point at a likely paste mistake; Kite may change formats
//! without notice. The generic checks every value gets (empty, whitespace,
//! quotes, CR/LF) are `crate::credentials::format::check`'s; these are the
//! Kite rules that lived there (moved here; the old copy stays until the
//! registry calls these).

use crate::credentials::format::{FormatProblem, Severity};
use crate::secret::Secret;

pub const FIELD_API_KEY: &str = "API_KEY";
pub const FIELD_ACCESS_TOKEN: &str = "ACCESS_TOKEN";
pub const FIELD_API_SECRET: &str = "API_SECRET";

/// What a ticker feed reads.
pub const FEED_FIELDS: [&str; 2] = [FIELD_API_KEY, FIELD_ACCESS_TOKEN];
/// What `kite-login` reads (it writes [`FIELD_ACCESS_TOKEN`]).
pub const LOGIN_FIELDS: [&str; 2] = [FIELD_API_KEY, FIELD_API_SECRET];

/// `KITE_<ACCOUNT>_<FIELD>` in upper case; characters that cannot be in a
/// name (`-`, `.`) become `_` (the rule of `credentials::required`).
pub fn credential_name(account: &str, field: &str) -> String {
    crate::credentials::required::credential_name("KITE", account, field)
}

fn warn(message: String) -> FormatProblem {
    FormatProblem {
        severity: Severity::Warning,
        message,
    }
}

/// The kinds of character in `v` that `allowed` does not accept, named
/// for an operator (never the characters themselves), in a fixed order.
fn unexpected_kinds(v: &str, allowed: impl Fn(char) -> bool) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    for c in v.chars().filter(|&c| !allowed(c)) {
        let kind = if c.is_ascii_uppercase() {
            "upper-case letters"
        } else if c.is_ascii_lowercase() {
            "lower-case letters"
        } else if c.is_whitespace() {
            "spaces or other blanks"
        } else if c.is_control() {
            "control characters"
        } else if c.is_ascii_punctuation() {
            "punctuation or symbols"
        } else {
            "non-ASCII characters"
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// What is wrong with a value that should be `len` characters that all
/// pass `allowed`: its length, the kinds of character it should not have,
/// or both; None when it fits. Never contains any part of the value.
fn shape_problem(v: &str, len: usize, allowed: impl Fn(char) -> bool) -> Option<String> {
    let n = v.chars().count();
    let length = (n != len).then(|| format!("is {n} characters (not {len})"));
    let kinds = unexpected_kinds(v, allowed);
    let chars = (!kinds.is_empty()).then(|| format!("has {}", kinds.join(" and ")));
    match (length, chars) {
        (None, None) => None,
        (Some(l), None) => Some(l),
        (None, Some(c)) => Some(c),
        (Some(l), Some(c)) => Some(format!("{l} and {c}")),
    }
}

/// Shape warnings for one Kite field: what is wrong (the length, which
/// kind of character is unexpected) and what Kite has issued so far.
/// Messages never contain the value or any part of it.
pub fn check_format(field: &str, value: &Secret) -> Vec<FormatProblem> {
    let v = value.expose();
    let mut out = Vec::new();
    match field {
        FIELD_API_KEY => {
            let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
            if let Some(p) = shape_problem(v, 16, ok) {
                out.push(warn(format!(
                    "{p}; Kite api_keys so far are 16 lower-case letters and digits"
                )));
            }
        }
        FIELD_ACCESS_TOKEN => {
            if let Some(p) = shape_problem(v, 32, |c| c.is_ascii_alphanumeric()) {
                out.push(warn(format!(
                    "{p}; Kite access tokens so far are 32 letters and digits (paste the access_token, not the request_token)"
                )));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            credential_name("main", FIELD_ACCESS_TOKEN),
            "KITE_MAIN_ACCESS_TOKEN"
        );
        assert_eq!(
            credential_name("user-2.b", FIELD_API_KEY),
            "KITE_USER_2_B_API_KEY"
        );
        assert_eq!(
            credential_name("Main", FIELD_API_SECRET),
            "KITE_MAIN_API_SECRET"
        );
    }

    /// The verdicts of the rules this replaces in `credentials::format`.
    #[test]
    fn format_table() {
        let token32 = "aB".repeat(16);
        let token30 = "aB3".repeat(10)[..30].to_string();
        let cases: Vec<(&str, &str, bool)> = vec![
            // (field, value, warned)
            (FIELD_API_KEY, "abcdefgh12345678", false),
            (FIELD_API_KEY, "ABCDEFGH12345678", true),
            (FIELD_API_KEY, "abcdefgh1234567", true),
            (FIELD_API_KEY, "abcdefgh-2345678", true),
            (FIELD_ACCESS_TOKEN, &token32, false),
            (FIELD_ACCESS_TOKEN, &token30, true),
            (FIELD_ACCESS_TOKEN, "abcdefgh-2345678abcdefgh-2345678", true),
            (FIELD_API_SECRET, "anything", false),
            ("OTHER", "x", false),
        ];
        for (field, v, warned) in cases {
            let p = check_format(field, &Secret::new(v));
            assert_eq!(!p.is_empty(), warned, "{field} {v}: {p:?}");
            for x in &p {
                assert_eq!(x.severity, Severity::Warning);
                assert!(!x.message.contains(v), "{x}");
            }
        }
        let p = check_format(FIELD_ACCESS_TOKEN, &Secret::new("short"));
        assert_eq!(
            p[0].message,
            "is 5 characters (not 32); Kite access tokens so far are 32 letters and digits (paste the access_token, not the request_token)"
        );
    }

    /// The warning names what is actually wrong: the length only when it
    /// is wrong, and the kind of character that does not fit.
    #[test]
    fn format_names_the_actual_problem() {
        let msg = |field, v: &str| {
            let p = check_format(field, &Secret::new(v));
            assert_eq!(p.len(), 1, "{v}: {p:?}");
            p[0].message.clone()
        };
        assert_eq!(
            msg(FIELD_API_KEY, "ABCDEFGH12345678"),
            "has upper-case letters; Kite api_keys so far are 16 lower-case letters and digits"
        );
        assert_eq!(
            msg(FIELD_API_KEY, "abcdefgh-2345678"),
            "has punctuation or symbols; Kite api_keys so far are 16 lower-case letters and digits"
        );
        assert_eq!(
            msg(FIELD_API_KEY, "abcdefgh1234567"),
            "is 15 characters (not 16); Kite api_keys so far are 16 lower-case letters and digits"
        );
        assert_eq!(
            msg(FIELD_API_KEY, "Abcdefgh-23456é"),
            "is 15 characters (not 16) and has upper-case letters and punctuation or symbols and \
             non-ASCII characters; Kite api_keys so far are 16 lower-case letters and digits"
        );
        let token = format!("{}_{}", "aB".repeat(8), "c3".repeat(7) + "d");
        assert_eq!(token.chars().count(), 32);
        let m = msg(FIELD_ACCESS_TOKEN, &token);
        assert!(
            m.starts_with("has punctuation or symbols; Kite access tokens so far are 32"),
            "{m}"
        );
        assert!(!m.contains("32 characters"), "{m}");
        for (field, v) in [
            (FIELD_API_KEY, "ABCDEFGH12345678"),
            (FIELD_ACCESS_TOKEN, token.as_str()),
        ] {
            let m = msg(field, v);
            // No part of the value: not even its upper-case letters.
            for w in v.as_bytes().windows(3) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!m.contains(w), "{m} contains {w}");
            }
        }
    }
}
