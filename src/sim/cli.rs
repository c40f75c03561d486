//! `brokerguard sim`: the simulator in the foreground, one line per
//! connection event, until the caller's stop flag is set.

use super::shared::cli;
use super::websocket::fault::{FAULT_HELP, Fault};
use super::websocket::server::{SimConfig, SimTls, Simulator};
use crate::duration::parse_duration;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// `brokerguard sim [BROKER] ...`: without a broker, the generic JSON
/// WebSocket simulator with [`SimArgs`]; each broker's simulator adds one
/// variant to [`SimBroker`] with its own arguments.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimCommand {
    #[command(subcommand)]
    pub broker: Option<SimBroker>,
    #[command(flatten)]
    pub generic: SimArgs,
}

/// The broker-specific simulators (`brokerguard sim <broker> --help`).
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SimBroker {
    /// Interactive Brokers TWS / IB Gateway's API socket.
    Tws(super::ibkr::TwsArgs),
    /// Kraken: signed REST and WebSocket v2 with verified books (`brokerguard sim kraken --help`).
    Kraken(super::kraken::KrakenSimArgs),
    /// Zerodha Kite: the ticker WebSocket and the login REST calls.
    Kite(Box<super::kite::KiteSimArgs>),
    /// Coinbase Advanced Trade: JWT-checked WebSocket and REST (`brokerguard sim coinbase --help`).
    Coinbase(super::coinbase::CoinbaseSimArgs),
    /// Alpaca: market data, trade updates and the account check.
    Alpaca(super::alpaca::AlpacaSimArgs),
}

/// Runs the chosen simulator until `stop` is set.
pub fn run_command(cmd: &SimCommand, stop: &AtomicBool) -> Result<(), SimCliError> {
    match &cmd.broker {
        None => run_cli(&cmd.generic, stop),
        Some(SimBroker::Tws(args)) => super::ibkr::run_tws(args, stop),
        Some(SimBroker::Kraken(args)) => super::kraken::run_kraken_cli(args, stop)
            .map_err(|e| SimCliError::Broker(e.to_string())),
        Some(SimBroker::Kite(args)) => super::kite::run_kite_cli(args, stop),
        Some(SimBroker::Coinbase(args)) => super::coinbase::run_coinbase_cli(args, stop),
        Some(SimBroker::Alpaca(args)) => super::alpaca::run_alpaca_cli(args, stop)
            .map_err(|e| SimCliError::Broker(e.to_string())),
    }
}

/// Arguments of the generic `brokerguard sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Port on 127.0.0.1 to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// An accepted auth token (repeat for several); none means no auth is required.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// Send a data message to subscribed clients this often, e.g. "500ms".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub data_every: Option<Duration>,
    /// Send a heartbeat when no data went out for this long, e.g. "5s".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat_every: Option<Duration>,
    /// Serve wss:// with this certificate (PEM; chain allowed). Needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PKCS#8 private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A fault in force from the start: refuse | no-handshake | reject-auth |
    /// close-after:N[:CODE] | close-on-send[:CODE] | silent (no data, pongs
    /// still sent) | silent-no-pongs | reset | malformed | flood:PER_SEC | close:CODE |
    /// http:STATUS (refuse the WebSocket upgrade, e.g. http:401) |
    /// slow-handshake:MS (answer the upgrade only after MS milliseconds)
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<Fault>,
    /// Faults over time: "DELAY=FAULT,..." with each delay counted from the
    /// previous step and "clear" ending a fault, e.g. "10s=close:1001,5s=refuse,3s=clear".
    #[arg(long, value_name = "STEPS", value_parser = parse_script)]
    pub script: Option<Script>,
}

/// A parsed `--script`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script(pub Vec<(Duration, Option<Fault>)>);

fn parse_script(s: &str) -> Result<Script, String> {
    cli::parse_script(
        s,
        "DELAY=FAULT, e.g. 10s=reset",
        || format!("empty script; write e.g. \"10s=close:1001,5s=clear\" (faults: {FAULT_HELP})"),
        cli::fault_step::<Fault>,
    )
    .map(Script)
}

/// Why `brokerguard sim` could not run.
#[derive(Debug)]
pub enum SimCliError {
    /// A --tls-cert or --tls-key file could not be read.
    ReadFile { path: PathBuf, source: io::Error },
    /// The certificate/key pair was rejected, or the port could not be bound.
    Start { port: u16, source: io::Error },
    /// A broker simulator could not start (its own message).
    Broker(String),
}

impl fmt::Display for SimCliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimCliError::ReadFile { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            SimCliError::Start { port, source } if source.kind() == io::ErrorKind::InvalidInput => {
                write!(
                    f,
                    "cannot use the TLS certificate and key for port {port}: {source} \
                     (the key must be PKCS#8 PEM, \"BEGIN PRIVATE KEY\")"
                )
            }
            SimCliError::Start { port, source } => {
                write!(
                    f,
                    "cannot listen on 127.0.0.1:{port}: {source} (is another program using the port?)"
                )
            }
            SimCliError::Broker(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SimCliError {}

fn read(path: &PathBuf) -> Result<Vec<u8>, SimCliError> {
    std::fs::read(path).map_err(|source| SimCliError::ReadFile {
        path: path.clone(),
        source,
    })
}

/// Runs the simulator until `stop` is set, printing one line per event.
pub fn run_cli(args: &SimArgs, stop: &AtomicBool) -> Result<(), SimCliError> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(SimTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    let events = cli::Events::new();
    let cfg = SimConfig {
        port: args.port,
        tokens: args.tokens.clone(),
        data_every: args.data_every,
        heartbeat_every: args.heartbeat_every,
        tls,
        fault: args.fault.clone(),
        events: events.sender(),
        ..SimConfig::default()
    };
    let handle = Simulator::start(cfg).map_err(|source| SimCliError::Start {
        port: args.port,
        source,
    })?;
    if let Some(Script(steps)) = &args.script {
        handle.run_script(steps.clone());
    }
    let banner = format!(
        "simulator listening on {} (auth: {}, fault: {})",
        handle.url(),
        if args.tokens.is_empty() {
            "off".to_string()
        } else {
            format!("{} token(s)", args.tokens.len())
        },
        cli::fault_or_none(args.fault.as_ref()),
    );
    events.print_until(stop, &banner, || handle.stop(), "simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let w = cli::parse_args::<SimArgs>(&[
            "sim",
            "--token",
            "a",
            "--token",
            "b",
            "--data-every",
            "250ms",
            "--fault",
            "close-on-send:1000",
            "--script",
            "1s=reset, 2s=clear",
        ])
        .unwrap();
        assert_eq!(w.port, 8765);
        assert_eq!(w.tokens, vec!["a", "b"]);
        assert_eq!(w.data_every, Some(Duration::from_millis(250)));
        assert_eq!(w.fault, Some(Fault::CloseOnClientMessage { code: 1000 }));
        assert_eq!(
            w.script,
            Some(Script(vec![
                (Duration::from_secs(1), Some(Fault::Reset)),
                (Duration::from_secs(2), None)
            ]))
        );
        assert!(cli::parse_args::<SimArgs>(&["sim", "--fault", "explode"]).is_err());
        assert!(cli::parse_args::<SimArgs>(&["sim", "--tls-cert", "c.pem"]).is_err());
    }
}
