//! Transports: TCP, TLS and WebSocket over blocking sockets, each phase with
//! its own named timeout.

pub mod error;
pub mod tcp;
pub mod timed;
pub mod tls;
pub mod transport;
pub mod ws;

pub use error::{NetError, Phase, PhaseTimeout, redact_url};
pub use transport::{ConnectStep, Received, Transport};
pub use ws::{Interrupter, WsConn, WsEvent, WsOptions};
