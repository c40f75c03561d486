//! The scaffolding every simulator shares, so a new broker's simulator
//! writes only its protocol: the stats cell a test waits on
//! ([`Watched`]), the fault in force with its generations and per-connection
//! acknowledgements ([`Faults`]), the stop flag, thread registry and event
//! lines ([`Base`], reached through [`Host`]), fault scripts
//! ([`spawn_script`]), the methods every handle has
//! ([`handle_methods`]), a REST API's HTTP/1.1 end ([`http`]), listeners and the per-connection socket helpers
//! ([`net`]), the WebSocket upgrade and close ([`ws`]), and the CLI's
//! "print events until stopped" loop ([`cli`]).
//!
//! Like the simulators it depends on nothing of the agent's internals.

mod base;
pub(crate) mod cli;
mod faults;
mod handle;
pub(crate) mod http;
pub(crate) mod net;
mod watched;
pub(crate) mod ws;

pub(crate) use base::{Base, Host, TICK, spawn_script};
pub(crate) use faults::Faults;
pub(crate) use handle::handle_methods;
pub(crate) use watched::Watched;

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even if a thread panicked while holding it:
/// a simulator's state stays usable for the test that reads it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
