//! `brokerguard sim kite`: the Kite simulator (ticker and REST) in the
//! foreground, one line per connection event, until the caller's stop flag
//! is set.

use super::fault::{KITE_FAULT_HELP, KiteFault};
use super::server::{BindFailed, KiteSim, KiteSimConfig};
use crate::duration::parse_duration;
use crate::sim::SimCliError;
use crate::sim::shared::cli;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `brokerguard sim kite`.
#[derive(clap::Args, Debug, Clone)]
pub struct KiteSimArgs {
    /// Port on 127.0.0.1 for the ticker WebSocket (0 picks a free one).
    #[arg(long, default_value_t = 8766)]
    pub ticker_port: u16,
    /// Port on 127.0.0.1 for the REST API (0 picks a free one).
    #[arg(long, default_value_t = 8767)]
    pub rest_port: u16,
    /// The api_key clients must present.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// The api_secret that checksums are computed with.
    #[arg(long, value_name = "SECRET")]
    pub api_secret: Option<String>,
    /// An access token accepted from the start (repeat for several).
    #[arg(long = "access-token", value_name = "TOKEN")]
    pub access_tokens: Vec<String>,
    /// A request token /session/token accepts once (repeat for several).
    #[arg(long = "request-token", value_name = "TOKEN")]
    pub request_tokens: Vec<String>,
    /// Send a data frame to subscribed clients this often, e.g. "500ms".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub data_every: Duration,
    /// Send a 1-byte heartbeat after this long without a frame.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub heartbeat_every: Duration,
    /// A ticker fault in force from the start: lie-once[:count|length|unknown|trailing] |
    /// lie-always[:KIND] | heartbeats-only | silent | frozen | close:CODE | http:STATUS
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<KiteFault>,
    /// Faults over time: "DELAY=FAULT,..." (each delay from the previous
    /// step; "clear" ends a fault), e.g. "5s=lie-once,5s=http:429,3s=clear".
    #[arg(long, value_name = "STEPS", value_parser = parse_script)]
    pub script: Option<KiteScript>,
}

/// A parsed `--script`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KiteScript(pub Vec<(Duration, Option<KiteFault>)>);

fn parse_script(s: &str) -> Result<KiteScript, String> {
    cli::parse_script(
        s,
        "DELAY=FAULT, e.g. 10s=lie-once",
        || format!("empty script; write e.g. \"5s=lie-once,5s=clear\" (faults: {KITE_FAULT_HELP})"),
        cli::fault_step::<KiteFault>,
    )
    .map(KiteScript)
}

/// Runs the Kite simulator until `stop` is set, printing one line per event.
pub fn run_kite_cli(args: &KiteSimArgs, stop: &AtomicBool) -> Result<(), SimCliError> {
    let events = cli::Events::new();
    let defaults = KiteSimConfig::default();
    let cfg = KiteSimConfig {
        ticker_port: args.ticker_port,
        rest_port: args.rest_port,
        api_key: args.api_key.clone().unwrap_or(defaults.api_key),
        api_secret: args.api_secret.clone().unwrap_or(defaults.api_secret),
        access_tokens: args.access_tokens.clone(),
        request_tokens: args.request_tokens.clone(),
        data_every: Some(args.data_every),
        heartbeat_every: Some(args.heartbeat_every),
        fault: args.fault.clone(),
        events: events.sender(),
        ..defaults
    };
    let handle = KiteSim::start(cfg).map_err(|source| SimCliError::Start {
        port: source
            .get_ref()
            .and_then(|e| e.downcast_ref::<BindFailed>())
            .map_or(args.ticker_port, |b| b.port),
        source,
    })?;
    if let Some(KiteScript(steps)) = &args.script {
        handle.run_script(steps.clone());
    }
    let banner = format!(
        "kite simulator listening: ticker {} rest {} ({} access token(s), {} request token(s), fault: {})",
        handle.ticker_url(),
        handle.rest_url(),
        args.access_tokens.len(),
        args.request_tokens.len(),
        cli::fault_or_none(args.fault.as_ref()),
    );
    events.print_until(stop, &banner, || handle.stop(), "kite simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::encode::Lie;
    use super::*;

    #[test]
    fn parses_flags() {
        let w = cli::parse_args::<KiteSimArgs>(&[
            "kite",
            "--ticker-port",
            "0",
            "--access-token",
            "a",
            "--access-token",
            "b",
            "--request-token",
            "r",
            "--data-every",
            "250ms",
            "--fault",
            "lie-always:unknown",
            "--script",
            "1s=http:429, 2s=clear",
        ])
        .unwrap();
        assert_eq!((w.ticker_port, w.rest_port), (0, 8767));
        assert_eq!(w.access_tokens, ["a", "b"]);
        assert_eq!(w.request_tokens, ["r"]);
        assert_eq!(w.data_every, Duration::from_millis(250));
        assert_eq!(w.fault, Some(KiteFault::LieAlways(Lie::Unknown)));
        assert_eq!(
            w.script,
            Some(KiteScript(vec![
                (
                    Duration::from_secs(1),
                    Some(KiteFault::RejectUpgrade { status: 429 })
                ),
                (Duration::from_secs(2), None)
            ]))
        );
        assert!(cli::parse_args::<KiteSimArgs>(&["kite", "--fault", "explode"]).is_err());
    }
}
