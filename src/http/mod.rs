//! The optional HTTP listener (`[http] listen = "127.0.0.1:9187"`): health,
//! readiness, status, Prometheus metrics, the operator page and a broker's
//! browser-login callback, seen from outside the box.
//!
//! Synchronous like the rest of the agent: requests are parsed with
//! `httparse`, served by a fixed pool of worker threads behind a bounded
//! queue, with a deadline on every connection ([`server`]). The workers
//! read only what main last published ([`board::Board`]). See
//! docs/ARCHITECTURE.md ("The HTTP listener").

pub mod auth;
pub mod board;
pub mod metrics;
pub mod page;
pub mod process;
pub mod request;
pub mod routes;
pub mod server;
pub mod timeline;
pub mod tls;

use crate::config::HttpConfig;
use crate::secret::Secret;
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
    /// Off loopback, without a usable password hash.
    Auth(auth::AuthError),
    /// Off loopback, without a usable certificate and key.
    Tls(tls::TlsError),
}

impl HttpError {
    /// The configuration or a credential must change (not the OS).
    pub fn is_setup(&self) -> bool {
        matches!(self, HttpError::Auth(_) | HttpError::Tls(_))
    }
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
            HttpError::Auth(e) => write!(f, "[http] listen is not loopback, so {e}"),
            HttpError::Tls(e) => write!(f, "[http] TLS: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The running listener.
pub struct Http {
    server: server::Server,
}

impl Http {
    /// Binds `[http] listen` and starts serving `board`. Off loopback it
    /// serves only over TLS (`tls_cert`, `tls_key`) and asks for the
    /// password whose hash `password` is (the `HTTP_PASSWORD` credential),
    /// except on the `public` paths; without either it refuses to start.
    pub fn start(
        cfg: &HttpConfig,
        board: Arc<Board>,
        password: Option<&Secret>,
    ) -> Result<Http, HttpError> {
        let exposed = !cfg.listen.ip().is_loopback();
        let auth = if exposed {
            Some(Arc::new(
                auth::BasicAuth::new(password).map_err(HttpError::Auth)?,
            ))
        } else {
            None
        };
        let wrap: Option<Arc<dyn server::Wrap>> = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => Some(Arc::new(
                tls::TlsWrap::from_files(c, k).map_err(HttpError::Tls)?,
            )),
            // The configuration refuses this off loopback; say it here too.
            _ if exposed => {
                return Err(HttpError::Tls(tls::TlsError::Read {
                    path: "tls_cert".into(),
                    source: std::io::Error::other("not set; a listener off loopback needs TLS"),
                }));
            }
            _ => None,
        };
        let listener = TcpListener::bind(cfg.listen).map_err(|source| HttpError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let scheme = if wrap.is_some() { "https" } else { "http" };
        let routes = Arc::new(routes::Routes {
            board,
            auth,
            public: cfg.public.clone(),
        });
        let server = server::Server::start(listener, routes, wrap).map_err(HttpError::Os)?;
        log::info!("http: listening on {scheme}://{}/", server.local_addr());
        Ok(Http { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}
