//! The morning Kite login from the operator page: the "Log in with Kite"
//! link ([`login_link`]) and the redirect's return to the agent's
//! `/kite/callback` ([`callback`]), which performs exactly what
//! `kite-login --request-token` does ([`super::login_cmd::login`]): the
//! checksum exchange, the token written atomically to the credentials
//! file, where the watcher picks it up and the account's feeds reconnect.
//!
//! The login URL carries the app's api_key, which Kite does not treat as a
//! secret (it sits in the browser's address bar at every login) and
//! `redirect_params=account=<account>`, which Kite hands back on the
//! redirect so that one callback serves every account. The request token
//! arrives in the callback's query; it is single-use and lives minutes, and
//! it is never logged or shown. A forged redirect cannot log the agent in
//! as someone else: a request token belongs to the app that issued it, and
//! the exchange needs this app's api_secret.

use super::credentials::{FIELD_API_KEY, credential_name};
use super::login::login_url;
use super::login_cmd::{LoginArgs, LoginOutcome, login};
use super::url::plain_url;
use crate::brokers::registry::{BrokerRef, LoginLink, LoginResult, Lookup};
use crate::config::{Config, FeedConfig};
use crate::credentials::Sources;
use crate::secret::Secret;
use std::time::SystemTime;

/// The page's link for the feed's account; `None` until its api_key is set.
pub fn login_link(feed: &FeedConfig, lookup: Lookup<'_>) -> Option<LoginLink> {
    let account = feed.account.as_deref()?;
    let key = lookup(&credential_name(account, FIELD_API_KEY))?;
    let back = format!("account={account}");
    let url = plain_url(&login_url(&key), &[("redirect_params", &back)]);
    Some(LoginLink {
        label: "Kite",
        account: account.to_string(),
        url,
    })
}

/// The accounts of the configuration's Kite feeds, in order, once each.
fn accounts(cfg: &Config) -> Vec<&str> {
    let me = BrokerRef(&super::BROKER);
    let mut out: Vec<&str> = Vec::new();
    for f in cfg.feeds.iter().filter(|f| f.broker == me) {
        if let Some(a) = f.account.as_deref() {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// `/kite/callback?request_token=…&status=success[&account=…]`.
pub fn callback(
    cfg: &Config,
    get: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<LoginResult, String> {
    if let Some(status) = get("status").filter(|s| s != "success") {
        return Err(format!(
            "Kite says the login did not succeed (status={}); log in again",
            crate::peertext::sanitize(&status, crate::peertext::MAX_PEER_TEXT)
        ));
    }
    let known = accounts(cfg);
    let account = match (get("account"), known.as_slice()) {
        (Some(a), _) if known.contains(&a.as_str()) => a,
        (Some(a), _) => {
            return Err(format!(
                "no Kite feed uses account {:?} in {}; the login link of the page names a configured account",
                crate::peertext::sanitize(&a, crate::peertext::MAX_PEER_TEXT),
                cfg.path.display()
            ));
        }
        (None, [one]) => one.to_string(),
        (None, []) => {
            return Err(format!(
                "no Kite feed is configured in {}: add a [[feed]] with broker = \"kite\" first",
                cfg.path.display()
            ));
        }
        (None, _) => {
            return Err(
                "several Kite accounts are configured and the redirect does not say which: use the page's \
                 \"Log in with Kite\" button (its link names the account)"
                    .to_string(),
            );
        }
    };
    let Some(token) = get("request_token") else {
        return Err(
            "the redirect carries no request_token: log in again from the page's \"Log in with Kite\" button"
                .to_string(),
        );
    };
    let args = LoginArgs {
        account: &account,
        request_token: Some(Secret::new(token)),
        rest_url: None,
    };
    match login(
        cfg,
        args,
        &Sources::from_process(&cfg.agent.credential_files),
        now,
    ) {
        Ok(LoginOutcome::Written(w)) => Ok(LoginResult {
            account: account.clone(),
            feeds: w.feeds.clone(),
            text: LoginOutcome::Written(w).to_string(),
        }),
        Ok(other) => Err(other.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(accounts: &[&str]) -> Config {
        let mut text = String::new();
        for (i, a) in accounts.iter().enumerate() {
            text.push_str(&format!(
                "[[feed]]\nname = \"k{i}\"\nbroker = \"kite\"\naccount = \"{a}\"\ninstruments = [408065]\n"
            ));
        }
        crate::config::parse_str(&text, Path::new("/etc/bg.toml")).unwrap()
    }

    #[test]
    fn the_link_carries_the_key_and_the_account_back() {
        let c = cfg(&["main"]);
        let lookup = |n: &str| (n == "KITE_MAIN_API_KEY").then(|| Secret::new("abcdefgh12345678"));
        let link = login_link(&c.feeds[0], &lookup).unwrap();
        assert_eq!(link.account, "main");
        assert_eq!(
            link.url,
            "https://kite.zerodha.com/connect/login?v=3&api_key=abcdefgh12345678&redirect_params=account%3Dmain"
        );
        let none = |_: &str| None;
        assert!(login_link(&c.feeds[0], &none).is_none());
    }

    #[test]
    fn the_token_expiry_note_names_the_credential_and_the_instant() {
        use crate::brokers::registry::BrowserLogin;
        let c = cfg(&["main"]);
        let mut info = std::collections::BTreeMap::new();
        assert_eq!(super::super::BROKER.token_expiry(&c.feeds[0], &info), None);
        info.insert(
            "token_expires".to_string(),
            "2026-11-28T00:30:00Z (06:00 IST)".to_string(),
        );
        let (name, at) = super::super::BROKER
            .token_expiry(&c.feeds[0], &info)
            .unwrap();
        assert_eq!(name, "KITE_MAIN_ACCESS_TOKEN");
        assert_eq!(
            at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            1_795_825_800
        );
        info.insert("token_expires".to_string(), "unknown".to_string());
        assert_eq!(super::super::BROKER.token_expiry(&c.feeds[0], &info), None);
    }

    #[test]
    fn the_callback_refuses_what_it_cannot_use_before_any_call() {
        let now = SystemTime::now();
        let q = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let one = cfg(&["main"]);
        let two = cfg(&["main", "second"]);
        let err = |c: &Config, g: &dyn Fn(&str) -> Option<String>| callback(c, g, now).unwrap_err();
        assert!(err(&one, &q(&[("status", "cancelled")])).contains("did not succeed"));
        assert!(err(&one, &q(&[("status", "success")])).contains("no request_token"));
        assert!(
            err(&one, &q(&[("account", "other"), ("request_token", "x")]))
                .contains("no Kite feed uses account")
        );
        assert!(err(&two, &q(&[("request_token", "x")])).contains("several Kite accounts"));
        assert!(
            err(&cfg(&[]), &q(&[("request_token", "x")])).contains("no Kite feed is configured")
        );
    }
}
