//! The `[[feed]]` tables: each key read and checked, then the rules that tie
//! keys together (a websocket needs a url, adapters an account, IBKR host and
//! port, backoff initial <= max, the expect window inside its period).

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::section::Section;
use super::set;
use super::walker::{Seen, Value, Walker, suggest};
use crate::brokers::registry::{self, BrokerRef};
use crate::config::{BackoffConfig, Config, ExpectConfig, FeedConfig, format_duration};

/// The keys every `[[feed]]` takes, whatever its broker.
pub(super) const COMMON_KEYS: &[&str] = &[
    "name",
    "broker",
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
    "allow_plaintext",
    "standby",
    "validate_every",
    "calendar",
    "required",
];
/// Keys whose meaning is shared, taken only by brokers that list them.
const SHARED_KEYS: &[&str] = &["url", "rest_url", "account"];

/// Every key a `[[feed]]` of some broker of this build may hold.
pub(super) fn all_feed_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = COMMON_KEYS.to_vec();
    for b in registry::BROKERS {
        for k in b.keys() {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys
}

pub(super) const BACKOFF_KEYS: &[&str] = &[
    "initial",
    "max",
    "multiplier",
    "stable_after",
    "parked_retry",
];
pub(super) const EXPECT_KEYS: &[&str] = &["every", "offset", "grace"];
/// Smallest accepted `max_message_bytes`: below this no broker message fits.
pub(super) const MIN_MESSAGE_BYTES: i64 = 1024;

impl Walker<'_, '_> {
    pub(super) fn feeds(&mut self, v: &Value<'_>, cfg: &mut Config) {
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
        // Per feed kept: its [[feed]] index, where its keys are, its table.
        let mut places: Vec<(usize, Seen, Range<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let kp = format!("feed[{i}]");
            let Some(t) = self.table(item, &kp, "a table (a [[feed]] header)") else {
                continue;
            };
            let (feed, seen) = self.feed(i, t, item.span());
            // Duplicates are reported even when the feed has other problems.
            let name = t.get("name").and_then(|v| match v.get_ref() {
                DeValue::String(n) if valid_feed_name(n) => Some((n.to_string(), v.span())),
                _ => None,
            });
            if let Some((name, span)) = name {
                if let Some((j, first)) = names.get(&name) {
                    let (line, _) = self.lines.locate(first.start);
                    self.report(
                        span,
                        &format!("{kp}.name"),
                        format!(
                            "feed name \"{name}\" is already used by feed[{j}] (line {line}); \
                             give each feed a unique name"
                        ),
                    );
                } else {
                    names.insert(name, (i, span));
                }
            }
            let Some(feed) = feed else {
                continue;
            };
            cfg.feeds.push(feed);
            places.push((i, seen, item.span()));
        }
        self.cross_feed_rules(&cfg.feeds, &places);
    }

    /// Each broker's rules across its feeds ([`registry::Broker::check_feeds`]),
    /// reported at the key they name.
    fn cross_feed_rules(&mut self, feeds: &[FeedConfig], places: &[(usize, Seen, Range<usize>)]) {
        for b in registry::BROKERS {
            let mine: Vec<usize> = (0..feeds.len())
                .filter(|&j| feeds[j].broker.name() == b.name())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let refs: Vec<&FeedConfig> = mine.iter().map(|&j| &feeds[j]).collect();
            for p in b.check_feeds(&refs, None) {
                let Some(&j) = mine.get(p.feed) else {
                    continue;
                };
                let (i, seen, table) = &places[j];
                let span = seen.get(p.key).map_or(table.clone(), |s| s.1.clone());
                self.report(span, &format!("feed[{i}].{}", p.key), p.message);
            }
        }
    }

    /// One `[[feed]]`. `None` when its name or broker is missing or unusable
    /// (the problem is already reported).
    fn feed(
        &mut self,
        i: usize,
        t: &DeTable<'_>,
        span: Range<usize>,
    ) -> (Option<FeedConfig>, Seen) {
        let path = format!("feed[{i}]");
        let name = self.feed_name(t, &path, &span);
        let place = match &name {
            Some(n) => format!("[[feed]] \"{n}\""),
            None => path.clone(),
        };
        let broker = self.feed_broker(t, &path, &place, &span);
        let mut f = FeedConfig::new(
            name.as_deref().unwrap_or(""),
            broker.unwrap_or_else(|| BrokerRef(registry::BROKERS[0])),
        );
        let mut seen = Seen::new();
        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            seen.insert(key.to_string(), (k.span(), v.span()));
            self.common_key(&mut f, k, v, &path, &place, broker);
        }
        let Some(broker) = broker else {
            return (None, seen);
        };
        let broker_span = seen
            .get("broker")
            .map(|s| s.1.clone())
            .unwrap_or(span.clone());
        let mut section = Section {
            w: &mut *self,
            table: t,
            path: path.clone(),
            place: place.clone(),
            anchor: broker_span,
        };
        if let Some(settings) = broker.parse(&mut section, &f) {
            f.settings = settings;
        }
        self.feed_rules(&path, &f, &seen);
        (Some(f).filter(|_| name.is_some()), seen)
    }

    /// `name = "..."` of the `[[feed]]` at `path`: present and allowed
    /// (else reported, and `None`).
    fn feed_name(&mut self, t: &DeTable<'_>, path: &str, span: &Range<usize>) -> Option<String> {
        match t.get("name") {
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
        }
    }

    /// `broker = "..."` of the `[[feed]]` at `path`: present and known
    /// (else reported, and `None`).
    fn feed_broker(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        place: &str,
        span: &Range<usize>,
    ) -> Option<BrokerRef> {
        let names = registry::names();
        match t.get("broker") {
            Some(v) => self.broker(v, &format!("{path}.broker"), &names),
            None => {
                self.report(
                    span.clone(),
                    &format!("{path}.broker"),
                    format!(
                        "{place} has no broker; add broker = one of {}",
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// One key of a `[[feed]]` read into `f`: the keys every broker takes
    /// (and the shared ones its broker lists), one arm per key; the
    /// broker's own keys are left to its section, any other is reported.
    fn common_key(
        &mut self,
        f: &mut FeedConfig,
        k: &Spanned<DeString<'_>>,
        v: &Value<'_>,
        path: &str,
        place: &str,
        broker: Option<BrokerRef>,
    ) {
        let key: &str = k.get_ref();
        let kp = format!("{path}.{key}");
        let broker_keys = broker.map(|b| b.keys()).unwrap_or(&[]);
        let shared_taken = SHARED_KEYS.contains(&key) && broker_keys.contains(&key);
        match key {
            "name" | "broker" => {}
            "url" if shared_taken => f.url = self.url(v, &kp, &["ws", "wss"], "wss://host:443/path"),
            "rest_url" if shared_taken => {
                f.rest_url = self.url(v, &kp, &["http", "https"], "https://host/path")
            }
            "account" if shared_taken => {
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
            "ping_every" => set(&mut f.ping_every, self.positive_duration(v, &kp)),
            "pong_timeout" => set(&mut f.pong_timeout, self.positive_duration(v, &kp)),
            "stall_after" => set(&mut f.stall_after, self.positive_duration(v, &kp)),
            "connect_timeout" => set(&mut f.connect_timeout, self.positive_duration(v, &kp)),
            "handshake_timeout" => set(&mut f.handshake_timeout, self.positive_duration(v, &kp)),
            "write_timeout" => set(&mut f.write_timeout, self.positive_duration(v, &kp)),
            "tls_ca_file" => f.tls_ca_file = self.path(v, &kp),
            "backoff" => {
                if let Some(bt) = self.table(v, &kp, "a table such as { initial = \"500ms\", max = \"30s\" }") {
                    self.backoff(bt, &kp, place, &mut f.backoff);
                }
            }
            "expect" => {
                if let Some(et) = self.table(v, &kp, "a table such as { every = \"15m\", offset = \"5m\", grace = \"2m\" }") {
                    f.expect = self.expect(et, v.span(), &kp, place);
                }
            }
            "alert_after" => f.alert_after = self.positive_duration(v, &kp),
            "validate_every" => set(&mut f.validate_every, self.duration(v, &kp)),
            "calendar" => {
                let names: Vec<&'static str> =
                    crate::calendar::CalendarKind::ALL.iter().map(|k| k.as_str()).collect();
                f.calendar = self
                    .choice(v, &kp, "calendar", &names)
                    .and_then(crate::calendar::CalendarKind::parse);
            }
            "required" => set(&mut f.required, self.boolean(v, &kp)),
            "standby" => match v.get_ref() {
                DeValue::Boolean(b) => f.standby = *b,
                _ => self.wrong_type(v, &kp, "true or false"),
            },
            "allow_plaintext" => match v.get_ref() {
                DeValue::Boolean(b) => f.allow_plaintext = *b,
                _ => self.wrong_type(v, &kp, "true or false"),
            },
            "max_message_bytes" => set(
                &mut f.max_message_bytes,
                self.integer_at_least(v, &kp, MIN_MESSAGE_BYTES).and_then(|n| usize::try_from(n).ok()),
            ),
            _ if broker_keys.contains(&key) => {}
            _ => match broker {
                // With no usable broker only the common keys can be judged.
                None => {}
                Some(b) => self.foreign_key(k.span(), &kp, key, place, b),
            },
        }
    }

    /// `broker = "..."`: one of this build's brokers.
    fn broker(&mut self, v: &Value<'_>, key: &str, names: &[&'static str]) -> Option<BrokerRef> {
        let s = self.string(v, key)?;
        if let Some(b) = registry::find(&s) {
            return Some(b);
        }
        let mut message = format!(
            "unknown broker \"{s}\"; this build has {}",
            names.join(", ")
        );
        if let Some(close) = suggest(&s.to_lowercase(), names) {
            message += &format!(" (did you mean \"{close}\"?)");
        }
        self.report(v.span(), key, message);
        None
    }

    /// A key the feed's broker does not take: the broker's own hint, the
    /// broker that does take it, or a did-you-mean.
    fn foreign_key(
        &mut self,
        span: Range<usize>,
        keypath: &str,
        key: &str,
        place: &str,
        broker: BrokerRef,
    ) {
        if let Some(hint) = broker.hint(key) {
            self.report(span, keypath, hint);
            return;
        }
        let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
        allowed.extend(broker.keys());
        if suggest(key, &allowed).is_none() {
            let owners: Vec<&str> = registry::BROKERS
                .iter()
                .filter(|b| b.keys().contains(&key))
                .map(|b| b.name())
                .collect();
            if !owners.is_empty() {
                self.report(
                    span,
                    keypath,
                    format!(
                        "{key} is only for broker = {}; remove it (this feed is broker = \"{}\")",
                        owners
                            .iter()
                            .map(|o| format!("\"{o}\""))
                            .collect::<Vec<_>>()
                            .join(" or "),
                        broker.name()
                    ),
                );
                return;
            }
        }
        self.unknown_key(span, keypath, key, place, &allowed);
    }

    /// Rules that tie common keys to the broker.
    fn feed_rules(&mut self, path: &str, f: &FeedConfig, seen: &Seen) {
        if f.standby && !f.broker.credentials(f).is_empty() {
            let span = seen.get("standby").map(|s| s.1.clone()).unwrap_or_default();
            self.report(
                span,
                &format!("{path}.standby"),
                "this feed sends a credential, so it must never run on two agents at once; \
                 only public feeds (no account, no ${NAME}) may set standby = true: remove it",
            );
        }
        // Credentials never cross a public network in plaintext
        // (`config::plaintext`); the warnings are `setup_warnings`'.
        if !f.broker.credentials(f).is_empty() {
            for (key, url) in [
                ("url", f.url.as_deref().or(f.broker.default_url())),
                ("rest_url", f.rest_url.as_deref()),
            ] {
                let Some(url) = url else { continue };
                if let Err(message) =
                    crate::config::plaintext::judge(&f.name, key, url, f.allow_plaintext)
                {
                    let span = seen.get(key).map(|s| s.1.clone()).unwrap_or_default();
                    self.report(span, &format!("{path}.{key}"), message);
                }
            }
        }
        if let Some((ks, _)) = seen.get("tls_ca_file") {
            let url = f.url.as_deref().or(f.broker.default_url());
            if !url.is_some_and(|u| u.starts_with("wss://")) {
                self.report(
                    ks.clone(),
                    &format!("{path}.tls_ca_file"),
                    "tls_ca_file applies only to wss:// URLs; remove it or use a wss:// url",
                );
            }
        }
    }

    pub(super) fn url(
        &mut self,
        v: &Value<'_>,
        key: &str,
        schemes: &[&str],
        example: &str,
    ) -> Option<String> {
        let u = self.nonempty_string(v, key)?;
        let allowed = schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(" or ");
        // Only the scheme is ever quoted back: the rest may hold a token.
        let Some((scheme, rest)) = u.split_once("://") else {
            self.report(
                v.span(),
                key,
                format!("is not a URL; write {allowed}..., e.g. \"{example}\""),
            );
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
            self.report(
                v.span(),
                key,
                format!("has no host after {scheme}://; e.g. \"{example}\""),
            );
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
                            self.report(
                                v.span(),
                                &kp,
                                format!("{m} would shrink the delay; use 1.0 or more (e.g. 2.0)"),
                            );
                        } else {
                            b.multiplier = m;
                        }
                    }
                }
                "stable_after" => set(&mut b.stable_after, self.positive_duration(v, &kp)),
                "parked_retry" => set(&mut b.parked_retry, self.positive_duration(v, &kp)),
                _ => self.unknown_key(
                    k.span(),
                    &kp,
                    key,
                    &format!("the backoff of {place}"),
                    BACKOFF_KEYS,
                ),
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

    fn expect(
        &mut self,
        t: &DeTable<'_>,
        span: Range<usize>,
        path: &str,
        place: &str,
    ) -> Option<ExpectConfig> {
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
                    self.unknown_key(
                        k.span(),
                        &kp,
                        key,
                        &format!("the expect of {place}"),
                        EXPECT_KEYS,
                    )
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
        ok.then_some(ExpectConfig {
            every,
            offset,
            grace,
        })
    }
}

pub(super) fn valid_feed_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn fix_feed_name(n: &str) -> String {
    let fixed: String = n
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fixed.is_empty() {
        "signals".into()
    } else {
        fixed
    }
}

fn valid_account(a: &str) -> bool {
    !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn minimal_feed_gets_feed_defaults() {
        let cfg = parse(WS).unwrap();
        let mut want = FeedConfig::new("s", registry::find("websocket").unwrap());
        want.url = Some("ws://h:1".into());
        assert_eq!(cfg.feeds, vec![want]);
    }

    #[test]
    fn backoff_as_sub_table_and_partial() {
        let cfg = parse(&ws("[feed.backoff]\nmax = \"10s\"")).unwrap();
        assert_eq!(cfg.feeds[0].backoff.max, Duration::from_secs(10));
        assert_eq!(
            cfg.feeds[0].backoff.initial,
            BackoffConfig::default().initial
        );
    }

    #[test]
    fn expect_offset_defaults_to_zero() {
        let cfg = parse(&ws("expect = { every = \"1m\", grace = \"10s\" }")).unwrap();
        assert_eq!(cfg.feeds[0].expect.unwrap().offset, Duration::ZERO);
    }

    #[test]
    fn literal_auth_still_loads() {
        let cfg = parse(&ws("auth = '{\"token\":\"abc\"}'")).unwrap();
        let w = cfg.feeds[0]
            .settings::<crate::brokers::websocket::WsSettings>()
            .unwrap();
        assert!(w.auth.is_some());
    }

    #[test]
    fn poll_every_zero_is_fine_without_poll() {
        assert!(parse(&ws("poll_every = \"0s\"")).is_ok());
    }

    #[test]
    fn tls_ca_file_allowed_for_wss() {
        let wss = "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"wss://h\"\ntls_ca_file = \"/ca.pem\"\n";
        assert!(parse(wss).is_ok());
    }

    #[test]
    fn feed_rules() {
        let cases: &[(&str, &str, &str)] = &[
            (
                &format!("{WS}{}", WS),
                "feed[1].name",
                "already used by feed[0] (line 2)",
            ),
            (
                "[[feed]]\nname = \"Sig nals\"\nbroker = \"websocket\"\nurl = \"ws://h\"\n",
                "feed[0].name",
                "\"sig_nals\"",
            ),
            (
                "[[feed]]\nbroker = \"websocket\"\nurl = \"ws://h\"\n",
                "feed[0].name",
                "has no name",
            ),
            (
                "[[feed]]\nname = \"s\"\nurl = \"ws://h\"\n",
                "feed[0].broker",
                "has no broker",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\n",
                "feed[0].url",
                "needs a url",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocke\"\nurl = \"ws://h\"\n",
                "feed[0].broker",
                "did you mean \"websocket\"",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"robinhood\"\n",
                "feed[0].broker",
                "unknown broker \"robinhood\"; this build has websocket",
            ),
            (
                &ws("rest_url = \"https://h\""),
                "feed[0].rest_url",
                // A key another broker of this build takes says which one.
                "rest_url is only for broker = ",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"http://h\"\n",
                "feed[0].url",
                "must start with ws:// or wss://",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"h:80\"\n",
                "feed[0].url",
                "is not a URL",
            ),
            (
                "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws:///x\"\n",
                "feed[0].url",
                "has no host",
            ),
            (
                &ws("account = \"main\""),
                "feed[0].account",
                "only for broker adapters",
            ),
            (
                &ws("auth = '{\"t\":\"${signals_token}\"}'"),
                "feed[0].auth",
                "write ${SIGNALS_TOKEN}",
            ),
            (
                &ws("poll = '{\"t\":\"${TOKEN\"}'"),
                "feed[0].poll",
                "\"${TOKEN\" is not closed",
            ),
            (&ws("poll = 'x ${TOKEN'"), "feed[0].poll", "is not closed"),
            (
                &ws("subscribe = ['a', '${1X}']"),
                "feed[0].subscribe[1]",
                "not a valid credential name",
            ),
            (
                &ws("subscribe = 'a'"),
                "feed[0].subscribe",
                "expected a list of message strings, found a string",
            ),
            (&ws("auth = \"\""), "feed[0].auth", "is empty"),
            (
                &ws("poll = 'p'\npoll_every = \"0s\""),
                "feed[0].poll_every",
                "more than 0s",
            ),
            (
                &ws("ping_every = \"0s\""),
                "feed[0].ping_every",
                "more than 0s",
            ),
            (
                &ws("pong_timeout = \"0ms\""),
                "feed[0].pong_timeout",
                "more than 0s",
            ),
            (
                &ws("stall_after = \"0s\""),
                "feed[0].stall_after",
                "more than 0s",
            ),
            (
                &ws("connect_timeout = \"0s\""),
                "feed[0].connect_timeout",
                "more than 0s",
            ),
            (
                &ws("handshake_timeout = \"0s\""),
                "feed[0].handshake_timeout",
                "more than 0s",
            ),
            (
                &ws("write_timeout = \"0s\""),
                "feed[0].write_timeout",
                "more than 0s",
            ),
            (
                &ws("alert_after = \"0s\""),
                "feed[0].alert_after",
                "more than 0s",
            ),
            (
                &ws("stall_after = 30"),
                "feed[0].stall_after",
                "write \"30s\"",
            ),
            (
                &ws("stall_after = \"10x\""),
                "feed[0].stall_after",
                "\"10x\": unknown unit \"x\"; use ms, s, m, h or d",
            ),
            (
                &ws("max_message_bytes = 10"),
                "feed[0].max_message_bytes",
                "at least 1024",
            ),
            (
                &ws("backoff = { initial = \"1m\", max = \"30s\" }"),
                "feed[0].backoff.max",
                "make initial <= max",
            ),
            (
                &ws("backoff = { initial = \"1m\" }"),
                "feed[0].backoff.initial",
                "make initial <= max",
            ),
            (
                &ws("backoff = { multiplier = 0.5 }"),
                "feed[0].backoff.multiplier",
                "1.0 or more",
            ),
            (
                &ws("backoff = { multiplier = \"2\" }"),
                "feed[0].backoff.multiplier",
                "expected a number",
            ),
            (
                &ws("backoff = { jitter = 1 }"),
                "feed[0].backoff.jitter",
                "unknown key \"jitter\" in the backoff of [[feed]] \"s\"",
            ),
            (
                &ws("backoff = \"1s\""),
                "feed[0].backoff",
                "expected a table",
            ),
            (
                &ws("expect = { every = \"0s\", grace = \"1s\" }"),
                "feed[0].expect.every",
                "more than 0s",
            ),
            (
                &ws("expect = { every = \"1m\", offset = \"1m\", grace = \"1s\" }"),
                "feed[0].expect.offset",
                "less than every",
            ),
            (
                &ws("expect = { every = \"1m\", grace = \"0s\" }"),
                "feed[0].expect.grace",
                "more than 0s",
            ),
            (
                &ws("expect = { every = \"1m\", grace = \"2m\" }"),
                "feed[0].expect.grace",
                "must not exceed every",
            ),
            (
                &ws("expect = { every = \"1m\" }"),
                "feed[0].expect.grace",
                "expect needs grace",
            ),
            (
                &ws("expect = { every = \"1m\", grace = \"1s\", late = \"1s\" }"),
                "feed[0].expect.late",
                "unknown key",
            ),
            (
                &ws("tls_ca_file = \"/ca.pem\""),
                "feed[0].tls_ca_file",
                "only to wss://",
            ),
            (
                &ws("stal_after = \"30s\""),
                "feed[0].stal_after",
                "unknown key \"stal_after\" in [[feed]] \"s\"; did you mean \"stall_after\"?",
            ),
            ("[feed]\nname = \"s\"\n", "feed", "write [[feed]]"),
            ("feed = 3\n", "feed", "expected [[feed]] tables"),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
    }

    #[test]
    fn duplicate_names_reported_even_when_the_feed_has_other_problems() {
        let text = format!("{WS}[[feed]]\nname = \"s\"\nbroker = \"nope\"\n");
        let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec!["feed[1].name", "feed[1].broker"]);
    }
}
