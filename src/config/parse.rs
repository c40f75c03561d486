//! Reads the TOML configuration into a [`Config`].
//!
//! The text is parsed into toml's span-carrying tree and walked by hand so
//! that every problem (unknown key, wrong type, bad value, missing or
//! conflicting key) is collected with its line:col, instead of stopping at
//! the first one as serde would. Messages never quote auth, subscribe, poll
//! or URL text: those may carry secrets.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Problem};
use super::{
    AgentConfig, BackoffConfig, BrokerKind, Config, ExpectConfig, FeedConfig, PreflightMode,
    format_duration, parse_duration,
};

type Value<'i> = Spanned<DeValue<'i>>;

const ROOT_KEYS: &[&str] = &["agent", "feed"];
const AGENT_KEYS: &[&str] = &[
    "runtime_dir",
    "state_dir",
    "credential_files",
    "preflight",
    "log_level",
    "stop_timeout",
    "status_every",
    "credential_check",
    "alert_after",
    "alert_repeat",
    "fanout_queue",
];
const FEED_KEYS: &[&str] = &[
    "name",
    "broker",
    "url",
    "rest_url",
    "account",
    "host",
    "port",
    "client_id",
    "auth",
    "auth_ok",
    "auth_error",
    "subscribe",
    "poll",
    "poll_every",
    "heartbeat",
    "ping_every",
    "pong_timeout",
    "stall_after",
    "connect_timeout",
    "handshake_timeout",
    "write_timeout",
    "tls_ca_file",
    "backoff",
    "expect",
    "alert_after",
    "max_message_bytes",
];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "stable_after", "parked_retry"];
const EXPECT_KEYS: &[&str] = &["every", "offset", "grace"];
const BROKERS: &[&str] = &["websocket", "kraken", "alpaca", "kite", "ibkr", "coinbase"];
const PREFLIGHT_MODES: &[&str] = &["require", "warn", "off"];
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Smallest accepted `max_message_bytes`: below this no broker message fits.
const MIN_MESSAGE_BYTES: i64 = 1024;
/// Smallest accepted `agent.fanout_queue`.
const MIN_FANOUT_QUEUE: i64 = 16;

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Validates configuration text; `path` is only used in messages and stored
/// in [`Config::path`]. Relative paths in the text are resolved against the
/// current working directory.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let cwd = std::env::current_dir().ok();
    parse_with_base(text, path, cwd.as_deref())
}

fn parse_with_base(text: &str, path: &Path, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut w = Walker {
        lines: Lines::new(text),
        base,
        problems: Vec::new(),
    };
    let mut cfg = Config {
        path: path.to_path_buf(),
        agent: AgentConfig::defaults(),
        feeds: Vec::new(),
    };
    match DeTable::parse(text) {
        Ok(root) => w.root(root.get_ref(), &mut cfg),
        Err(e) => {
            let message = e.message().replace('\n', " ");
            let span = e.span().unwrap_or(0..0);
            w.report(
                span,
                "toml",
                format!("TOML syntax error: {}; fix the file at this position", message.trim()),
            );
        }
    }
    if w.problems.is_empty() {
        Ok(cfg)
    } else {
        let mut problems = w.problems;
        problems.sort_by_key(|p| (p.line, p.col));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Byte offset → 1-based line and column.
struct Lines<'s> {
    text: &'s str,
    starts: Vec<usize>,
}

impl<'s> Lines<'s> {
    fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let col = self
            .text
            .get(self.starts[line]..offset)
            .map_or(offset - self.starts[line], |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Where each key of a table was written: key span and value span.
type Seen = HashMap<String, (Range<usize>, Range<usize>)>;

struct Walker<'s, 'b> {
    lines: Lines<'s>,
    base: Option<&'b Path>,
    problems: Vec<Problem>,
}

impl Walker<'_, '_> {
    fn report(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, col) = self.lines.locate(span.start);
        self.problems.push(Problem {
            line,
            col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn unknown_key(&mut self, span: Range<usize>, keypath: &str, key: &str, place: &str, allowed: &[&str]) {
        let message = match suggest(key, allowed) {
            Some(s) => format!("unknown key \"{key}\" in {place}; did you mean \"{s}\"?"),
            None => format!(
                "unknown key \"{key}\" in {place}; remove it (the keys allowed there are {})",
                allowed.join(", ")
            ),
        };
        self.report(span, keypath, message);
    }

    fn wrong_type(&mut self, v: &Value<'_>, key: &str, expected: &str) {
        let found = v.get_ref().type_str();
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        self.report(v.span(), key, format!("expected {expected}, found {article} {found}"));
    }

    // ---- typed values ----

    fn table<'a, 'i>(&mut self, v: &'a Value<'i>, key: &str, expected: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, key, expected);
                None
            }
        }
    }

    fn string(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(v, key, "a string in quotes");
                None
            }
        }
    }

    fn nonempty_string(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.string(v, key)?;
        if s.is_empty() {
            self.report(v.span(), key, "is empty; write a value or remove the key");
            return None;
        }
        Some(s)
    }

    fn integer(&mut self, v: &Value<'_>, key: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.report(v.span(), key, "integer out of range; use a smaller number");
                    None
                }
            },
            _ => {
                self.wrong_type(v, key, "an integer");
                None
            }
        }
    }

    fn integer_at_least(&mut self, v: &Value<'_>, key: &str, min: i64) -> Option<i64> {
        let n = self.integer(v, key)?;
        if n < min {
            self.report(v.span(), key, format!("{n} is too small; use at least {min}"));
            return None;
        }
        Some(n)
    }

    fn float(&mut self, v: &Value<'_>, key: &str) -> Option<f64> {
        let f = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(_) => self.integer(v, key).map(|n| n as f64),
            _ => {
                self.wrong_type(v, key, "a number such as 2.0");
                return None;
            }
        };
        match f {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.report(v.span(), key, "must be a finite number such as 2.0");
                None
            }
        }
    }

    fn duration(&mut self, v: &Value<'_>, key: &str) -> Option<Duration> {
        match v.get_ref() {
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.report(v.span(), key, e);
                    None
                }
            },
            DeValue::Integer(i) => {
                let n = i.as_str();
                self.report(
                    v.span(),
                    key,
                    format!("a duration is a string with a unit; write \"{n}s\" or \"{n}ms\" (in quotes)"),
                );
                None
            }
            _ => {
                self.wrong_type(v, key, "a duration string such as \"10s\"");
                None
            }
        }
    }

    /// A duration within `[min, max]`; `min` of 1ms means "more than zero".
    fn duration_within(
        &mut self,
        v: &Value<'_>,
        key: &str,
        min: Duration,
        max: Option<Duration>,
    ) -> Option<Duration> {
        let d = self.duration(v, key)?;
        let shown = format_duration(d);
        let range = match max {
            Some(max) => format!("between {} and {}", format_duration(min), format_duration(max)),
            None if min <= Duration::from_millis(1) => "more than 0s".to_string(),
            None => format!("at least {}", format_duration(min)),
        };
        if d < min {
            self.report(v.span(), key, format!("\"{shown}\" is too short; use {range}"));
            return None;
        }
        if max.is_some_and(|max| d > max) {
            self.report(v.span(), key, format!("\"{shown}\" is too long; use {range}"));
            return None;
        }
        Some(d)
    }

    fn positive_duration(&mut self, v: &Value<'_>, key: &str) -> Option<Duration> {
        self.duration_within(v, key, Duration::from_millis(1), None)
    }

    fn choice<'c>(&mut self, v: &Value<'_>, key: &str, what: &str, choices: &[&'c str]) -> Option<&'c str> {
        let s = self.string(v, key)?;
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let mut message = format!("unknown {what} \"{s}\"; use one of {}", choices.join(", "));
        if let Some(close) = suggest(&s.to_lowercase(), choices) {
            message += &format!(" (did you mean \"{close}\"?)");
        }
        self.report(v.span(), key, message);
        None
    }

    /// A file or directory path, made absolute against the working directory.
    fn path(&mut self, v: &Value<'_>, key: &str) -> Option<PathBuf> {
        let s = self.nonempty_string(v, key)?;
        Some(absolutize(self.base, Path::new(&s)))
    }

    /// A message template: `${NAME}` references must be closed and well named.
    fn template(&mut self, v: &Value<'_>, key: &str) -> Option<String> {
        let s = self.nonempty_string(v, key)?;
        let problems = template_problems(&s);
        let ok = problems.is_empty();
        for p in problems {
            self.report(v.span(), key, p);
        }
        ok.then_some(s)
    }

    fn array<'a, 'i>(&mut self, v: &'a Value<'i>, key: &str, expected: &str) -> Option<&'a [Value<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(v, key, expected);
                None
            }
        }
    }

    // ---- tables ----

    fn root(&mut self, t: &DeTable<'_>, cfg: &mut Config) {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            match key {
                "agent" => {
                    if let Some(at) = self.table(v, "agent", "a table (an [agent] header)") {
                        self.agent(at, &mut cfg.agent);
                    }
                }
                "feed" => self.feeds(v, cfg),
                _ if AGENT_KEYS.contains(&key) => self.report(
                    k.span(),
                    key,
                    format!("\"{key}\" belongs in the [agent] table; move it below an [agent] header"),
                ),
                _ if FEED_KEYS.contains(&key) => self.report(
                    k.span(),
                    key,
                    format!("\"{key}\" belongs in a feed; move it below a [[feed]] header"),
                ),
                _ => self.unknown_key(k.span(), key, key, "the top level", ROOT_KEYS),
            }
        }
    }

    fn agent(&mut self, t: &DeTable<'_>, a: &mut AgentConfig) {
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("agent.{key}");
            match key {
                "runtime_dir" => set(&mut a.runtime_dir, self.path(v, &kp)),
                "state_dir" => set(&mut a.state_dir, self.path(v, &kp)),
                "credential_files" => set(&mut a.credential_files, self.credential_files(v, &kp)),
                "preflight" => {
                    let mode = self.choice(v, &kp, "preflight mode", PREFLIGHT_MODES);
                    set(&mut a.preflight, mode.map(preflight_mode));
                }
                "log_level" => {
                    let level = self.choice(v, &kp, "log level", LOG_LEVELS);
                    set(&mut a.log_level, level.and_then(|l| l.parse().ok()));
                }
                "stop_timeout" => set(
                    &mut a.stop_timeout,
                    self.duration_within(v, &kp, Duration::from_secs(1), Some(Duration::from_secs(300))),
                ),
                "status_every" => set(
                    &mut a.status_every,
                    self.duration_within(v, &kp, Duration::from_millis(100), Some(Duration::from_secs(1))),
                ),
                "credential_check" => set(
                    &mut a.credential_check,
                    self.duration_within(v, &kp, Duration::from_secs(1), None),
                ),
                "alert_after" => set(&mut a.alert_after, self.positive_duration(v, &kp)),
                "alert_repeat" => set(&mut a.alert_repeat, self.positive_duration(v, &kp)),
                "fanout_queue" => set(
                    &mut a.fanout_queue,
                    self.integer_at_least(v, &kp, MIN_FANOUT_QUEUE).and_then(|n| usize::try_from(n).ok()),
                ),
                _ => self.unknown_key(k.span(), &kp, key, "[agent]", AGENT_KEYS),
            }
        }
    }

    fn credential_files(&mut self, v: &Value<'_>, key: &str) -> Option<Vec<PathBuf>> {
        let items = self.array(v, key, "a list of file paths such as [\"/etc/brokerguard/credentials.env\"]")?;
        if items.is_empty() {
            self.report(
                v.span(),
                key,
                "is empty; list at least one file, e.g. [\"/etc/brokerguard/credentials.env\"]",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            out.push(self.path(item, &format!("{key}[{i}]")));
        }
        out.into_iter().collect()
    }

    fn feeds(&mut self, v: &Value<'_>, cfg: &mut Config) {
        let items = match v.get_ref() {
            DeValue::Array(a) => a,
            DeValue::Table(_) => {
                self.report(
                    v.span(),
                    "feed",
                    "each feed is an array-of-tables entry: write [[feed]] (double brackets), not [feed]",
                );
                return;
            }
            _ => {
                self.wrong_type(v, "feed", "[[feed]] tables");
                return;
            }
        };
        // name → (index, span of its value), to report duplicates.
        let mut names: HashMap<String, (usize, Range<usize>)> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let kp = format!("feed[{i}]");
            let Some(t) = self.table(item, &kp, "a table (a [[feed]] header)") else {
                continue;
            };
            let Some(feed) = self.feed(i, t, item.span()) else {
                continue;
            };
            let name_span = t.get("name").map(|v| v.span()).unwrap_or(item.span());
            if let Some((j, first)) = names.get(&feed.name) {
                let (line, _) = self.lines.locate(first.start);
                self.report(
                    name_span,
                    &format!("{kp}.name"),
                    format!(
                        "feed name \"{}\" is already used by feed[{j}] (line {line}); give each feed a unique name",
                        feed.name
                    ),
                );
            } else {
                names.insert(feed.name.clone(), (i, name_span));
            }
            cfg.feeds.push(feed);
        }
    }

    /// One `[[feed]]`. `None` when its name or broker is missing or unusable
    /// (the problem is already reported).
    fn feed(&mut self, i: usize, t: &DeTable<'_>, span: Range<usize>) -> Option<FeedConfig> {
        let path = format!("feed[{i}]");
        let name = match t.get("name") {
            Some(v) => {
                let name = self.string(v, &format!("{path}.name"));
                name.filter(|n| {
                    let ok = valid_feed_name(n);
                    if !ok {
                        self.report(
                            v.span(),
                            &format!("{path}.name"),
                            format!(
                                "feed name \"{n}\" is not allowed; use only lower-case letters, digits, _ and - (e.g. \"{}\")",
                                fix_feed_name(n)
                            ),
                        );
                    }
                    ok
                })
            }
            None => {
                self.report(
                    span.clone(),
                    &format!("{path}.name"),
                    "this [[feed]] has no name; add name = \"...\" (lower-case letters, digits, _ and -)",
                );
                None
            }
        };
        let place = match &name {
            Some(n) => format!("[[feed]] \"{n}\""),
            None => path.clone(),
        };
        let broker = match t.get("broker") {
            Some(v) => self
                .choice(v, &format!("{path}.broker"), "broker", BROKERS)
                .and_then(BrokerKind::parse),
            None => {
                self.report(
                    span.clone(),
                    &format!("{path}.broker"),
                    format!("{place} has no broker; add broker = one of {}", BROKERS.join(", ")),
                );
                None
            }
        };
        let mut f = FeedConfig::new(name.as_deref().unwrap_or(""), broker.unwrap_or(BrokerKind::Websocket));
        let mut seen = Seen::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("{path}.{key}");
            seen.insert(key.to_string(), (k.span(), v.span()));
            match key {
                "name" | "broker" => {}
                "url" => f.url = self.url(v, &kp, &["ws", "wss"], "wss://host:443/path"),
                "rest_url" => f.rest_url = self.url(v, &kp, &["http", "https"], "https://host/path"),
                "account" => {
                    f.account = self.nonempty_string(v, &kp).filter(|a| {
                        let ok = valid_account(a);
                        if !ok {
                            self.report(
                                v.span(),
                                &kp,
                                format!(
                                    "account \"{a}\" is not allowed; use only lower-case letters, digits and _ \
                                     (credentials are then found as <BROKER>_<ACCOUNT>_<FIELD>)"
                                ),
                            );
                        }
                        ok
                    })
                }
                "host" => f.host = self.nonempty_string(v, &kp),
                "port" => {
                    f.port = self.integer(v, &kp).and_then(|p| match u16::try_from(p) {
                        Ok(p) if p > 0 => Some(p),
                        _ => {
                            self.report(v.span(), &kp, format!("port {p} is out of range; use 1 to 65535"));
                            None
                        }
                    })
                }
                "client_id" => f.client_id = self.integer(v, &kp),
                "auth" => f.auth = self.template(v, &kp),
                "auth_ok" => f.auth_ok = self.nonempty_string(v, &kp),
                "auth_error" => f.auth_error = self.nonempty_string(v, &kp),
                "subscribe" => {
                    if let Some(items) = self.array(v, &kp, "a list of message strings") {
                        let mut out = Vec::new();
                        for (j, item) in items.iter().enumerate() {
                            out.push(self.template(item, &format!("{kp}[{j}]")));
                        }
                        set(&mut f.subscribe, out.into_iter().collect());
                    }
                }
                "poll" => f.poll = self.template(v, &kp),
                "poll_every" => set(&mut f.poll_every, self.duration(v, &kp)),
                // An empty string turns heartbeat recognition off.
                "heartbeat" => {
                    if let Some(h) = self.string(v, &kp) {
                        f.heartbeat = (!h.is_empty()).then_some(h);
                    }
                }
                "ping_every" => set(&mut f.ping_every, self.positive_duration(v, &kp)),
                "pong_timeout" => set(&mut f.pong_timeout, self.positive_duration(v, &kp)),
                "stall_after" => set(&mut f.stall_after, self.positive_duration(v, &kp)),
                "connect_timeout" => set(&mut f.connect_timeout, self.positive_duration(v, &kp)),
                "handshake_timeout" => set(&mut f.handshake_timeout, self.positive_duration(v, &kp)),
                "write_timeout" => set(&mut f.write_timeout, self.positive_duration(v, &kp)),
                "tls_ca_file" => f.tls_ca_file = self.path(v, &kp),
                "backoff" => {
                    if let Some(bt) = self.table(v, &kp, "a table such as { initial = \"500ms\", max = \"30s\" }") {
                        self.backoff(bt, &kp, &place, &mut f.backoff);
                    }
                }
                "expect" => {
                    if let Some(et) = self.table(v, &kp, "a table such as { every = \"15m\", offset = \"5m\", grace = \"2m\" }") {
                        f.expect = self.expect(et, v.span(), &kp, &place);
                    }
                }
                "alert_after" => f.alert_after = self.positive_duration(v, &kp),
                "max_message_bytes" => set(
                    &mut f.max_message_bytes,
                    self.integer_at_least(v, &kp, MIN_MESSAGE_BYTES).and_then(|n| usize::try_from(n).ok()),
                ),
                _ => self.unknown_key(k.span(), &kp, key, &place, FEED_KEYS),
            }
        }
        if let Some(kind) = broker {
            self.feed_rules(&path, &mut f, kind, &seen);
        }
        Some(f).filter(|_| name.is_some() && broker.is_some())
    }

    /// Rules that tie several keys of one feed together.
    fn feed_rules(&mut self, path: &str, f: &mut FeedConfig, kind: BrokerKind, seen: &Seen) {
        let broker_span = seen.get("broker").map(|s| s.1.clone()).unwrap_or(0..0);
        let b = kind.as_str();
        match kind {
            BrokerKind::Websocket => {
                if !seen.contains_key("url") {
                    self.report(
                        broker_span.clone(),
                        &format!("{path}.url"),
                        "broker = \"websocket\" needs a url; add url = \"wss://host:port/path\" (or ws://)",
                    );
                }
                if let Some((ks, _)) = seen.get("account") {
                    self.report(
                        ks.clone(),
                        &format!("{path}.account"),
                        "account is only for broker adapters; a websocket feed names its credentials \
                         as ${NAME} in auth, subscribe or poll; remove account",
                    );
                }
            }
            BrokerKind::Kraken | BrokerKind::Alpaca | BrokerKind::Kite | BrokerKind::Coinbase => {
                if !seen.contains_key("account") {
                    self.report(
                        broker_span.clone(),
                        &format!("{path}.account"),
                        format!(
                            "broker = \"{b}\" needs an account; add account = \"main\" (credentials are then \
                             read as {}_MAIN_<FIELD>)",
                            b.to_uppercase()
                        ),
                    );
                }
            }
            BrokerKind::Ibkr => {
                for key in ["host", "port"] {
                    if !seen.contains_key(key) {
                        let example = if key == "host" { "host = \"127.0.0.1\"" } else { "port = 4001" };
                        self.report(
                            broker_span.clone(),
                            &format!("{path}.{key}"),
                            format!("broker = \"ibkr\" needs {key}; add {example} (the TWS or IB Gateway API)"),
                        );
                    }
                }
                if let Some((ks, _)) = seen.get("url") {
                    self.report(
                        ks.clone(),
                        &format!("{path}.url"),
                        "broker = \"ibkr\" connects to host and port over TCP, not a URL; remove url",
                    );
                }
                f.client_id = Some(f.client_id.unwrap_or(0));
            }
        }
        if kind != BrokerKind::Ibkr {
            for key in ["host", "port", "client_id"] {
                if let Some((ks, _)) = seen.get(key) {
                    self.report(
                        ks.clone(),
                        &format!("{path}.{key}"),
                        format!("{key} is only for broker = \"ibkr\"; remove it (this feed is broker = \"{b}\")"),
                    );
                }
            }
        }
        if f.poll.is_some() && f.poll_every.is_zero() {
            if let Some((_, vs)) = seen.get("poll_every") {
                self.report(
                    vs.clone(),
                    &format!("{path}.poll_every"),
                    "\"0s\" is too short; poll is sent every poll_every, so use more than 0s (e.g. \"2s\")",
                );
            }
        }
        if let Some((ks, _)) = seen.get("tls_ca_file") {
            let tls = match &f.url {
                Some(u) => u.starts_with("wss://"),
                // An adapter's default endpoint is wss://, except IBKR (plain TCP).
                None => kind != BrokerKind::Ibkr && kind != BrokerKind::Websocket,
            };
            if !tls {
                self.report(
                    ks.clone(),
                    &format!("{path}.tls_ca_file"),
                    "tls_ca_file applies only to wss:// URLs; remove it or use a wss:// url",
                );
            }
        }
    }

    fn url(&mut self, v: &Value<'_>, key: &str, schemes: &[&str], example: &str) -> Option<String> {
        let u = self.nonempty_string(v, key)?;
        let allowed = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
        // Only the scheme is ever quoted back: the rest may hold a token.
        let Some((scheme, rest)) = u.split_once("://") else {
            self.report(v.span(), key, format!("is not a URL; write {allowed}..., e.g. \"{example}\""));
            return None;
        };
        if !schemes.contains(&scheme) {
            let shown: String = scheme.chars().take(16).collect();
            self.report(
                v.span(),
                key,
                format!("must start with {allowed} (this one starts with \"{shown}://\"); e.g. \"{example}\""),
            );
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            self.report(v.span(), key, format!("has no host after {scheme}://; e.g. \"{example}\""));
            return None;
        }
        Some(u)
    }

    fn backoff(&mut self, t: &DeTable<'_>, path: &str, place: &str, b: &mut BackoffConfig) {
        let mut seen = Seen::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("{path}.{key}");
            seen.insert(key.to_string(), (k.span(), v.span()));
            match key {
                "initial" => set(&mut b.initial, self.positive_duration(v, &kp)),
                "max" => set(&mut b.max, self.positive_duration(v, &kp)),
                "multiplier" => {
                    if let Some(m) = self.float(v, &kp) {
                        if m < 1.0 {
                            self.report(v.span(), &kp, format!("{m} would shrink the delay; use 1.0 or more (e.g. 2.0)"));
                        } else {
                            b.multiplier = m;
                        }
                    }
                }
                "stable_after" => set(&mut b.stable_after, self.positive_duration(v, &kp)),
                "parked_retry" => set(&mut b.parked_retry, self.positive_duration(v, &kp)),
                _ => self.unknown_key(k.span(), &kp, key, &format!("the backoff of {place}"), BACKOFF_KEYS),
            }
        }
        if b.initial > b.max {
            let (key, span) = match (seen.get("initial"), seen.get("max")) {
                (_, Some((_, vs))) => ("max", vs.clone()),
                (Some((_, vs)), None) => ("initial", vs.clone()),
                (None, None) => return,
            };
            self.report(
                span,
                &format!("{path}.{key}"),
                format!(
                    "backoff initial ({}) is larger than max ({}); make initial <= max",
                    format_duration(b.initial),
                    format_duration(b.max)
                ),
            );
        }
    }

    fn expect(&mut self, t: &DeTable<'_>, span: Range<usize>, path: &str, place: &str) -> Option<ExpectConfig> {
        let mut every = None;
        let mut offset = Some(Duration::ZERO);
        let mut grace = None;
        let mut seen = Seen::new();
        let mut ok = true;
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            let kp = format!("{path}.{key}");
            seen.insert(key.to_string(), (k.span(), v.span()));
            match key {
                "every" => every = self.positive_duration(v, &kp),
                "offset" => offset = self.duration(v, &kp),
                "grace" => grace = self.positive_duration(v, &kp),
                _ => {
                    ok = false;
                    self.unknown_key(k.span(), &kp, key, &format!("the expect of {place}"), EXPECT_KEYS)
                }
            }
        }
        for key in ["every", "grace"] {
            if !seen.contains_key(key) {
                ok = false;
                self.report(
                    span.clone(),
                    &format!("{path}.{key}"),
                    format!("expect needs {key}; write expect = {{ every = \"15m\", offset = \"5m\", grace = \"2m\" }}"),
                );
            }
        }
        let (every, offset, grace) = (every?, offset?, grace?);
        let value_span = |key: &str| seen.get(key).map(|s| s.1.clone()).unwrap_or(span.clone());
        if offset >= every {
            ok = false;
            self.report(
                value_span("offset"),
                &format!("{path}.offset"),
                format!(
                    "offset ({}) must be less than every ({}); the window starts offset after each multiple of every",
                    format_duration(offset),
                    format_duration(every)
                ),
            );
        }
        if grace > every {
            ok = false;
            self.report(
                value_span("grace"),
                &format!("{path}.grace"),
                format!(
                    "grace ({}) must not exceed every ({}); make it shorter",
                    format_duration(grace),
                    format_duration(every)
                ),
            );
        }
        ok.then_some(ExpectConfig { every, offset, grace })
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn preflight_mode(s: &str) -> PreflightMode {
    match s {
        "require" => PreflightMode::Require,
        "off" => PreflightMode::Off,
        _ => PreflightMode::Warn,
    }
}

/// `base.join(p)` without `.` components; `p` unchanged when absolute or no base is known.
fn absolutize(base: Option<&Path>, p: &Path) -> PathBuf {
    let joined = match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    };
    joined.components().filter(|c| *c != Component::CurDir).collect()
}

fn valid_feed_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn fix_feed_name(n: &str) -> String {
    let fixed: String = n
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    if fixed.is_empty() { "signals".into() } else { fixed }
}

fn valid_account(a: &str) -> bool {
    !a.is_empty() && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_credential_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z'))
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// What is wrong with the `${NAME}` references of a template. Only names
/// are quoted, never the surrounding text.
fn template_problems(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let run = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..run];
        let shown: String = name.chars().take(40).collect();
        if !after[run..].starts_with('}') {
            out.push(format!(
                "\"${{{shown}\" is not closed; write credential references as ${{NAME}} \
                 (upper-case letters, digits and _, then \"}}\")"
            ));
            rest = &after[run..];
            continue;
        }
        if !valid_credential_name(name) {
            let upper = name.to_uppercase().replace('-', "_");
            let hint = if valid_credential_name(&upper) {
                format!("write ${{{upper}}}")
            } else {
                "write e.g. ${SIGNALS_TOKEN}".to_string()
            };
            out.push(format!(
                "\"${{{shown}}}\" is not a valid credential name: use upper-case letters, digits and _, \
                 starting with a letter; {hint}"
            ));
        }
        rest = &after[run + 1..];
    }
    out
}

/// The closest allowed word, if it is close enough to be a likely typo.
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        d[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/base";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_with_base(text, Path::new("test.toml"), Some(Path::new(BASE)))
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(e) => e.problems().to_vec(),
        }
    }

    /// The text must yield exactly one problem, at `key`, whose message contains `fragment`.
    fn one_problem(text: &str, key: &str, fragment: &str) -> Problem {
        let ps = problems(text);
        assert_eq!(ps.len(), 1, "expected one problem for:\n{text}\ngot {ps:#?}");
        let p = ps.into_iter().next().unwrap();
        assert_eq!(p.key, key, "{p:?}");
        assert!(p.message.contains(fragment), "message {:?} lacks {fragment:?}", p.message);
        p
    }

    const WS: &str = "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws://h:1\"\n";

    fn ws(extra: &str) -> String {
        format!("{WS}{extra}\n")
    }

    #[test]
    fn empty_file_gives_every_default() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.agent, AgentConfig::defaults());
        assert!(cfg.feeds.is_empty());
        assert_eq!(cfg.path, PathBuf::from("test.toml"));
    }

    #[test]
    fn minimal_feed_gets_feed_defaults() {
        let cfg = parse(WS).unwrap();
        let mut want = FeedConfig::new("s", BrokerKind::Websocket);
        want.url = Some("ws://h:1".into());
        assert_eq!(cfg.feeds, vec![want]);
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
[agent]
runtime_dir = "run"
state_dir = "/var/x"
credential_files = ["./a.env", "/etc/b.env"]
preflight = "require"
log_level = "debug"
stop_timeout = "20s"
status_every = "500ms"
credential_check = "2m"
alert_after = "90s"
alert_repeat = "1h"
fanout_queue = 100

[[feed]]
name = "sig-1"
broker = "websocket"
url = "wss://h:443/p"
rest_url = "https://h/api"
auth = '{"token":"${SIGNALS_TOKEN}"}'
auth_ok = "ok"
auth_error = "denied"
subscribe = ['{"s":1}', '{"s":"${OTHER}"}']
poll = '{"p":1}'
poll_every = "3s"
heartbeat = ""
ping_every = "5s"
pong_timeout = "4s"
stall_after = "1m"
connect_timeout = "2s"
handshake_timeout = "3s"
write_timeout = "1s"
tls_ca_file = "ca.pem"
backoff = { initial = "1s", max = "1m", multiplier = 1.5, stable_after = "2m", parked_retry = "1h" }
expect = { every = "15m", offset = "5m", grace = "2m" }
alert_after = "5m"
max_message_bytes = 65536

[[feed]]
name = "tws"
broker = "ibkr"
host = "127.0.0.1"
port = 4001
client_id = 7
"#;
        let cfg = parse(text).unwrap();
        let a = &cfg.agent;
        assert_eq!(a.runtime_dir, PathBuf::from("/base/run"));
        assert_eq!(a.state_dir, PathBuf::from("/var/x"));
        assert_eq!(a.credential_files, vec![PathBuf::from("/base/a.env"), PathBuf::from("/etc/b.env")]);
        assert_eq!(a.preflight, PreflightMode::Require);
        assert_eq!(a.log_level, log::LevelFilter::Debug);
        assert_eq!(a.stop_timeout, Duration::from_secs(20));
        assert_eq!(a.status_every, Duration::from_millis(500));
        assert_eq!(a.credential_check, Duration::from_secs(120));
        assert_eq!(a.alert_after, Duration::from_secs(90));
        assert_eq!(a.alert_repeat, Duration::from_secs(3600));
        assert_eq!(a.fanout_queue, 100);

        let f = &cfg.feeds[0];
        assert_eq!(f.name, "sig-1");
        assert_eq!(f.url.as_deref(), Some("wss://h:443/p"));
        assert_eq!(f.rest_url.as_deref(), Some("https://h/api"));
        assert_eq!(f.auth.as_deref(), Some(r#"{"token":"${SIGNALS_TOKEN}"}"#));
        assert_eq!(f.auth_ok.as_deref(), Some("ok"));
        assert_eq!(f.auth_error.as_deref(), Some("denied"));
        assert_eq!(f.subscribe.len(), 2);
        assert_eq!(f.poll.as_deref(), Some(r#"{"p":1}"#));
        assert_eq!(f.poll_every, Duration::from_secs(3));
        assert_eq!(f.heartbeat, None);
        assert_eq!(f.ping_every, Duration::from_secs(5));
        assert_eq!(f.pong_timeout, Duration::from_secs(4));
        assert_eq!(f.stall_after, Duration::from_secs(60));
        assert_eq!(f.connect_timeout, Duration::from_secs(2));
        assert_eq!(f.handshake_timeout, Duration::from_secs(3));
        assert_eq!(f.write_timeout, Duration::from_secs(1));
        assert_eq!(f.tls_ca_file, Some(PathBuf::from("/base/ca.pem")));
        assert_eq!(
            f.backoff,
            BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
                multiplier: 1.5,
                stable_after: Duration::from_secs(120),
                parked_retry: Duration::from_secs(3600),
            }
        );
        assert_eq!(
            f.expect,
            Some(ExpectConfig {
                every: Duration::from_secs(900),
                offset: Duration::from_secs(300),
                grace: Duration::from_secs(120),
            })
        );
        assert_eq!(f.alert_after, Some(Duration::from_secs(300)));
        assert_eq!(f.max_message_bytes, 65536);
        assert_eq!(f.template_refs(), vec!["SIGNALS_TOKEN", "OTHER"]);

        let t = &cfg.feeds[1];
        assert_eq!((t.broker, t.host.as_deref(), t.port, t.client_id), (BrokerKind::Ibkr, Some("127.0.0.1"), Some(4001), Some(7)));
    }

    #[test]
    fn backoff_as_sub_table_and_partial() {
        let cfg = parse(&ws("[feed.backoff]\nmax = \"10s\"")).unwrap();
        assert_eq!(cfg.feeds[0].backoff.max, Duration::from_secs(10));
        assert_eq!(cfg.feeds[0].backoff.initial, BackoffConfig::default().initial);
    }

    #[test]
    fn ibkr_client_id_defaults_to_zero() {
        let cfg = parse("[[feed]]\nname = \"t\"\nbroker = \"ibkr\"\nhost = \"h\"\nport = 4002\n").unwrap();
        assert_eq!(cfg.feeds[0].client_id, Some(0));
    }

    #[test]
    fn expect_offset_defaults_to_zero() {
        let cfg = parse(&ws("expect = { every = \"1m\", grace = \"10s\" }")).unwrap();
        assert_eq!(cfg.feeds[0].expect.unwrap().offset, Duration::ZERO);
    }

    #[test]
    fn literal_auth_still_loads() {
        let cfg = parse(&ws("auth = '{\"token\":\"abc\"}'")).unwrap();
        assert!(cfg.feeds[0].auth.is_some());
    }

    #[test]
    fn poll_every_zero_is_fine_without_poll() {
        assert!(parse(&ws("poll_every = \"0s\"")).is_ok());
    }

    #[test]
    fn tls_ca_file_allowed_for_wss_and_adapter_defaults() {
        let wss = "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"wss://h\"\ntls_ca_file = \"/ca.pem\"\n";
        assert!(parse(wss).is_ok());
        let kraken = "[[feed]]\nname = \"k\"\nbroker = \"kraken\"\naccount = \"master\"\ntls_ca_file = \"/ca.pem\"\n";
        assert!(parse(kraken).is_ok());
    }

    #[test]
    fn feed_rules() {
        let cases: &[(&str, &str, &str)] = &[
            (&format!("{WS}{}", WS), "feed[1].name", "already used by feed[0] (line 2)"),
            ("[[feed]]\nname = \"Sig nals\"\nbroker = \"websocket\"\nurl = \"ws://h\"\n", "feed[0].name", "\"sig_nals\""),
            ("[[feed]]\nbroker = \"websocket\"\nurl = \"ws://h\"\n", "feed[0].name", "has no name"),
            ("[[feed]]\nname = \"s\"\nurl = \"ws://h\"\n", "feed[0].broker", "has no broker"),
            ("[[feed]]\nname = \"s\"\nbroker = \"krakn\"\n", "feed[0].broker", "did you mean \"kraken\""),
            ("[[feed]]\nname = \"s\"\nbroker = \"websocket\"\n", "feed[0].url", "needs a url"),
            ("[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"http://h\"\n", "feed[0].url", "must start with ws:// or wss://"),
            ("[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"h:80\"\n", "feed[0].url", "is not a URL"),
            ("[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws:///x\"\n", "feed[0].url", "has no host"),
            (&ws("rest_url = \"ftp://h\""), "feed[0].rest_url", "http:// or https://"),
            ("[[feed]]\nname = \"k\"\nbroker = \"kraken\"\n", "feed[0].account", "needs an account"),
            ("[[feed]]\nname = \"k\"\nbroker = \"alpaca\"\naccount = \"Main\"\n", "feed[0].account", "lower-case"),
            (&ws("account = \"main\""), "feed[0].account", "only for broker adapters"),
            ("[[feed]]\nname = \"t\"\nbroker = \"ibkr\"\nport = 4001\n", "feed[0].host", "needs host"),
            ("[[feed]]\nname = \"t\"\nbroker = \"ibkr\"\nhost = \"h\"\n", "feed[0].port", "needs port"),
            ("[[feed]]\nname = \"t\"\nbroker = \"ibkr\"\nhost = \"h\"\nport = 70000\n", "feed[0].port", "1 to 65535"),
            ("[[feed]]\nname = \"t\"\nbroker = \"ibkr\"\nhost = \"h\"\nport = 1\nurl = \"ws://h\"\n", "feed[0].url", "remove url"),
            (&ws("port = 1"), "feed[0].port", "only for broker = \"ibkr\""),
            (&ws("auth = '{\"t\":\"${signals_token}\"}'"), "feed[0].auth", "write ${SIGNALS_TOKEN}"),
            (&ws("poll = '{\"t\":\"${TOKEN\"}'"), "feed[0].poll", "\"${TOKEN\" is not closed"),
            (&ws("poll = 'x ${TOKEN'"), "feed[0].poll", "is not closed"),
            (&ws("subscribe = ['a', '${1X}']"), "feed[0].subscribe[1]", "not a valid credential name"),
            (&ws("subscribe = 'a'"), "feed[0].subscribe", "expected a list of message strings, found a string"),
            (&ws("auth = \"\""), "feed[0].auth", "is empty"),
            (&ws("poll = 'p'\npoll_every = \"0s\""), "feed[0].poll_every", "more than 0s"),
            (&ws("ping_every = \"0s\""), "feed[0].ping_every", "more than 0s"),
            (&ws("pong_timeout = \"0ms\""), "feed[0].pong_timeout", "more than 0s"),
            (&ws("stall_after = \"0s\""), "feed[0].stall_after", "more than 0s"),
            (&ws("connect_timeout = \"0s\""), "feed[0].connect_timeout", "more than 0s"),
            (&ws("handshake_timeout = \"0s\""), "feed[0].handshake_timeout", "more than 0s"),
            (&ws("write_timeout = \"0s\""), "feed[0].write_timeout", "more than 0s"),
            (&ws("alert_after = \"0s\""), "feed[0].alert_after", "more than 0s"),
            (&ws("stall_after = 30"), "feed[0].stall_after", "write \"30s\""),
            (&ws("stall_after = \"10x\""), "feed[0].stall_after", "\"10x\": unknown unit \"x\"; use ms, s, m, h or d"),
            (&ws("max_message_bytes = 10"), "feed[0].max_message_bytes", "at least 1024"),
            (&ws("backoff = { initial = \"1m\", max = \"30s\" }"), "feed[0].backoff.max", "make initial <= max"),
            (&ws("backoff = { initial = \"1m\" }"), "feed[0].backoff.initial", "make initial <= max"),
            (&ws("backoff = { multiplier = 0.5 }"), "feed[0].backoff.multiplier", "1.0 or more"),
            (&ws("backoff = { multiplier = \"2\" }"), "feed[0].backoff.multiplier", "expected a number"),
            (&ws("backoff = { jitter = 1 }"), "feed[0].backoff.jitter", "unknown key \"jitter\" in the backoff of [[feed]] \"s\""),
            (&ws("backoff = \"1s\""), "feed[0].backoff", "expected a table"),
            (&ws("expect = { every = \"0s\", grace = \"1s\" }"), "feed[0].expect.every", "more than 0s"),
            (&ws("expect = { every = \"1m\", offset = \"1m\", grace = \"1s\" }"), "feed[0].expect.offset", "less than every"),
            (&ws("expect = { every = \"1m\", grace = \"0s\" }"), "feed[0].expect.grace", "more than 0s"),
            (&ws("expect = { every = \"1m\", grace = \"2m\" }"), "feed[0].expect.grace", "must not exceed every"),
            (&ws("expect = { every = \"1m\" }"), "feed[0].expect.grace", "expect needs grace"),
            (&ws("expect = { every = \"1m\", grace = \"1s\", late = \"1s\" }"), "feed[0].expect.late", "unknown key"),
            (&ws("tls_ca_file = \"/ca.pem\""), "feed[0].tls_ca_file", "only to wss://"),
            (&ws("stal_after = \"30s\""), "feed[0].stal_after", "unknown key \"stal_after\" in [[feed]] \"s\"; did you mean \"stall_after\"?"),
            ("[feed]\nname = \"s\"\n", "feed", "write [[feed]]"),
            ("feed = 3\n", "feed", "expected [[feed]] tables"),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
    }

    #[test]
    fn agent_rules() {
        let cases: &[(&str, &str, &str)] = &[
            ("[agent]\npreflight = \"sometimes\"", "agent.preflight", "use one of require, warn, off"),
            ("[agent]\npreflight = \"Require\"", "agent.preflight", "did you mean \"require\""),
            ("[agent]\nlog_level = \"verbose\"", "agent.log_level", "use one of error, warn, info, debug, trace"),
            ("[agent]\nstop_timeout = \"0s\"", "agent.stop_timeout", "too short; use between 1s and 5m"),
            ("[agent]\nstop_timeout = \"6m\"", "agent.stop_timeout", "too long; use between 1s and 5m"),
            ("[agent]\nstatus_every = \"50ms\"", "agent.status_every", "between 100ms and 1s"),
            ("[agent]\nstatus_every = \"2s\"", "agent.status_every", "too long"),
            ("[agent]\ncredential_check = \"500ms\"", "agent.credential_check", "at least 1s"),
            ("[agent]\nalert_after = \"0s\"", "agent.alert_after", "more than 0s"),
            ("[agent]\nalert_repeat = \"0s\"", "agent.alert_repeat", "more than 0s"),
            ("[agent]\nfanout_queue = 8", "agent.fanout_queue", "at least 16"),
            ("[agent]\nfanout_queue = \"big\"", "agent.fanout_queue", "expected an integer, found a string"),
            ("[agent]\ncredential_files = []", "agent.credential_files", "list at least one file"),
            ("[agent]\ncredential_files = \"/a.env\"", "agent.credential_files", "expected a list of file paths"),
            ("[agent]\ncredential_files = [\"/a\", 1]", "agent.credential_files[1]", "expected a string"),
            ("[agent]\nruntime_dir = \"\"", "agent.runtime_dir", "is empty"),
            ("[agent]\nlog_levle = \"info\"", "agent.log_levle", "did you mean \"log_level\""),
            ("[agent]\nzzz = 1", "agent.zzz", "the keys allowed there are runtime_dir, state_dir"),
            ("agent = 1", "agent", "expected a table"),
            ("runtime_dir = \"/x\"", "runtime_dir", "belongs in the [agent] table"),
            ("stall_after = \"1s\"", "stall_after", "belongs in a feed"),
            ("[agnet]\n", "agnet", "did you mean \"agent\""),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
    }

    #[test]
    fn every_problem_is_reported_with_line_and_col() {
        let text = "\
[agent]
log_level = \"loud\"
fanout_queue = 1

[[feed]]
name = \"signals\"
broker = \"websocket\"
url = \"ws://h\"
stal_after = \"30s\"
ping_every = \"10x\"

[[feed]]
name = \"signals\"
broker = \"kraken\"
";
        let got: Vec<(usize, usize, String)> =
            problems(text).into_iter().map(|p| (p.line, p.col, p.key)).collect();
        let want = vec![
            (2, 13, "agent.log_level".to_string()),
            (3, 16, "agent.fanout_queue".to_string()),
            (9, 1, "feed[0].stal_after".to_string()),
            (10, 14, "feed[0].ping_every".to_string()),
            (13, 8, "feed[1].name".to_string()),
            (14, 10, "feed[1].account".to_string()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn display_has_path_line_col_key_message() {
        let err = parse(&ws("stal_after = \"30s\"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.toml:5:1: feed[0].stal_after: unknown key \"stal_after\" in [[feed]] \"s\"; did you mean \"stall_after\"?"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let p = one_problem("# é\n[agent]\nlog_level = \"é\"\n", "agent.log_level", "unknown log level");
        assert_eq!((p.line, p.col), (3, 13));
        let p = one_problem("[[feed]]\nname = \"é\"\nbroker = \"websocket\"\nurl = \"ws://h\"\n", "feed[0].name", "not allowed");
        assert_eq!((p.line, p.col), (2, 8));
    }

    #[test]
    fn syntax_error_is_one_problem_with_position() {
        let p = one_problem("[agent]\nlog_level = \"info\nstate_dir = \"/x\"\n", "toml", "TOML syntax error");
        assert_eq!(p.line, 2);
        assert!(p.col > 12, "{p:?}");
        let p = one_problem("[agent]\nlog_level = \"info\"\nlog_level = \"warn\"\n", "toml", "duplicate key");
        assert_eq!((p.line, p.col), (3, 1));
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(absolutize(Some(Path::new("/w")), Path::new("./run/state")), PathBuf::from("/w/run/state"));
        assert_eq!(absolutize(Some(Path::new("/w")), Path::new("/abs")), PathBuf::from("/abs"));
        let cfg = parse_str("[agent]\nstate_dir = \"./s\"\n", Path::new("x.toml")).unwrap();
        assert_eq!(cfg.agent.state_dir, std::env::current_dir().unwrap().join("s"));
    }

    #[test]
    fn load_reports_unreadable_file() {
        let path = std::env::temp_dir().join(format!("brokerguard-config-missing-{}.toml", std::process::id()));
        match load(&path) {
            Err(ConfigError::Read { path: p, source }) => {
                assert_eq!(p, path);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("brokerguard-config-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.toml");
        std::fs::write(&path, WS).unwrap();
        let loaded = load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        let cfg = loaded.unwrap();
        assert_eq!(cfg.path, path);
        assert_eq!(cfg.feeds[0].name, "s");
    }

    #[test]
    fn example_config_loads() {
        let cfg = parse(include_str!("../../etc/brokerguard.toml")).unwrap_or_else(|e| panic!("{e}"));
        let f = &cfg.feeds[0];
        assert_eq!(f.broker, BrokerKind::Websocket);
        assert_eq!(f.template_refs(), vec!["SIGNALS_TOKEN"]);
        assert!(f.poll.is_some() && f.expect.is_some() && !f.subscribe.is_empty());
        assert_eq!(f.poll_every, Duration::from_secs(2));
    }

    #[test]
    fn example_config_documents_every_key() {
        let text = include_str!("../../etc/brokerguard.toml");
        for key in AGENT_KEYS.iter().chain(FEED_KEYS).chain(BACKOFF_KEYS).chain(EXPECT_KEYS) {
            assert!(text.contains(&format!("{key} =")), "etc/brokerguard.toml does not show {key}");
        }
        for broker in BROKERS {
            assert!(text.contains(&format!("broker = \"{broker}\"")), "no {broker} example");
        }
    }

    #[test]
    fn commented_out_examples_load_when_uncommented() {
        // Every "#[[feed]]" block in the example, uncommented, must be valid too.
        let text = include_str!("../../etc/brokerguard.toml");
        let mut blocks = Vec::new();
        let mut cur: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("#[[feed]]") {
                blocks.extend(cur.take());
                cur = Some(String::new());
            }
            match (&mut cur, line.strip_prefix('#')) {
                (Some(b), Some(l)) if !l.starts_with(' ') && !l.is_empty() => {
                    b.push_str(l);
                    b.push('\n');
                }
                (Some(_), _) => blocks.extend(cur.take()),
                _ => {}
            }
        }
        blocks.extend(cur);
        assert_eq!(blocks.len(), 5, "{blocks:#?}");
        for b in blocks {
            parse(&b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        }
    }

    #[test]
    fn dev_config_loads() {
        let cfg = parse(include_str!("../../etc/dev.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.feeds.is_empty());
        assert_eq!(cfg.agent.runtime_dir, PathBuf::from("/base/run"));
        assert_eq!(cfg.agent.state_dir, PathBuf::from("/base/run/state"));
        assert_eq!(cfg.agent.credential_files, vec![PathBuf::from("/base/run/credentials.env")]);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(suggest("stal_after", FEED_KEYS), Some("stall_after"));
        assert_eq!(suggest("urls", FEED_KEYS), Some("url"));
        assert_eq!(suggest("zzzzzz", FEED_KEYS), None);
        assert_eq!(suggest("x", FEED_KEYS), None);
        assert_eq!(suggest("agnet", ROOT_KEYS), Some("agent"));
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
