//! A loopback fake of TWS / IB Gateway's API socket (`brokerguard sim tws`):
//! the `API\0` greeting and version reply, START_API → managedAccounts,
//! nextValidId and the usual farm notices, reqCurrentTime → currentTime,
//! reqMktData → tickReqParams, marketDataType and a stream of
//! tickPrice/tickSize/tickString, cancelMktData, and the end markers of
//! the requests ib_async's `IB.connect()` makes, so the PyPI client accepts
//! it. Faults: refuse, accept and never answer, answer the greeting and
//! never START_API, refuse a held client id with 326 and close ~0.7 s
//! later, 1100/1101/1102/farm codes/1300 on demand, stop answering
//! reqCurrentTime, 200 for an unknown contract.
//!
//! It speaks its own implementation of the protocol (written from
//! PROTOCOLS.md §4 and ib_async's source), never the agent's codec, so the
//! two cannot agree on the same mistake; `tests/interop/` runs ib_async
//! against it.

mod cli;
mod conn;
mod fault;
mod server;
mod stats;
mod wire;

pub use cli::{TwsArgs, run_tws};
pub use fault::{TWS_FAULT_HELP, TwsFault, TwsStep};
pub use server::{DEFAULT_SYMBOLS, TwsSim, TwsSimConfig, TwsSimHandle};
pub use stats::{MktDataRequest, TwsStats};
