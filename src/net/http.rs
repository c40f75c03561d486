//! A blocking HTTP/1.1 client for broker REST calls (credential checks,
//! token exchanges, signed private calls), on ureq, with the same
//! discipline as the socket transports: every phase has its own timeout
//! and a timeout names its phase (resolve, connect, TLS handshake, sending
//! the request, waiting for the response headers, reading the body); there
//! is no global timeout that would hide which one expired.
//!
//! - Bodies go out byte for byte as given: a signed form body (the signature
//!   covers the exact string) is never re-encoded.
//! - Non-2xx answers are `Ok(Response)`: brokers put their error in the body
//!   and the caller classifies it. Redirects are not followed (the 3xx comes
//!   back as is), so signed headers never travel to another host.
//! - URLs appear only through [`redact_url`]; header values are [`Secret`]s
//!   and appear nowhere. Neither `Request` nor `Response` prints a body.
//! - Every response's `Date` can feed a shared [`ClockDrift`].
//!
//! TLS is native-tls with the system CA store plus `ca_file`, built once in
//! [`tls::connector`] as for WebSockets. ureq's own native-tls connector can
//! trust either the system roots or a given list, not both, so the client
//! plugs its own TLS connector, from `tls::connector`, after ureq's TCP
//! connector through ureq's transport API (semver-exempt: hence the pinned
//! minor version in Cargo.toml).

mod date;

pub use date::{
    ClockDrift, ClockOffset, DRIFT_LIMIT, DriftReading, clock_offset, parse_imf_fixdate,
};

use super::error::{NetError, Phase, redact_url};
use super::tls;
use crate::secret::Secret;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use ureq::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter, time as utime,
};

/// Timeouts and limits of an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// The name lookup, and then the TCP connect and TLS handshake together.
    pub connect_timeout: Duration,
    /// Sending the request, and then waiting for the status line and headers
    /// (each of the two gets it; a small request leaves the socket at once).
    pub response_timeout: Duration,
    /// Reading the body, from the end of the headers.
    pub body_timeout: Duration,
    /// A longer body is [`NetError::TooLarge`].
    pub max_body_bytes: usize,
    /// An extra trusted CA (PEM) besides the system ones, as `WsOptions::ca_file`.
    pub ca_file: Option<PathBuf>,
    pub user_agent: String,
    /// The URL's path is itself a secret (a Slack or Discord webhook, a
    /// Telegram bot's token): messages and logs name the scheme, host and
    /// port only.
    pub secret_path: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body_bytes: 16 << 20,
            ca_file: None,
            user_agent: concat!("brokerguard/", env!("CARGO_PKG_VERSION")).to_string(),
            secret_path: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_http(self) -> ureq::http::Method {
        match self {
            Method::Get => ureq::http::Method::GET,
            Method::Post => ureq::http::Method::POST,
            Method::Delete => ureq::http::Method::DELETE,
        }
    }
}

/// A request body, sent exactly as given.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    /// `application/x-www-form-urlencoded`, already encoded (and maybe signed).
    Form(String),
    /// `application/json`.
    Json(String),
}

/// Kind and length only: a body may hold a nonce, a one-time password or a token.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Form(s) => write!(f, "Form({} bytes)", s.len()),
            Body::Json(s) => write!(f, "Json({} bytes)", s.len()),
        }
    }
}

#[derive(Clone)]
pub struct Request {
    pub method: Method,
    /// May carry tokens in its query: shown only through [`redact_url`].
    pub url: String,
    /// Values are secrets (keys, signatures, bearer tokens). A body's
    /// `Content-Type` is set by the client and replaces one given here.
    pub headers: Vec<(String, Secret)>,
    pub body: Body,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Self {
        Request {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn post(url: impl Into<String>, body: Body) -> Self {
        Request {
            method: Method::Post,
            url: url.into(),
            headers: Vec::new(),
            body,
        }
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Request {
            method: Method::Delete,
            ..Request::get(url)
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.push((name.into(), value));
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

#[derive(Clone)]
pub struct Response {
    pub status: u16,
    /// In the order received; names in lower case.
    pub headers: Vec<(String, String)>,
    /// Decoded as UTF-8 (invalid sequences replaced: an error page in
    /// another charset still reaches the caller's classifier).
    pub body: String,
    /// The server's `Date` header, if it is an IMF-fixdate.
    pub date: Option<SystemTime>,
    /// Our wall clock when the request started (before connecting).
    pub sent_at: SystemTime,
    /// Our wall clock when the response headers were in.
    pub received_at: SystemTime,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Header names and the body's length only: a body may hold a token (a
/// token exchange's answer) and a header a session cookie.
impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .field("date", &self.date)
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// A client: one connection pool, one TLS configuration. Cheap to share
/// by reference across calls; not tied to one host.
pub struct HttpClient {
    agent: ureq::Agent,
    opts: HttpOptions,
    drift: Option<Arc<ClockDrift>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("opts", &self.opts)
            .field("drift", &self.drift.is_some())
            .finish()
    }
}

/// What an error message needs to name the request.
struct Ctx<'a> {
    target: String,
    host: &'a str,
    opts: &'a HttpOptions,
}

impl HttpClient {
    /// A client with `opts`. A `ca_file` that cannot be read or holds no
    /// certificate fails here, before any request.
    pub fn new(opts: HttpOptions) -> Result<HttpClient, NetError> {
        let tls = Arc::new(tls::connector(opts.ca_file.as_deref())?);
        let ms1 = Duration::from_millis(1);
        let connect = opts.connect_timeout.max(ms1);
        let response = opts.response_timeout.max(ms1);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // Our connector chain has no proxy support: never pick one up
            // from the environment and send TLS to it.
            .proxy(None)
            .user_agent(opts.user_agent.as_str())
            // Only the TLS connector below is used; this keeps ureq's own
            // choice native-tls and the system roots, should it ever be asked.
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .timeout_global(None)
            .timeout_per_call(None)
            .timeout_resolve(Some(connect))
            .timeout_connect(Some(connect))
            .timeout_send_request(Some(response))
            .timeout_send_body(Some(response))
            .timeout_recv_response(Some(response))
            .timeout_recv_body(Some(opts.body_timeout.max(ms1)))
            .build();
        let connector = ().chain(NamedTcp::default()).chain(SystemRootsTls {
            connector: tls,
            connect_timeout: connect,
        });
        let agent = ureq::Agent::with_parts(config, connector, NamedResolver::default());
        Ok(HttpClient {
            agent,
            opts,
            drift: None,
        })
    }

    /// Every response's `Date` from now on is recorded in `drift`.
    pub fn with_drift(mut self, drift: Arc<ClockDrift>) -> Self {
        self.drift = Some(drift);
        self
    }

    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }

    /// Sends `req` and reads the whole response (status, headers, body).
    /// Any status is `Ok`; errors are the transport's, each naming its phase.
    pub fn send(&self, req: &Request) -> Result<Response, NetError> {
        let mut target = redact_url(&req.url);
        if self.opts.secret_path {
            if let Some(slash) = target
                .find("://")
                .and_then(|i| target[i + 3..].find('/').map(|j| i + 3 + j))
            {
                target.truncate(slash);
            }
        }
        let uri: ureq::http::Uri = req
            .url
            .parse()
            .map_err(|e| NetError::InvalidRequest(format!("URL {target} does not parse: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(NetError::InvalidRequest(format!(
                "URL {target} must start with http:// or https://"
            )));
        }
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| NetError::InvalidRequest(format!("URL {target} has no host")))?
            .to_string();
        let ctx = Ctx {
            target,
            host: &host,
            opts: &self.opts,
        };

        let mut headers = ureq::http::HeaderMap::new();
        for (name, value) in &req.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                NetError::InvalidRequest(format!("header name {name:?} is not valid"))
            })?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                NetError::InvalidRequest(format!(
                    "value of header {n} is not valid (a line break or control character?)"
                ))
            })?;
            // The http crate's own Debug then prints "Sensitive".
            v.set_sensitive(true);
            headers.append(n, v);
        }
        let content = match &req.body {
            Body::Empty => None,
            Body::Form(s) => Some(("application/x-www-form-urlencoded", s.as_bytes())),
            Body::Json(s) => Some(("application/json", s.as_bytes())),
        };
        if let Some((kind, _)) = content {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        }

        let sent_at = SystemTime::now();
        let result = match content {
            None => self.agent.run(http_request(req.method, uri, headers, ())),
            Some((_, bytes)) => self
                .agent
                .run(http_request(req.method, uri, headers, bytes)),
        };
        let mut resp = result.map_err(|e| map_error(e, &ctx))?;
        let received_at = SystemTime::now();

        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let date = headers
            .iter()
            .find(|(n, _)| n == "date")
            .and_then(|(_, v)| parse_imf_fixdate(v));
        // Recorded before the body is read: the reading is the headers', and
        // a body that then fails does not make it wrong.
        if let (Some(drift), Some(date)) = (&self.drift, date) {
            drift.record(clock_offset(date, sent_at, received_at), &host, received_at);
        }

        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.opts.max_body_bytes as u64)
            .read_to_vec()
            .map_err(|e| map_error(e, &ctx))?;
        let body = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        log::debug!(
            "{} {} -> {status} ({} bytes)",
            req.method.as_http(),
            ctx.target,
            body.len()
        );
        Ok(Response {
            status,
            headers,
            body,
            date,
            sent_at,
            received_at,
        })
    }
}

fn http_request<B>(
    method: Method,
    uri: ureq::http::Uri,
    headers: ureq::http::HeaderMap,
    body: B,
) -> ureq::http::Request<B> {
    let mut r = ureq::http::Request::new(body);
    *r.method_mut() = method.as_http();
    *r.uri_mut() = uri;
    *r.headers_mut() = headers;
    r
}

/// A ureq error as a `NetError` naming the phase and the (redacted) target.
/// ureq's own text is used only where it cannot carry the URL or a header
/// value (its `BadUri` and `BadHeader` carry them).
fn map_error(e: ureq::Error, ctx: &Ctx) -> NetError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let target = ctx.target.clone();
    match e {
        // Our connectors' errors, already named.
        E::Other(boxed) => match boxed.downcast::<NetError>() {
            Ok(net) => *net,
            Err(other) => NetError::Protocol(format!("HTTP exchange with {target}: {other}")),
        },
        E::Timeout(t) => {
            let o = ctx.opts;
            let (phase, after) = match t {
                T::Resolve => (Phase::Resolve, o.connect_timeout),
                T::Connect => (Phase::Connect, o.connect_timeout),
                T::SendRequest | T::SendBody | T::Await100 => {
                    (Phase::HttpRequest, o.response_timeout)
                }
                T::RecvResponse => (Phase::HttpResponse, o.response_timeout),
                T::RecvBody => (Phase::HttpBody, o.body_timeout),
                // Global, per-call, per-read and per-write timeouts are never set.
                other => {
                    return NetError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("unexpected {other:?} timeout towards {target}"),
                    ));
                }
            };
            NetError::timeout(phase, after, target)
        }
        E::HostNotFound => NetError::Resolve {
            host: ctx.host.to_string(),
            detail: "no addresses".into(),
        },
        E::Io(io) => NetError::from_stream_io(io, || format!("response from {target} cut short")),
        E::BodyExceedsLimit(_) => NetError::TooLarge,
        E::LargeResponseHeader(_, max) => NetError::Protocol(format!(
            "response headers from {target} are larger than {max} bytes"
        )),
        E::BadUri(_) => NetError::InvalidRequest(format!("URL {target} is not usable")),
        // Parse failures of the answer; request-side ones carry the http
        // crate's text, never a header's value.
        E::Protocol(p) => NetError::Protocol(format!("malformed HTTP exchange with {target}: {p}")),
        other => NetError::Protocol(format!("HTTP exchange with {target}: {other}")),
    }
}

/// ureq's resolver (getaddrinfo in a helper thread, bounded by the resolve
/// timeout), with a failed lookup reported as [`NetError::Resolve`], which
/// tells the operator to check the name and the DNS resolver.
#[derive(Debug, Default)]
struct NamedResolver(DefaultResolver);

impl Resolver for NamedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.0.resolve(uri, config, timeout).map_err(|e| match e {
            ureq::Error::Io(io) => ureq::Error::Other(Box::new(NetError::Resolve {
                host: uri.host().unwrap_or_default().to_string(),
                detail: io.to_string(),
            })),
            other => other,
        })
    }
}

/// ureq's TCP connector, with a refused or unreachable address reported as
/// [`NetError::Connect`] (which says what to check), as for the other
/// transports. ureq tries the resolved addresses in turn within the connect
/// budget and reports the last failure: that is the last address.
#[derive(Debug, Default)]
struct NamedTcp(TcpConnector);

impl<In: Transport> Connector<In> for NamedTcp {
    type Out = <TcpConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        match self.0.connect(details, chained) {
            Err(ureq::Error::Io(source))
                if matches!(
                    source.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                match details.addrs.last() {
                    Some(addr) => Err(ureq::Error::Other(Box::new(NetError::Connect {
                        addr: *addr,
                        source,
                    }))),
                    None => Err(ureq::Error::Io(source)),
                }
            }
            other => other,
        }
    }
}

/// TLS with the agent's one connector ([`tls::connector`]): system roots
/// plus `ca_file`, TLS 1.2 or later, verification always on.
#[derive(Debug)]
struct SystemRootsTls {
    connector: Arc<native_tls::TlsConnector>,
    /// The budget of TCP and TLS together, named when TLS runs out of it.
    connect_timeout: Duration,
}

/// The connect budget left now: ureq computed it when the connect began.
fn connect_budget_left(details: &ConnectionDetails) -> NextTimeout {
    let mut t = details.timeout;
    if let (
        utime::Duration::Exact(after),
        utime::Instant::Exact(began),
        utime::Instant::Exact(now),
    ) = (t.after, details.now, (details.current_time)())
    {
        t.after =
            utime::Duration::Exact(after.saturating_sub(now.saturating_duration_since(began)));
    }
    t
}

impl<In: Transport> Connector<In> for SystemRootsTls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut adapter = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        adapter.set_timeout(connect_budget_left(details));
        let below = Arc::new(Mutex::new(None));
        let io = Capture {
            inner: adapter,
            below: below.clone(),
        };
        let err = match self.connector.connect(&host, io) {
            Ok(stream) => {
                let config = details.config;
                return Ok(Some(Either::B(TlsTransport {
                    buffers: LazyBuffers::new(
                        config.input_buffer_size(),
                        config.output_buffer_size(),
                    ),
                    stream,
                })));
            }
            Err(e) => e,
        };
        let target = redact_url(&details.uri.to_string());
        // What failed under TLS (a timeout, a reset) says more than what
        // OpenSSL made of it.
        let below = below.lock().unwrap_or_else(PoisonError::into_inner).take();
        Err(match below {
            Some(ureq::Error::Timeout(_)) => ureq::Error::Other(Box::new(NetError::timeout(
                Phase::TlsHandshake,
                self.connect_timeout,
                target,
            ))),
            Some(other) => other,
            None => ureq::Error::Other(Box::new(NetError::Tls(match err {
                native_tls::HandshakeError::Failure(e) => tls::describe_handshake_error(&host, &e),
                native_tls::HandshakeError::WouldBlock(_) => {
                    format!("handshake with {host} stopped half-way")
                }
            }))),
        })
    }
}

/// The stream under TLS. native-tls only sees a generic I/O error; the real
/// one (a timeout, with its phase) is kept aside for the caller.
struct Capture {
    inner: TransportAdapter,
    below: Arc<Mutex<Option<ureq::Error>>>,
}

impl Capture {
    fn keep(&self, e: io::Error) -> io::Error {
        *self.below.lock().unwrap_or_else(PoisonError::into_inner) = Some(ureq::Error::from(e));
        io::Error::other("transport failed under TLS")
    }

    fn take(&self) -> Result<(), ureq::Error> {
        match self
            .below
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Read for Capture {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| self.keep(e))
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

struct TlsTransport {
    buffers: LazyBuffers,
    stream: native_tls::TlsStream<Capture>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().inner.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        let result = self.stream.write_all(output);
        self.stream.get_ref().take()?;
        result?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().inner.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let result = self.stream.read(input);
        self.stream.get_ref().take()?;
        let n = result?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().inner.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
