//! Logging for a terminal or for journald (priority prefixes, no timestamps).
//!
//! When stderr is the journal (`$JOURNAL_STREAM` is `<dev>:<ino>` of our
//! stderr), each line is `<N>message` with its syslog priority and no
//! timestamp (journald stamps it). Otherwise each line is
//! `2026-11-23T18:00:00.123Z LEVEL message` in UTC.
//!
//! Error level is reserved for alerts: lines starting with `alert=<kind>`
//! followed by `key=value` fields (docs/ARCHITECTURE.md, "Contracts": alerts), so that
//! `journalctl -u brokerguard -p err` shows the alerts and nothing else.
//! Nothing else may log at error level; other failures use `warn!`. To keep
//! that promise even for other crates' logs and our own slips, an error
//! record that did not come through [`crate::alert::Alert::emit`] (its own
//! log target) is printed at warning level. Recoveries (`alert=feed_recovered`, `alert=credential_restored`)
//! use [`notice!`](crate::notice): priority 5, `NOTICE` on a terminal.
//!
//! A start that fails (bad configuration, lock held, OS refusal, required
//! preflight failed) ends with `alert=start_failed` lines printed by
//! [`print_now`], which the logger's filters cannot hold back (the logger
//! may not be set up yet, or be set to `off`): an operator looking at
//! `journalctl -u brokerguard -p err` after a failed start sees why.

use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter};

#[doc(hidden)]
pub use log as __log;

/// The `log` target that marks a record as a notice (see [`notice!`](crate::notice)).
pub const NOTICE_TARGET: &str = "brokerguard::notice";

/// Logs at syslog priority notice (5): between info and warning. Used for
/// recoveries, e.g. `brokerguard::notice!("alert=feed_recovered feed={name} down_ms={ms}")`.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)+) => {
        $crate::logging::__log::info!(target: $crate::logging::NOTICE_TARGET, $($arg)+)
    };
}

/// Where log lines go, which decides their shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// stderr is connected to journald: `<N>` prefixes, no timestamp.
    Journal,
    /// Anything else: UTC timestamp and level name.
    Terminal,
}

/// Installs the logger on stderr. `$RUST_LOG`, when set, overrides `level`
/// (env_logger syntax, e.g. `debug` or `brokerguard=debug,tungstenite=warn`).
/// Notices pass at any level but `off` unless `$RUST_LOG` says otherwise.
/// A second call does nothing.
pub fn init(level: LevelFilter) {
    let mode = stderr_mode();
    let mut builder = env_logger::Builder::new();
    builder
        .target(env_logger::Target::Stderr)
        .filter_level(level);
    if level > LevelFilter::Off {
        // Recoveries pair with alerts: show them whenever alerts are shown.
        builder.filter_module(NOTICE_TARGET, LevelFilter::Info);
    }
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    // tungstenite logs every frame and the upgrade request at trace, and
    // URIs at debug: auth messages, signed headers and URL tokens. Secrets
    // never reach a log line, so it stops at info whatever `log_level` or
    // `$RUST_LOG` say (set last, so no directive can lift it).
    builder.filter_module("tungstenite", level.min(LevelFilter::Info));
    // ureq logs raw requests (API keys, signatures, form bodies) at trace
    // and paths with their query strings at debug: the same cap.
    builder.filter_module("ureq", level.min(LevelFilter::Info));
    builder.filter_module("ureq_proto", level.min(LevelFilter::Info));
    builder.format(move |buf, record| {
        let origin = Origin::of(record.target());
        let msg = record.args().to_string();
        writeln!(
            buf,
            "{}",
            format_line(mode, record.level(), origin, &msg, SystemTime::now())
        )
    });
    let _ = builder.try_init();
}

/// What stderr is connected to now.
pub fn stderr_mode() -> Mode {
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    match stderr_dev_ino() {
        Some(dev_ino) if is_journal(journal_stream.as_deref(), dev_ino) => Mode::Journal,
        _ => Mode::Terminal,
    }
}

/// Writes one record to stderr at once, in the shape the logger would give
/// it, whatever the log filters say and whether or not the logger is set
/// up. For the last words of a failed start.
pub fn print_now(level: Level, origin: Origin, msg: &str) {
    let line = format_line(stderr_mode(), level, origin, msg, SystemTime::now());
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// (st_dev, st_ino) of file descriptor 2, if it is open.
fn stderr_dev_ino() -> Option<(u64, u64)> {
    crate::os::fs::stderr_identity()
}

/// Whether `$JOURNAL_STREAM` (`"<dev>:<ino>"`, decimal, as systemd writes it)
/// names the file stderr is, i.e. stderr was not redirected since systemd
/// connected it to the journal.
pub fn is_journal(journal_stream: Option<&str>, stderr_dev_ino: (u64, u64)) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|s| s.trim().split_once(':')) else {
        return false;
    };
    match (dev.parse::<u64>(), ino.parse::<u64>()) {
        (Ok(dev), Ok(ino)) => (dev, ino) == stderr_dev_ino,
        _ => false,
    }
}

/// Where a record comes from, which can change how it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Any ordinary log record.
    Plain,
    /// A notice (priority 5), see [`notice!`](crate::notice).
    Notice,
    /// An alert raised through [`crate::alert::Alert::emit`].
    Alert,
}

impl Origin {
    pub fn of(target: &str) -> Origin {
        if target == NOTICE_TARGET {
            Origin::Notice
        } else if target == crate::alert::ALERT_TARGET {
            Origin::Alert
        } else {
            Origin::Plain
        }
    }
}

/// The level a record is printed at: error only for alerts (module doc),
/// which come through [`crate::alert::Alert::emit`] on their own target.
fn shown_level(level: Level, is_alert: bool) -> Level {
    if level == Level::Error && !is_alert {
        Level::Warn
    } else {
        level
    }
}

/// syslog priority: err 3, warning 4, notice 5, info 6, debug 7.
fn priority(level: Level, origin: Origin) -> u8 {
    let is_notice = origin == Origin::Notice;
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info if is_notice => 5,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

fn label(level: Level, origin: Origin) -> &'static str {
    let is_notice = origin == Origin::Notice;
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info if is_notice => "NOTICE",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// One log record as printed, without the final newline. In journal mode
/// every line of a multi-line message carries the prefix, since journald
/// reads each line as its own entry.
pub fn format_line(mode: Mode, level: Level, origin: Origin, msg: &str, now: SystemTime) -> String {
    let level = shown_level(level, origin == Origin::Alert);
    match mode {
        Mode::Journal => {
            let prefix = format!("<{}>", priority(level, origin));
            msg.split('\n')
                .map(|line| format!("{prefix}{line}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Mode::Terminal => {
            format!(
                "{} {} {msg}",
                crate::timefmt::rfc3339_millis(now),
                label(level, origin)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_338_001_123) // 2026-11-22T09:00:01.123Z
    }

    #[test]
    fn journal_lines_carry_priorities() {
        let j = |level, origin, msg| format_line(Mode::Journal, level, origin, msg, t());
        assert_eq!(
            j(Level::Error, Origin::Alert, "alert=feed_down feed=books"),
            "<3>alert=feed_down feed=books"
        );
        assert_eq!(
            j(Level::Warn, Origin::Plain, "reload failed"),
            "<4>reload failed"
        );
        assert_eq!(
            j(
                Level::Info,
                Origin::Notice,
                "alert=feed_recovered feed=books"
            ),
            "<5>alert=feed_recovered feed=books"
        );
        assert_eq!(j(Level::Info, Origin::Plain, "started"), "<6>started");
        assert_eq!(j(Level::Debug, Origin::Plain, "frame"), "<7>frame");
        assert_eq!(j(Level::Trace, Origin::Plain, "bytes"), "<7>bytes");
    }

    #[test]
    fn journal_prefixes_every_line() {
        assert_eq!(
            format_line(Mode::Journal, Level::Warn, Origin::Plain, "a\nb", t()),
            "<4>a\n<4>b"
        );
    }

    #[test]
    fn terminal_lines_are_timestamped_utc() {
        let l = |level, origin, msg| format_line(Mode::Terminal, level, origin, msg, t());
        assert_eq!(
            l(Level::Error, Origin::Alert, "alert=credential_lost name=X"),
            "2026-11-22T09:00:01.123Z ERROR alert=credential_lost name=X"
        );
        assert_eq!(
            l(
                Level::Info,
                Origin::Notice,
                "alert=credential_restored name=X"
            ),
            "2026-11-22T09:00:01.123Z NOTICE alert=credential_restored name=X"
        );
        assert_eq!(
            l(Level::Info, Origin::Plain, "ok"),
            "2026-11-22T09:00:01.123Z INFO ok"
        );
        assert_eq!(
            l(Level::Warn, Origin::Plain, "hm"),
            "2026-11-22T09:00:01.123Z WARN hm"
        );
        assert_eq!(
            l(Level::Debug, Origin::Plain, "d"),
            "2026-11-22T09:00:01.123Z DEBUG d"
        );
    }

    #[test]
    fn error_level_is_only_for_alerts() {
        assert_eq!(
            format_line(
                Mode::Journal,
                Level::Error,
                Origin::Plain,
                "tls failed",
                t()
            ),
            "<4>tls failed"
        );
        assert_eq!(
            format_line(
                Mode::Terminal,
                Level::Error,
                Origin::Plain,
                "tls failed",
                t()
            ),
            "2026-11-22T09:00:01.123Z WARN tls failed"
        );
    }

    #[test]
    fn journal_detection_compares_dev_and_inode() {
        assert!(is_journal(Some("8:12345"), (8, 12345)));
        assert!(!is_journal(Some("8:12345"), (8, 12346)));
        assert!(!is_journal(Some("9:12345"), (8, 12345)));
        assert!(!is_journal(None, (8, 12345)));
        assert!(!is_journal(Some(""), (8, 12345)));
        assert!(!is_journal(Some("8"), (8, 12345)));
        assert!(!is_journal(Some("x:y"), (8, 12345)));
    }
}
