//! Transports over blocking sockets, each phase with its own named timeout:
//! TCP, TLS, WebSocket, length-prefixed framed TCP and HTTP (ureq).
//!
//! See docs/ARCHITECTURE.md ("Brokers: protocol cores, the session driver, transports").

pub mod error;
pub mod framed;
pub mod http;
pub mod interrupt;
pub mod tcp;
pub mod timed;
pub mod tls;
pub mod transport;
pub mod ws;

pub use error::{NetError, Phase, PhaseTimeout, redact_url};
pub use interrupt::Interrupter;
pub use transport::{ConnectStep, Received, Transport};
pub use ws::{WsConn, WsEvent, WsOptions};
