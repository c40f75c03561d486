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

use crate::credentials::Secret;
use crate::credentials::format::{FormatProblem, Severity};

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
    format!("KITE_{account}_{field}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn warn(message: String) -> FormatProblem {
    FormatProblem {
        severity: Severity::Warning,
        message,
    }
}

/// Shape warnings for one Kite field; messages never contain the value.
pub fn check_format(field: &str, value: &Secret) -> Vec<FormatProblem> {
    let v = value.expose();
    let n = v.chars().count();
    let mut out = Vec::new();
    match field {
        FIELD_API_KEY
            if n != 16
                || !v
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
        {
            out.push(warn(format!(
                "is {n} characters; Kite api_keys so far are 16 lower-case letters and digits"
            )));
        }
        FIELD_ACCESS_TOKEN if n != 32 || !v.chars().all(|c| c.is_ascii_alphanumeric()) => {
            out.push(warn(format!(
                "is {n} characters; Kite access tokens so far are 32 letters and digits (paste the access_token, not the request_token)"
            )));
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
            "is 5 characters; Kite access tokens so far are 32 letters and digits (paste the access_token, not the request_token)"
        );
    }
}
