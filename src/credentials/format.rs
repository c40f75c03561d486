//! Format checks of credential values, one clear message per problem.
//!
//! Messages describe the value (its length, which characters are wrong)
//! and never contain it. The generic checks live here; each broker adds
//! its own shape checks (`Broker::check_credential` in the registry). Two
//! levels:
//! - **Error**: the value cannot work as written — empty, whitespace at an
//!   end, surrounding quotes, a CR or newline inside (except in a
//!   multi-line key), or a shape the broker cannot accept.
//! - **Warning**: the value deviates from the shape the broker has issued so
//!   far (lengths, alphabets, prefixes). Brokers change key formats without
//!   notice, so these never stop a feed; they only point at a likely typo.

use crate::brokers::registry::Broker;
use crate::secret::Secret;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FormatProblem {
    pub severity: Severity,
    /// Fixed text plus lengths/counts; never any part of the value.
    pub message: String,
}

impl fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error-level problem (the value cannot work as written).
pub fn error(m: impl Into<String>) -> FormatProblem {
    FormatProblem {
        severity: Severity::Error,
        message: m.into(),
    }
}
/// A warning-level problem (an unusual shape that may be a typo).
pub fn warning(m: impl Into<String>) -> FormatProblem {
    FormatProblem {
        severity: Severity::Warning,
        message: m.into(),
    }
}

/// Every problem with `value` as the `field` of a feed of `broker`.
/// `field` is as in [`super::required::Required::field`].
pub fn check(broker: &dyn Broker, field: &str, value: &Secret) -> Vec<FormatProblem> {
    let pem = broker.multiline_field(field);
    let mut out = generic(value, pem);
    if out.is_empty() {
        // The shape checks would only repeat a generic mistake.
        out.extend(broker.check_credential(field, value));
    }
    out
}

/// The mistakes any value can have: empty, whitespace at an end, quotes
/// that are part of the value, a CR or newline inside (unless the field
/// holds a multi-line key).
pub fn generic(value: &Secret, multiline: bool) -> Vec<FormatProblem> {
    let v = value.expose();
    let mut out = Vec::new();
    if v.is_empty() {
        out.push(error("is empty"));
        return out;
    }
    if v.contains('\r') {
        out.push(error(
            "contains a carriage return (CR); remove it (file edited on Windows?)",
        ));
    }
    if v.contains('\n') && !multiline {
        out.push(error("contains a newline; a value is one line"));
    }
    if !multiline && (v.starts_with(char::is_whitespace) || v.ends_with(char::is_whitespace)) {
        out.push(error("has whitespace at the start or end; remove it"));
    }
    let t = v.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        out.push(error(
            "is wrapped in quotes that are part of the value; remove them",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_mistakes_are_errors() {
        for (v, needle) in [
            ("", "empty"),
            (" tok", "whitespace"),
            ("tok\t", "whitespace"),
            ("\"tok\"", "quotes"),
            ("'tok'", "quotes"),
            ("to\rk", "carriage return"),
            ("to\nk", "newline"),
        ] {
            let p = generic(&Secret::new(v), false);
            assert!(
                p.iter()
                    .any(|x| x.severity == Severity::Error && x.message.contains(needle)),
                "{v:?}: {p:?}"
            );
            for x in &p {
                if v.len() > 3 {
                    assert!(!x.message.contains(v), "{x}");
                }
            }
        }
        assert!(generic(&Secret::new("fine-token"), false).is_empty());
        assert!(generic(&Secret::new("-----BEGIN\nX\n-----END"), true).is_empty());
    }
}
