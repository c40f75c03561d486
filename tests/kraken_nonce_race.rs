//! The outage of eight bots on one Kraken key, replayed: eight processes
//! make a signed call with the same key against the Kraken simulator at
//! the same moment, and every call is accepted after at most one redraw,
//! with no nonce sent twice (counted at the simulator, which refuses a
//! nonce not above the last one it accepted, on arrival, as Kraken does).
//!
//! The processes are this test binary re-executed with `--exact child`
//! and [`CHILD_ENV`] saying what to do; each waits on its stdin, so the
//! parent releases them together by writing one byte to each. Each makes
//! the call through the Kraken broker's signed REST client (the one
//! `doctor --online` and the validator use: the shared nonce store under
//! one state folder, the fallback policy, the HTTP client) and reports
//! how many requests it sent and how many fresh nonces it drew. A second
//! test runs eight `brokerguard doctor --online` at once on one key.

mod common;

use base64::Engine;
use brokerguard::brokers::BrokerRef;
use brokerguard::brokers::kraken::client::SignedRest;
use brokerguard::brokers::registry::BuildContext;
use brokerguard::config::FeedConfig;
use brokerguard::secret::Secret;
use brokerguard::sim::kraken::{KrakenSim, KrakenSimConfig, SimKey};
use common::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Set in a child: `<state_dir>\n<rest url>\n<output file>`.
const CHILD_ENV: &str = "BROKERGUARD_KRAKEN_RACE_CHILD";
const PROCESSES: usize = 8;
const API_KEY: &str = "RACEKEY0000000000000000000000000000000000000000000000001";

fn secret() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 64])
}

/// Not a test of its own: the body of each child process.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.lines();
    let (Some(state), Some(rest_url), Some(out)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("{CHILD_ENV} must hold three lines, got {spec:?}");
    };
    let mut feed = FeedConfig::new("race", BrokerRef(&brokerguard::brokers::kraken::BROKER));
    feed.account = Some("master".into());
    feed.rest_url = Some(rest_url.to_string());
    let lookup = |name: &str| match name {
        "KRAKEN_MASTER_API_KEY" => Some(Secret::new(API_KEY)),
        "KRAKEN_MASTER_API_SECRET" => Some(Secret::new(secret())),
        _ => None,
    };
    let ctx = BuildContext::new(&lookup, state.into());
    let rest = SignedRest::for_feed(&feed, &ctx, "master", Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("{}", e.message));
    let mut go = [0u8; 1];
    std::io::stdin()
        .read_exact(&mut go)
        .expect("the parent's start byte");
    let line = match rest.call("Balance") {
        Ok(c) => format!("ok {} {}", c.attempts, c.redraws),
        Err(f) => format!("err {}", f.error.message),
    };
    std::fs::write(out, line).expect("write the outcome");
}

fn spawn_child(state: &Path, rest_url: &str, out: &Path, log: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}\n{rest_url}\n{}", state.display(), out.display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("child log"))
        .spawn()
        .expect("re-execute the test binary")
}

fn sim() -> brokerguard::sim::kraken::KrakenSimHandle {
    KrakenSim::start(KrakenSimConfig {
        keys: vec![SimKey {
            api_key: API_KEY.into(),
            secret_b64: secret(),
        }],
        ..KrakenSimConfig::default()
    })
    .expect("the simulator starts")
}

/// No nonce reached the simulator twice, accepted or refused.
fn assert_no_nonce_twice(st: &brokerguard::sim::kraken::KrakenSimStats) {
    let seen = st.nonces_seen.get(API_KEY).cloned().unwrap_or_default();
    let refused = st.nonces_rejected.get(API_KEY).cloned().unwrap_or_default();
    let all: Vec<u64> = seen.iter().chain(&refused).copied().collect();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a nonce was sent twice: {st:?}");
    // Accepted nonces grow in the order they arrived.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

#[test]
fn eight_processes_calling_at_once_are_each_accepted_after_at_most_one_redraw() {
    let sim = sim();
    let dir = TempDir::new("kraken-race");
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let files: Vec<_> = (0..PROCESSES)
        .map(|i| (dir.join(&format!("out-{i}")), dir.join(&format!("log-{i}"))))
        .collect();
    let mut children: Vec<Child> = files
        .iter()
        .map(|(out, log)| spawn_child(&state, &sim.rest_url(), out, log))
        .collect();
    for c in &mut children {
        c.stdin
            .take()
            .expect("piped stdin")
            .write_all(b"g")
            .expect("release a child");
    }
    let mut attempts = 0;
    for (i, c) in children.iter_mut().enumerate() {
        let status = c.wait().expect("wait for a child");
        let log = std::fs::read_to_string(&files[i].1).unwrap_or_default();
        assert!(status.success(), "child {i} failed ({status}):\n{log}");
        let out = std::fs::read_to_string(&files[i].0).unwrap_or_default();
        let parts: Vec<&str> = out.split(' ').collect();
        assert_eq!(parts.first(), Some(&"ok"), "child {i}: {out}\n{log}");
        let (sent, redraws): (u32, u32) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        assert!(redraws <= 1, "child {i} needed {redraws} redraws:\n{log}");
        assert_eq!(sent, redraws + 1, "child {i}");
        attempts += sent;
    }
    let st = sim.stats();
    assert_eq!(
        st.nonces_seen[API_KEY].len(),
        PROCESSES,
        "every call accepted once: {st:?}"
    );
    assert_eq!(st.rest_calls, u64::from(attempts), "{st:?}");
    assert_no_nonce_twice(&st);
}

#[test]
fn eight_doctor_online_runs_on_one_key_all_pass() {
    let sim = sim();
    let dir = TempDir::new("kraken-doctors");
    let creds = dir.join("credentials.env");
    std::fs::write(
        &creds,
        format!(
            "KRAKEN_MASTER_API_KEY={API_KEY}\nKRAKEN_MASTER_API_SECRET={}\n",
            secret()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let body = agent_toml(dir.path(), "")
        + &format!(
            "\n[[feed]]\nname = \"kexec\"\nbroker = \"kraken\"\naccount = \"master\"\n\
             rest_url = \"{}\"\nurl = \"{}\"\nchannels = [\"executions\"]\n",
            sim.rest_url(),
            sim.ws_auth_url()
        );
    let cfg = write_config(dir.path(), &body).display().to_string();
    let runs: Vec<CliRun> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|_| {
                s.spawn(|| {
                    run_cli(
                        &["doctor", "--online", "--json", "--config", &cfg],
                        &[],
                        None,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in runs.iter().enumerate() {
        let doc: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("run {i}: {e}: {}", r.all()));
        assert_eq!(doc["online"][0]["outcome"], "ok", "run {i}: {}", r.stdout);
        // More than one redraw would say "after 2 fresh nonce(s)".
        let detail = doc["online"][0]["detail"].as_str().unwrap();
        assert!(!detail.contains("after 2"), "run {i}: {detail}");
    }
    let st = sim.stats();
    assert_eq!(st.nonces_seen[API_KEY].len(), PROCESSES, "{st:?}");
    assert!(st.rest_calls <= 2 * PROCESSES as u64, "{st:?}");
    assert_no_nonce_twice(&st);
}
