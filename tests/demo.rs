//! `brokerguard demo` as a newcomer runs it: every fault shows its effect
//! and its recovery, every run, and the bot sees every message in order.

mod common;
use common::BIN;

#[test]
fn every_fault_shows_its_effect_and_its_recovery() {
    let out = std::process::Command::new(BIN)
        .arg("demo")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    for needle in [
        "faults injected        5",
        "effects seen           5/5",
        "recoveries             5/5",
        ", gaps 0)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // One recovery line per fault, each after data flowed again.
    assert_eq!(
        text.matches("BOT     recovered: data flowing again")
            .count(),
        5,
        "{text}"
    );
    assert!(!text.contains("NOT seen"), "{text}");
    // Every label says what happens, in words a newcomer knows: no
    // reference to an incident they never saw, no simulator jargon.
    for jargon in ["3-hour", "(close fault)", "close-after fault"] {
        assert!(!text.contains(jargon), "{jargon:?} in:\n{text}");
    }
    assert!(
        text.contains("closed the connection with code 1000 (simulated fault: the server closes every open connection)"),
        "{text}"
    );
    // One outage, one truth: what the agent told the bot (`reconnected`
    // down_ms) is the gap the bot saw, fault by fault, within a second.
    let after = |line: &str, marker: &str| -> f64 {
        let v = line.split(marker).nth(1).unwrap().trim();
        if let Some(ms) = v.strip_suffix("ms") {
            ms.parse::<f64>().unwrap() / 1000.0
        } else {
            v.trim_end_matches('s').parse::<f64>().unwrap_or(f64::MAX)
        }
    };
    // Each recovery against the agent's last word before it.
    let mut told = None;
    let mut pairs = Vec::new();
    for l in text.lines() {
        if l.contains("AGENT   reconnected: data again after ") {
            told = Some(after(l, "data again after "));
        } else if l.contains("BOT     recovered: data flowing again, longest gap ") {
            pairs.push((told.take().unwrap_or(f64::MAX), after(l, "longest gap ")));
        }
    }
    assert_eq!(pairs.len(), 5, "{text}");
    for (t, s) in &pairs {
        assert!((t - s).abs() <= 1.0, "told {t}s, the bot saw {s}s:\n{text}");
    }
}
