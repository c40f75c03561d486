//! Credentials: owned sources, the `Secret` type, monitoring, hot reload.

pub mod secret;
pub use secret::Secret;
