//! `brokerguard sim tws`: the TWS simulator in the foreground, one line
//! per connection event, until the caller's stop flag is set.

use super::fault::{TwsFault, TwsStep};
use super::server::{DEFAULT_SYMBOLS, TwsSim, TwsSimConfig};
use crate::duration::parse_duration;
use crate::sim::SimCliError;
use crate::sim::shared::cli;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `brokerguard sim tws`.
#[derive(clap::Args, Debug, Clone)]
pub struct TwsArgs {
    /// Port on 127.0.0.1 to listen on (0 picks a free one).
    #[arg(long, default_value_t = 7497)]
    pub port: u16,
    /// The highest API server version to speak (the client's max if lower).
    #[arg(long, default_value_t = 176)]
    pub server_version: u32,
    /// A managed account to report (repeat for several).
    #[arg(long = "account", value_name = "ACCOUNT", default_values_t = ["DU1234567".to_string()])]
    pub accounts: Vec<String>,
    /// Symbols that have a security definition; others get error 200.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values_t = DEFAULT_SYMBOLS.iter().map(|s| s.to_string()))]
    pub symbols: Vec<String>,
    /// Tick rounds to each subscription this often, e.g. "250ms".
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "250ms")]
    pub tick_every: Duration,
    /// A client id already taken (refused with 326); repeat for several.
    #[arg(long = "hold-client-id", value_name = "ID")]
    pub hold_client_ids: Vec<i64>,
    /// A fault in force from the start: refuse | mute | no-next-valid-id | no-current-time.
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<TwsFault>,
    /// Steps over time: "DELAY=STEP,..." with each delay counted from the
    /// previous step; a step is a fault, "clear", or "notify:CODE", e.g.
    /// "5s=notify:1100,3s=notify:1101,2s=mute,5s=clear".
    #[arg(long, value_name = "STEPS", value_parser = parse_script)]
    pub script: Option<TwsScript>,
}

/// A parsed `--script`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwsScript(pub Vec<(Duration, TwsStep)>);

fn parse_script(s: &str) -> Result<TwsScript, String> {
    cli::parse_script(
        s,
        "DELAY=STEP, e.g. 5s=notify:1100",
        || "empty script; write e.g. \"5s=notify:1100,3s=notify:1102\"".into(),
        str::parse::<TwsStep>,
    )
    .map(TwsScript)
}

/// Runs the TWS simulator until `stop` is set, printing one line per event.
pub fn run_tws(args: &TwsArgs, stop: &AtomicBool) -> Result<(), SimCliError> {
    let events = cli::Events::new();
    let cfg = TwsSimConfig {
        port: args.port,
        server_version: args.server_version,
        accounts: args.accounts.clone(),
        tick_every: args.tick_every,
        known_symbols: args.symbols.clone(),
        fault: args.fault.clone(),
        events: events.sender(),
        ..TwsSimConfig::default()
    };
    let handle = TwsSim::start(cfg).map_err(|source| SimCliError::Start {
        port: args.port,
        source,
    })?;
    for id in &args.hold_client_ids {
        handle.hold_client_id(*id);
    }
    if let Some(TwsScript(steps)) = &args.script {
        handle.run_script(steps.clone());
    }
    let banner = format!(
        "tws simulator listening on 127.0.0.1:{} (server version {}, accounts {}, fault: {})",
        handle.port(),
        args.server_version,
        args.accounts.join(","),
        cli::fault_or_none(args.fault.as_ref()),
    );
    events.print_until(stop, &banner, || handle.stop(), "tws simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let w = cli::parse_args::<TwsArgs>(&[
            "tws",
            "--port",
            "0",
            "--symbols",
            "AAPL,ES",
            "--hold-client-id",
            "1",
            "--fault",
            "mute",
            "--script",
            "1s=notify:1100, 2s=clear",
        ])
        .unwrap();
        assert_eq!(w.port, 0);
        assert_eq!(w.symbols, ["AAPL", "ES"]);
        assert_eq!(w.accounts, ["DU1234567"]);
        assert_eq!(w.hold_client_ids, [1]);
        assert_eq!(w.fault, Some(TwsFault::NoGreetingReply));
        assert_eq!(
            w.script,
            Some(TwsScript(vec![
                (Duration::from_secs(1), TwsStep::Notify(1100)),
                (Duration::from_secs(2), TwsStep::Clear)
            ]))
        );
        let d = cli::parse_args::<TwsArgs>(&["tws"]).unwrap();
        assert_eq!(d.port, 7497);
        assert_eq!(d.tick_every, Duration::from_millis(250));
        assert!(d.symbols.contains(&"AAPL".to_string()));
        assert!(cli::parse_args::<TwsArgs>(&["tws", "--fault", "explode"]).is_err());
    }
}
