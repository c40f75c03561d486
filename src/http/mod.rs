//! The optional HTTP listener (`[http] listen = "127.0.0.1:9187"`): health,
//! readiness, status, Prometheus metrics, the operator page and a broker's
//! browser-login callback, seen from outside the box.
//!
//! Synchronous like the rest of the agent: requests are parsed with
//! `httparse`, served by a fixed pool of worker threads behind a bounded
//! queue, with a deadline on every connection ([`server`]). The workers
//! read only what main last published ([`board::Board`]). See
//! docs/ARCHITECTURE.md ("The HTTP listener").

pub mod board;
pub mod metrics;
pub mod page;
pub mod process;
pub mod request;
pub mod routes;
pub mod server;
pub mod timeline;

use crate::config::HttpConfig;
use board::Board;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Why the listener could not start; each says what to do.
#[derive(Debug)]
pub enum HttpError {
    /// The address could not be bound (in use, not ours, refused by the unit).
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A thread or descriptor could not be had.
    Os(std::io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr} ([http] listen): {source}; pick a free port, or check the \
                 unit's SocketBindAllow= (it follows [http] listen after `sudo ./install.sh`)"
            ),
            HttpError::Os(e) => write!(f, "cannot start the HTTP listener: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The running listener.
pub struct Http {
    server: server::Server,
}

impl Http {
    /// Binds `[http] listen` and starts serving `board`.
    pub fn start(cfg: &HttpConfig, board: Arc<Board>) -> Result<Http, HttpError> {
        let listener = TcpListener::bind(cfg.listen).map_err(|source| HttpError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let routes = Arc::new(routes::Routes { board });
        let server = server::Server::start(listener, routes, None).map_err(HttpError::Os)?;
        log::info!("http: listening on http://{}/", server.local_addr());
        Ok(Http { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}
