//! Format checks of credential values, one clear message per problem.
//!
//! Messages describe the value (its length, which characters are wrong)
//! and never contain it. The generic checks live here; each broker adds
//! its own shape checks (`Broker::check_credential` in the registry, handed
//! over as [`CredentialRules`], so this module names no broker). Two
//! levels:
//! - **Error**: the value cannot work as written — empty, whitespace at an
//!   end, surrounding quotes, a CR or newline inside (except in a
//!   multi-line key), or a shape the broker cannot accept.
//! - **Warning**: the value deviates from the shape the broker has issued so
//!   far (lengths, alphabets, prefixes). Brokers change key formats without
//!   notice, so these never stop a feed; they only point at a likely typo.

use crate::secret::Secret;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

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

/// A broker's own rules for its credential values: which fields hold a
/// multi-line key, and the shape checks beyond the generic ones. The
/// broker's registry entry implements it (`BrokerRef`), and whoever lists
/// the required credentials hands it over in [`Rules`]: `credentials` is a
/// low layer and names no broker.
pub trait CredentialRules: Send + Sync + fmt::Debug {
    /// Who supplies the rules (a broker's name), for equality and `Debug`.
    fn name(&self) -> &'static str;
    /// The field holds a multi-line key (a PEM): newlines are part of it.
    fn multiline_field(&self, _field: &str) -> bool {
        false
    }
    /// Shape checks of a value of `field`, run only when it has no generic mistake.
    fn check_credential(&self, _field: &str, _value: &Secret) -> Vec<FormatProblem> {
        Vec::new()
    }
}

/// The rules of a value no broker owns (an `[alerts]` template
/// reference): the generic checks only.
#[derive(Debug)]
pub struct GenericRules;

impl CredentialRules for GenericRules {
    fn name(&self) -> &'static str {
        "generic"
    }
}

/// The rules one required credential is checked by, shared by every
/// entry of the same broker.
#[derive(Clone, Debug)]
pub struct Rules(Arc<dyn CredentialRules>);

impl Rules {
    pub fn new(rules: impl CredentialRules + 'static) -> Rules {
        Rules(Arc::new(rules))
    }

    /// [`GenericRules`]: the generic checks only.
    pub fn generic() -> Rules {
        Rules::new(GenericRules)
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl PartialEq for Rules {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Rules {}

/// Every problem with `value` as the `field` of a credential checked by `rules`.
/// `field` is as in [`super::required::Required::field`].
pub fn check(rules: &Rules, field: &str, value: &Secret) -> Vec<FormatProblem> {
    let pem = rules.0.multiline_field(field);
    let mut out = generic(value, pem);
    if out.is_empty() {
        // The shape checks would only repeat a generic mistake.
        out.extend(rules.0.check_credential(field, value));
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
