//! Reads the TOML configuration into a [`Config`].
//!
//! The text is parsed into toml's span-carrying tree and walked by hand so
//! that every problem (unknown key, wrong type, bad value, missing or
//! conflicting key) is collected with its line:col, instead of stopping at
//! the first one as serde would. This file holds the entry points and the
//! `[agent]` table; `walker.rs` the typed value readers, `feed.rs` the
//! `[[feed]]` tables and their rules, `calendar.rs` the `[calendar.NAME]`
//! holiday tables.

mod alerts;
mod calendar;
mod feed;
mod ha;
mod http;
mod section;
mod walker;

pub use section::Section;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::error::ConfigError;
use super::{AgentConfig, CalendarsConfig, Config, PreflightMode};
use calendar::CALENDAR_KEYS;
use feed::all_feed_keys;
use walker::{Lines, Value, Walker};

const ROOT_KEYS: &[&str] = &[
    "agent", "feed", "calendar", "alerts", "ha", "http", "metrics",
];
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
    "fanout_queue_bytes",
    "fanout_max_subscribers",
    "blackbox_entries",
    "blackbox_bytes",
];
const PREFLIGHT_MODES: &[&str] = &["require", "warn", "off"];
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
/// Smallest accepted `agent.fanout_queue`.
const MIN_FANOUT_QUEUE: i64 = 16;
/// Smallest accepted `agent.fanout_queue_bytes`.
const MIN_FANOUT_QUEUE_BYTES: i64 = 64 * 1024;

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
        calendars: CalendarsConfig::default(),
        http: None,
        metrics: Default::default(),
        alerts: Default::default(),
        ha: None,
    };
    match DeTable::parse(text) {
        Ok(root) => w.root(root.get_ref(), &mut cfg),
        Err(e) => {
            let message = e.message().replace('\n', " ");
            let span = e.span().unwrap_or(0..0);
            w.report(
                span,
                "toml",
                format!(
                    "TOML syntax error: {}; fix the file at this position",
                    message.trim()
                ),
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

impl Walker<'_, '_> {
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
                "http" => {
                    if let Some(ht) = self.table(v, "http", "a table (an [http] header)") {
                        cfg.http = self.http(ht, v.span());
                    }
                }
                "metrics" => {
                    if let Some(mt) = self.table(v, "metrics", "a table (a [metrics] header)") {
                        self.metrics(mt, &mut cfg.metrics);
                    }
                }
                "ha" => {
                    if let Some(ht) = self.table(v, "ha", "a table (an [ha] header)") {
                        cfg.ha = self.ha(ht, v.span());
                    }
                }
                "calendar" => {
                    let expected = "a table (a [calendar.nse] or [calendar.nyse] header)";
                    if let Some(ct) = self.table(v, "calendar", expected) {
                        self.calendars(ct, &mut cfg.calendars);
                    }
                }
                "alerts" => {
                    if let Some(at) = self.table(v, "alerts", "a table (an [alerts] header)") {
                        self.alerts(at, &mut cfg.alerts);
                    }
                }
                _ if AGENT_KEYS.contains(&key) => self.report(
                    k.span(),
                    key,
                    format!(
                        "\"{key}\" belongs in the [agent] table; move it below an [agent] header"
                    ),
                ),
                _ if all_feed_keys().contains(&key) => self.report(
                    k.span(),
                    key,
                    format!("\"{key}\" belongs in a feed; move it below a [[feed]] header"),
                ),
                _ if CALENDAR_KEYS.contains(&key) => self.report(
                    k.span(),
                    key,
                    format!(
                        "\"{key}\" belongs to one calendar; move it below a [calendar.nse] or \
                         [calendar.nyse] header"
                    ),
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
                    self.duration_within(
                        v,
                        &kp,
                        Duration::from_secs(1),
                        Some(Duration::from_secs(300)),
                    ),
                ),
                "status_every" => set(
                    &mut a.status_every,
                    self.duration_within(
                        v,
                        &kp,
                        Duration::from_millis(100),
                        Some(Duration::from_secs(1)),
                    ),
                ),
                "credential_check" => set(
                    &mut a.credential_check,
                    self.duration_within(v, &kp, Duration::from_secs(1), None),
                ),
                "alert_after" => set(&mut a.alert_after, self.positive_duration(v, &kp)),
                "alert_repeat" => set(&mut a.alert_repeat, self.positive_duration(v, &kp)),
                "fanout_queue" => set(
                    &mut a.fanout_queue,
                    self.integer_at_least(v, &kp, MIN_FANOUT_QUEUE)
                        .and_then(|n| usize::try_from(n).ok()),
                ),
                "fanout_queue_bytes" => set(
                    &mut a.fanout_queue_bytes,
                    self.integer_at_least(v, &kp, MIN_FANOUT_QUEUE_BYTES)
                        .and_then(|n| usize::try_from(n).ok()),
                ),
                "fanout_max_subscribers" => set(
                    &mut a.fanout_max_subscribers,
                    self.integer_at_least(v, &kp, 1)
                        .and_then(|n| usize::try_from(n).ok()),
                ),
                "blackbox_entries" => set(
                    &mut a.blackbox_entries,
                    self.integer_at_least(v, &kp, 10)
                        .and_then(|n| usize::try_from(n).ok()),
                ),
                "blackbox_bytes" => set(
                    &mut a.blackbox_bytes,
                    self.integer_at_least(v, &kp, 4096)
                        .and_then(|n| usize::try_from(n).ok()),
                ),
                _ => self.unknown_key(k.span(), &kp, key, "[agent]", AGENT_KEYS),
            }
        }
    }

    fn credential_files(&mut self, v: &Value<'_>, key: &str) -> Option<Vec<PathBuf>> {
        let items = self.array(
            v,
            key,
            "a list of file paths such as [\"/etc/brokerguard/credentials.env\"]",
        )?;
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
}

pub(super) fn set<T>(field: &mut T, value: Option<T>) {
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

/// Helpers shared by the tests of this module and its children.
#[cfg(test)]
mod testutil {
    use super::*;
    use crate::config::Problem;

    pub(super) const BASE: &str = "/base";

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_with_base(text, Path::new("test.toml"), Some(Path::new(BASE)))
    }

    pub(super) fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(e) => e.problems().to_vec(),
        }
    }

    /// The text must yield exactly one problem, at `key`, whose message contains `fragment`.
    pub(super) fn one_problem(text: &str, key: &str, fragment: &str) -> Problem {
        let ps = problems(text);
        assert_eq!(
            ps.len(),
            1,
            "expected one problem for:\n{text}\ngot {ps:#?}"
        );
        let p = ps.into_iter().next().unwrap();
        assert_eq!(p.key, key, "{p:?}");
        assert!(
            p.message.contains(fragment),
            "message {:?} lacks {fragment:?}",
            p.message
        );
        p
    }

    pub(super) const WS: &str =
        "[[feed]]\nname = \"s\"\nbroker = \"websocket\"\nurl = \"ws://h:1\"\n";

    pub(super) fn ws(extra: &str) -> String {
        format!("{WS}{extra}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::brokers::websocket::WsSettings;
    use crate::calendar::{CalendarKind, Date};
    use crate::config::{BackoffConfig, ExpectConfig};
    use calendar::CALENDAR_NAMES;
    use feed::{BACKOFF_KEYS, EXPECT_KEYS};
    use walker::absolutize;

    #[test]
    fn empty_file_gives_every_default() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.agent, AgentConfig::defaults());
        assert!(cfg.feeds.is_empty());
        assert_eq!(cfg.path, PathBuf::from("test.toml"));
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
auth = '{"token":"${SIGNALS_TOKEN}"}'
auth_ok = "ok"
auth_error = "denied"
subscribe = ['{"s":1}', '{"s":"${OTHER}"}']
subscribe_ok = "subscribed"
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
"#;
        let cfg = parse(text).unwrap();
        let a = &cfg.agent;
        assert_eq!(a.runtime_dir, PathBuf::from("/base/run"));
        assert_eq!(a.state_dir, PathBuf::from("/var/x"));
        assert_eq!(
            a.credential_files,
            vec![PathBuf::from("/base/a.env"), PathBuf::from("/etc/b.env")]
        );
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
        let w = f.settings::<WsSettings>().unwrap();
        assert_eq!(w.auth.as_deref(), Some(r#"{"token":"${SIGNALS_TOKEN}"}"#));
        assert_eq!(w.auth_ok.as_deref(), Some("ok"));
        assert_eq!(w.auth_error.as_deref(), Some("denied"));
        assert_eq!(w.subscribe.len(), 2);
        assert_eq!(w.subscribe_ok.as_deref(), Some("subscribed"));
        assert_eq!(w.poll.as_deref(), Some(r#"{"p":1}"#));
        assert_eq!(w.poll_every, Duration::from_secs(3));
        assert_eq!(w.heartbeat, None);
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
        assert_eq!(w.template_refs(), vec!["SIGNALS_TOKEN", "OTHER"]);
    }

    #[test]
    fn agent_rules() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[agent]\npreflight = \"sometimes\"",
                "agent.preflight",
                "use one of require, warn, off",
            ),
            (
                "[agent]\npreflight = \"Require\"",
                "agent.preflight",
                "did you mean \"require\"",
            ),
            (
                "[agent]\nlog_level = \"verbose\"",
                "agent.log_level",
                "use one of error, warn, info, debug, trace",
            ),
            (
                "[agent]\nstop_timeout = \"0s\"",
                "agent.stop_timeout",
                "too short; use between 1s and 5m",
            ),
            (
                "[agent]\nstop_timeout = \"6m\"",
                "agent.stop_timeout",
                "too long; use between 1s and 5m",
            ),
            (
                "[agent]\nstatus_every = \"50ms\"",
                "agent.status_every",
                "between 100ms and 1s",
            ),
            (
                "[agent]\nstatus_every = \"2s\"",
                "agent.status_every",
                "too long",
            ),
            (
                "[agent]\ncredential_check = \"500ms\"",
                "agent.credential_check",
                "at least 1s",
            ),
            (
                "[agent]\nalert_after = \"0s\"",
                "agent.alert_after",
                "more than 0s",
            ),
            (
                "[agent]\nalert_repeat = \"0s\"",
                "agent.alert_repeat",
                "more than 0s",
            ),
            (
                "[agent]\nfanout_queue = 8",
                "agent.fanout_queue",
                "at least 16",
            ),
            (
                "[agent]\nfanout_queue = \"big\"",
                "agent.fanout_queue",
                "expected an integer, found a string",
            ),
            (
                "[agent]\ncredential_files = []",
                "agent.credential_files",
                "list at least one file",
            ),
            (
                "[agent]\ncredential_files = \"/a.env\"",
                "agent.credential_files",
                "expected a list of file paths",
            ),
            (
                "[agent]\ncredential_files = [\"/a\", 1]",
                "agent.credential_files[1]",
                "expected a string",
            ),
            (
                "[agent]\nruntime_dir = \"\"",
                "agent.runtime_dir",
                "is empty",
            ),
            (
                "[agent]\nlog_levle = \"info\"",
                "agent.log_levle",
                "did you mean \"log_level\"",
            ),
            (
                "[agent]\nzzz = 1",
                "agent.zzz",
                "the keys allowed there are runtime_dir, state_dir",
            ),
            ("agent = 1", "agent", "expected a table"),
            (
                "runtime_dir = \"/x\"",
                "runtime_dir",
                "belongs in the [agent] table",
            ),
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
broker = \"websocket\"
";
        let got: Vec<(usize, usize, String)> = problems(text)
            .into_iter()
            .map(|p| (p.line, p.col, p.key))
            .collect();
        let want = vec![
            (2, 13, "agent.log_level".to_string()),
            (3, 16, "agent.fanout_queue".to_string()),
            (9, 1, "feed[0].stal_after".to_string()),
            (10, 14, "feed[0].ping_every".to_string()),
            (13, 8, "feed[1].name".to_string()),
            (14, 10, "feed[1].url".to_string()),
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
        let p = one_problem(
            "# é\n[agent]\nlog_level = \"é\"\n",
            "agent.log_level",
            "unknown log level",
        );
        assert_eq!((p.line, p.col), (3, 13));
        let p = one_problem(
            "[[feed]]\nname = \"é\"\nbroker = \"websocket\"\nurl = \"ws://h\"\n",
            "feed[0].name",
            "not allowed",
        );
        assert_eq!((p.line, p.col), (2, 8));
    }

    #[test]
    fn syntax_error_is_one_problem_with_position() {
        let p = one_problem(
            "[agent]\nlog_level = \"info\nstate_dir = \"/x\"\n",
            "toml",
            "TOML syntax error",
        );
        assert_eq!(p.line, 2);
        assert!(p.col > 12, "{p:?}");
        let p = one_problem(
            "[agent]\nlog_level = \"info\"\nlog_level = \"warn\"\n",
            "toml",
            "duplicate key",
        );
        assert_eq!((p.line, p.col), (3, 1));
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(
            absolutize(Some(Path::new("/w")), Path::new("./run/state")),
            PathBuf::from("/w/run/state")
        );
        assert_eq!(
            absolutize(Some(Path::new("/w")), Path::new("/abs")),
            PathBuf::from("/abs")
        );
        let cfg = parse_str("[agent]\nstate_dir = \"./s\"\n", Path::new("x.toml")).unwrap();
        assert_eq!(
            cfg.agent.state_dir,
            std::env::current_dir().unwrap().join("s")
        );
    }

    #[test]
    fn load_reports_unreadable_file() {
        let path = std::env::temp_dir().join(format!(
            "brokerguard-config-missing-{}.toml",
            std::process::id()
        ));
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
        let dir =
            std::env::temp_dir().join(format!("brokerguard-config-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.toml");
        std::fs::write(&path, WS).unwrap();
        let loaded = load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        let cfg = loaded.unwrap();
        assert_eq!(cfg.path, path);
        assert_eq!(cfg.feeds[0].name, "s");
    }

    /// The `#[[feed]]` examples of a file, uncommented: a block starts at
    /// `#[[feed]]`, takes every `#key = ...` line, skips `# comment` lines
    /// and ends at the first line that is not a comment.
    fn commented_examples(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut cur: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("#[[feed]]") {
                blocks.extend(cur.take());
                cur = Some(String::new());
            }
            match (&mut cur, line.strip_prefix('#')) {
                (Some(_), Some(l)) if l.starts_with(' ') || l.is_empty() => {}
                (Some(b), Some(l)) => {
                    b.push_str(l);
                    b.push('\n');
                }
                (Some(_), None) => blocks.extend(cur.take()),
                _ => {}
            }
        }
        blocks.extend(cur);
        blocks
    }

    #[test]
    fn example_config_loads_with_no_feeds() {
        let cfg =
            parse(include_str!("../../etc/brokerguard.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.feeds.is_empty(), "the shipped example must start clean");
    }

    #[test]
    fn example_config_documents_every_key() {
        let text = include_str!("../../etc/brokerguard.toml");
        let feed_keys = all_feed_keys();
        for key in AGENT_KEYS
            .iter()
            .chain(feed_keys.iter())
            .chain(BACKOFF_KEYS)
            .chain(EXPECT_KEYS)
            .chain(CALENDAR_KEYS)
            .chain(http::HTTP_KEYS)
            .chain(http::METRICS_KEYS)
        {
            assert!(
                text.contains(&format!("{key} =")),
                "etc/brokerguard.toml does not show {key}"
            );
        }
        for name in CALENDAR_NAMES {
            assert!(
                text.contains(&format!("#[calendar.{name}]\n")),
                "no [calendar.{name}] example"
            );
        }
    }

    #[test]
    fn commented_out_examples_load_one_per_broker() {
        let blocks = commented_examples(include_str!("../../etc/brokerguard.toml"));
        let mut seen = Vec::new();
        for b in &blocks {
            let cfg = parse(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
            assert_eq!(cfg.feeds.len(), 1, "{b}");
            seen.push(cfg.feeds[0].broker.name());
        }
        seen.sort();
        let mut built = crate::brokers::names();
        built.sort();
        assert_eq!(
            seen, built,
            "one example per broker of this build, and only those"
        );
        let ws = parse(&blocks[0]).unwrap();
        let w = ws.feeds[0].settings::<WsSettings>().unwrap();
        assert_eq!(w.template_refs(), vec!["SIGNALS_TOKEN"]);
        assert!(w.poll.is_some() && ws.feeds[0].expect.is_some() && !w.subscribe.is_empty());
    }

    #[test]
    fn commented_out_calendars_load_when_uncommented() {
        // Each "#[calendar.NAME]" block runs while its lines are "#x..." or
        // "#    ..." (array items); a "# prose" line or a blank one ends it.
        let text = include_str!("../../etc/brokerguard.toml");
        let mut blocks: Vec<String> = Vec::new();
        let mut cur: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("#[calendar.") {
                blocks.extend(cur.take());
                cur = Some(String::new());
            }
            let code = line
                .strip_prefix('#')
                .filter(|l| l.starts_with("    ") || !(l.starts_with(' ') || l.is_empty()));
            match (&mut cur, code) {
                (Some(b), Some(l)) => {
                    b.push_str(l);
                    b.push('\n');
                }
                (Some(_), None) => blocks.extend(cur.take()),
                _ => {}
            }
        }
        blocks.extend(cur);
        assert_eq!(blocks.len(), CALENDAR_NAMES.len(), "{blocks:#?}");
        for b in blocks {
            let cfg = parse(&b).unwrap_or_else(|e| panic!("{e}\n{b}"));
            let counts = (
                cfg.calendars.nse.holidays.len(),
                cfg.calendars.nyse.holidays.len(),
            );
            assert!(counts.0 + counts.1 >= 10, "too few holidays in\n{b}");
        }
    }

    fn day(y: i16, m: i8, d: i8) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn calendars_are_read() {
        let cfg = parse(
            "[calendar.nse]\nholidays = [\"2026-12-25\", \"2026-01-26\"]\n\
             [calendar.nyse]\nholidays = []\n",
        )
        .unwrap();
        assert_eq!(
            cfg.calendars.nse.holidays,
            vec![day(2026, 1, 26), day(2026, 12, 25)],
            "sorted"
        );
        assert!(cfg.calendars.nyse.holidays.is_empty());
        assert_eq!(
            cfg.calendars.holidays(CalendarKind::Nse),
            &[day(2026, 1, 26), day(2026, 12, 25)]
        );
        assert!(cfg.calendars.holidays(CalendarKind::Always).is_empty());
        // Dotted keys are the same tables.
        let cfg = parse("calendar.nyse.holidays = [\"2026-11-26\"]\n").unwrap();
        assert_eq!(cfg.calendars.nyse.holidays, vec![day(2026, 11, 26)]);
        let cfg =
            parse("[calendar.nyse]\nearly_closes = [\"2026-12-24\", \"2026-11-27\"]\n").unwrap();
        assert_eq!(
            cfg.calendars.early_closes(CalendarKind::Nyse),
            [day(2026, 11, 27), day(2026, 12, 24)]
        );
        let shown = crate::config::effective_toml(&cfg);
        assert_eq!(parse(&shown).unwrap().calendars, cfg.calendars, "{shown}");
        let err = parse("[calendar.nse]\nearly_closes = [\"2026-11-27\"]\n").unwrap_err();
        assert!(err.to_string().contains("only NYSE closes early"), "{err}");
        assert_eq!(parse("").unwrap().calendars, Default::default());
    }

    #[test]
    fn calendar_rules() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[calendar.nasdaq]\nholidays = []",
                "calendar.nasdaq",
                "unknown calendar \"nasdaq\"; the calendars with holidays are nse, nyse",
            ),
            (
                "[calendar.nyce]\n",
                "calendar.nyce",
                "did you mean \"nyse\"? (the calendars with holidays are nse, nyse)",
            ),
            ("[calendar.NSE]\n", "calendar.NSE", "did you mean \"nse\"?"),
            (
                "[calendar.always]\nholidays = []",
                "calendar.always",
                "has no holidays; remove [calendar.always]",
            ),
            (
                "[calendar]\nholidays = [\"2026-12-25\"]",
                "calendar.holidays",
                "belongs to one calendar; write it below a [calendar.nse]",
            ),
            (
                "holidays = [\"2026-12-25\"]",
                "holidays",
                "belongs to one calendar; move it below a [calendar.nse]",
            ),
            ("calendar = 1", "calendar", "expected a table"),
            ("[calendar]\nnse = 1", "calendar.nse", "expected a table"),
            ("[calendr.nse]\n", "calendr", "did you mean \"calendar\""),
            (
                "[calendar.nse]\nholiday = []",
                "calendar.nse.holiday",
                "unknown key \"holiday\" in [calendar.nse]; did you mean \"holidays\"?",
            ),
            (
                "[calendar.nse]\nopen = \"09:15\"",
                "calendar.nse.open",
                "the keys allowed there are holidays",
            ),
            (
                "[calendar.nse]\nholidays = \"2026-12-25\"",
                "calendar.nse.holidays",
                "expected a list of dates such as [\"2026-12-25\"]",
            ),
            (
                "[calendar.nse]\nholidays = [20261225]",
                "calendar.nse.holidays[0]",
                "expected a string",
            ),
            (
                "[calendar.nse]\nholidays = [\"2026-13-01\"]",
                "calendar.nse.holidays[0]",
                "\"2026-13-01\" is not a date; write YYYY-MM-DD, e.g. \"2026-12-25\"",
            ),
            (
                "[calendar.nse]\nholidays = [\"2026-02-30\"]",
                "calendar.nse.holidays[0]",
                "\"2026-02-30\" is not a date",
            ),
            (
                "[calendar.nse]\nholidays = [\"25/12/2026\"]",
                "calendar.nse.holidays[0]",
                "write YYYY-MM-DD",
            ),
            (
                "[calendar.nyse]\nholidays = [\"2026-12-25\", \"2026-12-25\"]",
                "calendar.nyse.holidays[1]",
                "\"2026-12-25\" is listed twice (first at line 2, column 13); remove one",
            ),
        ];
        for (text, key, fragment) in cases {
            one_problem(text, key, fragment);
        }
    }

    #[test]
    fn every_bad_holiday_is_reported_at_its_line_and_col() {
        let text = "\
[calendar.nse]
holidays = [
  \"2026-01-26\",
  \"2026-13-01\",
  \"2026-01-26\",
  \"2026-01-26\",
]
[calendar.nyse]
holidays = [\"2026-7-3\"]
";
        let got: Vec<(usize, usize, String)> = problems(text)
            .into_iter()
            .map(|p| (p.line, p.col, p.key))
            .collect();
        let want = vec![
            (4, 3, "calendar.nse.holidays[1]".to_string()),
            (5, 3, "calendar.nse.holidays[2]".to_string()),
            (6, 3, "calendar.nse.holidays[3]".to_string()),
            (9, 13, "calendar.nyse.holidays[0]".to_string()),
        ];
        assert_eq!(got, want);
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains(
                "test.toml:4:3: calendar.nse.holidays[1]: \"2026-13-01\" is not a date; write YYYY-MM-DD"
            ),
            "{err}"
        );
        assert!(
            err.contains("test.toml:6:3: calendar.nse.holidays[3]: \"2026-01-26\" is listed twice (first at line 3, column 3)"),
            "{err}"
        );
    }

    #[test]
    fn dev_config_loads() {
        let cfg = parse(include_str!("../../etc/dev.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.feeds.is_empty());
        assert_eq!(cfg.agent.runtime_dir, PathBuf::from("/base/run"));
        assert_eq!(cfg.agent.state_dir, PathBuf::from("/base/run/state"));
        assert_eq!(
            cfg.agent.credential_files,
            vec![PathBuf::from("/base/run/credentials.env")]
        );
    }
}
