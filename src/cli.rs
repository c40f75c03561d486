//! The command line: parses arguments and maps library results to the exit
//! codes in [`crate::exit`]. Nothing else decides an exit code.

use crate::config;
use crate::daemon::{self, DaemonError, RunOptions};
use crate::exit;
use crate::status::show::{self, Health, Observed};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// The agent against a built-in simulated broker with injected faults, offline.
    Demo {
        /// The longest the demo may run (its five faults take about 20 s).
        #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
        duration: std::time::Duration,
    },
    /// Send one test alert through the configured webhooks and print what each answered
    /// (exit 0 all delivered, 1 otherwise).
    AlertTest {
        /// Only this [[alerts.webhook]], by name [default: every webhook].
        #[arg(long)]
        webhook: Option<String>,
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a running feed's flight recorder: its last frames and state transitions, one JSON
    /// object a line (exit 0 printed, 1 no such feed or no answer, 3 not running).
    Blackbox {
        /// The feed's name.
        feed: String,
        /// The agent's configuration file (where its runtime folder is found) [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to wait for the agent's answer.
        #[arg(long, default_value = "5s", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
    },
    /// Run the loopback broker simulator in the foreground.
    Sim(Box<crate::sim::SimCommand>),
    /// Failover ([ha]): the role and the lease holder, or a planned hand-over.
    Ha {
        #[command(subcommand)]
        action: HaAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum HaAction {
    /// This agent's failover role and who holds the lease (exit 0 a leader is known, 1 none, 3 not running).
    Status {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Hand the lease to the standby: this agent stops its private feeds, releases the lease and
    /// waits for another node to hold it (exit 0 handed over, 1 not leader or nobody took over, 3 not running).
    StepDown {
        /// Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to wait for another node to take the lease.
        #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
    },
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

impl Command {
    /// The command's `--config` (`Some(None)`: it takes one, none was
    /// given); `None` for a command that reads no configuration.
    fn config_flag(&self) -> Option<Option<&PathBuf>> {
        match self {
            Command::Run { config }
            | Command::Status { config, .. }
            | Command::Reload { config, .. }
            | Command::Config {
                action: ConfigAction::Check { config },
            }
            | Command::Doctor { config, .. }
            | Command::SetCredential { config, .. }
            | Command::Check { config, .. }
            | Command::AlertTest { config, .. }
            | Command::Blackbox { config, .. }
            | Command::Ha {
                action: HaAction::Status { config } | HaAction::StepDown { config, .. },
            } => Some(config.as_ref()),
            Command::Demo { .. } | Command::Sim(_) => None,
        }
    }
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    config::parse_duration(s)
}

/// Whether the command reads secrets (credentials, tokens, request
/// tokens): it makes itself non-dumpable first.
fn holds_secrets(command: &Command) -> bool {
    matches!(
        command,
        Command::Run { .. }
            | Command::Doctor { .. }
            | Command::SetCredential { .. }
            | Command::Check { .. }
            | Command::Demo { .. }
    )
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    // Before anything can panic: a panic's message may hold a value, and
    // std's own hook would print it (`threads::install_panic_hook`).
    crate::threads::install_panic_hook();
    let usage_error = |e: clap::Error| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                exit::OK
            }
            _ => exit::USAGE,
        }
    };
    let matches = match command_line().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    if let Some((name, m)) = matches.subcommand() {
        if let Some(bc) = crate::brokers::command::find(name) {
            return broker_command(bc, m);
        }
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if holds_secrets(&cli.command) {
        // Before any secret is read: no core dump, no ptrace by a neighbour.
        // It cannot fail with these arguments; a refusal only loses that.
        let _ = crate::os::process::forbid_core_dumps();
    }
    // Every fix a command prints carries this configuration (see fixcmd).
    if let Some(path) = cli.command.config_flag() {
        crate::fixcmd::set_config_path(&config::resolve_path(path.cloned()));
    }
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
        Command::Demo { duration } => match crate::demo::run(duration) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("brokerguard demo: {e}");
                exit::SOFTWARE
            }
        },
        Command::AlertTest { webhook, config } => alert_test(webhook.as_deref(), config),
        Command::Blackbox {
            feed,
            config,
            timeout,
        } => blackbox(&feed, config, timeout),
        Command::Sim(args) => sim(&args),
        Command::Ha { action } => ha(action),
    }
}

/// The command line: the built-in commands, then each broker's own
/// (`brokers::command`), listed in `--help` like the others.
fn command_line() -> clap::Command {
    let mut line = Cli::command();
    for bc in crate::brokers::command::all() {
        let mut sub = clap::Command::new(bc.name).about(bc.about);
        for f in bc.flags {
            sub = sub.arg(
                clap::Arg::new(f.long)
                    .long(f.long)
                    .value_name(f.value_name)
                    .help(f.help)
                    .required(f.required),
            );
        }
        line = line.subcommand(sub.arg(
            clap::Arg::new("config").long("config").value_name("CONFIG").help(
                "Configuration file [default: $BROKERGUARD_CONFIG or /etc/brokerguard/brokerguard.toml]",
            ),
        ));
    }
    line
}

/// Runs a broker's command (see `brokers::command`): it reads the
/// configuration and may read secrets; its error is a failure (exit 1).
fn broker_command(bc: &crate::brokers::command::BrokerCommand, m: &clap::ArgMatches) -> u8 {
    // Before any secret is read: no core dump, no ptrace by a neighbour.
    let _ = crate::os::process::forbid_core_dumps();
    let config = m.get_one::<String>("config").map(PathBuf::from);
    crate::fixcmd::set_config_path(&config::resolve_path(config.clone()));
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    use_host_fingerprints(bc.name, &cfg);
    let args: Vec<(&'static str, String)> = bc
        .flags
        .iter()
        .filter_map(|f| Some((f.long, m.get_one::<String>(f.long)?.clone())))
        .collect();
    let sources = crate::credentials::Sources::from_process(&cfg.agent.credential_files);
    let ctx = crate::brokers::command::CommandContext {
        config: &cfg,
        sources: &sources,
        now: std::time::SystemTime::now(),
        args: &args,
        read_secret: &crate::credentials::setcred::read_secret_from_stdin,
    };
    match (bc.run)(&ctx) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("brokerguard {}: {e}", bc.name);
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

/// Installs the host's fingerprint key (from the state folder) so the
/// fingerprints a command shows match the agent's; when it cannot be read,
/// says that this run's fingerprints are its own.
fn use_host_fingerprints(command: &str, cfg: &config::Config) {
    if let Err(e) = crate::secret::fingerprint::use_host_key(&cfg.agent.state_dir) {
        eprintln!(
            "brokerguard {command}: {e}; fingerprints shown here are this run's own and do not match the agent's (run as root or the service user to compare them)"
        );
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
            eprintln!(
                "{}: configuration is valid ({})",
                cfg.path.display(),
                crate::count::count(cfg.feeds.len(), "feed", "feeds")
            );
            for w in config::setup_warnings(&cfg) {
                eprintln!("warning: {w}");
            }
            let sources = crate::credentials::Sources::from_process(&cfg.agent.credential_files);
            for w in crate::commands::config_check::credential_warnings(&cfg, &sources) {
                eprintln!("warning: {w}");
            }
            exit::OK
        }
        Err(code) => code,
    }
}

/// Where the agent's runtime folder is, for `status`, and what is wrong with
/// the configuration if anything (printed beside the agent's state, never
/// instead of it: an agent keeps running its last good configuration after
/// the file went bad, and a missing file does not mean a failure but that no
/// agent was started from it). The bot's user (in `brokerguard-clients`)
/// may read status.json but not the configuration under /etc/brokerguard:
/// a configuration it is not allowed to read means the default folder, and
/// no problem worth saying.
fn runtime_dir_for_status(path: &std::path::Path) -> (PathBuf, Option<DaemonError>) {
    match daemon::load_config(path) {
        Ok(cfg) => (cfg.agent.runtime_dir, None),
        Err(DaemonError::Config(config::ConfigError::Read { source, .. }))
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            (config::AgentConfig::defaults().runtime_dir, None)
        }
        Err(e) => (runtime_dir_in_file(path), Some(e)),
    }
}

/// The `agent.runtime_dir` written in a configuration that does not load
/// (the default when the file or the key cannot be read): where an agent
/// started from an earlier, good version of it runs.
fn runtime_dir_in_file(path: &std::path::Path) -> PathBuf {
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

/// Where the running agent's runtime folder is, for `reload`: from the
/// configuration even when it is invalid (the agent is the one to reject
/// it, and must be told), as far as it can be read. A file that cannot be
/// read at all (a typo in --config) is the error, as for every other
/// command: no agent can be asked to load it.
fn runtime_dir_for_reload(path: &std::path::Path) -> Result<PathBuf, DaemonError> {
    match daemon::load_config(path) {
        Ok(cfg) => Ok(cfg.agent.runtime_dir),
        Err(e @ DaemonError::Config(config::ConfigError::Read { .. })) => Err(e),
        Err(_) => Ok(runtime_dir_in_file(path)),
    }
}

fn ha(action: HaAction) -> u8 {
    use crate::ha::command::{self, Outcome};
    let outcome = match action {
        HaAction::Status { config } => {
            // Like `status`: the running agent's word, whatever the file says now.
            let (dir, _) = runtime_dir_for_status(&config::resolve_path(config));
            command::status(&dir)
        }
        HaAction::StepDown { config, timeout } => {
            match runtime_dir_for_reload(&config::resolve_path(config)) {
                Ok(dir) => command::step_down(&dir, timeout),
                Err(e) => {
                    eprintln!("brokerguard ha: {e}");
                    return exit::CONFIG;
                }
            }
        }
    };
    match outcome {
        Outcome::Ok(line) => {
            println!("{line}");
            exit::OK
        }
        Outcome::Failed(line) => {
            eprintln!("brokerguard ha: {line}");
            exit::FAILURE
        }
        Outcome::NotRunning(line) => {
            eprintln!("brokerguard ha: {line}");
            exit::NOT_RUNNING
        }
    }
}

fn reload(config: Option<PathBuf>, timeout: std::time::Duration) -> u8 {
    let path = config::resolve_path(config);
    let runtime_dir = match runtime_dir_for_reload(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("brokerguard reload: {e}");
            return exit::CONFIG;
        }
    };
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
    let path = config::resolve_path(config);
    let (runtime_dir, config_problem) = runtime_dir_for_status(&path);
    let code = match show::observe(&runtime_dir) {
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
            // The agent's own account of a rejected reload is in the table;
            // the file's problems are said again only when they differ (it
            // changed since, and is not reloaded yet).
            if let Some(e) = &config_problem {
                let shown = doc
                    .agent
                    .reload
                    .as_ref()
                    .filter(|r| r.result == crate::status::schema::ReloadStatus::REJECTED)
                    .is_some_and(|r| {
                        r.problems
                            .iter()
                            .map(String::as_str)
                            .eq(e.to_string().lines())
                    });
                if !shown {
                    eprintln!(
                        "\nthe configuration file has problems; the agent keeps running the configuration it had:\n{e}"
                    );
                }
            }
            return match show::health(&doc) {
                Health::AllLive => exit::OK,
                Health::Degraded => exit::FAILURE,
            };
        }
    };
    // No agent: the configuration's problem is why it may not start, said
    // after the answer to the question asked.
    if let Some(e) = config_problem {
        eprintln!("brokerguard status: {e}");
    }
    code
}

/// `blackbox FEED`: the running agent's recorder of one feed, as NDJSON.
fn blackbox(feed: &str, config: Option<PathBuf>, timeout: std::time::Duration) -> u8 {
    let (runtime_dir, _) = runtime_dir_for_status(&config::resolve_path(config));
    match crate::daemon::blackbox::request(&runtime_dir, feed, timeout) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("brokerguard: {e}");
            match e {
                crate::daemon::blackbox::BlackboxError::NotRunning { .. } => exit::NOT_RUNNING,
                _ => exit::FAILURE,
            }
        }
    }
}

/// `alert-test`: one test alert per webhook, each answer on its own line.
fn alert_test(only: Option<&str>, config: Option<PathBuf>) -> u8 {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if cfg.alerts.webhooks.is_empty() {
        eprintln!(
            "brokerguard: {} has no [[alerts.webhook]]; add one (README, \"Webhook alerts\")",
            cfg.path.display()
        );
        return exit::FAILURE;
    }
    let sources = crate::credentials::Sources::from_process(&cfg.agent.credential_files);
    let required = crate::config::required_credentials(&cfg);
    let store = crate::credentials::CredentialStore::load(&sources, &required).store;
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let Some(answers) = crate::alerts::test_webhooks(&cfg, &lookup, only) else {
        let names: Vec<&str> = cfg
            .alerts
            .webhooks
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        eprintln!(
            "brokerguard: no webhook named {:?}; the configured ones are {}",
            only.unwrap_or_default(),
            names.join(", ")
        );
        return exit::USAGE;
    };
    for a in &answers {
        println!(
            "{} {} ({}, {}): {}",
            if a.delivered { "ok  " } else { "FAIL" },
            a.webhook,
            a.format,
            a.target,
            a.answer
        );
    }
    if answers.iter().all(|a| a.delivered) {
        exit::OK
    } else {
        exit::FAILURE
    }
}

fn doctor(config: Option<PathBuf>, json: bool, online: bool) -> u8 {
    use crate::commands::doctor;
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    use_host_fingerprints("doctor", &cfg);
    let sources = crate::credentials::Sources::from_process(&cfg.agent.credential_files);
    let mut report = doctor::audit(&cfg, &sources, &doctor::SystemHost::new());
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
    let required = crate::config::required_credentials(&cfg);
    let store = crate::credentials::CredentialStore::load(&sources, &required).store;
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let ctx = crate::brokers::BuildContext::for_config(&cfg, &lookup);
    report.add_sessions(doctor::session_facts(&cfg, &ctx));
    if online {
        report.add_online(doctor::online_checks(&cfg, &ctx));
    }
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.ok() { exit::OK } else { exit::FAILURE }
}

fn set_credential(name: &str, config: Option<PathBuf>, file: Option<PathBuf>) -> u8 {
    // The fingerprint printed below is the agent's when the configuration
    // (its state folder) can be read; with --file it may not be needed.
    match daemon::load_config(&config::resolve_path(config.clone())) {
        Ok(cfg) => use_host_fingerprints("set-credential", &cfg),
        Err(_) => eprintln!(
            "brokerguard set-credential: no configuration read, so the fingerprint shown is this run's own (pass --config to show the agent's)"
        ),
    }
    use crate::commands::set_credential as command;
    let target = match file {
        Some(f) => Ok(f),
        None => match load_or_exit(config) {
            Ok(cfg) => command::default_file(&cfg),
            Err(code) => return code,
        },
    };
    let written = target.and_then(|target| {
        command::set(
            &target,
            name,
            crate::credentials::setcred::read_secret_from_stdin,
        )
    });
    match written {
        Ok(written) => {
            eprintln!("{written}");
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
    use_host_fingerprints("check", &cfg);
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
    let required = crate::config::required_credentials(&cfg);
    let sources = crate::credentials::Sources::from_process(&cfg.agent.credential_files);
    let store = crate::credentials::CredentialStore::load(&sources, &required).store;
    let lookup = |name: &str| store.get(name).map(|c| c.value.clone());
    let ctx = crate::brokers::BuildContext::for_config(&cfg, &lookup);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_that_reads_a_secret_forbids_core_dumps_first() {
        let holds = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(std::iter::once("brokerguard").chain(args.iter().copied()))
                    .unwrap();
            holds_secrets(&cli.command)
        };
        for args in [
            &["run"][..],
            &["doctor"],
            &["set-credential", "A"],
            &["check"],
            &["demo"],
        ] {
            assert!(holds(args), "{args:?}");
        }
        for args in [&["status"][..], &["reload"], &["config", "check"]] {
            assert!(!holds(args), "{args:?}");
        }
    }

    #[test]
    fn the_help_lists_every_broker_command_and_none_shadows_a_built_in() {
        let mut line = command_line();
        // Panics on two subcommands of one name.
        line.clone().debug_assert();
        let help = line.render_help().to_string();
        let mut seen = 0;
        for bc in crate::brokers::command::all() {
            seen += 1;
            assert!(help.contains(bc.name), "{} missing from:\n{help}", bc.name);
            assert!(
                Cli::command().find_subcommand(bc.name).is_none(),
                "{} shadows a built-in command",
                bc.name
            );
            // A missing required flag is a usage error (64), before any
            // configuration is read.
            if bc.flags.iter().any(|f| f.required) {
                assert_eq!(
                    main(["brokerguard", bc.name].map(OsString::from)),
                    exit::USAGE
                );
            }
        }
        assert!(seen > 0, "some broker adds a command");
    }
}
