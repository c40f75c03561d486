//! KiteTicker binary decoding throughput: `cargo bench --bench kite_decode`.
//!
//! Full-mode frames (184-byte packets with depth) of 1, 50 and 500 ticks,
//! built by the simulator's encoder, decoded by the agent's decoder. Three
//! figures per size, each the median of several runs:
//! - decode: bytes → ticks (`ticker::decode`), every length checked;
//! - decode+JSON: bytes → the JSON array the bot receives (`decode_json`);
//! - core: through `TickerCore::receive`, what a feed thread pays per frame.

use brokerguard::brokers::kite::Mode;
use brokerguard::brokers::kite::core::{TickerConfig, TickerCore, TickerCounters};
use brokerguard::brokers::kite::ticker::{Decoded, decode, decode_json};
use brokerguard::clock::Mono;
use brokerguard::feed::{Action, Inbound, ProtocolCore};
use brokerguard::sim::kite::SimMode;
use brokerguard::sim::kite::encode::data_frame;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 7;
/// Each run decodes about this many ticks.
const TICKS_PER_RUN: usize = 200_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Frames per second of `f` over `frames` calls, median of `RUNS` runs.
fn rate(frames: usize, mut f: impl FnMut()) -> f64 {
    // One untimed warm-up run.
    for _ in 0..frames.min(1_000) {
        f();
    }
    let runs = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..frames {
                f();
            }
            frames as f64 / start.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
        })
        .collect();
    median(runs)
}

fn main() {
    println!("command: cargo bench --bench kite_decode");
    println!(
        "{:>6} {:>8}  {:>14} {:>14} {:>14}  {:>12}",
        "ticks", "bytes", "decode fr/s", "+JSON fr/s", "core fr/s", "core ticks/s"
    );
    for ticks in [1usize, 50, 500] {
        // Distinct NSE tokens (segment 1), all in full mode.
        let subs: Vec<(u32, SimMode)> = (0..ticks as u32)
            .map(|i| (((1_000 + i) << 8) | 1, SimMode::Full))
            .collect();
        let frame = data_frame(&subs, 7);
        match decode(&frame) {
            Ok(Decoded::Ticks(t)) => assert_eq!(t.len(), ticks),
            other => panic!("the bench frame must decode: {other:?}"),
        }
        let frames = (TICKS_PER_RUN / ticks).max(200);
        let d = rate(frames, || {
            black_box(decode(black_box(&frame)).ok());
        });
        let j = rate(frames, || {
            black_box(decode_json(black_box(&frame)).ok());
        });
        let cfg = Arc::new(TickerConfig {
            feed: "bench".into(),
            account: "main".into(),
            instruments: subs.iter().map(|s| s.0).collect(),
            mode: Mode::Full,
        });
        let mut core = TickerCore::new(cfg, TickerCounters::new());
        let c = rate(frames, || {
            let out = core.receive(Inbound::Binary(black_box(&frame)), Mono::default());
            debug_assert!(matches!(out.first(), Some(Action::Data(_))));
            black_box(out);
        });
        println!(
            "{ticks:>6} {:>8}  {d:>14.0} {j:>14.0} {c:>14.0}  {:>12.0}",
            frame.len(),
            c * ticks as f64
        );
    }
    println!(
        "(median of {RUNS} runs; fr/s = frames per second; one frame = one WebSocket message)"
    );
}
