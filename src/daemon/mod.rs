//! The agent: lock → config → credentials → spawn → supervise → stop.

pub mod lock;
pub mod signals;
