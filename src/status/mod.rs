//! `status.json`: the live state other programs read.
//!
//! `schema.rs` is the document (a contract, docs/ARCHITECTURE.md), `write.rs`
//! rewrites it atomically, `show.rs` renders it for `brokerguard status`, `ready.rs` decides
//! whether the agent is ready (`/readyz`, the page, the dead-man's switch).

pub mod ready;
pub mod schema;
pub mod show;
pub mod write;
