//! The layered preflight: credentials, DNS, TCP, TLS, protocol handshake,
//! authentication, first data. It names the first layer that fails and
//! what to do about it, so "the port is open but the API never answers" is
//! a sentence in the journal instead of an afternoon of guessing.
//!
//! Layers are known from data, never from message text: a connection
//! reports each layer as it passes (`ConnectProgress::layer_passed`) and an
//! error carries the layer it failed in (`FeedError::layer`). The same
//! record serves twice: `brokerguard check` makes one connection per feed
//! and reports it; in `run`, a feed's own first connection is the
//! preflight (see [`FirstConnection`]) — no second session is opened.
//! When a connection proves no key itself (public market data), `check`
//! proves the feed's key with the broker's REST credential check
//! (`Broker::validate_credentials`) as its auth layer, if the feed has one.
//!
//! See docs/ARCHITECTURE.md ("Preflight").

use crate::brokers::BuildContext;
use crate::config::FeedConfig;
use crate::feed::health::FirstConnection;
use crate::feed::{ConnectProgress, FeedError, FeedState, Incoming, Interrupter, Layer};
use crate::timefmt::human;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The longest `check` waits for the first data after subscribing.
pub const DATA_WAIT_MAX: Duration = Duration::from_secs(15);
/// How long `check` goes on reading after the first data, so a broker
/// that refuses one of several subscriptions a moment later is caught.
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable (e.g. TLS on ws://) or not reached after a failure.
    Skip,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerResult {
    pub layer: &'static str,
    pub outcome: Outcome,
    pub millis: u64,
    /// What was found, or why it failed and what to do. Never a secret.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FeedReport {
    pub feed: String,
    pub broker: String,
    pub target: String,
    pub layers: Vec<LayerResult>,
}

impl FeedReport {
    pub fn passed(&self) -> bool {
        self.layers.iter().all(|l| l.outcome != Outcome::Fail)
    }

    /// The first failing layer, if any.
    pub fn failure(&self) -> Option<&LayerResult> {
        self.layers.iter().find(|l| l.outcome == Outcome::Fail)
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("{} ({}) {}\n", self.feed, self.broker, self.target);
        for l in &self.layers {
            let tag = match l.outcome {
                Outcome::Pass => "ok  ",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "-   ",
            };
            let ms = if l.outcome == Outcome::Skip {
                String::new()
            } else {
                format!(" ({}ms)", l.millis)
            };
            s.push_str(&format!("  {tag} {:<11} {}{ms}\n", l.layer, l.detail));
        }
        s
    }
}

const NO_PROTOCOL: &str = "the port is open but nothing answers the protocol: is the right service on that port, and is it healthy?";

/// What to do when `layer` failed with `error`: the broker's own remedy
/// when it has one, else the generic advice for the layer.
pub fn remedy(feed: &FeedConfig, layer: Layer, error: &FeedError) -> String {
    if let Some(r) = feed.broker.remedy(feed, layer, error) {
        return r;
    }
    let timeout = error.is_timeout();
    match layer {
        Layer::Dns => "check the host name and the DNS resolver (/etc/resolv.conf)".into(),
        Layer::Tcp if timeout => {
            "no answer to the TCP connect: a firewall drops packets, or the host is down".into()
        }
        // The refusal's own text already asks whether the server runs.
        Layer::Tcp if error.is_refused() => "check the host and port of `url`".into(),
        Layer::Tcp => "is the server running, and is the port right?".into(),
        Layer::Tls => "check the server's certificate (or tls_ca_file for a private CA)".into(),
        Layer::Handshake if timeout => NO_PROTOCOL.into(),
        Layer::Handshake => "the server refused the handshake: check the URL path".into(),
        Layer::Auth => format!(
            "check the credential ({}) and the auth settings",
            crate::fixcmd::command("doctor")
        ),
        Layer::Data => "check the subscriptions, or whether the market is open".into(),
        Layer::Credentials => String::new(),
    }
}

/// `error` followed by its remedy, as one line. A remedy that names the
/// `set-credential` commands replaces the error's generic one.
fn explained(feed: &FeedConfig, layer: Layer, error: &FeedError) -> String {
    with_remedy(&error.message, &remedy(feed, layer, error))
}

/// `message` followed by `remedy`, said once: a remedy naming the
/// `set-credential` commands replaces the message's generic hint, and a
/// message already carrying the remedy (a resolve error names the
/// resolver) is left as it is.
fn with_remedy(message: &str, remedy: &str) -> String {
    let mut message = message.to_string();
    if remedy.contains("brokerguard set-credential ") {
        message = message.replace(&format!("; {}", crate::brokers::set_credential_hint()), "");
    }
    if remedy.is_empty() || message.contains(remedy) {
        message
    } else {
        format!("{message}: {remedy}")
    }
}

/// Builds the report of one connection from what it proved. `millis`
/// gives each passed or failed layer's time (absent: 0).
pub fn report_of(
    feed: &FeedConfig,
    first: &FirstConnection,
    millis: &dyn Fn(Layer) -> u64,
) -> FeedReport {
    let failed_at = first.failed.as_ref().map(|(l, _)| *l);
    let layers = Layer::ALL
        .iter()
        .map(|&layer| {
            let passed = first.passed.iter().find(|(l, _)| *l == layer);
            let (outcome, detail) = match (passed, &first.failed) {
                (Some((_, d)), _) => (Outcome::Pass, d.clone()),
                (None, Some((l, e))) if *l == layer => (Outcome::Fail, explained(feed, layer, e)),
                _ if failed_at.is_some_and(|f| layer > f) => (Outcome::Skip, "not reached".into()),
                _ if !first.done => (Outcome::Skip, "not reached yet".into()),
                _ => (Outcome::Skip, not_used(layer).into()),
            };
            let ms = if outcome == Outcome::Skip {
                0
            } else {
                millis(layer)
            };
            LayerResult {
                layer: layer.as_str(),
                outcome,
                millis: ms,
                detail,
            }
        })
        .collect();
    FeedReport {
        feed: feed.name.clone(),
        broker: feed.broker.name().to_string(),
        target: feed.broker.target(feed),
        layers,
    }
}

/// Why a layer before the one that decided the outcome was never reported.
fn not_used(layer: Layer) -> &'static str {
    match layer {
        Layer::Tls => "not used (no TLS on this connection)",
        Layer::Auth => "not used (no authentication configured)",
        Layer::Credentials => "none needed",
        _ => "not used",
    }
}

/// Records the layers a connection passes, with the time each took.
struct Recorder {
    first: FirstConnection,
    millis: Vec<(Layer, u64)>,
    last: Instant,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            first: FirstConnection::default(),
            millis: Vec::new(),
            last: Instant::now(),
        }
    }
    fn lap(&mut self, layer: Layer) {
        let now = Instant::now();
        self.millis
            .push((layer, now.duration_since(self.last).as_millis() as u64));
        self.last = now;
    }
    fn pass(&mut self, layer: Layer, detail: &str) {
        self.lap(layer);
        if layer == Layer::Data {
            // The first data ends the record, as in `run`: layers never
            // reported are then "not used", not "not reached yet".
            self.first.data(detail);
        } else {
            self.first.pass(layer, detail);
        }
    }
    fn fail(&mut self, layer: Layer, e: &FeedError) {
        self.lap(layer);
        self.first.fail(layer, e);
    }
    /// The first data arrived: the record is complete.
    fn data(&mut self, detail: &str) {
        self.lap(Layer::Data);
        self.first.data(detail);
    }
}

impl ConnectProgress for Recorder {
    fn phase(&mut self, _: FeedState) {}
    fn socket_opened(&mut self, _: Interrupter) {}
    fn layer_passed(&mut self, layer: Layer, detail: &str) {
        self.pass(layer, detail);
    }
}

/// Runs every layer for one feed over one connection of its own.
pub fn check_feed(feed: &FeedConfig, ctx: &BuildContext<'_>) -> FeedReport {
    let mut r = Recorder::new();
    let finish = |r: Recorder| {
        let millis = |l: Layer| {
            r.millis
                .iter()
                .find(|(x, _)| *x == l)
                .map_or(0, |(_, ms)| *ms)
        };
        report_of(feed, &r.first, &millis)
    };
    // 1. credentials
    let mut adapter = match feed.broker.build(feed, ctx) {
        Ok(a) => {
            let names: Vec<String> = feed
                .broker
                .credentials(feed)
                .into_iter()
                .filter(|c| !c.optional)
                .map(|c| c.name)
                .collect();
            let what = if names.is_empty() {
                "none needed".to_string()
            } else {
                format!("set: {}", names.join(", "))
            };
            r.pass(Layer::Credentials, &what);
            a
        }
        Err(e) => {
            r.fail(
                Layer::Credentials,
                &FeedError::new(crate::feed::ErrorClass::MissingCredential, e.to_string()),
            );
            return finish(r);
        }
    };
    // 2-6. through the real adapter: each layer reports itself as it passes.
    let mut session = match adapter.connect(&mut r) {
        Ok(s) => s,
        Err(e) => {
            let layer = e.layer.unwrap_or(Layer::Handshake);
            r.fail(layer, &e);
            return finish(r);
        }
    };
    // 6. auth, when the connection itself proved nothing (market data that
    // needs no key): the broker's REST credential check proves the key the
    // feed names, if it names one.
    let auth_passed = r.first.passed.iter().any(|(l, _)| *l == Layer::Auth);
    if !auth_passed {
        r.last = Instant::now();
        match feed.broker.validate_credentials(feed, ctx) {
            None => {}
            Some(Ok(detail)) => r.pass(Layer::Auth, &detail),
            Some(Err(e)) => {
                r.fail(Layer::Auth, &e);
                session.close();
                return finish(r);
            }
        }
    }
    // 7. first data: acknowledgements do not count, data and heartbeats do.
    // After it, a moment more for the broker to refuse another of the
    // subscriptions (one unknown symbol among good ones).
    r.last = Instant::now();
    let wait = feed.stall_after.min(DATA_WAIT_MAX);
    let data = session.subscribe().and_then(|_| {
        let end = Instant::now() + wait;
        let mut first = None;
        let mut settle_until = end;
        while Instant::now() < settle_until {
            let left = settle_until.saturating_duration_since(Instant::now());
            let what = match session.read_within(left)? {
                Incoming::Data(_) => "first data received",
                Incoming::Heartbeat => "first heartbeat received",
                _ => continue,
            };
            if first.is_none() {
                first = Some((what, Instant::now()));
                settle_until = Instant::now() + SETTLE;
            }
        }
        Ok(first)
    });
    match data {
        Ok(Some((what, at))) => {
            // The layer's time is the wait for the first data, not the settling.
            let start = r.last;
            r.data(what);
            if let Some(last) = r.millis.last_mut() {
                last.1 = at.duration_since(start).as_millis() as u64;
            }
        }
        Ok(None) => r.fail(
            Layer::Data,
            &FeedError::stalled(format!("nothing within {}", human(wait))),
        ),
        Err(e) => r.fail(Layer::Data, &e),
    }
    session.close();
    rest_check(&mut r.first, feed, ctx);
    finish(r)
}

/// The auth layer's second opinion: the broker's REST credential check
/// (`Broker::validate_credentials`), when it has one. It confirms a pass,
/// or says so when it disagrees; a failure it agrees with is not repeated.
fn rest_check(first: &mut FirstConnection, feed: &FeedConfig, ctx: &BuildContext<'_>) {
    let passed = first.passed.iter().position(|(l, _)| *l == Layer::Auth);
    let failed = matches!(&first.failed, Some((Layer::Auth, _)));
    if passed.is_none() && !failed {
        return;
    }
    let Some(result) = feed.broker.validate_credentials(feed, ctx) else {
        return;
    };
    match (passed, result, first.failed.as_mut()) {
        // The auth layer may have been this very call (a private Kraken
        // feed's): it is said once.
        (Some(i), Ok(d), _) if first.passed[i].1.contains(&d) => {}
        (Some(i), Ok(d), _) => first.passed[i].1 = format!("{}; REST: {d}", first.passed[i].1),
        (Some(i), Err(e), _) => {
            first.passed[i].1 = format!(
                "{}; but the REST check failed: {}",
                first.passed[i].1, e.message
            )
        }
        (None, Ok(d), Some((_, e))) => {
            e.message = format!(
                "{} (yet the REST check accepts the credentials: {d})",
                e.message
            )
        }
        _ => {}
    }
}

/// Checks several feeds in parallel (each bounded by its own timeouts).
pub fn check_all(feeds: &[FeedConfig], ctx: &BuildContext<'_>) -> Vec<FeedReport> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = feeds
            .iter()
            .map(|f| {
                let ctx = ctx.clone();
                scope.spawn(move || check_feed(f, &ctx))
            })
            .collect();
        handles
            .into_iter()
            .zip(feeds)
            .map(|(h, f)| {
                h.join().unwrap_or_else(|_| FeedReport {
                    feed: f.name.clone(),
                    broker: f.broker.name().into(),
                    target: String::new(),
                    layers: vec![LayerResult {
                        layer: "credentials",
                        outcome: Outcome::Fail,
                        millis: 0,
                        detail: "internal error: the check panicked".into(),
                    }],
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::{BrokerRef, websocket};

    fn feed() -> FeedConfig {
        let mut f = FeedConfig::new("sig", BrokerRef(&websocket::BROKER));
        f.url = Some("ws://127.0.0.1:9/".into());
        f
    }

    fn outcomes(r: &FeedReport) -> Vec<(&str, Outcome)> {
        r.layers.iter().map(|l| (l.layer, l.outcome)).collect()
    }

    /// A refused connect's remedy is the net error's own once, plus advice
    /// that does not repeat it; a timeout gets the firewall advice.
    #[test]
    fn a_refused_connect_gets_one_remedy() {
        let refused = crate::net::NetError::Connect {
            addr: "127.0.0.1:9".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let e = crate::feed::session::classify(refused, crate::feed::session::Stage::Opening);
        let line = explained(&feed(), Layer::Tcp, &e);
        assert_eq!(line.matches("is the server running").count(), 1, "{line}");
        assert!(
            line.ends_with("?): check the host and port of `url`"),
            "{line}"
        );
        let timeout = FeedError::network("timeout (TCP connect) after 5s to 127.0.0.1:9").because(
            crate::feed::Cause::Timeout(Some(crate::net::Phase::Connect)),
        );
        assert!(
            explained(&feed(), Layer::Tcp, &timeout).contains("a firewall drops packets"),
            "{}",
            explained(&feed(), Layer::Tcp, &timeout)
        );
    }

    /// A host that does not resolve: the resolver advice once, though both
    /// the net error and the layer's remedy carry it.
    #[test]
    fn an_unresolved_host_gets_its_remedy_once() {
        let e = crate::feed::session::classify(
            crate::net::NetError::Resolve {
                host: "nonexistent.invalid".into(),
                detail: "Name or service not known".into(),
            },
            crate::feed::session::Stage::Opening,
        );
        let line = explained(&feed(), Layer::Dns, &e);
        assert_eq!(
            line.matches("check the host name and the DNS resolver")
                .count(),
            1,
            "{line}"
        );
        assert!(
            line.starts_with("cannot resolve host nonexistent.invalid"),
            "{line}"
        );
    }

    /// A broker's own remedy naming the set-credential commands replaces
    /// the error's generic hint: the operator reads one fix, not two. (What
    /// a broker says of a rejected key is tested in its own folder.)
    #[test]
    fn a_specific_set_credential_remedy_replaces_the_generic_hint() {
        let hint = crate::brokers::set_credential_hint();
        let message = format!("feed rejected: Exch Balance: invalid key; {hint}");
        let specific = format!(
            "check the API key, then run `{}`",
            crate::fixcmd::command("set-credential EXCH_MASTER_API_KEY")
        );
        let line = with_remedy(&message, &specific);
        assert_eq!(line.matches("set-credential").count(), 1, "{line}");
        assert_eq!(
            line,
            format!("feed rejected: Exch Balance: invalid key: {specific}")
        );
        // A generic remedy leaves the hint in place.
        let generic = with_remedy(&message, "check the credential");
        assert!(generic.contains(&hint), "{generic}");
        assert!(generic.ends_with(": check the credential"), "{generic}");
    }

    #[test]
    fn a_failure_skips_what_follows_and_names_its_remedy() {
        let mut first = FirstConnection::default();
        first.pass(Layer::Credentials, "none needed");
        first.pass(Layer::Dns, "127.0.0.1");
        first.pass(Layer::Tcp, "connected");
        first.fail(
            Layer::Handshake,
            &FeedError::network("timeout (WebSocket handshake) after 500ms to ws://h:1/").because(
                crate::feed::Cause::Timeout(Some(crate::net::Phase::WsHandshake)),
            ),
        );
        let r = report_of(&feed(), &first, &|_| 7);
        use Outcome::*;
        assert_eq!(
            outcomes(&r),
            [
                ("credentials", Pass),
                ("dns", Pass),
                ("tcp", Pass),
                ("tls", Skip),
                ("handshake", Fail),
                ("auth", Skip),
                ("data", Skip)
            ]
        );
        let fail = r.failure().unwrap();
        assert!(
            fail.detail.contains("nothing answers the protocol"),
            "{}",
            fail.detail
        );
        assert_eq!(r.layers[3].detail, "not used (no TLS on this connection)");
        assert_eq!(r.layers[5].detail, "not reached");
        assert_eq!(fail.millis, 7);
    }

    /// A broker whose REST check says what it is told to.
    struct Rest(Result<&'static str, &'static str>);

    impl crate::brokers::registry::Broker for Rest {
        fn name(&self) -> &'static str {
            "rest-test"
        }
        fn keys(&self) -> &'static [&'static str] {
            &[]
        }
        fn parse(
            &self,
            _: &mut crate::config::Section<'_, '_, '_, '_>,
            _: &FeedConfig,
        ) -> Option<crate::brokers::registry::Settings> {
            None
        }
        fn default_settings(&self) -> crate::brokers::registry::Settings {
            websocket::BROKER.default_settings()
        }
        fn credentials(&self, _: &FeedConfig) -> Vec<crate::brokers::registry::CredentialField> {
            Vec::new()
        }
        fn build(
            &self,
            _: &FeedConfig,
            _: &BuildContext<'_>,
        ) -> Result<Box<dyn crate::feed::Adapter>, crate::brokers::BuildError> {
            Err(crate::brokers::BuildError::Invalid {
                feed: "x".into(),
                message: "not built".into(),
            })
        }
        fn diagnostics(&self) -> Option<&dyn crate::brokers::registry::Diagnostics> {
            Some(self)
        }
    }

    impl crate::brokers::registry::Diagnostics for Rest {
        fn validate_credentials(
            &self,
            _: &FeedConfig,
            _: &BuildContext<'_>,
        ) -> Option<Result<String, FeedError>> {
            Some(self.0.map(String::from).map_err(FeedError::auth))
        }
    }

    static ACCEPTS: Rest = Rest(Ok("profile AB1234"));
    static REJECTS: Rest = Rest(Err("token rejected"));

    #[test]
    fn the_auth_layer_gets_the_rest_checks_second_opinion() {
        let lookup = |_: &str| None;
        let ctx = BuildContext::new(&lookup, "/nonexistent".into());
        let passed = || {
            let mut f = FirstConnection::default();
            f.pass(Layer::Auth, "accepted at the upgrade");
            f
        };
        let run = |b: &'static Rest, mut f: FirstConnection| {
            rest_check(&mut f, &FeedConfig::new("f", BrokerRef(b)), &ctx);
            f
        };
        assert_eq!(
            run(&ACCEPTS, passed()).passed[0].1,
            "accepted at the upgrade; REST: profile AB1234"
        );
        assert_eq!(
            run(&REJECTS, passed()).passed[0].1,
            "accepted at the upgrade; but the REST check failed: token rejected"
        );
        // The auth layer was this very REST call: said once.
        let mut same = FirstConnection::default();
        same.pass(Layer::Auth, "profile AB1234");
        assert_eq!(run(&ACCEPTS, same).passed[0].1, "profile AB1234");
        let failed = || {
            let mut f = FirstConnection::default();
            f.fail(Layer::Auth, &FeedError::auth("refused at the upgrade"));
            f
        };
        let f = run(&ACCEPTS, failed());
        assert_eq!(
            f.failed.unwrap().1.message,
            "refused at the upgrade (yet the REST check accepts the credentials: profile AB1234)"
        );
        // Agreeing with a failure adds nothing; other layers are not its business.
        assert_eq!(
            run(&REJECTS, failed()).failed.unwrap().1.message,
            "refused at the upgrade"
        );
        let mut tcp = FirstConnection::default();
        tcp.fail(Layer::Tcp, &FeedError::network("refused"));
        assert_eq!(run(&ACCEPTS, tcp).failed.unwrap().1.message, "refused");
        // A broker without a REST check changes nothing.
        let ws = FeedConfig::new("w", BrokerRef(&websocket::BROKER));
        let mut f = passed();
        rest_check(&mut f, &ws, &ctx);
        assert_eq!(f.passed[0].1, "accepted at the upgrade");
    }

    #[test]
    fn a_check_that_got_its_first_data_is_complete() {
        let mut r = Recorder::new();
        for l in [Layer::Credentials, Layer::Dns, Layer::Tcp, Layer::Handshake] {
            r.pass(l, "ok");
        }
        r.pass(Layer::Data, "first data received");
        assert!(r.first.done);
        let report = report_of(&feed(), &r.first, &|_| 0);
        assert_eq!(
            report.layers[3].detail,
            "not used (no TLS on this connection)"
        );
        assert_eq!(report.layers[6].outcome, Outcome::Pass);
    }

    #[test]
    fn layers_never_reported_before_success_are_not_used() {
        let mut first = FirstConnection::default();
        for l in [Layer::Credentials, Layer::Dns, Layer::Tcp, Layer::Handshake] {
            first.pass(l, "ok");
        }
        first.data("first data received");
        let r = report_of(&feed(), &first, &|_| 0);
        assert!(r.passed());
        assert_eq!(r.layers[5].outcome, Outcome::Skip);
        assert_eq!(
            r.layers[5].detail,
            "not used (no authentication configured)"
        );
        assert_eq!(r.layers[6].outcome, Outcome::Pass);
    }
}
