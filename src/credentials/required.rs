//! What a needed credential is ([`Required`]) and how its name is made
//! (substitution happens in `crate::brokers`). Which ones a configuration
//! needs is `config::required_credentials`: each feed's broker lists its
//! own and hands over its value rules as data ([`Rules`]), so this module
//! names no broker and reads no configuration.
//!
//! Broker feeds need `<BROKER>_<ACCOUNT>_<FIELD>` (docs/ARCHITECTURE.md, "Credentials");
//! generic WebSocket feeds need the `${NAME}`s their templates reference.
//! `doctor`, the monitor and status.json all work from this one list.

use super::format::Rules;

/// Field of a `${NAME}` reference in a generic feed's templates.
pub const TEMPLATE_FIELD: &str = "TEMPLATE";

/// One credential one feed needs. A name shared by several feeds appears once per feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Required {
    pub name: String,
    /// The feed that needs it.
    pub feed: String,
    /// The rules its value is checked by (its broker's, or the generic ones).
    pub broker: Rules,
    /// `API_KEY`, `API_SECRET`, `ACCESS_TOKEN`, ... or [`TEMPLATE_FIELD`].
    pub field: String,
    /// The feed runs without it (e.g. a fallback key set): its absence is
    /// shown, not alerted.
    pub optional: bool,
}

/// `<BROKER>_<ACCOUNT>_<FIELD>` in upper case, e.g. `EXCH_MASTER_API_KEY`.
/// Characters that cannot appear in a name (`-`, `.`) become `_`.
pub fn credential_name(broker: &str, account: &str, field: &str) -> String {
    name_part(&format!("{broker}_{account}_{field}"))
}

/// `part` as it stands in a credential name: upper case, with every
/// character that cannot appear in a name (`-`, `.`) made `_`. The one rule
/// every broker's names follow.
pub fn name_part(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// What stands in [`Required::feed`] for the `[alerts]` section (webhook
/// URLs, bot tokens, heartbeat URLs), which needs credentials like a feed.
pub const ALERTS_CONSUMER: &str = "alerts";

/// The distinct names in `required`, first-seen order.
pub fn distinct_names(required: &[Required]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in required {
        if !out.contains(&r.name.as_str()) {
            out.push(&r.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upper_case_with_underscores() {
        assert_eq!(
            credential_name("exch", "user-daivon", "API_SECRET"),
            "EXCH_USER_DAIVON_API_SECRET"
        );
    }
}
