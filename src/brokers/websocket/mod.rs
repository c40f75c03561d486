//! The generic JSON WebSocket broker (`broker = "websocket"`): a bot's own
//! signal server. Its section holds the messages to send (`auth`,
//! `subscribe`, `poll`, with `${NAME}` credentials substituted at build
//! time) and how to recognise the server's replies; the protocol itself is
//! the pure core in `core.rs`.

pub mod core;

use self::core::{JsonWsCore, Replies};
use super::registry::{Broker, BuildContext, BuildError, ConfigRules, CredentialField, Settings};
use super::{substitute, ws_options};
use crate::clock::Clock;
use crate::config::{FeedConfig, Section, Shown, is_literal_auth, template_names};
use crate::credentials::required::TEMPLATE_FIELD;
use crate::feed::{Adapter, ConnectProgress, FeedError, Session};
use crate::net::ws::WsOptions;
use std::sync::Arc;
use std::time::Duration;

/// The registry entry.
pub static BROKER: WebsocketBroker = WebsocketBroker;

pub struct WebsocketBroker;

/// The `[[feed]]` keys of a websocket feed besides the common ones.
const KEYS: &[&str] = &[
    "url",
    "auth",
    "auth_ok",
    "auth_error",
    "subscribe",
    "subscribe_ok",
    "poll",
    "poll_every",
    "heartbeat",
];

/// A websocket feed's section.
#[derive(Clone, Debug, PartialEq)]
pub struct WsSettings {
    /// Sent after connecting; `${NAME}` is a credential.
    pub auth: Option<String>,
    /// A reply containing this text means the auth was accepted. Unset: the
    /// feed is authenticated as soon as `auth` is sent.
    pub auth_ok: Option<String>,
    /// A reply containing this text means the credentials were rejected.
    pub auth_error: Option<String>,
    /// Sent once per connection after auth, in order.
    pub subscribe: Vec<String>,
    /// A reply containing this text confirms a subscription (not data).
    pub subscribe_ok: Option<String>,
    /// Sent every `poll_every`; a failed send means reconnect.
    pub poll: Option<String>,
    pub poll_every: Duration,
    /// A message whose `type`, `channel`, `event` or `T` field equals this
    /// is a heartbeat. Default `"heartbeat"`; `""` turns it off.
    pub heartbeat: Option<String>,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            auth: None,
            auth_ok: None,
            auth_error: None,
            subscribe: Vec::new(),
            subscribe_ok: None,
            poll: None,
            poll_every: Duration::from_secs(2),
            heartbeat: Some("heartbeat".to_string()),
        }
    }
}

impl WsSettings {
    /// The `${NAME}` references in auth, subscribe and poll, in order, without repeats.
    pub fn template_refs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let texts = self
            .auth
            .iter()
            .chain(self.subscribe.iter())
            .chain(self.poll.iter());
        for t in texts {
            for name in template_names(t) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }
}

impl super::registry::BrokerSettings for WsSettings {
    crate::broker_settings_plumbing!();

    fn show(&self, out: &mut Shown<'_>) {
        if let Some(a) = &self.auth {
            out.template("auth", a);
        }
        out.opt_string("auth_ok", self.auth_ok.as_deref());
        out.opt_string("auth_error", self.auth_error.as_deref());
        out.strings("subscribe", &self.subscribe);
        out.opt_string("subscribe_ok", self.subscribe_ok.as_deref());
        out.opt_string("poll", self.poll.as_deref());
        out.duration("poll_every", self.poll_every);
        // An empty heartbeat means "no heartbeat messages" when read back.
        out.string("heartbeat", self.heartbeat.as_deref().unwrap_or(""));
    }
}

fn settings_of(feed: &FeedConfig) -> WsSettings {
    feed.settings::<WsSettings>().cloned().unwrap_or_default()
}

impl Broker for WebsocketBroker {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn parse(&self, s: &mut Section<'_, '_, '_, '_>, feed: &FeedConfig) -> Option<Settings> {
        let mut w = WsSettings::default();
        if feed.url.is_none() && !s.has("url") {
            s.report_missing(
                "url",
                "broker = \"websocket\" needs a url; add url = \"wss://host:port/path\" (or ws://)",
            );
        }
        w.auth = s.template("auth");
        w.auth_ok = s.nonempty_string("auth_ok");
        w.auth_error = s.nonempty_string("auth_error");
        if let Some(list) = s.template_list("subscribe") {
            w.subscribe = list;
        }
        w.subscribe_ok = s.nonempty_string("subscribe_ok");
        w.poll = s.template("poll");
        if let Some(d) = s.duration("poll_every") {
            w.poll_every = d;
        }
        // An empty string turns heartbeat recognition off.
        if let Some(h) = s.string("heartbeat") {
            w.heartbeat = (!h.is_empty()).then_some(h);
        }
        if w.poll.is_some() && w.poll_every.is_zero() && s.has("poll_every") {
            s.report(
                "poll_every",
                "\"0s\" is too short; poll is sent every poll_every, so use more than 0s (e.g. \"2s\")",
            );
        }
        Some(Settings::new(w))
    }

    fn default_settings(&self) -> Settings {
        Settings::new(WsSettings::default())
    }

    fn credentials(&self, feed: &FeedConfig) -> Vec<CredentialField> {
        settings_of(feed)
            .template_refs()
            .into_iter()
            .map(|name| CredentialField {
                name,
                field: TEMPLATE_FIELD.to_string(),
                optional: false,
            })
            .collect()
    }

    fn build(
        &self,
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Box<dyn Adapter>, BuildError> {
        let w = settings_of(feed);
        let sub = |t: &String| substitute(&feed.name, t, ctx.lookup);
        let core = JsonWsCore::new(
            w.auth.as_ref().map(sub).transpose()?,
            w.subscribe.iter().map(sub).collect::<Result<_, _>>()?,
            w.poll.as_ref().map(sub).transpose()?,
            Replies {
                auth_ok: w.auth_ok.clone(),
                auth_error: w.auth_error.clone(),
                subscribe_ok: w.subscribe_ok.clone(),
                heartbeat: w.heartbeat.clone(),
            },
        );
        Ok(Box::new(WebsocketAdapter {
            url: feed.url.clone().unwrap_or_default(),
            opts: ws_options(feed),
            poll_every: w.poll.is_some().then_some(w.poll_every),
            core,
            clock: ctx.clock.clone(),
        }))
    }

    fn rules(&self) -> Option<&dyn ConfigRules> {
        Some(self)
    }
}

impl ConfigRules for WebsocketBroker {
    fn hint(&self, key: &str) -> Option<String> {
        (key == "account").then(|| {
            "account is only for broker adapters; a websocket feed names its credentials \
             as ${NAME} in auth, subscribe or poll; remove account"
                .to_string()
        })
    }

    fn warnings(&self, feed: &FeedConfig) -> Vec<String> {
        let w = settings_of(feed);
        match w.auth.as_deref() {
            Some(a) if is_literal_auth(a) => vec![format!(
                "feed \"{}\": auth has no ${{NAME}} reference, so it embeds a literal credential; \
                 move the secret to a credentials file ({}) and write ${{NAME}} in auth",
                feed.name,
                crate::fixcmd::command("set-credential NAME")
            )],
            _ => Vec::new(),
        }
    }
}

/// Connects a websocket feed: the transport from `net::ws`, the protocol
/// from [`JsonWsCore`], driven by the engine's session driver.
pub struct WebsocketAdapter {
    url: String,
    opts: WsOptions,
    poll_every: Option<Duration>,
    core: JsonWsCore,
    clock: Arc<dyn Clock>,
}

impl Adapter for WebsocketAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        crate::brokers::connect_ws(
            Box::new(self.core.clone()),
            self.clock.clone(),
            &self.url,
            &self.opts,
            progress,
        )
    }

    fn has_ping(&self) -> bool {
        true
    }

    fn poll_every(&self) -> Option<Duration> {
        self.poll_every
    }
}
