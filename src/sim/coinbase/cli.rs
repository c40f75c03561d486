//! `brokerguard sim coinbase`: the Coinbase simulator in the foreground,
//! one line per event, until the caller's stop flag is set.

use super::fault::CoinbaseFault;
use super::server::{CoinbaseSim, CoinbaseSimConfig, SimKey};
use crate::duration::parse_duration;
use crate::sim::SimCliError;
use crate::sim::shared::cli;
use base64::Engine;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `brokerguard sim coinbase`.
#[derive(clap::Args, Debug, Clone)]
pub struct CoinbaseSimArgs {
    /// WebSocket port on 127.0.0.1 (0 picks a free one): market data at /, user at /user.
    #[arg(long, default_value_t = 8792)]
    pub port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8793)]
    pub rest_port: u16,
    /// An accepted key as NAME=PUBLIC, PUBLIC the base64 of a SEC1 P-256
    /// point or of a 32-byte Ed25519 public key (repeat for several).
    #[arg(long = "key", value_name = "NAME=PUBLIC", value_parser = parse_key)]
    pub keys: Vec<SimKey>,
    /// Product ids listed, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "BTC-USD,ETH-USD,SOL-USD")]
    pub products: Vec<String>,
    /// Market data to subscribers this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    pub data_every: Duration,
    /// Heartbeats this often.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub heartbeat_every: Duration,
    /// Close a connection that has not subscribed within this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub subscribe_within: Duration,
    /// Close a connection without heartbeats after this long without a message to it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "75s")]
    pub idle_close: Duration,
    /// A fault in force from the start: drop-sequence-once | go-away | silent | reject-jwt
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<CoinbaseFault>,
    /// Seconds to add to the REST `Date` header (negative: behind).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub date_skew: i64,
    /// Append every JWT received to this file ("ws <jwt>" / "rest <jwt>"
    /// lines), for a test that verifies them independently.
    #[arg(long, value_name = "FILE")]
    pub record_jwts: Option<PathBuf>,
}

fn parse_key(s: &str) -> Result<SimKey, String> {
    let (name, public) = s
        .split_once('=')
        .ok_or_else(|| "a key is NAME=PUBLIC (the public key in base64)".to_string())?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(public.trim())
        .map_err(|_| "the public key of a key must be base64".to_string())?;
    if name.is_empty() || !matches!(bytes.len(), 32 | 33 | 65) {
        return Err(
            "a key is NAME=PUBLIC with PUBLIC a SEC1 P-256 point (33 or 65 bytes) or an Ed25519 \
             key (32 bytes), in base64"
                .into(),
        );
    }
    Ok(SimKey {
        name: name.to_string(),
        public_key: bytes,
    })
}

/// Runs the Coinbase simulator until `stop` is set, printing one line per event.
pub fn run_coinbase_cli(args: &CoinbaseSimArgs, stop: &AtomicBool) -> Result<(), SimCliError> {
    let events = cli::Events::new();
    let handle = CoinbaseSim::start(CoinbaseSimConfig {
        ws_port: args.port,
        rest_port: args.rest_port,
        keys: args.keys.clone(),
        products: args.products.clone(),
        data_every: args.data_every,
        heartbeat_every: args.heartbeat_every,
        subscribe_within: args.subscribe_within,
        idle_close: args.idle_close,
        fault: args.fault.clone(),
        date_skew_secs: args.date_skew,
        record_jwts: args.record_jwts.clone(),
        events: events.sender(),
    })
    .map_err(|e| {
        SimCliError::Broker(if e.kind() == std::io::ErrorKind::InvalidInput {
            e.to_string()
        } else {
            format!("cannot listen on 127.0.0.1: {e} (is another program using the port?)")
        })
    })?;
    let banner = format!(
        "coinbase simulator listening: rest {} ws {} ws-user {} ({} key(s), fault: {})",
        handle.rest_url(),
        handle.ws_url(),
        handle.ws_user_url(),
        args.keys.len(),
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
        let ed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let w = cli::parse_args::<CoinbaseSimArgs>(&[
            "sim",
            "--key",
            &format!("organizations/o/apiKeys/k={ed}"),
            "--fault",
            "go-away",
            "--idle-close",
            "2s",
            "--products",
            "BTC-USD,ETH-USD",
        ])
        .unwrap();
        assert_eq!(w.keys[0].name, "organizations/o/apiKeys/k");
        assert_eq!(w.keys[0].public_key, vec![9u8; 32]);
        assert_eq!(w.fault, Some(CoinbaseFault::GoAway));
        assert_eq!(w.idle_close, Duration::from_secs(2));
        assert_eq!(w.products, ["BTC-USD", "ETH-USD"]);
        assert!(cli::parse_args::<CoinbaseSimArgs>(&["sim", "--key", "nokey"]).is_err());
        assert!(cli::parse_args::<CoinbaseSimArgs>(&["sim", "--key", "k=AAAA"]).is_err());
    }
}
