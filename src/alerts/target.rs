//! Where a webhook or heartbeat goes: its URL template filled from the
//! credentials, held as a [`Secret`] (a Slack or Discord webhook URL, a
//! Telegram bot token, a healthchecks.io UUID are each enough to post), and
//! the only names it is ever shown by: its host and the URL's fingerprint.
//! Error texts pass through [`Target::scrub`] before they are logged or
//! printed, so no credential value can reach a line even if a lower layer
//! quoted one.

use crate::config::{TELEGRAM_API_URL, WebhookConfig, WebhookFormat, template_names};
use crate::secret::Secret;
use std::fmt;

/// A URL ready to fetch, with what is needed to speak of it safely.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    url: Secret,
    /// Every credential value in `url`, to scrub from texts.
    secrets: Vec<Secret>,
    /// `host hmac:xxxxxxxx`.
    label: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.label)
    }
}

/// A template could not be filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// A `${NAME}` it references is not set.
    MissingCredential { what: String, name: String },
    /// The filled URL is not `http(s)://host...`.
    BadUrl { what: String, label: String },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::MissingCredential { what, name } => write!(
                f,
                "{what}: credential {name} is not set; set it with brokerguard set-credential {name}"
            ),
            TargetError::BadUrl { what, label } => write!(
                f,
                "{what}: the URL ({label}) does not start with http:// or https:// and a host; check the credential that holds it"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// Fills `template` from `lookup`; `what` names it in errors ("webhook ops").
    pub fn resolve(
        what: &str,
        template: &str,
        lookup: &dyn Fn(&str) -> Option<Secret>,
    ) -> Result<Target, TargetError> {
        let mut secrets = Vec::new();
        let mut url = template.to_string();
        for name in template_names(template) {
            let value = lookup(&name).ok_or_else(|| TargetError::MissingCredential {
                what: what.to_string(),
                name: name.clone(),
            })?;
            url = url.replace(&format!("${{{name}}}"), value.expose());
            secrets.push(value);
        }
        let url = Secret::new(url);
        let lower = url.expose().to_ascii_lowercase();
        let has_scheme = lower.starts_with("http://") || lower.starts_with("https://");
        if !has_scheme || host_of(url.expose()).is_empty() {
            // Without a scheme the "host" could be the secret itself.
            return Err(TargetError::BadUrl {
                what: what.to_string(),
                label: url.fingerprint(),
            });
        }
        let label = format!("{} {}", host_of(url.expose()), url.fingerprint());
        Ok(Target {
            url,
            secrets,
            label,
        })
    }

    /// The URL, for the one call that fetches it.
    pub fn url(&self) -> &Secret {
        &self.url
    }

    /// `host hmac:xxxxxxxx`: how logs, errors and `alert-test` name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `text` with the URL and every credential value in it replaced by
    /// their fingerprints.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(self.url.expose(), &self.label);
        // A lower layer may show the URL re-assembled (a port added): its
        // path and query, where webhook secrets live, go on their own.
        let url = self.url.expose();
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        if let Some(i) = rest.find(['/', '?']) {
            if rest.len() - i > 1 {
                out = out.replace(&rest[i..], &format!("/<{}>", self.url.fingerprint()));
            }
        }
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.expose(), &s.fingerprint());
            }
        }
        out
    }
}

/// The host (and port, when given) of a URL, without user-info.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// The URL a webhook posts to: its `url`, or for Telegram the Bot API's
/// `sendMessage` of its bot.
pub fn webhook_target(
    w: &WebhookConfig,
    lookup: &dyn Fn(&str) -> Option<Secret>,
) -> Result<Target, TargetError> {
    let what = format!("webhook {}", w.name);
    match w.format {
        WebhookFormat::Telegram => {
            let base = w.api_url.as_deref().unwrap_or(TELEGRAM_API_URL);
            let token = w.bot_token.as_deref().unwrap_or_default();
            let template = format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'));
            Target::resolve(&what, &template, lookup)
        }
        _ => Target::resolve(&what, w.url.as_deref().unwrap_or_default(), lookup),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    const CANARY: &str = "T000/B000/CANARYxyzzy";

    fn lookup(name: &str) -> Option<Secret> {
        match name {
            "SLACK_WEBHOOK_URL" => Some(Secret::new(format!(
                "https://hooks.slack.com/services/{CANARY}"
            ))),
            "TG" => Some(Secret::new("123456:CANARY-bot-token")),
            _ => None,
        }
    }

    #[test]
    fn labels_show_host_and_fingerprint_only() {
        let t = Target::resolve("webhook ops", "${SLACK_WEBHOOK_URL}", &lookup).unwrap();
        assert!(
            t.label().starts_with("hooks.slack.com hmac:"),
            "{}",
            t.label()
        );
        assert!(!t.label().contains("CANARY"));
        assert!(!format!("{t:?}").contains("CANARY"));
        let err = format!(
            "timeout after 5s to https://hooks.slack.com:443/services/{CANARY} ({})",
            t.url().expose()
        );
        let scrubbed = t.scrub(&err);
        assert!(!scrubbed.contains("CANARY"), "{scrubbed}");
    }

    #[test]
    fn telegram_posts_to_its_bots_send_message() {
        let w = WebhookConfig {
            name: "tg".into(),
            format: WebhookFormat::Telegram,
            url: None,
            bot_token: Some("${TG}".into()),
            chat_id: Some("1".into()),
            api_url: Some("http://127.0.0.1:9/".into()),
            min_severity: Severity::Notice,
        };
        let t = webhook_target(&w, &lookup).unwrap();
        assert_eq!(
            t.url().expose(),
            "http://127.0.0.1:9/bot123456:CANARY-bot-token/sendMessage"
        );
        assert_eq!(t.label().split(' ').next(), Some("127.0.0.1:9"));
        assert!(
            !t.scrub("GET /bot123456:CANARY-bot-token/x")
                .contains("CANARY")
        );
    }

    #[test]
    fn errors_name_the_missing_credential_not_a_value() {
        let e = Target::resolve("webhook ops", "${NOPE}", &lookup).unwrap_err();
        assert_eq!(
            e.to_string(),
            "webhook ops: credential NOPE is not set; set it with brokerguard set-credential NOPE"
        );
        let bad = |_: &str| Some(Secret::new("not-a-url-CANARY"));
        let e = Target::resolve("heartbeat", "${X}", &bad).unwrap_err();
        assert!(!e.to_string().contains("CANARY"), "{e}");
    }
}
