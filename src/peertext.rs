//! Text that a peer (a broker, a signal server) chose, on its way to a log
//! line, `status.json` or the operator page: one sanitiser and one rate
//! limiter for all of it.
//!
//! A peer decides what it sends. Without this, an account list or an error
//! text of a megabyte lands in status.json, a control character rewrites
//! the operator's terminal, and a peer that sends nonsense a thousand times
//! a second fills the journal until journald's own rate limit drops lines —
//! the real alerts among them. So every peer-driven string is cleaned and
//! capped ([`sanitize`]), and every peer-driven warning of a feed goes
//! through one [`Limiter`] (a feed thread is one feed, so the limiter lives
//! in the thread: [`log_peer`]).

use crate::clock::Mono;
use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// The longest peer text kept, in bytes: enough for any broker's error
/// message or account list, small enough for a status line.
pub const MAX_PEER_TEXT: usize = 512;

/// `text` with control characters replaced by `?` and cut to `max` bytes
/// at a character boundary (with how much was cut). Borrowed when it was
/// already clean.
pub fn sanitize(text: &str, max: usize) -> Cow<'_, str> {
    let clean = !text.chars().any(char::is_control);
    if clean && text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max) + 24);
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            out.push_str(&format!("… ({} bytes in all)", text.len()));
            return Cow::Owned(out);
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    Cow::Owned(out)
}

/// A peer's text for one field of a message (an error's reason, an
/// account name, a quoted value): cleaned, trimmed and cut at 200
/// characters.
pub fn short(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out.trim().to_string()
}

/// How many peer-driven warnings a feed may log per window, and the window.
pub const BURST: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);

/// What to do with one warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` warnings were dropped since the last one logged.
    Log { suppressed: u64 },
    /// Drop it (counted; the next logged line says how many).
    Drop,
}

/// At most [`BURST`] lines per [`WINDOW`]; pure, time comes in.
#[derive(Clone, Debug, Default)]
pub struct Limiter {
    window_start: Option<Mono>,
    in_window: u32,
    suppressed: u64,
}

impl Limiter {
    pub fn allow(&mut self, now: Mono) -> Verdict {
        if self
            .window_start
            .is_none_or(|start| now.since(start) >= WINDOW)
        {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= BURST {
            self.suppressed += 1;
            return Verdict::Drop;
        }
        self.in_window += 1;
        let suppressed = std::mem::take(&mut self.suppressed);
        Verdict::Log { suppressed }
    }
}

thread_local! {
    static LIMITER: RefCell<(Instant, Limiter)> = RefCell::new((Instant::now(), Limiter::default()));
}

/// Logs a peer-driven line of this thread's feed, sanitised and limited.
/// Debug lines pass unlimited (they are off in production); every other
/// level shares the feed's limiter. Alerts never come this way: they have
/// their own deduplication (`alert_repeat`).
pub fn log_peer(level: log::Level, message: &str) {
    let message = sanitize(message, 4 * MAX_PEER_TEXT);
    if matches!(level, log::Level::Debug | log::Level::Trace) {
        log::log!(level, "{message}");
        return;
    }
    let verdict = LIMITER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let now = Mono(cell.0.elapsed());
        cell.1.allow(now)
    });
    match verdict {
        Verdict::Log { suppressed: 0 } => log::log!(level, "{message}"),
        Verdict::Log { suppressed } => log::log!(
            level,
            "{message} ({suppressed} more such lines from the peer were not logged in the last minute)"
        ),
        Verdict::Drop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_short_text_is_borrowed() {
        assert!(matches!(sanitize("DU123,DU456", 64), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_become_question_marks() {
        assert_eq!(sanitize("a\x1b[2Jb\nc\0", 64), "a?[2Jb?c?");
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_and_says_its_length() {
        let long = "é".repeat(1000);
        let out = sanitize(&long, 11);
        assert!(out.starts_with("ééééé…"), "{out}");
        assert!(out.ends_with("(2000 bytes in all)"), "{out}");
        // A megabyte of NULs becomes one short line.
        let nul = "\0".repeat(1 << 20);
        assert!(sanitize(&nul, MAX_PEER_TEXT).len() < MAX_PEER_TEXT + 32);
    }

    #[test]
    fn the_limiter_lets_a_burst_through_then_counts_what_it_drops() {
        let mut l = Limiter::default();
        let t0 = Mono(Duration::from_secs(5));
        for _ in 0..BURST {
            assert_eq!(l.allow(t0), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..990 {
            assert_eq!(l.allow(t0.plus(Duration::from_secs(1))), Verdict::Drop);
        }
        assert_eq!(
            l.allow(t0.plus(WINDOW)),
            Verdict::Log { suppressed: 990 },
            "the first line of the next window says how many were dropped"
        );
        assert_eq!(l.allow(t0.plus(WINDOW)), Verdict::Log { suppressed: 0 });
    }
}
