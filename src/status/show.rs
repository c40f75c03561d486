//! `brokerguard status`: find out whether an agent runs, and render its
//! `status.json` for a person.
//!
//! The lock decides whether an agent runs, not the status file: an agent
//! killed with SIGKILL leaves a `status.json` that looks alive forever. The
//! document is believed only while the pidfile's lock is held, and only if
//! it was written by the lock holder.

use crate::os::{
    self,
    fs::{Dir, Owners},
};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::schema::{AgentStatus, CredentialStatus, FeedStatus, ReloadStatus, StatusDoc};
use crate::pidfile as lock;
use crate::timefmt;
use crate::timefmt::retry_in;

/// File name of the status document inside the runtime folder.
pub const STATUS_FILE_NAME: &str = "status.json";

/// A status older than this means the agent's writer is stuck.
const FROZEN_AFTER: Duration = Duration::from_secs(5);

/// Longest LAST ERROR shown in the table, in characters.
const ERROR_WIDTH: usize = 60;

/// What `status` found in the runtime folder.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// No agent holds the lock. `stale`: a status.json from a dead agent is
    /// still there (or one not written by the current lock holder).
    NotRunning { stale: bool },
    /// The lock holder's own document.
    Running(Box<StatusDoc>),
    /// Something prevents an answer; the text says what (file and cause).
    Unreadable(String),
}

/// Overall health for the exit code: the lead maps AllLive → 0, Degraded → 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    AllLive,
    Degraded,
}

/// Every feed live (zero feeds counts as all live), else degraded.
pub fn health(doc: &StatusDoc) -> Health {
    if doc.all_live() {
        Health::AllLive
    } else {
        Health::Degraded
    }
}

/// Largest status.json read: 500 feeds take well under 1 MiB.
const MAX_STATUS_BYTES: u64 = 16 << 20;

/// The text of `<runtime_dir>/status.json` (`None`: no such file), read by
/// the no-follow rule: `status` may run as root in a folder the service
/// user writes, so a link, a FIFO, a device or an endless file is refused
/// at once instead of followed, waited on or read forever.
fn read_status_file(runtime_dir: &Path) -> io::Result<Option<String>> {
    let dir = match Dir::open(runtime_dir, &Owners::of_this_process()) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match dir.read_limited(STATUS_FILE_NAME, MAX_STATUS_BYTES)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")),
    }
}

/// Looks at `<runtime_dir>`: lock holder, then `status.json`.
pub fn observe(runtime_dir: &Path) -> Observed {
    let status_path = runtime_dir.join(STATUS_FILE_NAME);
    let holder = match lock::holder(runtime_dir) {
        Ok(h) => h,
        Err(e) => {
            return Observed::Unreadable(format!(
                "{e}; run as root or the service user, or pass the right --config"
            ));
        }
    };
    let text = match read_status_file(runtime_dir) {
        Ok(t) => t,
        // Exists but unreadable, and nobody runs: still "not running".
        Err(_) if holder.is_none() => return Observed::NotRunning { stale: true },
        Err(e) => {
            return Observed::Unreadable(os::fs::naming("read", &status_path, e).to_string());
        }
    };
    let Some(holder) = holder else {
        return Observed::NotRunning {
            stale: text.is_some(),
        };
    };
    let Some(text) = text else {
        let pid = holder.pid.map_or("unknown".to_string(), |p| p.to_string());
        return Observed::Unreadable(format!(
            "an agent runs (pid {pid}) but {} does not exist yet; it may still be starting",
            status_path.display()
        ));
    };
    let doc: StatusDoc = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return Observed::Unreadable(format!(
                "{} is not a valid status document: {e}",
                status_path.display()
            ));
        }
    };
    match holder.pid {
        // The holder is between locking and writing its PID: nothing to compare.
        None => Observed::Running(Box::new(doc)),
        Some(pid) if pid == doc.agent.pid => Observed::Running(Box::new(doc)),
        Some(_) => Observed::NotRunning { stale: true },
    }
}

/// Days since 1970-01-01 for a civil date (inverse of timefmt::civil_from_days).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses what timefmt writes: `2026-11-22T09:00:01Z` or `...01.123Z`.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let mut tp = hms.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let sec: i64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
        None => 0,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Time from an RFC 3339 instant to `now`, human form; `?` if unparseable.
fn age(since: &str, now: SystemTime) -> String {
    match parse_rfc3339(since) {
        Some(t) => timefmt::human(now.duration_since(t).unwrap_or(Duration::ZERO)),
        None => "?".to_string(),
    }
}

/// The feed's last error as `status` shows it: `None` when there is none;
/// for a feed that has recovered from it (live, not flapping, on a
/// connection made after the error) `earlier (5m0s ago): …`, so it never
/// reads as the current problem or current advice. `current` says which.
fn shown_error(f: &FeedStatus, now: SystemTime) -> Option<(String, bool)> {
    let e = f.last_error.as_deref().filter(|e| !e.trim().is_empty())?;
    let at = f.last_error_at.as_deref().and_then(parse_rfc3339);
    let recovered = f.state == "live"
        && f.flapping.is_none()
        && matches!((at, parse_rfc3339(&f.since)), (Some(at), Some(since)) if at <= since);
    if recovered {
        let ago = f
            .last_error_at
            .as_deref()
            .map_or("?".into(), |t| age(t, now));
        Some((format!("earlier ({ago} ago): {e}"), false))
    } else {
        Some((e.to_string(), true))
    }
}

/// One line, at most `max` characters, `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Left-aligned columns separated by two spaces, no trailing blanks.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Each feed's outage under way, as its record tells it (since the last
/// data, not since the state): empty when none is down.
fn outages(doc: &StatusDoc) -> String {
    let mut out = String::new();
    for f in &doc.feeds {
        let Some(o) = &f.outage else { continue };
        if out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} down {} since {} ({} connections, {} errors{})\n",
            f.name,
            timefmt::human(Duration::from_millis(o.down_ms)),
            o.since,
            o.connections,
            o.errors,
            o.cause
                .as_deref()
                // Whole, like every error an operator acts on.
                .map(|c| format!("; cause: {c}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// What feeds report of their sessions (`market`, `info`: the key set in
/// use, when a day token expires, ...), one row per feed that has any;
/// empty when none has.
fn sessions(doc: &StatusDoc) -> String {
    let rows: Vec<Vec<String>> = doc
        .feeds
        .iter()
        .filter(|f| f.market.is_some() || !f.info.is_empty())
        .map(|f| {
            let facts: Vec<String> = f
                .info
                .iter()
                .map(|(k, v)| format!("{} {}", k.replace('_', " "), truncate(v, ERROR_WIDTH)))
                .collect();
            vec![
                f.name.clone(),
                f.market.clone().unwrap_or_else(|| "-".into()),
                if facts.is_empty() {
                    "-".into()
                } else {
                    facts.join("; ")
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!("\n{}", table(&["FEED", "MARKET", "SESSION"], &rows))
}

/// The human view of a status document, as of `now`.
pub fn render_table(doc: &StatusDoc, now: SystemTime) -> String {
    let mut out = agent_lines(&doc.agent, now);
    out.push('\n');
    if doc.feeds.is_empty() {
        out.push_str("no feeds configured\n");
    } else {
        out.push_str(&feed_table(doc, now));
        out.push_str(&outages(doc));
        out.push_str(&sessions(doc));
    }
    if !doc.credentials.is_empty() {
        out.push('\n');
        out.push_str(&credential_table(&doc.credentials));
    }
    out
}

/// The agent's own lines: who it is, its summary, a rejected reload, and
/// how fresh status.json is.
fn agent_lines(a: &AgentStatus, now: SystemTime) -> String {
    let mut out = format!(
        "agent    pid {}, version {}, up {} (since {})\n",
        a.pid,
        a.version,
        age(&a.started_at, now),
        a.started_at
    );
    if !a.summary.is_empty() {
        // Whole: it may end in the command that fixes a feed.
        out.push_str(&format!("summary  {}\n", a.summary));
    }
    if !a.config.is_empty() {
        out.push_str(&format!("config   {}\n", a.config));
    }
    // A rejected reload is the one an operator must hear about: the file on
    // disk is not what runs. An applied one needs no line.
    if let Some(r) = a
        .reload
        .as_ref()
        .filter(|r| r.result == ReloadStatus::REJECTED)
    {
        out.push_str(&format!(
            "reload   {} rejected {} ago: the agent keeps running the configuration it had\n",
            r.generation,
            age(&r.at, now)
        ));
        for p in &r.problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    if let Some(updated) = parse_rfc3339(&a.updated_at) {
        let behind = now.duration_since(updated).unwrap_or(Duration::ZERO);
        out.push_str(&format!("updated  {} ago\n", timefmt::human(behind)));
        if behind > FROZEN_AFTER {
            out.push_str(&format!(
                "STALE    status.json not rewritten for {}: what follows is as of then, not now. \
                 The agent is frozen or cannot write it (a full disk: journalctl -u brokerguard -p err \
                 shows alert=status_unwritable)\n",
                timefmt::human(behind)
            ));
        }
    }
    out
}

/// The feed table, then in full each current error the table shortened.
fn feed_table(doc: &StatusDoc, now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = doc
        .feeds
        .iter()
        .map(|f| {
            let state = match (f.flapping, f.retry_in_ms) {
                (Some(n), _) => format!("flapping ({n})"),
                // The time left until the next attempt, not time in state
                // (that is FOR).
                (None, Some(ms)) => {
                    format!("{} ({})", f.state, retry_in(Duration::from_millis(ms)))
                }
                (None, None) => f.state.clone(),
            };
            vec![
                f.name.clone(),
                f.broker.clone(),
                state,
                age(&f.since, now),
                f.last_message_age_ms.map_or("-".to_string(), |ms| {
                    timefmt::human(Duration::from_millis(ms))
                }),
                f.messages.to_string(),
                f.reconnects.to_string(),
                shown_error(f, now).map_or("-".to_string(), |(e, _)| truncate(&e, ERROR_WIDTH)),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "FEED",
            "BROKER",
            "STATE",
            "FOR",
            "LAST MSG",
            "MSGS",
            "RECONN",
            "LAST ERROR",
        ],
        &rows,
    );
    // An error an operator must act on is never left cut: the current
    // ones the table shortened follow in full. One the feed has
    // recovered from is not repeated: its remedy is no longer advice.
    for f in &doc.feeds {
        if let Some((e, true)) = shown_error(f, now) {
            if e.chars().count() > ERROR_WIDTH {
                out.push_str(&format!("  {}: {}\n", f.name, e.replace('\n', " ")));
            }
        }
    }
    out
}

/// The credential table: one row per required name, never a value.
fn credential_table(credentials: &[CredentialStatus]) -> String {
    let rows: Vec<Vec<String>> = credentials
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                match (c.present, c.optional) {
                    (true, _) => "yes",
                    (false, true) => "no",
                    (false, false) => "MISSING",
                }
                .to_string(),
                c.source.clone().unwrap_or_else(|| "-".to_string()),
                c.fingerprint.clone().unwrap_or_else(|| "-".to_string()),
                if c.problems.is_empty() {
                    "-".to_string()
                } else {
                    truncate(&c.problems.join("; "), ERROR_WIDTH)
                },
            ]
        })
        .collect();
    table(
        &["CREDENTIAL", "PRESENT", "SOURCE", "FINGERPRINT", "PROBLEMS"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::schema::{AgentStatus, CredentialStatus, FeedStatus};

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    fn feed(name: &str, state: &str) -> FeedStatus {
        FeedStatus {
            name: name.into(),
            broker: "websocket".into(),
            state: state.into(),
            since: "2026-11-22T09:00:01Z".into(),
            last_message_age_ms: Some(120),
            messages: 1234,
            reconnects: 3,
            restarts: 1,
            consecutive_failures: 0,
            last_error: None,
            last_error_at: None,
            retry_in_ms: None,
            info: Default::default(),
            credentials_checked: None,
            optional: false,
            market: None,
            flapping: None,
            ..Default::default()
        }
    }

    fn doc() -> StatusDoc {
        StatusDoc {
            schema: 1,
            agent: AgentStatus {
                pid: 4242,
                version: "0.1.0".into(),
                started_at: "2026-11-22T09:00:00Z".into(),
                updated_at: "2026-11-22T11:03:00Z".into(),
                summary: "1/2 feeds live; books: backoff (retry in 8s) (auth rejected)".into(),
                config: "/etc/brokerguard/brokerguard.toml".into(),
                clock: None,
                reload: None,
                ha: None,
            },
            feeds: vec![feed("signals", "live"), {
                let mut f = feed("books", "backoff");
                f.broker = "exch".into();
                f.last_message_age_ms = None;
                f.retry_in_ms = Some(8000);
                f.last_error = Some(format!("auth rejected: {}", "x".repeat(100)));
                f
            }],
            credentials: vec![CredentialStatus {
                name: "SIGNALS_TOKEN".into(),
                present: true,
                source: Some("file:/etc/brokerguard/credentials.env".into()),
                fingerprint: Some("sha256:1f2e3d4c".into()),
                problems: vec![],
                optional: false,
            }],
        }
    }

    #[test]
    fn parses_what_timefmt_writes() {
        for ms in [0u64, 951_782_400_000, 1_795_338_001_123, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_rfc3339(&timefmt::rfc3339_millis(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-22T09:00:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_338_001))
        );
        assert_eq!(parse_rfc3339("2026-11-22 09:00:01Z"), None);
        assert_eq!(parse_rfc3339("2026-13-22T09:00:01Z"), None);
        assert_eq!(parse_rfc3339("2026-11-22T09:00:01.Z"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn a_rejected_reload_is_shown_with_its_problems_and_an_applied_one_is_not() {
        let now = at("2026-11-22T11:03:01Z");
        let mut d = doc();
        d.agent.reload = Some(Box::new(ReloadStatus {
            generation: 2,
            result: ReloadStatus::REJECTED.into(),
            at: "2026-11-22T11:02:01Z".into(),
            problems: vec!["/etc/b.toml:12:1: stal_after: unknown key".into()],
        }));
        let text = render_table(&d, now);
        assert!(
            text.contains(
                "reload   2 rejected 1m0s ago: the agent keeps running the configuration it had\n  /etc/b.toml:12:1: stal_after: unknown key\n"
            ),
            "{text}"
        );
        // The running feeds are still there, under it.
        assert!(text.contains("signals"), "{text}");
        d.agent.reload.as_mut().unwrap().result = ReloadStatus::APPLIED.into();
        assert!(!render_table(&d, now).contains("reload "), "applied");
    }

    #[test]
    fn table_shows_feeds_ages_and_errors() {
        let text = render_table(&doc(), at("2026-11-22T11:03:01Z"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "agent    pid 4242, version 0.1.0, up 2h3m (since 2026-11-22T09:00:00Z)"
        );
        assert_eq!(
            lines[1],
            "summary  1/2 feeds live; books: backoff (retry in 8s) (auth rejected)"
        );
        assert_eq!(lines[3], "updated  1s ago");
        assert!(!text.contains("WARNING"), "{text}");
        let header = lines.iter().position(|l| l.starts_with("FEED")).unwrap();
        let cols: Vec<&str> = lines[header].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "FEED", "BROKER", "STATE", "FOR", "LAST", "MSG", "MSGS", "RECONN", "LAST", "ERROR"
            ]
        );
        assert_eq!(
            lines[header + 1].split_whitespace().collect::<Vec<_>>(),
            [
                "signals",
                "websocket",
                "live",
                "2h3m",
                "120ms",
                "1234",
                "3",
                "-"
            ]
        );
        let books = lines[header + 2];
        assert!(
            books.starts_with("books    exch       backoff (retry in 8s)  2h3m  -"),
            "{books}"
        );
        assert!(
            books.ends_with('…') && books.contains("auth rejected: xxx"),
            "{books}"
        );
        // Columns line up: LAST ERROR starts at the same offset in each row.
        let col = lines[header].find("LAST ERROR").unwrap();
        assert_eq!(&lines[header + 1][col..], "-");
        assert!(books[col..].starts_with("auth rejected: "), "{books}");
        assert_eq!(books[col..].chars().count(), ERROR_WIDTH);
        let full = doc().feeds[1].last_error.clone().unwrap();
        assert!(
            text.contains(&format!("  books: {full}")),
            "the whole error follows the table:\n{text}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "SIGNALS_TOKEN  yes      file:/etc/brokerguard/credentials.env  sha256:1f2e3d4c"
            )),
            "{text}"
        );
    }

    #[test]
    fn table_shows_session_notes_and_optional_credentials() {
        let mut d = doc();
        d.feeds[1].info.insert("key_set".into(), "2".into());
        d.feeds[1].info.insert("client_id".into(), "7".into());
        d.credentials.push(CredentialStatus {
            name: "FALLBACK_KEY_2".into(),
            present: false,
            source: None,
            fingerprint: None,
            problems: vec!["not set (optional)".into()],
            optional: true,
        });
        let text = render_table(&d, at("2026-11-22T11:03:01Z"));
        assert!(
            text.lines()
                .any(|l| l.starts_with("books ") && l.contains("client id 7; key set 2")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("FALLBACK_KEY_2  no ") && !l.contains("MISSING")),
            "{text}"
        );
    }

    #[test]
    fn session_facts_get_a_row_per_feed_that_has_any() {
        let text = render_table(&doc(), at("2026-11-22T11:03:01Z"));
        assert!(!text.contains("SESSION"), "{text}");
        let mut d = doc();
        d.feeds[1].market = Some("closed".into());
        d.feeds[1]
            .info
            .insert("token_expires".into(), "2026-11-23T00:30:00Z".into());
        d.feeds[1].info.insert("key_set".into(), "primary".into());
        let text = render_table(&d, at("2026-11-22T11:03:01Z"));
        let lines: Vec<&str> = text.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("FEED   MARKET"))
            .unwrap();
        assert_eq!(lines[header], "FEED   MARKET  SESSION");
        assert_eq!(
            lines[header + 1],
            "books  closed  key set primary; token expires 2026-11-23T00:30:00Z"
        );
        assert!(!lines[header + 2].starts_with("signals"), "{text}");
    }

    /// A parked feed's time is the countdown to its next retry: STATE says
    /// so, and FOR keeps how long it has been parked.
    #[test]
    fn parked_state_shows_the_retry_countdown_as_such() {
        let mut d = doc();
        d.feeds[1].state = "parked".into();
        d.feeds[1].since = "2026-11-22T11:02:57Z".into();
        d.feeds[1].retry_in_ms = Some(896_000);
        let text = render_table(&d, at("2026-11-22T11:03:01Z"));
        let row = text.lines().find(|l| l.starts_with("books ")).unwrap();
        assert!(
            row.starts_with("books    exch       parked (retry in 14m56s)  4s    -"),
            "{text}"
        );
    }

    /// A feed live again on a connection made after its last error shows
    /// the error as past, with its age, and not its remedy in full; one
    /// still failing (or flapping, or with no time on the error) shows it
    /// as current.
    #[test]
    fn a_recovered_feed_shows_its_last_error_as_past() {
        let remedy =
            "access token rejected (expired?) — run: sudo brokerguard exch-login --account main";
        let mut d = doc();
        d.feeds[1].state = "live".into();
        d.feeds[1].retry_in_ms = None;
        d.feeds[1].last_error = Some(remedy.into());
        d.feeds[1].last_error_at = Some("2026-11-22T10:58:00Z".into());
        d.feeds[1].since = "2026-11-22T11:00:00Z".into();
        let text = render_table(&d, at("2026-11-22T11:03:00Z"));
        let row = text.lines().find(|l| l.starts_with("books ")).unwrap();
        assert!(
            row.ends_with("earlier (5m0s ago): access token rejected (expired?) — run:…"),
            "{text}"
        );
        assert!(!text.contains("  books: "), "no current advice:\n{text}");
        // An error at the very moment it went live (same second) is past.
        d.feeds[1].last_error_at = Some("2026-11-22T11:00:00Z".into());
        let text = render_table(&d, at("2026-11-22T11:03:00Z"));
        assert!(text.contains("earlier (3m0s ago): access"), "{text}");

        let current = |f: &FeedStatus| {
            let mut d = doc();
            d.feeds[1] = f.clone();
            let text = render_table(&d, at("2026-11-22T11:03:00Z"));
            assert!(!text.contains("earlier"), "{text}");
            assert!(text.contains(&format!("  books: {remedy}")), "{text}");
        };
        let recovered = d.feeds[1].clone();
        for change in [
            |f: &mut FeedStatus| f.state = "parked".into(),
            |f: &mut FeedStatus| f.flapping = Some(3),
            |f: &mut FeedStatus| f.last_error_at = None,
            |f: &mut FeedStatus| f.last_error_at = Some("2026-11-22T11:00:01Z".into()),
        ] {
            let mut f = recovered.clone();
            change(&mut f);
            current(&f);
        }
    }

    #[test]
    fn a_feed_in_an_outage_shows_the_records_start_not_its_states() {
        let mut d = doc();
        assert!(!render_table(&d, at("2026-11-22T11:03:00Z")).contains(" down "));
        d.feeds[1].state = "subscribed".into();
        d.feeds[1].outage = Some(crate::status::schema::OutageStatus {
            since: "2026-11-22T11:02:00.250Z".into(),
            until: None,
            down_ms: 60_000,
            connections: 3,
            errors: 2,
            cause: Some("no data for 2s (stall_after 2s)".into()),
            last_error: None,
        });
        let text = render_table(&d, at("2026-11-22T11:03:00Z"));
        assert!(
            text.contains(
                "books down 1m0s since 2026-11-22T11:02:00.250Z (3 connections, 2 errors; cause: no data for 2s (stall_after 2s))"
            ),
            "{text}"
        );
    }

    #[test]
    fn frozen_agent_is_flagged() {
        let text = render_table(&doc(), at("2026-11-22T11:04:00Z"));
        assert!(
            text.contains(
                "STALE    status.json not rewritten for 1m0s: what follows is as of then"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_feeds_and_no_credentials() {
        let mut d = doc();
        d.feeds.clear();
        d.credentials.clear();
        let text = render_table(&d, at("2026-11-22T11:03:01Z"));
        assert!(text.contains("no feeds configured"));
        assert!(!text.contains("CREDENTIAL"));
    }

    #[test]
    fn health_needs_every_feed_live() {
        let mut d = doc();
        assert_eq!(health(&d), Health::Degraded);
        d.feeds.truncate(1);
        assert_eq!(health(&d), Health::AllLive);
        d.feeds.clear();
        assert_eq!(health(&d), Health::AllLive);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("a\nb", 10), "a b");
    }

    #[test]
    fn a_fifo_a_device_or_a_link_is_refused_at_once_not_waited_on() {
        use crate::os::fs::tests::Scratch;
        use std::time::Instant;
        let run = Scratch::new("status-fifo");
        let status = run.0.join(STATUS_FILE_NAME);
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&status)
                .status()
                .unwrap()
                .success()
        );
        std::os::unix::fs::symlink("/dev/zero", run.0.join(lock::PIDFILE_NAME)).unwrap();
        let observe_soon = |dir: std::path::PathBuf| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(observe(&dir)));
            rx.recv_timeout(Duration::from_secs(10))
                .expect("status hung on a FIFO or a device")
        };
        let started = Instant::now();
        match observe_soon(run.0.clone()) {
            Observed::Unreadable(why) => assert!(why.contains("is a symlink"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Without the pidfile: the FIFO itself is named and refused.
        std::fs::remove_file(run.0.join(lock::PIDFILE_NAME)).unwrap();
        assert_eq!(
            read_status_file(&run.0).unwrap_err().to_string(),
            format!(
                "{} is a FIFO, not a regular file; remove it",
                status.display()
            )
        );
        std::fs::remove_file(&status).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &status).unwrap();
        assert!(
            read_status_file(&run.0)
                .unwrap_err()
                .to_string()
                .contains("is a symlink")
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
