//! `brokerguard sim kraken`: the Kraken simulator in the foreground, one
//! line per event, until the caller's stop flag is set.

use super::fault::KrakenFault;
use super::server::{KrakenSim, KrakenSimConfig, SimKey};
use crate::duration::parse_duration;
use crate::sim::shared::cli;
use std::fmt;
use std::io;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `brokerguard sim kraken`.
#[derive(clap::Args, Debug, Clone)]
pub struct KrakenSimArgs {
    /// WebSocket port on 127.0.0.1 (0 picks a free one); public at /v2, private at /auth/v2.
    #[arg(long, default_value_t = 8790)]
    pub port: u16,
    /// REST port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8791)]
    pub rest_port: u16,
    /// An accepted API key as KEY:SECRET, the secret base64 of 64 bytes (repeat for several).
    #[arg(long = "key", value_name = "KEY:SECRET", value_parser = parse_key)]
    pub keys: Vec<SimKey>,
    /// Market data to subscribers this often, e.g. "250ms".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    pub data_every: Duration,
    /// A heartbeat after this long without other messages.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub heartbeat_every: Duration,
    /// How long an issued WebSocket token may be used to subscribe.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15m")]
    pub token_ttl: Duration,
    /// A fault in force from the start: lockout[:KEY] | invalid-key[:KEY] |
    /// permission-denied[:KEY] | rate-limit[:KEY] | unavailable | invalid-nonce[:KEY] |
    /// invalid-nonce-once | corrupt-checksum-once | corrupt-checksum | maintenance |
    /// reject-symbol:SYMBOL | silent
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<KrakenFault>,
    /// Seconds to add to the REST `Date` header (negative: behind), to
    /// show the agent's clock-drift alert.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub date_skew: i64,
}

fn parse_key(s: &str) -> Result<SimKey, String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| "a key is KEY:SECRET (the secret base64 of 64 bytes)".to_string())?;
    if k.is_empty() || v.is_empty() {
        return Err("a key is KEY:SECRET with neither part empty".into());
    }
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(v) {
        Ok(bytes) if bytes.len() == 64 => {}
        _ => return Err("the secret of a key must be base64 of 64 bytes (88 characters)".into()),
    }
    Ok(SimKey {
        api_key: k.to_string(),
        secret_b64: v.to_string(),
    })
}

/// Why the Kraken simulator could not run.
#[derive(Debug)]
pub struct KrakenSimCliError(io::Error);

impl fmt::Display for KrakenSimCliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.kind() == io::ErrorKind::InvalidInput {
            write!(f, "{}", self.0)
        } else {
            write!(
                f,
                "cannot listen on 127.0.0.1: {} (is another program using the port?)",
                self.0
            )
        }
    }
}

impl std::error::Error for KrakenSimCliError {}

/// Runs the Kraken simulator until `stop` is set, printing one line per event.
pub fn run_kraken_cli(args: &KrakenSimArgs, stop: &AtomicBool) -> Result<(), KrakenSimCliError> {
    let events = cli::Events::new();
    let handle = KrakenSim::start(KrakenSimConfig {
        ws_port: args.port,
        rest_port: args.rest_port,
        keys: args.keys.clone(),
        data_every: args.data_every,
        heartbeat_every: args.heartbeat_every,
        token_ttl: args.token_ttl,
        fault: args.fault.clone(),
        date_skew_secs: args.date_skew,
        events: events.sender(),
        ..KrakenSimConfig::default()
    })
    .map_err(KrakenSimCliError)?;
    let banner = format!(
        "kraken simulator listening: rest {} ws {} ws-auth {} ({} key(s), fault: {})",
        handle.rest_url(),
        handle.ws_url(),
        handle.ws_auth_url(),
        args.keys.len(),
        cli::fault_or_none(args.fault.as_ref()),
    );
    events.print_until(stop, &banner, || handle.stop(), "simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    #[test]
    fn parses_flags() {
        let w = cli::parse_args::<KrakenSimArgs>(&[
            "sim",
            "--port",
            "0",
            "--key",
            &format!("k1:{SECRET}"),
            "--fault",
            "lockout:k1",
            "--token-ttl",
            "2s",
            "--date-skew",
            "-30",
        ])
        .unwrap();
        assert_eq!(w.date_skew, -30);
        assert_eq!(w.keys[0].api_key, "k1");
        assert_eq!(w.keys[0].secret_b64, SECRET);
        assert_eq!(
            w.fault,
            Some(KrakenFault::Lockout {
                key: Some("k1".into())
            })
        );
        assert_eq!(w.token_ttl, Duration::from_secs(2));
        assert!(cli::parse_args::<KrakenSimArgs>(&["sim", "--key", "nocolon"]).is_err());
        assert!(cli::parse_args::<KrakenSimArgs>(&["sim", "--key", "k:c2VjcmV0"]).is_err());
        assert!(cli::parse_args::<KrakenSimArgs>(&["sim", "--fault", "explode"]).is_err());
    }
}
