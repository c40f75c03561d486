//! The configuration: typed, validated, with defaults filled in.
//!
//! `load` reads strict TOML (unknown keys are errors) and reports every
//! problem with file:line:col, never just the first. The types here are the
//! contract the rest of the agent reads; parsing lives in `parse.rs`,
//! durations in `duration.rs`, the effective-config printer in `show.rs`.

mod error;
mod parse;
pub mod plaintext;
mod required;
mod show;

pub use crate::duration::{format_duration, parse_duration};
pub use crate::feed::backoff::BackoffConfig;
pub use crate::feed::schedule::ExpectConfig;
pub use error::{ConfigError, Problem};
pub use parse::{Section, load, parse_str};
pub use required::{alerts_required, feed_required, required_credentials};
pub use show::{Shown, effective_toml, is_literal_auth, redact_url, setup_warnings};

use crate::brokers::registry::{BrokerRef, Settings};

use std::path::PathBuf;
use std::time::Duration;

use crate::calendar::{CalendarKind, Date};

/// Where the configuration is looked for when no `--config` is given.
pub const DEFAULT_PATH: &str = crate::fixcmd::DEFAULT_CONFIG_PATH;
/// Environment variable that overrides [`DEFAULT_PATH`].
pub const PATH_ENV: &str = "BROKERGUARD_CONFIG";

/// `--config`, else `$BROKERGUARD_CONFIG`, else the default path.
pub fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os(PATH_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this was read from (for messages).
    pub path: PathBuf,
    pub agent: AgentConfig,
    pub feeds: Vec<FeedConfig>,
    /// `[calendar.nse]`, `[calendar.nyse]`.
    pub calendars: CalendarsConfig,
    /// `[http]`: the listener (health, readiness, status, metrics, the
    /// operator page); `None` when the table is absent (no listener).
    pub http: Option<HttpConfig>,
    /// `[metrics]`: the Prometheus text also written to a file.
    pub metrics: MetricsConfig,
    /// `[alerts]`: webhooks and the dead-man's switch (off until configured).
    pub alerts: AlertsConfig,
    /// `[ha]`: failover through an etcd lease; `None`, a single agent.
    pub ha: Option<HaConfig>,
}

/// `[http]` (docs/ARCHITECTURE.md, "The HTTP listener").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// `listen = "127.0.0.1:9187"`: where the listener binds.
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain (e.g. certbot's `fullchain.pem`); with
    /// `tls_key`, required on a non-loopback `listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (certbot's `privkey.pem`).
    pub tls_key: Option<PathBuf>,
    /// Paths answered without basic auth on a non-loopback `listen`
    /// (`["/healthz", "/metrics"]`); default none.
    pub public: Vec<String>,
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// node_exporter's textfile collector file, rewritten atomically with
    /// the `/metrics` text at every status write; `None`: not written.
    pub textfile: Option<PathBuf>,
}

/// `[alerts]`. Every URL and token is a template whose `${NAME}`s are
/// credentials, substituted at send time (so a rotated webhook URL is used
/// at once, and the values never sit in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// Fetched every `heartbeat_every` while the agent is healthy.
    pub heartbeat_url: Option<String>,
    /// Fetched while it is not. Default: `heartbeat_url` + `/fail`.
    pub heartbeat_fail_url: Option<String>,
    /// Default 1m.
    pub heartbeat_every: Duration,
    /// `[[alerts.webhook]]`, in file order; names unique.
    pub webhooks: Vec<WebhookConfig>,
    /// `daily_report = "08:30 Asia/Kolkata"`: one message a day through
    /// the webhooks (off when unset).
    pub daily_report: Option<DailyReportConfig>,
}

/// When the daily report goes: a time of day in an IANA time zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyReportConfig {
    pub hour: u8,
    pub minute: u8,
    /// `UTC` when the value names none.
    pub zone: String,
}

impl DailyReportConfig {
    /// `"HH:MM"` or `"HH:MM Zone/Name"`; the zone must exist.
    pub fn parse(s: &str) -> Result<DailyReportConfig, String> {
        let mut parts = s.split_whitespace();
        let time = parts.next().unwrap_or_default();
        let zone = parts.next().unwrap_or("UTC").to_string();
        if parts.next().is_some() {
            return Err("write a time and a zone, e.g. \"08:30 Asia/Kolkata\"".into());
        }
        let (h, m) = time
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60 && time.len() == 5)
            .ok_or_else(|| {
                format!("\"{time}\" is not a time of day; write HH:MM, e.g. \"08:30 Asia/Kolkata\"")
            })?;
        crate::calendar::find_zone(&zone).map_err(|e| {
            format!("unknown time zone \"{zone}\" ({e}); use an IANA name such as Asia/Kolkata")
        })?;
        Ok(DailyReportConfig {
            hour: h,
            minute: m,
            zone,
        })
    }
}

impl std::fmt::Display for DailyReportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02} {}", self.hour, self.minute, self.zone)
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            heartbeat_url: None,
            heartbeat_fail_url: None,
            heartbeat_every: Duration::from_secs(60),
            webhooks: Vec::new(),
            daily_report: None,
        }
    }
}

/// `[ha]`: two agents, one etcd lease deciding which runs the private feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// The etcd members' client URLs (http:// or https://).
    pub etcd: Vec<String>,
    /// A CA (PEM) for https:// members besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Agents with the same cluster name compete for one lease.
    pub cluster: String,
    /// This agent's name in the cluster. Default: the host name.
    pub node: String,
    /// The lease's TTL: a dead leader is replaced within it (plus 250 ms).
    pub lease: Duration,
}

impl HaConfig {
    pub fn defaults() -> HaConfig {
        HaConfig {
            etcd: Vec::new(),
            ca_file: None,
            cluster: "brokerguard".to_string(),
            node: host_name(),
            lease: Duration::from_secs(10),
        }
    }
}

impl AlertsConfig {
    /// The URL fetched while unhealthy: the configured one, else
    /// healthchecks.io's form, `heartbeat_url` + `/fail`.
    pub fn fail_url(&self) -> Option<String> {
        self.heartbeat_fail_url.clone().or_else(|| {
            self.heartbeat_url
                .as_ref()
                .map(|u| format!("{}/fail", u.trim_end_matches('/')))
        })
    }

    /// Every template of this section (URLs, tokens), for the credentials
    /// they reference.
    pub fn templates(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        out.extend(self.heartbeat_url.as_deref());
        out.extend(self.heartbeat_fail_url.as_deref());
        for w in &self.webhooks {
            out.extend(w.url.as_deref());
            out.extend(w.bot_token.as_deref());
            out.extend(w.api_url.as_deref());
        }
        out
    }
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Slack incoming webhook: `text` plus `blocks`.
    Slack,
    /// Discord webhook: `content` plus `embeds`.
    Discord,
    /// Telegram Bot API `sendMessage` to `chat_id`.
    Telegram,
    /// brokerguard's own schema (README, "Webhook alerts").
    Json,
}

impl WebhookFormat {
    pub const NAMES: &'static [&'static str] = &["slack", "discord", "telegram", "json"];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Slack => "slack",
            WebhookFormat::Discord => "discord",
            WebhookFormat::Telegram => "telegram",
            WebhookFormat::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookFormat> {
        match s {
            "slack" => Some(WebhookFormat::Slack),
            "discord" => Some(WebhookFormat::Discord),
            "telegram" => Some(WebhookFormat::Telegram),
            "json" => Some(WebhookFormat::Json),
            _ => None,
        }
    }
}

/// The Telegram Bot API's endpoint, unless `api_url` says otherwise.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// One `[[alerts.webhook]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// Unique, `[a-z0-9_-]+`.
    pub name: String,
    pub format: WebhookFormat,
    /// Where to POST (every format but Telegram): a template, e.g.
    /// `"${SLACK_WEBHOOK_URL}"`.
    pub url: Option<String>,
    /// Telegram: the bot's token, a template (`"${TELEGRAM_BOT_TOKEN}"`).
    pub bot_token: Option<String>,
    /// Telegram: the chat to post to.
    pub chat_id: Option<String>,
    /// Telegram: the Bot API base URL. Default [`TELEGRAM_API_URL`].
    pub api_url: Option<String>,
    /// Alerts below this are not sent. Default notice (recoveries go too).
    pub min_severity: crate::alert::Severity,
}

/// The host name (`/proc/sys/kernel/hostname`), "localhost" if unreadable.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The holidays of each market calendar that has them (`always` has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalendarsConfig {
    pub nse: CalendarConfig,
    pub nyse: CalendarConfig,
}

/// One `[calendar.NAME]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalendarConfig {
    /// Whole days the exchange is closed, in its own time zone; sorted, no
    /// repeats. Default none: every weekday trades.
    pub holidays: Vec<Date>,
    /// Days whose session ends early (NYSE: 13:00), in its own time zone;
    /// sorted, no repeats. Default none.
    pub early_closes: Vec<Date>,
}

impl CalendarsConfig {
    /// The configured holidays of `kind` (none for `always`), ready for
    /// [`crate::calendar::Calendar::new`].
    pub fn holidays(&self, kind: CalendarKind) -> &[Date] {
        self.get(kind).map_or(&[], |c| &c.holidays)
    }

    /// The configured early closes of `kind` (only NYSE has them), for
    /// [`crate::calendar::Calendar::with_early_closes`].
    pub fn early_closes(&self, kind: CalendarKind) -> &[Date] {
        self.get(kind).map_or(&[], |c| &c.early_closes)
    }

    /// The table of `kind`; `None` for `always`, which has none.
    pub fn get(&self, kind: CalendarKind) -> Option<&CalendarConfig> {
        match kind {
            CalendarKind::Always => None,
            CalendarKind::Nyse => Some(&self.nyse),
            CalendarKind::Nse => Some(&self.nse),
        }
    }

    pub fn get_mut(&mut self, kind: CalendarKind) -> Option<&mut CalendarConfig> {
        match kind {
            CalendarKind::Always => None,
            CalendarKind::Nyse => Some(&mut self.nyse),
            CalendarKind::Nse => Some(&mut self.nse),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Pidfile, lock, status.json, feeds.sock. Default `/run/brokerguard`.
    pub runtime_dir: PathBuf,
    /// State that survives restarts (nonce counters). Default `/var/lib/brokerguard`.
    pub state_dir: PathBuf,
    /// dotenv files with secrets. Default `["/etc/brokerguard/credentials.env"]`.
    pub credential_files: Vec<PathBuf>,
    /// Default `Warn`.
    pub preflight: PreflightMode,
    /// `error|warn|info|debug|trace`; `RUST_LOG` overrides. Default `info`.
    pub log_level: log::LevelFilter,
    /// How long a graceful stop may take before threads are abandoned. Default 10s.
    pub stop_timeout: Duration,
    /// How often status.json is rewritten when nothing changes. Default 1s (max 1s).
    pub status_every: Duration,
    /// How often credentials are re-checked besides change events. Default 60s.
    pub credential_check: Duration,
    /// A feed down this long raises `alert=feed_down`. Default 60s.
    pub alert_after: Duration,
    /// While a feed stays down, `alert=feed_down` repeats this often. Default 15m.
    pub alert_repeat: Duration,
    /// Lines queued per fan-out subscriber before it is dropped. Default 4096.
    pub fanout_queue: usize,
    /// Bytes queued per fan-out subscriber before it is dropped. Default 8 MiB.
    pub fanout_queue_bytes: usize,
    /// Fan-out subscribers served at once; one more gets an error line and
    /// is closed. Default 64.
    pub fanout_max_subscribers: usize,
    /// Each feed's flight recorder keeps at most this many frames and
    /// transitions, and at most `blackbox_bytes` of them. Default 1 000
    /// and 1 MiB: at ten busy feeds that is most of the agent's memory, so
    /// a small droplet may want less.
    pub blackbox_entries: usize,
    pub blackbox_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreflightMode {
    Require,
    Warn,
    Off,
}

/// One `[[feed]]`: the keys every broker shares, and the broker's own
/// section (parsed and validated by the broker, see `crate::brokers`).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedConfig {
    /// Unique, `[a-z0-9_-]+`.
    pub name: String,
    pub broker: BrokerRef,
    /// Endpoint (`ws://`, `wss://`); overrides the broker's default. Only
    /// for brokers whose keys include `url`.
    pub url: Option<String>,
    /// Overrides the broker's REST endpoint.
    pub rest_url: Option<String>,
    /// Broker adapters: credentials are `<BROKER>_<ACCOUNT>_<FIELD>`.
    pub account: Option<String>,
    /// Keepalive period (a WebSocket ping or the broker's own). Default 15s.
    pub ping_every: Duration,
    /// No pong within this means reconnect. Default 10s.
    pub pong_timeout: Duration,
    /// No data (pongs do not count) for this long means restart. Default 30s.
    pub stall_after: Duration,
    /// TCP connect timeout per address. Default 5s.
    pub connect_timeout: Duration,
    /// TLS + WebSocket (or protocol) handshake timeout. Default 10s.
    pub handshake_timeout: Duration,
    /// Write timeout; reads tick at most every second regardless. Default 5s.
    pub write_timeout: Duration,
    /// PEM file of a private CA to trust in addition to the system store.
    pub tls_ca_file: Option<PathBuf>,
    pub backoff: BackoffConfig,
    /// Expected message schedule.
    pub expect: Option<ExpectConfig>,
    /// Overrides `agent.alert_after` for this feed.
    pub alert_after: Option<Duration>,
    /// Largest accepted message. Default: the broker's
    /// (`Broker::max_message_bytes`).
    pub max_message_bytes: usize,
    /// With `[ha]`: this feed runs on the standby too (public market data
    /// that may be doubled). A feed that sends a credential never does.
    pub standby: bool,
    /// Accept `ws://`/`http://` to a public address although the feed
    /// sends a credential (`config::plaintext`); warned about at every start.
    pub allow_plaintext: bool,
    /// The market calendar, when the broker's default is not right.
    pub calendar: Option<CalendarKind>,
    /// How often the credentials are proven against the broker's REST API
    /// (brokers that have such a check). Default 15m; zero turns it off.
    pub validate_every: Duration,
    /// Whether the agent is ready (`/readyz`) only while this feed is
    /// (`required = false` opts out). Default true.
    pub required: bool,
    /// The broker's own section.
    pub settings: Settings,
}

impl FeedConfig {
    /// A feed with every default, for tests and the demo.
    pub fn new(name: &str, broker: BrokerRef) -> Self {
        FeedConfig {
            name: name.to_string(),
            broker,
            url: None,
            rest_url: None,
            account: None,
            ping_every: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(10),
            stall_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            tls_ca_file: None,
            backoff: BackoffConfig::default(),
            expect: None,
            alert_after: None,
            max_message_bytes: broker.max_message_bytes(),
            allow_plaintext: false,
            standby: false,
            validate_every: Duration::from_secs(15 * 60),
            calendar: None,
            required: true,
            settings: broker.default_settings(),
        }
    }

    /// The broker's settings as its own type.
    pub fn settings<S: crate::brokers::registry::BrokerSettings>(&self) -> Option<&S> {
        self.settings.get::<S>()
    }
}

/// The `${NAME}` references in a template, in order.
pub fn template_names(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

impl AgentConfig {
    pub fn defaults() -> Self {
        AgentConfig {
            runtime_dir: PathBuf::from("/run/brokerguard"),
            state_dir: PathBuf::from("/var/lib/brokerguard"),
            credential_files: vec![PathBuf::from("/etc/brokerguard/credentials.env")],
            preflight: PreflightMode::Warn,
            log_level: log::LevelFilter::Info,
            stop_timeout: Duration::from_secs(10),
            status_every: Duration::from_secs(1),
            credential_check: Duration::from_secs(60),
            alert_after: Duration::from_secs(60),
            alert_repeat: Duration::from_secs(15 * 60),
            fanout_queue: 4096,
            fanout_queue_bytes: 8 << 20,
            fanout_max_subscribers: 64,
            blackbox_entries: 1000,
            blackbox_bytes: 1 << 20,
        }
    }

    pub fn pidfile(&self) -> PathBuf {
        self.runtime_dir.join("brokerguard.pid")
    }
    pub fn status_file(&self) -> PathBuf {
        self.runtime_dir.join("status.json")
    }
    pub fn fanout_socket(&self) -> PathBuf {
        self.runtime_dir.join("feeds.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_in_order() {
        assert_eq!(
            template_names(r#"{"token":"${A}","k":"${B}","x":"${A}"}"#),
            vec!["A", "B", "A"]
        );
        assert!(template_names("${OPEN").is_empty());
    }
}
