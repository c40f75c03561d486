//! Failover: two agents, active and standby, with an etcd lease deciding
//! which one holds each broker key — never both. Off without `[ha]`.
//!
//! - `election.rs`: the pure state machine (lease, campaign, fencing).
//! - `etcd.rs`: etcd's v3 JSON gateway over ureq (`net::http`).
//! - `thread.rs`: the ha thread that drives the election, keeps the
//!   process's fence (`crate::fence`) and tells main of every change.
//!
//! See docs/ARCHITECTURE.md, "Failover".

pub mod command;
pub mod election;
pub mod etcd;
pub mod thread;

pub use election::{Change, Election, FenceReason, Holder, Role};
pub use thread::{HaHandle, HaStatus};
