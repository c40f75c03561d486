//! Nonce draws per second from one key's shared counter:
//! `cargo bench --bench nonce`.
//!
//! Each draw is the whole durable path: open, `flock`, read, write, `fsync`,
//! unlock, close, on the real file system under the system temp folder.
//! Each round measures, on fresh files:
//! - the disk's own ceiling: one process rewriting 21 bytes and fsyncing,
//!   no open, lock or read (fsync dominates a draw, and its cost swings
//!   with whatever else the machine writes, so this is printed beside the
//!   draws of the same round);
//! - one process drawing alone;
//! - eight processes drawing from the same key at once (this bench binary
//!   re-executed with [`CHILD_ENV`]; every child waits on its stdin so the
//!   parent starts them together, and reports its own first and last
//!   instant on CLOCK_MONOTONIC, which all processes share). The rate is all
//!   draws over the span from the first child's start to the last one's end.
//!
//! Rounds interleave the three so they see the same disk; the figures are
//! the medians over the rounds, one line `nonce.NAME key=value ...` each.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use brokerguard::clock::SystemClock;
use brokerguard::nonce::NonceStore;
use common::TempDir;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::{load_average, median};

/// Set in a child: `<state_dir>\n<draws>`.
const CHILD_ENV: &str = "BROKERGUARD_NONCE_BENCH_CHILD";
const KEY: &str = "sha256:be4c4b11";
const RUNS: usize = 5;
const SOLO_DRAWS: usize = 10_000;
const PROCESSES: usize = 8;
const DRAWS_PER_PROCESS: usize = 2_500;

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes, unlike `Instant`.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn draw_n(store: &NonceStore, n: usize) {
    for _ in 0..n {
        store.draw(KEY).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A child: wait for the start byte, draw, print `start_ns end_ns`.
fn child(spec: &str) {
    let (state, draws) = spec.split_once('\n').expect("state dir and draw count");
    let draws: usize = draws.parse().expect("draw count");
    let store = NonceStore::new(Path::new(state), Arc::new(SystemClock::new()));
    let mut go = [0u8; 1];
    std::io::stdin().read_exact(&mut go).expect("start byte");
    let start = monotonic_ns();
    draw_n(&store, draws);
    let end = monotonic_ns();
    println!("{start} {end}");
}

/// Writes + fsyncs per second of 21 bytes rewritten in place: the ceiling.
fn raw_fsync() -> f64 {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("nonce-bench-raw");
    let file = std::fs::File::create(dir.join("raw")).expect("create the raw file");
    let start = monotonic_ns();
    for i in 0..SOLO_DRAWS {
        file.write_all_at(format!("{i:020}\n").as_bytes(), 0)
            .and_then(|()| file.sync_all())
            .expect("write and fsync");
    }
    let secs = (monotonic_ns() - start) as f64 / 1e9;
    SOLO_DRAWS as f64 / secs
}

/// Draws per second of one process alone on a fresh counter.
fn solo() -> f64 {
    let dir = TempDir::new("nonce-bench-solo");
    let store = NonceStore::new(dir.path(), Arc::new(SystemClock::new()));
    store.draw(KEY).unwrap(); // creates the folder and file outside the timing
    let start = monotonic_ns();
    draw_n(&store, SOLO_DRAWS);
    let secs = (monotonic_ns() - start) as f64 / 1e9;
    SOLO_DRAWS as f64 / secs
}

/// Draws per second of eight processes sharing a fresh counter.
fn eight() -> f64 {
    let dir = TempDir::new("nonce-bench-eight");
    NonceStore::new(dir.path(), Arc::new(SystemClock::new()))
        .draw(KEY)
        .unwrap();
    let exe = std::env::current_exe().expect("the bench binary");
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .env(
                    CHILD_ENV,
                    format!("{}\n{DRAWS_PER_PROCESS}", dir.path().display()),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("re-execute the bench binary")
        })
        .collect();
    for c in &mut children {
        c.stdin
            .take()
            .expect("piped stdin")
            .write_all(b"g")
            .expect("start a child");
    }
    let mut first_start = u128::MAX;
    let mut last_end = 0;
    for c in children {
        let out = c.wait_with_output().expect("wait for a child");
        assert!(out.status.success(), "a child failed: {}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let (s, e) = text
            .trim()
            .split_once(' ')
            .unwrap_or_else(|| panic!("child printed {text:?}"));
        first_start = first_start.min(s.parse().expect("start"));
        last_end = last_end.max(e.parse().expect("end"));
    }
    let secs = (last_end - first_start) as f64 / 1e9;
    (PROCESSES * DRAWS_PER_PROCESS) as f64 / secs
}

fn report(name: &str, detail: &str, rates: &[f64]) {
    let m = median(rates);
    let per_draw = Duration::from_secs_f64(1.0 / m);
    println!(
        "nonce.{name} median_per_s={m:.0} each_us={:.1} rounds={} ({detail})",
        per_draw.as_secs_f64() * 1e6,
        rates.len()
    );
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    println!(
        "nonce: cargo bench --bench nonce; counters under {}; load average {}",
        std::env::temp_dir().display(),
        load_average()
    );
    let (mut raw, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        raw.push(raw_fsync());
        one.push(solo());
        many.push(eight());
        println!(
            "  round {i}: write+fsync {:.0}/s, one process {:.0} draws/s, {PROCESSES} processes {:.0} draws/s",
            raw[i], one[i], many[i]
        );
    }
    report(
        "fsync_ceiling",
        &format!("{SOLO_DRAWS} in-place writes + fsync per round, no lock"),
        &raw,
    );
    report(
        "one_process",
        &format!("{SOLO_DRAWS} draws per round"),
        &one,
    );
    report(
        "eight_processes",
        &format!("{PROCESSES} x {DRAWS_PER_PROCESS} draws per round, one key"),
        &many,
    );
    println!("nonce: load average after {}", load_average());
}
