//! What every `brokerguard sim …` command shares: its `--script` syntax
//! (`DELAY=STEP,…`, each delay counted from the previous step), the
//! "none" a start-up line shows for no fault, and the foreground loop that
//! prints one line per event until the caller's stop flag is set.

use crate::duration::parse_duration;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

/// How long the loop waits for an event before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(200);

/// Parses `DELAY=STEP,…` with `step` for each step; `shape` completes
/// "must look like" for a step without `=` (e.g. "DELAY=FAULT, e.g.
/// 10s=reset"), and `empty` is the error for a script without steps.
pub(crate) fn parse_script<S>(
    s: &str,
    shape: &str,
    empty: impl FnOnce() -> String,
    step: impl Fn(&str) -> Result<S, String>,
) -> Result<Vec<(Duration, S)>, String> {
    let mut steps = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (delay, what) = part
            .split_once('=')
            .ok_or_else(|| format!("script step \"{part}\" must look like {shape}"))?;
        steps.push((parse_duration(delay)?, step(what)?));
    }
    if steps.is_empty() {
        return Err(empty());
    }
    Ok(steps)
}

/// A script step that sets a fault, or clears it (`clear` or `none`).
pub(crate) fn fault_step<F: FromStr<Err = String>>(s: &str) -> Result<Option<F>, String> {
    match s.trim() {
        "clear" | "none" => Ok(None),
        f => f.parse().map(Some),
    }
}

/// A fault for a start-up line: its spelling, or "none".
pub(crate) fn fault_or_none<F: Display>(fault: Option<&F>) -> String {
    fault.map_or("none".to_string(), F::to_string)
}

/// The event lines of a simulator run in the foreground.
pub(crate) struct Events {
    tx: Sender<String>,
    rx: Receiver<String>,
}

impl Events {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Events { tx, rx }
    }

    /// Where the simulator sends its lines (its config's `events`).
    pub(crate) fn sender(&self) -> Option<Sender<String>> {
        Some(self.tx.clone())
    }

    /// Prints `banner`, then each event line until `stop` is set; then
    /// stops the simulator with `stop_sim`, prints the lines its stopping
    /// produced, and `farewell`.
    pub(crate) fn print_until(
        &self,
        stop: &AtomicBool,
        banner: &str,
        stop_sim: impl FnOnce(),
        farewell: &str,
    ) {
        println!("{banner}");
        while !stop.load(Ordering::SeqCst) {
            if let Ok(line) = self.rx.recv_timeout(POLL) {
                println!("{line}");
            }
        }
        stop_sim();
        while let Ok(line) = self.rx.try_recv() {
            println!("{line}");
        }
        println!("{farewell}");
    }
}

/// Parses a simulator's arguments as clap would after `brokerguard sim
/// …` (`argv[0]` is the program name), for the simulators' own tests.
#[cfg(test)]
pub(crate) fn parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, clap::Error> {
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    Wrap::<A>::try_parse_from(argv).map(|w| w.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_say_what_is_wrong() {
        let parse = |s: &str| {
            parse_script(
                s,
                "DELAY=N, e.g. 1s=2",
                || "empty".to_string(),
                |n: &str| n.trim().parse::<u8>().map_err(|e| e.to_string()),
            )
        };
        assert_eq!(
            parse(" 1s=2, ,250ms= 3"),
            Ok(vec![
                (Duration::from_secs(1), 2),
                (Duration::from_millis(250), 3)
            ])
        );
        assert_eq!(parse(", ,"), Err("empty".to_string()));
        assert_eq!(
            parse("1s"),
            Err("script step \"1s\" must look like DELAY=N, e.g. 1s=2".to_string())
        );
        assert!(parse("1s=x").is_err());
        assert!(parse("soon=1").is_err());
    }
}
