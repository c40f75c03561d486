//! `brokerguard kite-login --account NAME [--request-token T]`, as a
//! library call whose result the CLI prints (the CLI only parses arguments
//! and picks the exit code).
//!
//! Without a request token: the login URL, and what to do with the
//! redirect. With one: the checksum exchange (`POST /session/token` through
//! the HTTP client, at the account's feed `rest_url`, else Kite's), then
//! `KITE_<ACCOUNT>_ACCESS_TOKEN` written atomically into the first
//! credentials file, keeping its owner and mode
//! (`credentials::setcred::set_credential`): the running agent's watcher
//! sees the change and reconnects the account's feeds, no restart. The
//! token's issue time is recorded in the state folder ([`super::records`])
//! so status shows its 06:00 IST expiry at once.
//!
//! The token itself is never printed, logged or put in an error: the
//! outcome shows its fingerprint only.

use super::client::{self, CallError};
use super::credentials::{FIELD_ACCESS_TOKEN, FIELD_API_KEY, FIELD_API_SECRET, credential_name};
use super::expiry::expires_at;
use super::login::{Session, login_url};
use super::records::{self, IssueRecord, IssuedBy};
use super::rest::RestError;
use crate::brokers::registry::{BrokerCommand, BrokerRef, CommandContext, CommandFlag};
use crate::config::{Config, FeedConfig};
use crate::credentials::format::Rules;
use crate::credentials::setcred::{SetCredError, set_credential};
use crate::credentials::{CredentialStore, Required, Sources};
use crate::net::NetError;
use crate::net::http::{HttpClient, HttpOptions};
use crate::secret::Secret;
use crate::timefmt::rfc3339;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The command the registry adds to the command line.
pub static COMMANDS: &[BrokerCommand] = &[BrokerCommand {
    name: "kite-login",
    about: "The daily Kite login: without --request-token, print the login URL; with it, exchange the \
            request token and write the access token atomically (exit 0 done, 1 Kite refused or failed)",
    flags: &[
        CommandFlag {
            long: "account",
            value_name: "ACCOUNT",
            help: "The account = \"...\" of the Kite feed(s), e.g. main (credentials KITE_MAIN_*)",
            required: true,
        },
        CommandFlag {
            long: "request-token",
            value_name: "REQUEST_TOKEN",
            help: "The request_token from the redirect after the login (or the whole redirect address; \
                   \"-\" reads it from stdin)",
            required: false,
        },
        CommandFlag {
            long: "rest-url",
            value_name: "REST_URL",
            help: "REST root to exchange the token at [default: the account's feed rest_url, else https://api.kite.trade]",
            required: false,
        },
    ],
    run: run_command,
}];

/// `kite-login` from the command line: its flags into [`LoginArgs`], the
/// outcome as the text to print.
fn run_command(ctx: &CommandContext<'_>) -> Result<String, Box<dyn std::error::Error>> {
    let request_token = match ctx.arg("request-token") {
        None => None,
        Some("-") => Some(
            (ctx.read_secret)()
                .map_err(|e| format!("cannot read the request token from stdin: {e}"))?,
        ),
        Some(t) => Some(Secret::new(t)),
    };
    let args = LoginArgs {
        account: ctx.arg("account").unwrap_or_default(),
        request_token,
        rest_url: ctx.arg("rest-url"),
    };
    Ok(login(ctx.config, args, ctx.sources, ctx.now)?.to_string())
}

/// What the operator asked for.
pub struct LoginArgs<'a> {
    pub account: &'a str,
    /// The request token, or the whole redirect address it came in.
    pub request_token: Option<Secret>,
    /// Overrides the REST root (else the account's feed `rest_url`, else Kite's).
    pub rest_url: Option<&'a str>,
}

/// What `kite-login` did.
#[derive(Debug)]
pub enum LoginOutcome {
    /// No request token was given: where to log in, and what next.
    LoginUrl {
        account: String,
        url: String,
        /// The command to run with the request token.
        next: String,
    },
    /// The day's access token is in the credentials file.
    Written(Written),
}

#[derive(Debug)]
pub struct Written {
    pub name: String,
    pub file: PathBuf,
    pub fingerprint: String,
    pub user_id: Option<String>,
    pub issued_at: SystemTime,
    pub expires: SystemTime,
    /// The account's feeds in the configuration.
    pub feeds: Vec<String>,
    pub config: PathBuf,
    /// Things the operator should know (never a secret).
    pub notes: Vec<String>,
}

/// Why `kite-login` failed; each says what to do.
#[derive(Debug)]
pub enum LoginError {
    /// `--account` is not a valid account name.
    InvalidAccount { account: String },
    /// `--request-token` holds nothing that can be a request token.
    NotARequestToken,
    /// A credential the login needs is not set. `fix`: the set-credential
    /// command, with the operator's `--config`.
    MissingCredential {
        name: String,
        what: &'static str,
        fix: String,
    },
    /// Kite refused the request token; `next` is the kite-login command to
    /// run again, with the operator's `--config`.
    RequestTokenRejected { next: String },
    /// `agent.credential_files` is empty.
    NoCredentialFile { config: PathBuf },
    /// The HTTP client could not be built (a bad `tls_ca_file`).
    Client(NetError),
    /// The exchange failed: no answer, or Kite refused it.
    Call(CallError),
    /// The token could not be written.
    Write { name: String, error: SetCredError },
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::InvalidAccount { account } => write!(
                f,
                "account {account:?} is not valid: use the account = \"...\" of a Kite feed \
                 (lower-case letters, digits and _)"
            ),
            LoginError::NotARequestToken => f.write_str(
                "--request-token holds no request token: pass the request_token value from the redirect \
                 address (or the whole address)",
            ),
            LoginError::MissingCredential { name, what, fix } => write!(
                f,
                "{name} is not set: it is the app's {what} from the Kite developer console; \
                 set it with: {fix}"
            ),
            LoginError::RequestTokenRejected { next } => {
                f.write_str(&super::rest::request_token_rejected(next))
            }
            LoginError::NoCredentialFile { config } => write!(
                f,
                "agent.credential_files in {} is empty: there is no file to write the access token to",
                config.display()
            ),
            LoginError::Client(e) => write!(f, "cannot set up the HTTP client: {e}"),
            LoginError::Call(e) => e.fmt(f),
            LoginError::Write { name, error } => write!(f, "cannot write {name}: {error}"),
        }
    }
}

impl std::error::Error for LoginError {}

impl fmt::Display for LoginOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginOutcome::LoginUrl { account, url, next } => write!(
                f,
                "Log in to Kite for account {account} (as the account holder, in a browser):\n\n  \
                 {url}\n\n\
                 Kite then sends the browser to the app's redirect URL with request_token=... in its address.\n\
                 A request token works once and only for a few minutes, so run at once:\n\n  \
                 {next} --request-token <request_token>\n\n\
                 (the whole redirect address may be pasted in place of <request_token>; \
                 --request-token - reads it from stdin, out of the shell history)\n"
            ),
            LoginOutcome::Written(w) => {
                let user = w
                    .user_id
                    .as_deref()
                    .map(|u| format!("; Kite user {u}"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "{} written to {} (fingerprint {}{user}).",
                    w.name,
                    w.file.display(),
                    w.fingerprint
                )?;
                writeln!(
                    f,
                    "Issued {}; it expires {} (06:00 IST).",
                    rfc3339(w.issued_at),
                    rfc3339(w.expires)
                )?;
                match w.feeds.as_slice() {
                    [] => writeln!(
                        f,
                        "No feed in {} uses this account yet: add a [[feed]] with broker = \"kite\" and its account to stream with it.",
                        w.config.display()
                    )?,
                    feeds => writeln!(
                        f,
                        "A running agent reconnects {} {} on it at once; no restart is needed.",
                        if feeds.len() == 1 { "feed" } else { "feeds" },
                        feeds.join(", ")
                    )?,
                }
                for n in &w.notes {
                    writeln!(f, "note: {n}")?;
                }
                Ok(())
            }
        }
    }
}

/// `--account`: the configuration's account rule.
fn valid_account(a: &str) -> bool {
    !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The request token in what the operator pasted: the value itself, or a
/// redirect address carrying `request_token=`.
pub fn request_token_of(input: &Secret) -> Option<Secret> {
    let s = input.expose().trim();
    let value = match s.find("request_token=") {
        Some(i) => {
            let rest = &s[i + "request_token=".len()..];
            rest.split(['&', '#', ' ']).next().unwrap_or("")
        }
        None => s,
    };
    let ok = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| Secret::new(value))
}

/// `sudo brokerguard kite-login --account A [--config PATH]`, as the
/// operator types it: every command kite-login suggests carries the
/// configuration, so a pasted hint reads the same one.
fn next_command(cfg: &Config, account: &str) -> String {
    crate::fixcmd::with_config(&cfg.path, &format!("kite-login --account {account}"))
}

/// An HTTP client with the feed's timeouts and CA, or the defaults.
fn http_client(feed: Option<&FeedConfig>) -> Result<HttpClient, NetError> {
    let opts = match feed {
        Some(f) => HttpOptions {
            connect_timeout: f.connect_timeout,
            response_timeout: f.handshake_timeout,
            body_timeout: f.handshake_timeout,
            ca_file: f.tls_ca_file.clone(),
            ..HttpOptions::default()
        },
        None => HttpOptions::default(),
    };
    HttpClient::new(opts)
}

/// Runs `kite-login` (see the module doc).
pub fn login(
    cfg: &Config,
    args: LoginArgs<'_>,
    sources: &Sources,
    now: SystemTime,
) -> Result<LoginOutcome, LoginError> {
    let account = args.account;
    if !valid_account(account) {
        return Err(LoginError::InvalidAccount {
            account: crate::peertext::short(account),
        });
    }
    let feeds = account_feeds(cfg, account);
    let rest_root = args
        .rest_url
        .or_else(|| feeds.iter().find_map(|f| f.rest_url.as_deref()))
        .unwrap_or(super::DEFAULT_REST_URL)
        .to_string();
    let store = login_credentials(sources, account);
    let name = |field: &str| credential_name(account, field);
    let get = |field: &str, what: &'static str| {
        store
            .get(&name(field))
            .map(|c| c.value.clone())
            .ok_or_else(|| LoginError::MissingCredential {
                name: name(field),
                what,
                fix: crate::fixcmd::with_config(
                    &cfg.path,
                    &format!("set-credential {}", name(field)),
                ),
            })
    };
    let api_key = get(FIELD_API_KEY, "api_key")?;
    let Some(pasted) = args.request_token else {
        return Ok(LoginOutcome::LoginUrl {
            account: account.to_string(),
            url: login_url(&api_key),
            next: next_command(cfg, account),
        });
    };
    let request_token = request_token_of(&pasted).ok_or(LoginError::NotARequestToken)?;
    let api_secret = get(FIELD_API_SECRET, "api_secret")?;
    let file = cfg.agent.credential_files.first().cloned().ok_or_else(|| {
        LoginError::NoCredentialFile {
            config: cfg.path.clone(),
        }
    })?;
    let client = http_client(feeds.first().copied()).map_err(LoginError::Client)?;
    let session = client::exchange(
        &client,
        &rest_root,
        &api_key,
        &request_token,
        &api_secret,
        account,
    )
    .map_err(|e| match e {
        CallError::Kite(RestError::RequestTokenRejected { .. }) => {
            LoginError::RequestTokenRejected {
                next: next_command(cfg, account),
            }
        }
        e => LoginError::Call(e),
    })?;
    let feeds = feeds.iter().map(|f| f.name.clone()).collect();
    save_token(cfg, sources, file, account, session, feeds, now).map(LoginOutcome::Written)
}

/// The configuration's Kite feeds on `account`.
fn account_feeds<'c>(cfg: &'c Config, account: &str) -> Vec<&'c FeedConfig> {
    let broker = BrokerRef(&super::BROKER);
    cfg.feeds
        .iter()
        .filter(|f| f.broker == broker && f.account.as_deref() == Some(account))
        .collect()
}

/// The account's key, secret and token, wherever they are set.
fn login_credentials(sources: &Sources, account: &str) -> CredentialStore {
    let required: Vec<Required> = [FIELD_API_KEY, FIELD_API_SECRET, FIELD_ACCESS_TOKEN]
        .into_iter()
        .map(|field| Required {
            name: credential_name(account, field),
            feed: "kite-login".into(),
            broker: Rules::new(BrokerRef(&super::BROKER)),
            field: field.into(),
            optional: true,
        })
        .collect();
    CredentialStore::load(sources, &required).store
}

/// The day's token written where the agent's watcher sees it, its issue
/// recorded first (so a reconnect it causes already knows its age).
fn save_token(
    cfg: &Config,
    sources: &Sources,
    file: PathBuf,
    account: &str,
    session: Session,
    feeds: Vec<String>,
    now: SystemTime,
) -> Result<Written, LoginError> {
    let token_name = credential_name(account, FIELD_ACCESS_TOKEN);
    let fingerprint = session.access_token.fingerprint();
    let issued_at = session.login_time.unwrap_or(now);
    let rec = IssueRecord {
        fingerprint: fingerprint.clone(),
        issued_at,
        by: IssuedBy::KiteLogin,
        user_id: session.user_id.clone(),
    };
    let mut notes: Vec<String> = record_issue(&cfg.agent.state_dir, &rec, now)
        .into_iter()
        .collect();
    set_credential(&file, &token_name, &session.access_token).map_err(|error| {
        LoginError::Write {
            name: token_name.clone(),
            error,
        }
    })?;
    notes.extend(systemd_shadow(sources, &token_name, &file));
    Ok(Written {
        name: token_name,
        file,
        fingerprint,
        user_id: session.user_id,
        issued_at,
        expires: expires_at(issued_at),
        feeds,
        config: cfg.path.clone(),
        notes,
    })
}

/// Records when the token was issued; a note when it cannot (the agent
/// then times the token from its first connection).
fn record_issue(state_dir: &Path, rec: &IssueRecord, now: SystemTime) -> Option<String> {
    if !state_dir.is_dir() {
        return Some(format!(
            "the state folder {} does not exist; the agent times the token from its first connection",
            state_dir.display()
        ));
    }
    records::save(state_dir, rec, now)
        .err()
        .map(|e| format!("{e}; the agent times the token from its first connection instead"))
}

/// A note when a systemd credential of the same name hides the file's.
fn systemd_shadow(sources: &Sources, token_name: &str, file: &Path) -> Option<String> {
    let dir = sources.systemd_dir.as_ref()?;
    dir.join(token_name).exists().then(|| {
        format!(
            "{token_name} is also a systemd credential in {}, which takes precedence over {}: \
             remove it from the unit (LoadCredential=/SetCredential=) or the agent keeps the old token",
            dir.display(),
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_token_or_the_redirect_it_came_in() {
        let t = |s: &str| request_token_of(&Secret::new(s)).map(|s| s.expose().to_string());
        assert_eq!(
            t("  Kx7QrTq0wLmN2pZs9VbC4dEf6GhJ8kLa\n").as_deref(),
            Some("Kx7QrTq0wLmN2pZs9VbC4dEf6GhJ8kLa")
        );
        assert_eq!(
            t("https://bot.example/kite?action=login&type=login&status=success&request_token=abc123XYZ&x=1").as_deref(),
            Some("abc123XYZ")
        );
        assert_eq!(
            t("https://bot.example/kite?request_token=abc#frag").as_deref(),
            Some("abc")
        );
        assert_eq!(t(""), None);
        assert_eq!(t("https://bot.example/kite?status=cancelled"), None);
        assert_eq!(t("a b"), None);
        assert_eq!(t("request_token="), None);
    }

    #[test]
    fn accounts_follow_the_configuration_rule() {
        assert!(valid_account("main") && valid_account("user_2"));
        assert!(!valid_account("Main") && !valid_account("") && !valid_account("a-b"));
    }
}
