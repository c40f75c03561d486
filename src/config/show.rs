//! Prints the effective configuration (every default filled in) as TOML that
//! `parse_str` accepts again, with secrets redacted: `brokerguard config check`
//! shows this to the operator.

use std::fmt::Write as _;
use std::path::Path;

use super::{Config, FeedConfig, PreflightMode, format_duration, template_names};
use crate::calendar::CalendarKind;

/// Replaces an `auth` that embeds a literal credential (no `${NAME}` reference).
pub const REDACTED_LITERAL_AUTH: &str =
    "<redacted: literal credential; move it to credentials.env and write ${NAME}>";
/// Replaces the value of a secret-looking URL query parameter or URL password.
pub const REDACTED: &str = "<redacted>";

/// Query parameter names containing one of these carry a secret.
const SECRET_PARAM_WORDS: &[&str] = &["token", "key", "secret", "password", "sig"];

/// The effective configuration as TOML, secrets redacted.
pub fn effective_toml(cfg: &Config) -> String {
    let mut out = String::new();
    let a = &cfg.agent;
    let _ = writeln!(
        out,
        "# Effective configuration read from {} (defaults filled in, secrets redacted).",
        one_line(&cfg.path.display().to_string())
    );
    out.push_str("\n[agent]\n");
    line(&mut out, "runtime_dir", &path_str(&a.runtime_dir));
    line(&mut out, "state_dir", &path_str(&a.state_dir));
    let files: Vec<String> = a.credential_files.iter().map(|p| path_str(p)).collect();
    line(
        &mut out,
        "credential_files",
        &format!("[{}]", files.join(", ")),
    );
    let preflight = match a.preflight {
        PreflightMode::Require => "require",
        PreflightMode::Warn => "warn",
        PreflightMode::Off => "off",
    };
    line(&mut out, "preflight", &toml_string(preflight));
    line(
        &mut out,
        "log_level",
        &toml_string(&a.log_level.to_string().to_lowercase()),
    );
    line(&mut out, "stop_timeout", &dur(a.stop_timeout));
    line(&mut out, "status_every", &dur(a.status_every));
    line(&mut out, "credential_check", &dur(a.credential_check));
    line(&mut out, "alert_after", &dur(a.alert_after));
    line(&mut out, "alert_repeat", &dur(a.alert_repeat));
    line(&mut out, "fanout_queue", &a.fanout_queue.to_string());
    line(
        &mut out,
        "fanout_queue_bytes",
        &a.fanout_queue_bytes.to_string(),
    );
    line(
        &mut out,
        "fanout_max_subscribers",
        &a.fanout_max_subscribers.to_string(),
    );
    line(
        &mut out,
        "blackbox_entries",
        &a.blackbox_entries.to_string(),
    );
    line(&mut out, "blackbox_bytes", &a.blackbox_bytes.to_string());
    calendars(&mut out, cfg);
    alerts(&mut out, cfg);
    if let Some(ha) = &cfg.ha {
        out.push_str("\n[ha]\n");
        // Only the scheme and host of a member URL are shown (it may carry
        // a password: http://user:pass@host).
        let urls: Vec<String> = ha
            .etcd
            .iter()
            .map(|u| toml_string(&redact_url(u)))
            .collect();
        line(&mut out, "etcd", &format!("[{}]", urls.join(", ")));
        if let Some(ca) = &ha.ca_file {
            line(&mut out, "ca_file", &path_str(ca));
        }
        line(&mut out, "cluster", &toml_string(&ha.cluster));
        line(&mut out, "node", &toml_string(&ha.node));
        line(&mut out, "lease", &dur(ha.lease));
    }
    if let Some(h) = &cfg.http {
        out.push_str("\n[http]\n");
        line(&mut out, "listen", &toml_string(&h.listen.to_string()));
        if let Some(p) = &h.tls_cert {
            line(&mut out, "tls_cert", &path_str(p));
        }
        if let Some(p) = &h.tls_key {
            line(&mut out, "tls_key", &path_str(p));
        }
        let public: Vec<String> = h.public.iter().map(|p| toml_string(p)).collect();
        line(&mut out, "public", &format!("[{}]", public.join(", ")));
    }
    if let Some(p) = &cfg.metrics.textfile {
        out.push_str("\n[metrics]\n");
        line(&mut out, "textfile", &path_str(p));
    }
    for f in &cfg.feeds {
        out.push_str("\n[[feed]]\n");
        feed(&mut out, f, cfg);
    }
    out
}

/// `[alerts]` and its webhooks, when configured. URLs are `${NAME}`
/// references (shown as written) or, for a JSON webhook, literal URLs with
/// secret-looking parts redacted.
fn alerts(out: &mut String, cfg: &Config) {
    let a = &cfg.alerts;
    if a.heartbeat_url.is_none() && a.webhooks.is_empty() && a.daily_report.is_none() {
        return;
    }
    out.push_str("\n[alerts]\n");
    if let Some(d) = &a.daily_report {
        line(out, "daily_report", &toml_string(&d.to_string()));
    }
    if let Some(u) = &a.heartbeat_url {
        line(out, "heartbeat_url", &toml_string(&redact_url(u)));
        line(out, "heartbeat_every", &dur(a.heartbeat_every));
    }
    if let Some(u) = &a.heartbeat_fail_url {
        line(out, "heartbeat_fail_url", &toml_string(&redact_url(u)));
    }
    for w in &a.webhooks {
        out.push_str("\n[[alerts.webhook]]\n");
        line(out, "name", &toml_string(&w.name));
        line(out, "format", &toml_string(w.format.as_str()));
        for (key, value) in [
            ("url", &w.url),
            ("bot_token", &w.bot_token),
            ("chat_id", &w.chat_id),
            ("api_url", &w.api_url),
        ] {
            if let Some(v) = value {
                line(out, key, &toml_string(&redact_url(v)));
            }
        }
        line(out, "min_severity", &toml_string(w.min_severity.as_str()));
    }
}

/// Every calendar that takes holidays, one date per line.
fn calendars(out: &mut String, cfg: &Config) {
    for kind in [CalendarKind::Nse, CalendarKind::Nyse] {
        let Some(c) = cfg.calendars.get(kind) else {
            continue;
        };
        let _ = writeln!(out, "\n[calendar.{kind}]");
        if c.holidays.is_empty() {
            out.push_str("holidays = []  # none configured: every weekday trades\n");
        } else {
            out.push_str("holidays = [\n");
            for d in &c.holidays {
                let _ = writeln!(out, "    {},", toml_string(&d.to_string()));
            }
            out.push_str("]\n");
        }
        if !c.early_closes.is_empty() {
            out.push_str("early_closes = [\n");
            for d in &c.early_closes {
                let _ = writeln!(out, "    {},", toml_string(&d.to_string()));
            }
            out.push_str("]\n");
        }
    }
}

fn feed(out: &mut String, f: &FeedConfig, cfg: &Config) {
    line(out, "name", &toml_string(&f.name));
    line(out, "broker", &toml_string(f.broker.name()));
    opt(out, "url", f.url.as_deref().map(redact_url));
    opt(out, "rest_url", f.rest_url.as_deref().map(redact_url));
    opt(out, "account", f.account.clone());
    f.settings.show(&mut Shown(out));
    line(out, "ping_every", &dur(f.ping_every));
    line(out, "pong_timeout", &dur(f.pong_timeout));
    line(out, "stall_after", &dur(f.stall_after));
    line(out, "connect_timeout", &dur(f.connect_timeout));
    line(out, "handshake_timeout", &dur(f.handshake_timeout));
    line(out, "write_timeout", &dur(f.write_timeout));
    if let Some(p) = &f.tls_ca_file {
        line(out, "tls_ca_file", &path_str(p));
    }
    let b = &f.backoff;
    line(
        out,
        "backoff",
        &format!(
            "{{ initial = {}, max = {}, multiplier = {:?}, stable_after = {}, parked_retry = {} }}",
            dur(b.initial),
            dur(b.max),
            b.multiplier,
            dur(b.stable_after),
            dur(b.parked_retry)
        ),
    );
    if let Some(e) = &f.expect {
        line(
            out,
            "expect",
            &format!(
                "{{ every = {}, offset = {}, grace = {} }}",
                dur(e.every),
                dur(e.offset),
                dur(e.grace)
            ),
        );
    }
    match f.alert_after {
        Some(d) => line(out, "alert_after", &dur(d)),
        None => {
            let _ = writeln!(
                out,
                "# alert_after = {}  (not set: agent.alert_after applies)",
                dur(cfg.agent.alert_after)
            );
        }
    }
    line(out, "max_message_bytes", &f.max_message_bytes.to_string());
    line(out, "required", if f.required { "true" } else { "false" });
    if f.allow_plaintext {
        line(out, "allow_plaintext", "true");
    }
    if f.standby {
        line(out, "standby", "true");
    }
    line(out, "validate_every", &dur(f.validate_every));
    match f.calendar {
        Some(c) => line(out, "calendar", &toml_string(c.as_str())),
        None => {
            let _ = writeln!(
                out,
                "# calendar = {}  (not set: the broker's default)",
                toml_string(f.broker.calendar(f).as_str())
            );
        }
    }
}

/// Where a broker writes its section of the effective configuration: each
/// method writes one `key = value` line as TOML that loads again.
pub struct Shown<'a>(&'a mut String);

impl Shown<'_> {
    /// A value already written as TOML.
    pub fn raw(&mut self, key: &str, toml: &str) {
        line(self.0, key, toml);
    }
    pub fn string(&mut self, key: &str, value: &str) {
        line(self.0, key, &toml_string(value));
    }
    pub fn opt_string(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.string(key, v);
        }
    }
    /// A message template: one that embeds a literal credential (no
    /// `${NAME}`) is redacted.
    pub fn template(&mut self, key: &str, value: &str) {
        self.string(key, &redact_auth(value));
    }
    pub fn strings(&mut self, key: &str, values: &[String]) {
        let items: Vec<String> = values.iter().map(|s| toml_string(s)).collect();
        line(self.0, key, &format!("[{}]", items.join(", ")));
    }
    pub fn integer(&mut self, key: &str, value: i64) {
        line(self.0, key, &value.to_string());
    }
    pub fn integers(&mut self, key: &str, values: &[i64]) {
        let items: Vec<String> = values.iter().map(|n| n.to_string()).collect();
        line(self.0, key, &format!("[{}]", items.join(", ")));
    }
    pub fn boolean(&mut self, key: &str, value: bool) {
        line(self.0, key, if value { "true" } else { "false" });
    }
    pub fn duration(&mut self, key: &str, value: std::time::Duration) {
        line(self.0, key, &dur(value));
    }
    /// A TOML string literal for `value`, to build inline tables with.
    pub fn quote(value: &str) -> String {
        toml_string(value)
    }
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

fn opt(out: &mut String, key: &str, value: Option<String>) {
    if let Some(v) = value {
        line(out, key, &toml_string(&v));
    }
}

fn dur(d: std::time::Duration) -> String {
    toml_string(&format_duration(d))
}

fn path_str(p: &Path) -> String {
    toml_string(&p.to_string_lossy())
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A TOML string: a literal `'...'` when that needs no escaping (JSON reads
/// better that way), else a basic `"..."` string with escapes.
fn toml_string(s: &str) -> String {
    let literal_ok = !s.contains('\'') && !s.chars().any(|c| c.is_control());
    if literal_ok && s.contains('"') {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when `auth` holds no `${NAME}` reference, so it must embed the credential itself.
pub fn is_literal_auth(auth: &str) -> bool {
    template_names(auth).is_empty()
}

/// Set-ups that load but that the operator should know are insecure or odd,
/// one line each, never with a secret: secrets written into the
/// configuration itself (move them to a credentials file), credentials sent
/// in plaintext to a private address or with `allow_plaintext`, and each
/// broker's own warnings. `brokerguard config check` and `run` log these.
pub fn setup_warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for f in &cfg.feeds {
        out.extend(f.broker.warnings(f));
        if !f.broker.credentials(f).is_empty() {
            let url = f.url.as_deref().or(f.broker.default_url());
            for (key, url) in [("url", url), ("rest_url", f.rest_url.as_deref())] {
                if let Some(Ok(Some(w))) =
                    url.map(|u| super::plaintext::judge(&f.name, key, u, f.allow_plaintext))
                {
                    out.push(w);
                }
            }
        }
        for (key, url) in [("url", &f.url), ("rest_url", &f.rest_url)] {
            if url.as_deref().is_some_and(|u| redact_url(u) != u) {
                out.push(format!(
                    "feed \"{}\": {key} carries a secret (a password or a token/key/secret/sig query \
                     parameter); remove it from the URL and let the adapter add it from the credentials file",
                    f.name
                ));
            }
        }
    }
    out
}

fn redact_auth(auth: &str) -> String {
    if is_literal_auth(auth) {
        REDACTED_LITERAL_AUTH.to_string()
    } else {
        auth.to_string()
    }
}

/// The URL with any userinfo password and the values of secret-looking query
/// parameters (`access_token=...`, `api_key=...`, `sig=...`) replaced.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
                _ => p.to_string(),
            })
            .collect();
        out += &params.join("&");
    }
    if let Some(f) = fragment {
        out.push('#');
        out += f;
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| n.contains(w))
}

/// `scheme://user:password@host/...` → `scheme://user:<redacted>@host/...`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::websocket::WsSettings;
    use crate::brokers::{BrokerRef, registry::Settings, websocket};
    use crate::config::{ExpectConfig, parse_str};
    use std::path::PathBuf;
    use std::time::Duration;

    const CANARY: &str = "CANARY9f8e7d";

    fn parse(text: &str) -> Config {
        parse_str(text, Path::new("/etc/brokerguard/brokerguard.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn round_trip(cfg: &Config) -> Config {
        let text = effective_toml(cfg);
        parse_str(&text, &cfg.path).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    #[test]
    fn defaults_are_all_printed() {
        let cfg = parse("[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws://h:1\"\n");
        let text = effective_toml(&cfg);
        for needle in [
            "runtime_dir = \"/run/brokerguard\"",
            "credential_files = [\"/etc/brokerguard/credentials.env\"]",
            "preflight = \"warn\"",
            "log_level = \"info\"",
            "stop_timeout = \"10s\"",
            "alert_repeat = \"15m\"",
            "fanout_queue = 4096",
            "fanout_queue_bytes = 8388608",
            "fanout_max_subscribers = 64",
            "poll_every = \"2s\"",
            "heartbeat = \"heartbeat\"",
            "stall_after = \"30s\"",
            "backoff = { initial = \"500ms\", max = \"30s\", multiplier = 2.0, stable_after = \"30s\", parked_retry = \"15m\" }",
            "# alert_after = \"1m\"",
            "max_message_bytes = 16777216",
            "[calendar.nse]\nholidays = []  # none configured",
            "[calendar.nyse]\nholidays = []  # none configured",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(round_trip(&cfg), cfg);
    }

    #[test]
    fn alerts_round_trip() {
        let cfg = parse(
            "[alerts]\nheartbeat_url = \"https://hc-ping.com/${HC}\"\nheartbeat_every = \"30s\"\n\
             daily_report = \"08:30 Asia/Kolkata\"\n\
             [[alerts.webhook]]\nname = \"ops\"\nformat = \"telegram\"\nbot_token = \"${TG}\"\n\
             chat_id = \"-100123\"\nmin_severity = \"error\"\n\
             [[alerts.webhook]]\nname = \"j\"\nformat = \"json\"\nurl = \"http://127.0.0.1:9/a\"\n",
        );
        let text = effective_toml(&cfg);
        assert!(
            text.contains("[[alerts.webhook]]\nname = \"ops\""),
            "{text}"
        );
        assert_eq!(round_trip(&cfg), cfg);
    }

    #[test]
    fn everything_round_trips() {
        let mut cfg = parse(include_str!("../../etc/brokerguard.toml"));
        // One of each broker with the awkward values, by hand.
        let mut ws = FeedConfig::new("odd", BrokerRef(&websocket::BROKER));
        ws.url = Some("wss://h:9443/x".into());
        ws.settings = Settings::new(WsSettings {
            auth: Some("{\"t\":\"${TOKEN}\"}".into()),
            subscribe: vec!["it's \"quoted\"\twith\\escapes\u{1}".into()],
            poll: Some("line1\nline2".into()),
            heartbeat: None,
            subscribe_ok: Some("ok".into()),
            ..WsSettings::default()
        });
        ws.backoff.multiplier = 1.25;
        ws.expect = Some(ExpectConfig {
            every: Duration::from_secs(60),
            offset: Duration::from_millis(1500),
            grace: Duration::from_secs(60),
        });
        ws.alert_after = Some(Duration::from_secs(5));
        ws.tls_ca_file = Some(PathBuf::from("/etc/ca dir/ca.pem"));
        cfg.feeds.push(ws);
        assert_eq!(round_trip(&cfg), cfg);
    }

    #[test]
    fn calendars_are_printed_in_order_and_round_trip() {
        let cfg = parse(
            "[calendar.nyse]\nholidays = [\"2026-12-25\", \"2026-01-01\"]\n\
             [calendar.nse]\nholidays = [\"2026-10-02\"]\n",
        );
        let text = effective_toml(&cfg);
        assert!(
            text.contains("[calendar.nse]\nholidays = [\n    \"2026-10-02\",\n]\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "[calendar.nyse]\nholidays = [\n    \"2026-01-01\",\n    \"2026-12-25\",\n]\n"
            ),
            "{text}"
        );
        assert!(!text.contains("calendar.always"), "{text}");
        assert!(
            text.find("[calendar.nse]") < text.find("[calendar.nyse]"),
            "{text}"
        );
        assert_eq!(round_trip(&cfg), cfg);
    }

    #[test]
    fn literal_auth_is_redacted() {
        let text = format!(
            "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"wss://h/\"\nauth = '{{\"token\":\"{CANARY}\"}}'\n"
        );
        let cfg = parse(&text);
        let shown = effective_toml(&cfg);
        assert!(!shown.contains(CANARY), "{shown}");
        assert!(
            shown.contains(&format!("auth = {}", toml_string(REDACTED_LITERAL_AUTH))),
            "{shown}"
        );
        // Still valid TOML for the loader.
        let again = round_trip(&cfg);
        let w = again.feeds[0].settings::<WsSettings>().unwrap();
        assert_eq!(w.auth.as_deref(), Some(REDACTED_LITERAL_AUTH));
    }

    #[test]
    fn auth_with_reference_is_shown() {
        let cfg = parse(
            "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws://127.0.0.1\"\nauth = '{\"token\":\"${SIGNALS_TOKEN}\"}'\n",
        );
        assert!(effective_toml(&cfg).contains("auth = '{\"token\":\"${SIGNALS_TOKEN}\"}'"));
    }

    #[test]
    fn url_secrets_are_redacted() {
        let text = format!(
            "[[feed]]\nname = \"k\"\nbroker = \"websocket\"\n\
             url = \"wss://ws.example.com/?api_key=k{CANARY}&access_token={CANARY}&mode=full#frag\"\n"
        );
        let cfg = parse(&text);
        let shown = effective_toml(&cfg);
        assert!(!shown.contains(CANARY), "{shown}");
        assert!(
            shown.contains("url = \"wss://ws.example.com/?api_key=<redacted>&access_token=<redacted>&mode=full#frag\""),
            "{shown}"
        );
        assert_eq!(
            redact_url(&format!(
                "https://user:{CANARY}@api.example.com/v1?X-Signature={CANARY}&sym=A"
            )),
            "https://user:<redacted>@api.example.com/v1?X-Signature=<redacted>&sym=A"
        );
        round_trip(&cfg);
    }

    #[test]
    fn warnings_name_the_feed_and_field_but_not_the_secret() {
        let text = format!(
            "[[feed]]\nname = \"a\"\nbroker = \"websocket\"\nurl = \"wss://h/?token={CANARY}\"\nauth = '{CANARY}'\n\
             [[feed]]\nname = \"b\"\nbroker = \"websocket\"\nurl = \"wss://h/\"\nauth = '${{B_TOKEN}}'\n"
        );
        let w = setup_warnings(&parse(&text));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("feed \"a\": auth has no ${NAME}"), "{w:?}");
        assert!(
            w[1].starts_with("feed \"a\": url carries a secret"),
            "{w:?}"
        );
        assert!(!w.concat().contains(CANARY));
    }

    #[test]
    fn redact_url_leaves_plain_urls_alone() {
        for u in [
            "wss://h:443/p",
            "ws://h/?symbol=BTC&depth=10",
            "wss://user@h/x",
        ] {
            assert_eq!(redact_url(u), u);
        }
        assert_eq!(
            redact_url("wss://h/?password=p&sig="),
            "wss://h/?password=<redacted>&sig=<redacted>"
        );
    }

    #[test]
    fn errors_never_quote_secrets() {
        // Every secret-bearing field is broken in some way around the canary.
        let text = format!(
            "[[feed]]\nname = \"a\"\nbroker = \"websocket\"\n\
             url = \"http://{CANARY}@h/?token={CANARY}\"\n\
             auth = '{{\"token\":\"{CANARY}\",\"x\":\"${{bad name}}\"}}'\n\
             subscribe = ['{CANARY} ${{', 7]\n\
             poll = '{CANARY}${{lower}}'\n\
             [[feed]]\nname = \"b\"\nbroker = \"websocket\"\n\
             url = \"wss://:{CANARY}\"\n"
        );
        let err = parse_str(&text, Path::new("c.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(err.problems().len() >= 5, "{shown}");
        assert!(!shown.contains(CANARY), "{shown}");
    }
}
