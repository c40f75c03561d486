//! Stack sizes of the agent's long-lived threads, set deliberately instead
//! of std's 2 MiB default (or whatever `RUST_MIN_STACK` says on the host).
//!
//! A stack costs resident memory only for the pages a thread touches, but
//! its whole reservation is address space: at 500 feeds the default was a
//! gigabyte of it. Measured high-water marks (resident pages of each stack
//! mapping after the fault soak, `/proc/PID/smaps`) are in bench/RESULTS.md;
//! the sizes leave several times that, for debug builds (larger frames) and
//! for the deepest peer input the parsers accept (serde_json stops at 128
//! levels of nesting).

/// A feed thread (TLS handshake, WebSocket, JSON of the broker's messages),
/// the credential validator (HTTP over TLS) and the watchdog (it asks each
/// broker for its expected outage windows: calendar and time-zone code,
/// whose debug-build frames overflowed 128 KiB in `tests/ibkr_e2e.rs`).
pub const FEED_STACK: usize = 512 * 1024;

/// Threads that move bytes and log: credential watcher, signals,
/// fan-out accept, and each fan-out subscriber's reader and writer.
pub const SMALL_STACK: usize = 128 * 1024;
