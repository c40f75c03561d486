//! `brokerguard sim alpaca`: the Alpaca simulator in the foreground, one
//! line per event, until the caller's stop flag is set.

use super::fault::AlpacaFault;
use super::server::{AlpacaSim, AlpacaSimConfig, SimKey};
use crate::duration::parse_duration;
use crate::sim::shared::cli;
use std::fmt;
use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `brokerguard sim alpaca`.
#[derive(clap::Args, Debug, Clone)]
pub struct AlpacaSimArgs {
    /// WebSocket port on 127.0.0.1 (0 picks a free one): /v2/iex, /v2/sip,
    /// /v2/test, /v1beta3/crypto/us, /paper/stream, /live/stream.
    #[arg(long, default_value_t = 8794)]
    pub port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one): /paper/v2/account, /live/v2/account.
    #[arg(long, default_value_t = 8795)]
    pub rest_port: u16,
    /// An accepted API key as KEY_ID:SECRET (a live key; repeat for several).
    #[arg(long = "key", value_name = "KEY_ID:SECRET", value_parser = parse_key)]
    pub keys: Vec<SimKey>,
    /// An accepted paper key as KEY_ID:SECRET (repeat for several).
    #[arg(long = "paper-key", value_name = "KEY_ID:SECRET", value_parser = parse_paper_key)]
    pub paper_keys: Vec<SimKey>,
    /// One batch of market data and one trade update this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "200ms")]
    pub data_every: Duration,
    /// A fault in force from the start: connection-limit | auth-timeout |
    /// error:CODE | slow-client | silent | close:CODE | drop
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<AlpacaFault>,
    /// Seconds to add to the REST `Date` header (negative: behind).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub date_skew: i64,
}

fn key(s: &str, paper: bool) -> Result<SimKey, String> {
    match s.split_once(':') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok(SimKey {
            key_id: k.to_string(),
            secret: v.to_string(),
            paper,
        }),
        _ => Err("a key is KEY_ID:SECRET with neither part empty".into()),
    }
}

fn parse_key(s: &str) -> Result<SimKey, String> {
    key(s, false)
}

fn parse_paper_key(s: &str) -> Result<SimKey, String> {
    key(s, true)
}

/// Why the Alpaca simulator could not run.
#[derive(Debug)]
pub struct AlpacaSimCliError(io::Error);

impl fmt::Display for AlpacaSimCliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot listen on 127.0.0.1: {} (is another program using the port?)",
            self.0
        )
    }
}

impl std::error::Error for AlpacaSimCliError {}

/// Runs the Alpaca simulator until `stop` is set, printing one line per event.
pub fn run_alpaca_cli(args: &AlpacaSimArgs, stop: &AtomicBool) -> Result<(), AlpacaSimCliError> {
    let events = cli::Events::new();
    let keys: Vec<SimKey> = args.keys.iter().chain(&args.paper_keys).cloned().collect();
    let handle = AlpacaSim::start(AlpacaSimConfig {
        ws_port: args.port,
        rest_port: args.rest_port,
        keys,
        data_every: args.data_every,
        fault: args.fault.clone(),
        date_skew_secs: args.date_skew,
        events: events.sender(),
        ..AlpacaSimConfig::default()
    })
    .map_err(AlpacaSimCliError)?;
    let banner = format!(
        "alpaca simulator listening: ws {} {} (trading {} / {}), rest {} / {} ({} key(s), fault: {})",
        handle.stocks_url("iex"),
        handle.stocks_url("test"),
        handle.trading_url(true),
        handle.trading_url(false),
        handle.rest_url(true),
        handle.rest_url(false),
        args.keys.len() + args.paper_keys.len(),
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
        let a = cli::parse_args::<AlpacaSimArgs>(&[
            "sim",
            "--port",
            "0",
            "--key",
            "AK1:s1",
            "--paper-key",
            "PK1:s2",
            "--fault",
            "error:409",
        ])
        .unwrap();
        assert!(!a.keys[0].paper && a.paper_keys[0].paper);
        assert_eq!(a.fault, Some(AlpacaFault::Error(409)));
        assert!(cli::parse_args::<AlpacaSimArgs>(&["sim", "--key", "nocolon"]).is_err());
    }
}
