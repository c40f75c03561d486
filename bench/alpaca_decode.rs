//! Alpaca market data: does MessagePack pay at SIP volume?
//! `cargo bench --bench alpaca_decode`.
//!
//! The bot reads JSON lines from the fan-out, so whatever Alpaca sends, the
//! agent hands on one JSON text per message. Frames of SIP-like trades and
//! quotes (batches of 1, 20 and 200 messages), each path timed per message,
//! the median of several runs:
//! - json core: a JSON text frame through `AlpacaCore::receive`, what a
//!   feed thread pays today (split the array, read each `T`, one line each);
//! - msgpack→json: the same frame as MessagePack (the simulator's codec,
//!   Alpaca's shapes and timestamp extension) decoded and written as one
//!   JSON text per message: what the agent would pay with MessagePack;
//! - json write only: writing already-decoded messages as JSON text, the
//!   part of the MessagePack path no decoder can avoid (a lower bound).
//!
//! Also the bytes per message of each encoding, and what 100 000 msg/s
//! (a busy SIP subscription) costs of one core on each path.

use brokerguard::brokers::alpaca::core::{AlpacaCore, FeedMemory, Identity, Keepalive};
use brokerguard::brokers::alpaca::{Channel, Plan, Stream};
use brokerguard::clock::Mono;
use brokerguard::feed::{Action, Inbound, ProtocolCore};
use brokerguard::secret::Secret;
use brokerguard::sim::alpaca::msgpack;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const RUNS: usize = 7;
/// Each run handles about this many messages.
const MESSAGES_PER_RUN: usize = 200_000;
/// A busy SIP subscription's message rate, for the CPU figure.
const SIP_RATE: f64 = 100_000.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per call of `f`, median of `RUNS` runs of `calls` calls.
fn ns_per_call(calls: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..calls.min(1_000) {
        f();
    }
    let runs = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().max(Duration::from_nanos(1)).as_nanos() as f64 / calls as f64
        })
        .collect();
    median(runs)
}

/// A SIP-like batch: trades and quotes alternating over a few symbols.
fn batch(n: usize) -> Value {
    let symbols = ["AAPL", "MSFT", "TSLA", "NVDA", "SPY"];
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let s = symbols[i % symbols.len()];
            if i % 2 == 0 {
                json!({"T":"t","S":s,"i":52983525029461u64 + i as u64,"x":"V","p":189.52 + i as f64 / 100.0,
                       "s":100,"t":null,"c":["@","I"],"z":"C"})
            } else {
                json!({"T":"q","S":s,"bx":"Q","bp":189.51,"bs":3,"ax":"P","ap":189.53,"as":2,
                       "t":null,"c":["R"],"z":"C"})
            }
        })
        .collect();
    Value::Array(items)
}

/// The JSON text frame Alpaca sends for `v` (timestamps as RFC 3339 text).
fn json_frame(v: &Value) -> String {
    let mut v = v.clone();
    if let Value::Array(items) = &mut v {
        for item in items {
            item["t"] = "2026-11-20T15:51:44.208362496Z".into();
        }
    }
    v.to_string()
}

fn core() -> AlpacaCore {
    AlpacaCore::new(
        Arc::new(Identity {
            feed: "bench".into(),
            key_id: Secret::new("PKBENCH"),
            secret: Secret::new("bench"),
            key_name: "ALPACA_BENCH_API_KEY_ID".into(),
            secret_name: "ALPACA_BENCH_API_SECRET_KEY".into(),
        }),
        Arc::new(Plan {
            stream: Stream::Sip,
            channels: vec![Channel::Trades, Channel::Quotes],
            symbols: vec!["*".into()],
            paper: false,
        }),
        Arc::new(FeedMemory::default()),
        Keepalive::new(Duration::from_secs(10), Duration::from_secs(5)),
        4096,
        16 << 20,
    )
}

fn main() {
    println!("command: cargo bench --bench alpaca_decode");
    println!(
        "{:>5} {:>9} {:>9}  {:>13} {:>15} {:>16}",
        "batch", "json B/msg", "mp B/msg", "json core ns", "msgpack→json ns", "json write ns"
    );
    let mut at_20 = (0.0, 0.0);
    for n in [1usize, 20, 200] {
        let v = batch(n);
        let text = json_frame(&v);
        let mut packed = Vec::new();
        msgpack::encode(&v, SystemTime::now(), &mut packed);
        let calls = (MESSAGES_PER_RUN / n).max(100);
        let mut c = core();
        let out = c.receive(Inbound::Text(&text), Mono::default());
        assert_eq!(
            out.iter().filter(|a| matches!(a, Action::Data(_))).count(),
            n
        );
        let json_ns = ns_per_call(calls, || {
            black_box(c.receive(Inbound::Text(black_box(&text)), Mono::default()));
        }) / n as f64;
        let mp_ns = ns_per_call(calls, || {
            let Some(Value::Array(items)) = msgpack::decode(black_box(&packed)) else {
                panic!("the bench frame decodes")
            };
            for item in &items {
                black_box(item.to_string());
            }
        }) / n as f64;
        let decoded = match msgpack::decode(&packed) {
            Some(Value::Array(items)) => items,
            _ => panic!("the bench frame decodes"),
        };
        let write_ns = ns_per_call(calls, || {
            for item in black_box(&decoded) {
                black_box(item.to_string());
            }
        }) / n as f64;
        if n == 20 {
            at_20 = (json_ns, mp_ns);
        }
        println!(
            "{n:>5} {:>9.0} {:>9.0}  {json_ns:>13.0} {mp_ns:>15.0} {write_ns:>16.0}",
            text.len() as f64 / n as f64,
            packed.len() as f64 / n as f64,
        );
    }
    let cpu = |ns: f64| ns * SIP_RATE / 1e9 * 100.0;
    println!(
        "at {SIP_RATE:.0} msg/s in batches of 20: json core {:.1}% of a core, msgpack→json {:.1}% \
         (msgpack pays only if its column is lower)",
        cpu(at_20.0),
        cpu(at_20.1)
    );
}
