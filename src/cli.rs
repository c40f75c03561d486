//! The command line: parses arguments and maps library results to the exit
//! codes in [`crate::exit`]. Nothing else decides an exit code.

use crate::config;
use crate::daemon::{self, DaemonError, RunOptions};
use crate::exit;
use crate::status::show::{self, Health, Observed};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "brokerguard",
    version,
    about = "Keeps a trading bot's broker connections alive"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent in the foreground (systemd runs this).
    Run {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show the live state of the running agent (exit 0 all live, 1 degraded, 3 not running).
    Status {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the raw status.json document.
        #[arg(long)]
        json: bool,
    },
    /// Make the running agent reload its configuration and credentials, and wait for the outcome
    /// (exit 0 applied, 78 rejected and the running configuration kept, 3 not running, 75 no answer in time).
    Reload {
        /// The agent's configuration file (where its runtime folder is found) [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to wait for the agent's answer.
        #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
    },
    /// Validate the configuration and print it with defaults filled in.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Audit credentials: presence, source, format, file permissions, and the commands that fix problems.
    Doctor {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text (for scripts).
        #[arg(long)]
        json: bool,
        /// Also validate credentials against the brokers' REST APIs.
        #[arg(long)]
        online: bool,
    },
    /// Write one secret, read from stdin (no echo on a terminal), atomically into the credentials file.
    SetCredential {
        /// Upper-case name, e.g. KRAKEN_MASTER_API_KEY.
        name: String,
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Credentials file to write [default: the first of agent.credential_files].
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Layered preflight of each feed (DNS, TCP, TLS, handshake, auth, first data).
    Check {
        /// Feeds to check, by name [default: every feed].
        feeds: Vec<String>,
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// The daily Kite login: without --request-token, print the login URL; with it, exchange the
    /// request token and write the access token atomically (exit 0 done, 1 Kite refused or failed).
    KiteLogin {
        /// The account = "..." of the Kite feed(s), e.g. main (credentials KITE_MAIN_*).
        #[arg(long)]
        account: String,
        /// The request_token from the redirect after the login (or the whole redirect address;
        /// "-" reads it from stdin).
        #[arg(long)]
        request_token: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// REST root to exchange the token at [default: the account's feed rest_url, else https://api.kite.trade].
        #[arg(long)]
        rest_url: Option<String>,
    },
    /// The agent against a built-in simulated broker with injected faults, offline.
    Demo {
        /// The longest the demo may run (its five faults take about 20 s).
        #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
        duration: std::time::Duration,
    },
    /// Run the loopback broker simulator in the foreground.
    Sim(Box<crate::sim::SimCommand>),
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate and print the effective configuration (secrets redacted).
    Check {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    config::parse_duration(s)
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
        }
    };
    match cli.command {
        Command::Run { config } => run(config),
        Command::Status { config, json } => status(config, json),
        Command::Reload { config, timeout } => reload(config, timeout),
        Command::Config {
            action: ConfigAction::Check { config },
        } => config_check(config),
        Command::Doctor {
            config,
            json,
            online,
        } => doctor(config, json, online),
        Command::SetCredential { name, config, file } => set_credential(&name, config, file),
        Command::Check {
            feeds,
            config,
            json,
        } => check(&feeds, config, json),
        Command::KiteLogin {
            account,
            request_token,
            config,
            rest_url,
        } => kite_login(&account, request_token, config, rest_url),
        Command::Demo { duration } => match crate::demo::run(duration) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("brokerguard demo: {e}");
                exit::SOFTWARE
            }
        },
        Command::Sim(args) => sim(&args),
    }
}

fn kite_login(
    account: &str,
    request_token: Option<String>,
    config: Option<PathBuf>,
    rest_url: Option<String>,
) -> u8 {
    use crate::brokers::kite::login_cmd;
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request_token = match request_token.as_deref() {
        None => None,
        Some("-") => match crate::credentials::setcred::read_secret_from_stdin() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("brokerguard kite-login: cannot read the request token from stdin: {e}");
                return exit::FAILURE;
            }
        },
        Some(t) => Some(crate::credentials::Secret::new(t)),
    };
    let sources = crate::credentials::Sources::from_process(&cfg.agent);
    let args = login_cmd::LoginArgs {
        account,
        request_token,
        rest_url: rest_url.as_deref(),
    };
    match login_cmd::login(&cfg, args, &sources, std::time::SystemTime::now()) {
        Ok(outcome) => {
            print!("{outcome}");
            exit::OK
        }
        Err(e) => {
            eprintln!("brokerguard kite-login: {e}");
            exit::FAILURE
        }
    }
}

fn run(config: Option<PathBuf>) -> u8 {
    let path = config::resolve_path(config);
    match daemon::run(RunOptions::new(path)) {
        Ok(()) => exit::OK,
        Err(e) => {
            // Error priority, even before logging is set up: the journal
            // must show why a start failed under `-p err`.
            for alert in e.start_alerts() {
                crate::logging::print_now(
                    alert.kind.level(),
                    crate::logging::Origin::Alert,
                    &alert.to_string(),
                );
            }
            match e {
                DaemonError::Config(_) => exit::CONFIG,
                DaemonError::Lock(crate::daemon::lock::LockError::Held { .. }) => exit::LOCKED,
                DaemonError::Lock(_) | DaemonError::Os { .. } => exit::OSERR,
                DaemonError::Preflight(_) => exit::UNAVAILABLE,
                DaemonError::Http(e) if e.is_setup() => exit::CONFIG,
                DaemonError::Http(_) => exit::OSERR,
            }
        }
    }
}

fn load_or_exit(config: Option<PathBuf>) -> Result<config::Config, u8> {
    let path = config::resolve_path(config);
    daemon::load_config(&path).map_err(|e| {
        eprintln!("brokerguard: {e}");
        exit::CONFIG
    })
}

fn config_check(config: Option<PathBuf>) -> u8 {
    match load_or_exit(config) {
        Ok(cfg) => {
            print!("{}", config::effective_toml(&cfg));
            let n = cfg.feeds.len();
            eprintln!(
                "{}: configuration is valid ({n} {})",
                cfg.path.display(),
                if n == 1 { "feed" } else { "feeds" }
            );
            for w in config::literal_secret_warnings(&cfg) {
                eprintln!("warning: {w}");
            }
            for (file, mode) in
                crate::credentials::doctor::open_to_everyone(&cfg.agent.credential_files)
            {
                eprintln!(
                    "warning: credentials file {} has mode {mode:04o}: every user on this host can read it; \
                     fix: {}",
                    file.display(),
                    crate::credentials::doctor::tighten_command(&file)
                );
            }
            exit::OK
        }
        Err(code) => code,
    }
}

/// Where the agent's runtime folder is, for `status`. The bot's user (in
/// `brokerguard-clients`) may read status.json but not the configuration
/// under /etc/brokerguard: a configuration it is not allowed to read means
/// the default folder, not a failure.
fn runtime_dir_for_status(config: Option<PathBuf>) -> Result<PathBuf, u8> {
    let path = config::resolve_path(config);
    match daemon::load_config(&path) {
        Ok(cfg) => Ok(cfg.agent.runtime_dir),
        Err(DaemonError::Config(config::ConfigError::Read { source, .. }))
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Ok(config::AgentConfig::defaults().runtime_dir)
        }
        Err(e) => {
            eprintln!("brokerguard: {e}");
            Err(exit::CONFIG)
        }
    }
}

/// Where the running agent's runtime folder is, for `reload`: from the
/// configuration even when it is invalid (the agent is the one to reject
/// it, and must be told), as far as it can be read.
fn runtime_dir_for_reload(path: &std::path::Path) -> PathBuf {
    if let Ok(cfg) = daemon::load_config(path) {
        return cfg.agent.runtime_dir;
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("agent")?
                .get("runtime_dir")?
                .as_str()
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| config::AgentConfig::defaults().runtime_dir)
}

fn reload(config: Option<PathBuf>, timeout: std::time::Duration) -> u8 {
    let path = config::resolve_path(config);
    let runtime_dir = runtime_dir_for_reload(&path);
    match daemon::reload::request(&runtime_dir, timeout) {
        Ok(outcome) if outcome.applied() => {
            println!(
                "brokerguard (pid {}) reloaded {}: applied (reload {})",
                outcome.pid,
                path.display(),
                outcome.reload.generation
            );
            exit::OK
        }
        Ok(outcome) => {
            for p in &outcome.reload.problems {
                eprintln!("{p}");
            }
            eprintln!(
                "brokerguard (pid {}) rejected {} (reload {}): it keeps running the configuration it had",
                outcome.pid,
                path.display(),
                outcome.reload.generation
            );
            exit::CONFIG
        }
        Err(e) => {
            eprintln!("brokerguard reload: {e}");
            match e {
                daemon::reload::ReloadError::NotRunning { .. }
                | daemon::reload::ReloadError::Exited { .. } => exit::NOT_RUNNING,
                daemon::reload::ReloadError::Timeout { .. } => exit::TEMPFAIL,
                _ => exit::FAILURE,
            }
        }
    }
}

fn status(config: Option<PathBuf>, json: bool) -> u8 {
    let runtime_dir = match runtime_dir_for_status(config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match show::observe(&runtime_dir) {
        Observed::NotRunning { stale } => {
            if json {
                println!("{{\"running\": false}}");
            } else if stale {
                println!(
                    "brokerguard is not running (status.json in {} is stale)",
                    runtime_dir.display()
                );
            } else {
                println!("brokerguard is not running");
            }
            exit::NOT_RUNNING
        }
        Observed::Unreadable(why) => {
            eprintln!("brokerguard status: {why}");
            exit::NOT_RUNNING
        }
        Observed::Running(doc) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                print!("{}", show::render_table(&doc, std::time::SystemTime::now()));
            }
            match show::health(&doc) {
                Health::AllLive => exit::OK,
                Health::Degraded => exit::FAILURE,
            }
        }
    }
}

fn doctor(config: Option<PathBuf>, json: bool, online: bool) -> u8 {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let sources = crate::credentials::Sources::from_process(&cfg.agent);
    let mut report = crate::credentials::doctor::audit(&cfg, &sources, std::path::Path::new("/"));
    // What the running agent says about each feed (the key set in use, ...).
    let running = match show::observe(&cfg.agent.runtime_dir) {
        Observed::Running(doc) => Some(doc),
        _ => None,
    };
    report.add_feed_notes(&cfg, &|name: &str| {
        running
            .as_ref()
            .and_then(|doc| doc.feeds.iter().find(|f| f.name == name))
            .map(|f| f.info.clone())
    });
    let required = crate::credentials::required_names(&cfg);
    let store = crate::credentials::CredentialStore::load(&sources, &required).store;
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let ctx = crate::brokers::BuildContext {
        lookup: &lookup,
        clock: std::sync::Arc::new(crate::clock::SystemClock::new()),
        state_dir: cfg.agent.state_dir.clone(),
        drift: std::sync::Arc::new(crate::net::http::ClockDrift::default()),
        calendars: cfg.calendars.clone(),
        alert_after: cfg.agent.alert_after,
    };
    report.add_sessions(crate::credentials::doctor::session_facts(&cfg, &ctx));
    if online {
        report.add_online(crate::credentials::doctor::online_checks(&cfg, &ctx));
    }
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.ok() { exit::OK } else { exit::FAILURE }
}

fn set_credential(name: &str, config: Option<PathBuf>, file: Option<PathBuf>) -> u8 {
    let target = match file {
        Some(f) => f,
        None => match load_or_exit(config) {
            Ok(cfg) => match cfg.agent.credential_files.first() {
                Some(f) => f.clone(),
                None => {
                    eprintln!(
                        "brokerguard set-credential: agent.credential_files is empty; pass --file"
                    );
                    return exit::FAILURE;
                }
            },
            Err(code) => return code,
        },
    };
    let value = match crate::credentials::setcred::read_secret_from_stdin() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("brokerguard set-credential: cannot read the value from stdin: {e}");
            return exit::FAILURE;
        }
    };
    // HTTP_PASSWORD is stored as its Argon2id hash, never as typed.
    let value = match crate::http::auth::stored_form(name, value) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("brokerguard set-credential: {e}");
            return exit::FAILURE;
        }
    };
    match crate::credentials::setcred::set_credential(&target, name, &value) {
        Ok(()) => {
            eprintln!(
                "{name} set in {} (fingerprint {}); a running agent picks it up at once",
                target.display(),
                value.fingerprint()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("brokerguard set-credential: {e}");
            exit::FAILURE
        }
    }
}

fn sim(args: &crate::sim::SimCommand) -> u8 {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    match crate::sim::run_command(args, &stop) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("brokerguard sim: {e}");
            exit::FAILURE
        }
    }
}

fn check(names: &[String], config: Option<PathBuf>, json: bool) -> u8 {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !cfg.feeds.iter().any(|f| &f.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = cfg.feeds.iter().map(|f| f.name.as_str()).collect();
        let quoted = |v: &[&str]| {
            v.iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unknown: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "brokerguard check: no feed named {} in {}; its feeds are {}",
            quoted(&unknown),
            cfg.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                quoted(&known)
            }
        );
        return exit::USAGE;
    }
    let feeds: Vec<config::FeedConfig> = cfg
        .feeds
        .iter()
        .filter(|f| names.is_empty() || names.contains(&f.name))
        .cloned()
        .collect();
    let required = crate::credentials::required_names(&cfg);
    let sources = crate::credentials::Sources::from_process(&cfg.agent);
    let store = crate::credentials::CredentialStore::load(&sources, &required).store;
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let ctx = crate::brokers::BuildContext {
        lookup: &lookup,
        clock: std::sync::Arc::new(crate::clock::SystemClock::new()),
        state_dir: cfg.agent.state_dir.clone(),
        drift: std::sync::Arc::new(crate::net::http::ClockDrift::default()),
        calendars: cfg.calendars.clone(),
        alert_after: cfg.agent.alert_after,
    };
    let reports = crate::preflight::check_all(&feeds, &ctx);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    } else {
        for r in &reports {
            print!("{}", r.to_text());
        }
        if reports.is_empty() {
            println!("no feeds configured in {}", cfg.path.display());
        }
    }
    if reports.iter().all(|r| r.passed()) {
        exit::OK
    } else {
        exit::FAILURE
    }
}
