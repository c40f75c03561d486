//! The agent: lock → config → credentials → spawn → supervise → stop.
