//! The nonce store across processes: eight processes drawing 5 000 nonces
//! each from one key's counter get 40 000 distinct values, each process's
//! own strictly increasing, and the file ends at the largest one issued.
//!
//! The processes are this test binary itself, re-executed with
//! `--exact child --nocapture` and [`CHILD_ENV`] saying what to do (the
//! `child` test returns at once when it is absent). All children wait on
//! their stdin, so the parent starts them together by writing one byte to
//! each: the draws really overlap, with no sleeping to line them up.

mod common;

use brokerguard::clock::SystemClock;
use brokerguard::nonce::NonceStore;
use common::TempDir;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// Set in a child: `<state_dir>\n<output file>\n<draws>`.
const CHILD_ENV: &str = "BROKERGUARD_NONCE_TEST_CHILD";
const KEY: &str = "sha256:0badc0de";
const PROCESSES: usize = 8;
const DRAWS: usize = 5_000;

/// Not a test of its own: the body of each child process.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.lines();
    let (Some(state), Some(out), Some(draws)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{CHILD_ENV} must hold three lines, got {spec:?}");
    };
    let draws: usize = draws.parse().expect("draw count");
    let store = NonceStore::new(Path::new(state), Arc::new(SystemClock::new()));
    let mut go = [0u8; 1];
    std::io::stdin()
        .read_exact(&mut go)
        .expect("the parent's start byte");
    let mut got = Vec::with_capacity(draws);
    for _ in 0..draws {
        got.push(store.draw(KEY).unwrap_or_else(|e| panic!("{e}")));
    }
    let text: String = got.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(out, text).expect("write the draws");
}

fn spawn_child(state: &Path, out: &Path, log: &Path, draws: usize) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}\n{}\n{draws}", state.display(), out.display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("child log"))
        .spawn()
        .expect("re-execute the test binary")
}

fn read_draws(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect()
}

#[test]
fn eight_processes_share_one_strictly_increasing_counter() {
    let dir = TempDir::new("nonce-procs");
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let outs: Vec<(PathBuf, PathBuf)> = (0..PROCESSES)
        .map(|i| {
            (
                dir.join(&format!("draws-{i}")),
                dir.join(&format!("log-{i}")),
            )
        })
        .collect();
    let mut children: Vec<Child> = outs
        .iter()
        .map(|(out, log)| spawn_child(&state, out, log, DRAWS))
        .collect();
    for c in &mut children {
        let mut stdin = c.stdin.take().expect("piped stdin");
        stdin.write_all(b"g").expect("start a child");
    }
    for (i, c) in children.iter_mut().enumerate() {
        let status = c.wait().expect("wait for a child");
        assert!(
            status.success(),
            "child {i} failed ({status}):\n{}",
            std::fs::read_to_string(&outs[i].1).unwrap_or_default()
        );
    }

    let mut all = HashSet::new();
    let mut max = 0;
    for (i, (out, _)) in outs.iter().enumerate() {
        let draws = read_draws(out);
        assert_eq!(draws.len(), DRAWS, "child {i}");
        for pair in draws.windows(2) {
            assert!(
                pair[0] < pair[1],
                "child {i} went {} → {}",
                pair[0],
                pair[1]
            );
        }
        max = max.max(*draws.last().unwrap());
        all.extend(draws);
    }
    assert_eq!(all.len(), PROCESSES * DRAWS, "some nonce was issued twice");
    let store = NonceStore::new(&state, Arc::new(SystemClock::new()));
    assert_eq!(
        store.last(KEY).unwrap(),
        Some(max),
        "the file ends at the largest nonce"
    );
    assert!(store.draw(KEY).unwrap() > max);
}
