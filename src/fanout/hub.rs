//! The shared table of subscribers, their queues and the per-feed sequence
//! numbers, and the one rule that matters: a publisher never waits for a
//! subscriber. A feed thread appends its line to each interested
//! subscriber's queue under a short lock and, when a queue goes from empty
//! to not, wakes the I/O thread (one eventfd write, coalesced); the I/O
//! thread alone touches sockets. A queue over its line or byte bound drops
//! that subscriber.
//!
//! Feeds are numbered once (configured ones at start and reload, any other
//! on its first line), and a subscriber's filter is a bit set of those
//! numbers: publishing costs one hash lookup for the feed and one bit test
//! per subscriber, however many names anyone asked for.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::FanoutStats;
use super::line;
use crate::os::poll::EventFd;

/// One serialised line, shared by every queue it is put on.
pub type Line = std::sync::Arc<[u8]>;

/// A queue's capacity above which an emptied queue gives its memory back.
const KEEP_CAPACITY: usize = 64;
/// Unknown names quoted back in an error line; the rest are counted.
const UNKNOWN_NAMES_SHOWN: usize = 5;

/// A subscriber's number and, when known, its pid: what log lines name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriberId {
    pub id: u64,
    pub pid: Option<i32>,
}

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "subscriber {} (pid {pid})", self.id),
            None => write!(f, "subscriber {}", self.id),
        }
    }
}

/// The bounds of one subscriber's queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    pub lines: usize,
    pub bytes: usize,
}

/// A set of feed numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FeedSet(Vec<u64>);

impl FeedSet {
    fn insert(&mut self, index: usize) {
        let word = index / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (index % 64);
    }

    fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }
}

struct FeedSlot {
    index: usize,
    seq: u64,
    /// Named in the configuration: a subscriber may ask for it.
    configured: bool,
}

/// The part of a subscriber's queue the I/O thread has taken to write, and
/// what it has written since it last gave the hub an account. Lines here
/// still count against the subscriber's bounds until written.
#[derive(Default)]
pub struct Outbox {
    pub lines: VecDeque<Line>,
    pub written_lines: usize,
    pub written_bytes: usize,
}

struct Subscriber {
    who: SubscriberId,
    /// `None` until the subscriber sends a subscribe request: all feeds.
    filter: Option<FeedSet>,
    queue: VecDeque<Line>,
    /// Lines and bytes queued here or in the I/O thread's outbox.
    queued_lines: usize,
    queued_bytes: usize,
    /// Went over a bound: nothing more is queued, the I/O thread closes it.
    overflowed: bool,
}

impl Subscriber {
    fn wants(&self, index: usize) -> bool {
        !self.overflowed && self.filter.as_ref().is_none_or(|f| f.contains(index))
    }
}

#[derive(Default)]
struct Table {
    feeds: HashMap<String, FeedSlot>,
    /// Sorted: what an unknown-name error lists.
    configured: Vec<String>,
    /// Indexed by the I/O thread's slot number; `None` is a free slot.
    subscribers: Vec<Option<Subscriber>>,
    closed: bool,
}

impl Table {
    fn slot(&mut self, feed: &str) -> &mut FeedSlot {
        if !self.feeds.contains_key(feed) {
            let index = self.feeds.len();
            self.feeds.insert(
                feed.to_owned(),
                FeedSlot {
                    index,
                    seq: 0,
                    configured: false,
                },
            );
        }
        self.feeds.get_mut(feed).expect("inserted above")
    }

    fn any_wants(&self, index: usize) -> bool {
        self.subscribers.iter().flatten().any(|s| s.wants(index))
    }
}

/// What a subscriber's request led to.
pub enum Answer {
    /// Queued (a confirmation or an error line).
    Queued,
    /// The subscriber is gone or over its bounds.
    Gone,
}

pub struct Hub {
    table: Mutex<Table>,
    limits: QueueLimits,
    /// The I/O thread's wake-up: written when a queue goes non-empty.
    wake: EventFd,
    /// True while the I/O thread is awake or a wake is on its way, so a
    /// burst of lines costs at most one eventfd write, and lines queued
    /// while the I/O thread works cost none.
    wake_pending: AtomicBool,
    /// [`line::max_request_len`] of the configured feeds.
    request_cap: AtomicUsize,
    subscriber_count: AtomicUsize,
    dropped_slow: AtomicU64,
    refused: AtomicU64,
    lines_published: AtomicU64,
}

impl Hub {
    pub fn new(limits: QueueLimits, feeds: &[String], wake: EventFd) -> Hub {
        let hub = Hub {
            table: Mutex::new(Table::default()),
            limits: QueueLimits {
                lines: limits.lines.max(1),
                bytes: limits.bytes.max(1),
            },
            wake,
            wake_pending: AtomicBool::new(false),
            request_cap: AtomicUsize::new(line::MIN_REQUEST_LEN),
            subscriber_count: AtomicUsize::new(0),
            dropped_slow: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            lines_published: AtomicU64::new(0),
        };
        hub.set_feeds(feeds);
        hub
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock cannot leave the table half
        // updated in a way that matters more than losing the fan-out.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }

    /// Wakes the I/O thread unless it is awake already or a wake is on
    /// its way.
    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.wake.signal();
        }
    }

    /// The I/O thread is about to take the queues and then sleep: a line
    /// queued after this wakes it. Called before it takes the queues, so a
    /// line is either taken or wakes it.
    pub fn io_idle(&self) {
        self.wake_pending.store(false, Ordering::SeqCst);
    }

    /// The I/O thread is awake (and will take the queues before it sleeps
    /// again): publishers need not wake it. Resets the eventfd if `woken`.
    pub fn io_busy(&self, woken: bool) {
        if woken {
            self.wake.drain();
        }
        self.wake_pending.store(true, Ordering::SeqCst);
    }

    /// The feeds a subscriber may ask for from now on (start and reload).
    pub fn set_feeds(&self, feeds: &[String]) {
        let mut table = self.lock();
        for slot in table.feeds.values_mut() {
            slot.configured = false;
        }
        for feed in feeds {
            table.slot(feed).configured = true;
        }
        let mut configured = feeds.to_vec();
        configured.sort();
        configured.dedup();
        self.request_cap
            .store(line::max_request_len(&configured), Ordering::Relaxed);
        table.configured = configured;
    }

    /// The longest request a subscriber may send now.
    pub fn request_cap(&self) -> usize {
        self.request_cap.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> FanoutStats {
        FanoutStats {
            subscribers: self.subscriber_count.load(Ordering::Relaxed),
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            lines_published: self.lines_published.load(Ordering::Relaxed),
        }
    }

    /// A subscriber the I/O thread dropped because its socket stayed full.
    pub fn count_dropped_slow(&self) {
        self.dropped_slow.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a connection in the I/O thread's `slot`; false once the
    /// hub is closed.
    pub fn add(&self, slot: usize, who: SubscriberId) -> bool {
        let mut table = self.lock();
        if table.closed {
            return false;
        }
        if table.subscribers.len() <= slot {
            table.subscribers.resize_with(slot + 1, || None);
        }
        table.subscribers[slot] = Some(Subscriber {
            who,
            filter: None,
            queue: VecDeque::new(),
            queued_lines: 0,
            queued_bytes: 0,
            overflowed: false,
        });
        self.subscriber_count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Forgets the subscriber in `slot` (the I/O thread closed it).
    pub fn remove(&self, slot: usize) {
        let mut table = self.lock();
        let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if !sub.overflowed {
            self.subscriber_count.fetch_sub(1, Ordering::Relaxed);
        }
        // Give back the table's memory once the crowd has gone.
        while table.subscribers.last().is_some_and(Option::is_none) {
            table.subscribers.pop();
        }
        if table.subscribers.capacity() > 2 * table.subscribers.len() + KEEP_CAPACITY {
            table.subscribers.shrink_to_fit();
        }
    }

    /// A data line: takes the feed's next `seq` (always, so gaps are real
    /// gaps), and serialises only if someone wants the feed.
    pub fn publish_data(&self, feed: &str, make: impl FnOnce(u64) -> Vec<u8>) {
        self.lines_published.fetch_add(1, Ordering::Relaxed);
        let (seq, index) = {
            let mut table = self.lock();
            // One hash lookup for a feed seen before (every line but its
            // first).
            let (seq, index) = match table.feeds.get_mut(feed) {
                Some(slot) => {
                    slot.seq += 1;
                    (slot.seq, slot.index)
                }
                None => {
                    let slot = table.slot(feed);
                    slot.seq += 1;
                    (slot.seq, slot.index)
                }
            };
            if !table.any_wants(index) {
                return;
            }
            (seq, index)
        };
        // Serialised outside the lock so feeds do not wait on each other's
        // formatting. Lines of one feed stay in order because each feed
        // publishes from its own single thread.
        self.offer(index, make(seq).into());
    }

    /// An event line: no `seq`, and nothing at all to do with nobody there.
    pub fn publish_event(&self, feed: &str, make: impl FnOnce() -> Vec<u8>) {
        self.lines_published.fetch_add(1, Ordering::Relaxed);
        if self.subscriber_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let index = {
            let mut table = self.lock();
            let index = table.slot(feed).index;
            if !table.any_wants(index) {
                return;
            }
            index
        };
        self.offer(index, make().into());
    }

    fn offer(&self, index: usize, line: Line) {
        let mut fell_behind = Vec::new();
        let mut wake = false;
        {
            let mut table = self.lock();
            for sub in table.subscribers.iter_mut().flatten() {
                if sub.wants(index) {
                    match self.push(sub, Line::clone(&line)) {
                        Pushed::Queued { first } => wake |= first,
                        Pushed::Overflowed => {
                            wake = true;
                            fell_behind.push((sub.who, sub.queued_lines, sub.queued_bytes));
                        }
                    }
                }
            }
        }
        if wake {
            self.wake();
        }
        for (who, lines, bytes) in fell_behind {
            log::warn!(
                "fan-out: {who} fell behind ({lines} lines, {bytes} bytes queued, unread; the bound is {} lines or {} bytes); disconnected it",
                self.limits.lines,
                self.limits.bytes
            );
        }
    }

    /// Queues `line` for `sub`, or marks it overflowed (and frees its queue)
    /// when the line would take it past a bound. A line larger than the
    /// byte bound still goes to a subscriber with nothing queued.
    fn push(&self, sub: &mut Subscriber, line: Line) -> Pushed {
        let over_lines = sub.queued_lines >= self.limits.lines;
        let over_bytes = sub.queued_bytes > 0 && sub.queued_bytes + line.len() > self.limits.bytes;
        if over_lines || over_bytes {
            sub.overflowed = true;
            sub.queue = VecDeque::new();
            self.subscriber_count.fetch_sub(1, Ordering::Relaxed);
            self.dropped_slow.fetch_add(1, Ordering::Relaxed);
            return Pushed::Overflowed;
        }
        let first = sub.queue.is_empty();
        sub.queued_lines += 1;
        sub.queued_bytes += line.len();
        sub.queue.push_back(line);
        Pushed::Queued { first }
    }

    /// Queues a line for one subscriber only (an error answer).
    pub fn reply(&self, slot: usize, line: Vec<u8>) -> Answer {
        let mut table = self.lock();
        self.reply_locked(&mut table, slot, line.into())
    }

    fn reply_locked(&self, table: &mut Table, slot: usize, line: Line) -> Answer {
        let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::as_mut) else {
            return Answer::Gone;
        };
        if sub.overflowed {
            return Answer::Gone;
        }
        let who = sub.who;
        match self.push(sub, line) {
            Pushed::Queued { first } => {
                if first {
                    self.wake();
                }
                Answer::Queued
            }
            Pushed::Overflowed => {
                self.wake();
                log::warn!(
                    "fan-out: {who} fell behind (its answers went unread past the bound of {} lines or {} bytes); disconnected it",
                    self.limits.lines,
                    self.limits.bytes
                );
                Answer::Gone
            }
        }
    }

    /// Applies a subscribe request, or refuses it whole when it names a
    /// feed that is not configured. The answer goes in the subscriber's own
    /// stream: every line queued after it follows the new set.
    pub fn subscribe(&self, slot: usize, feeds: Vec<String>) -> Answer {
        let mut table = self.lock();
        let mut set = FeedSet::default();
        let mut unknown = Vec::new();
        let mut unknown_count = 0usize;
        for feed in &feeds {
            match table.feeds.get(feed.as_str()) {
                Some(s) if s.configured => set.insert(s.index),
                _ => {
                    unknown_count += 1;
                    if unknown.len() < UNKNOWN_NAMES_SHOWN {
                        unknown.push(feed.as_str());
                    }
                }
            }
        }
        if unknown_count > 0 {
            let msg = unknown_feeds_message(&unknown, unknown_count, &table.configured);
            return self.refuse_locked(&mut table, slot, &msg);
        }
        let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::as_mut) else {
            return Answer::Gone;
        };
        sub.filter = Some(set);
        self.reply_locked(&mut table, slot, line::subscribed_line(&feeds).into())
    }

    /// Refuses a subscribe request (an unknown name, too long): the
    /// subscriber is subscribed to nothing from here on, rather than left
    /// with whatever it had (all feeds, for a new one), and told why.
    pub fn refuse(&self, slot: usize, msg: &str) -> Answer {
        let mut table = self.lock();
        self.refuse_locked(&mut table, slot, msg)
    }

    fn refuse_locked(&self, table: &mut Table, slot: usize, msg: &str) -> Answer {
        if let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::as_mut) {
            sub.filter = Some(FeedSet::default());
        }
        self.reply_locked(table, slot, line::error_line(msg).into())
    }

    /// The I/O thread's turn at the queues: credits what each subscriber's
    /// outbox has written since, moves the queued lines into the outbox,
    /// and returns the slots of subscribers that went over a bound (to be
    /// closed). `outboxes` yields (slot, outbox) for every open connection.
    pub fn hand_over<'a>(
        &self,
        outboxes: impl Iterator<Item = (usize, &'a mut Outbox)>,
    ) -> Vec<usize> {
        let mut overflowed = Vec::new();
        let mut table = self.lock();
        for (slot, outbox) in outboxes {
            let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            sub.queued_lines -= outbox.written_lines.min(sub.queued_lines);
            sub.queued_bytes -= outbox.written_bytes.min(sub.queued_bytes);
            outbox.written_lines = 0;
            outbox.written_bytes = 0;
            if sub.overflowed {
                overflowed.push(slot);
                continue;
            }
            if sub.queue.is_empty() {
                continue;
            }
            if outbox.lines.is_empty() {
                std::mem::swap(&mut outbox.lines, &mut sub.queue);
            } else {
                outbox.lines.append(&mut sub.queue);
            }
            if sub.queue.capacity() > KEEP_CAPACITY {
                sub.queue = VecDeque::new();
            }
        }
        overflowed
    }

    /// Credits what each outbox has written since the last account, so a
    /// subscriber that keeps up is never held to lines it already has.
    pub fn credit<'a>(&self, outboxes: impl Iterator<Item = (usize, &'a mut Outbox)>) {
        let mut table = self.lock();
        for (slot, outbox) in outboxes {
            if outbox.written_lines == 0 {
                continue;
            }
            if let Some(sub) = table.subscribers.get_mut(slot).and_then(Option::as_mut) {
                sub.queued_lines -= outbox.written_lines.min(sub.queued_lines);
                sub.queued_bytes -= outbox.written_bytes.min(sub.queued_bytes);
            }
            outbox.written_lines = 0;
            outbox.written_bytes = 0;
        }
    }

    /// Forgets every subscriber and keeps serving new ones: the I/O thread
    /// crashed (a bug), and their connections were closed on the way out.
    pub fn forget_all(&self) {
        let mut table = self.lock();
        table.subscribers = Vec::new();
        self.subscriber_count.store(0, Ordering::Relaxed);
    }

    /// Refuses new subscribers and forgets the current ones (stop).
    pub fn close(&self) {
        let mut table = self.lock();
        table.closed = true;
        table.subscribers = Vec::new();
        self.subscriber_count.store(0, Ordering::Relaxed);
    }
}

enum Pushed {
    /// `first`: the queue was empty, so the I/O thread needs a wake.
    Queued {
        first: bool,
    },
    Overflowed,
}

/// `unknown feed "x", "y" (and 3 more); the configured feeds are: a, b`.
fn unknown_feeds_message(shown: &[&str], count: usize, configured: &[String]) -> String {
    let quoted: Vec<String> = shown.iter().map(|n| format!("{n:?}")).collect();
    let more = if count > shown.len() {
        format!(" (and {} more)", count - shown.len())
    } else {
        String::new()
    };
    let feeds = if configured.is_empty() {
        "none".to_string()
    } else {
        configured.join(", ")
    };
    format!(
        "unknown feed{} {}{more}; nothing was subscribed; the configured feeds are: {feeds}",
        if count == 1 { "" } else { "s" },
        quoted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(lines: usize, bytes: usize) -> Hub {
        Hub::new(
            QueueLimits { lines, bytes },
            &["a".to_string(), "b".to_string()],
            EventFd::new().unwrap(),
        )
    }

    fn who(id: u64) -> SubscriberId {
        SubscriberId { id, pid: None }
    }

    fn drain(hub: &Hub, slot: usize) -> Vec<String> {
        let mut outbox = Outbox::default();
        hub.hand_over(std::iter::once((slot, &mut outbox)));
        outbox
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn feed_sets_hold_any_index() {
        let mut set = FeedSet::default();
        for i in [0, 63, 64, 500] {
            assert!(!set.contains(i));
            set.insert(i);
            assert!(set.contains(i));
        }
        assert!(!set.contains(1) && !set.contains(65) && !set.contains(10_000));
    }

    #[test]
    fn an_unknown_name_refuses_the_whole_request() {
        let hub = hub(16, 1 << 20);
        assert!(hub.add(0, who(1)));
        assert!(matches!(
            hub.subscribe(0, vec!["a".into(), "nope".into()]),
            Answer::Queued
        ));
        let got = drain(&hub, 0);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("unknown feed \\\"nope\\\""), "{}", got[0]);
        assert!(got[0].contains("configured feeds are: a, b"), "{}", got[0]);
        // Subscribed to nothing now, not to "a", nor to everything.
        hub.publish_data("a", |seq| format!("a{seq}\n").into_bytes());
        hub.publish_data("b", |seq| format!("b{seq}\n").into_bytes());
        assert!(drain(&hub, 0).is_empty());
        hub.subscribe(0, vec!["b".into()]);
        hub.publish_data("b", |seq| format!("b{seq}\n").into_bytes());
        assert_eq!(drain(&hub, 0), ["{\"subscribed\":[\"b\"]}\n", "b2\n"]);
    }

    #[test]
    fn many_unknown_names_are_counted_not_echoed() {
        let msg = unknown_feeds_message(&["x1", "x2"], 10_000, &["a".into()]);
        assert_eq!(
            msg,
            "unknown feeds \"x1\", \"x2\" (and 9998 more); nothing was subscribed; the configured feeds are: a"
        );
    }

    #[test]
    fn a_queue_past_its_byte_bound_drops_the_subscriber() {
        let hub = hub(1000, 100);
        assert!(hub.add(0, who(1)));
        assert!(hub.add(1, who(2)));
        hub.subscribe(1, vec!["b".into()]);
        drain(&hub, 1);
        for _ in 0..3 {
            hub.publish_data("a", |_| vec![b'x'; 40]);
        }
        assert_eq!(hub.stats().dropped_slow, 1);
        assert_eq!(hub.stats().subscribers, 1);
        let mut outbox = Outbox::default();
        assert_eq!(hub.hand_over(std::iter::once((0, &mut outbox))), [0]);
        assert!(outbox.lines.is_empty());
    }

    #[test]
    fn written_lines_are_credited_back() {
        let hub = hub(2, 1 << 20);
        assert!(hub.add(0, who(1)));
        let mut outbox = Outbox::default();
        for round in 0..5 {
            hub.publish_data("a", |_| b"l\n".to_vec());
            hub.publish_data("a", |_| b"l\n".to_vec());
            assert!(hub.hand_over(std::iter::once((0, &mut outbox))).is_empty());
            assert_eq!(outbox.lines.len(), 2, "round {round}");
            outbox.written_lines = outbox.lines.len();
            outbox.written_bytes = outbox.lines.iter().map(|l| l.len()).sum();
            outbox.lines.clear();
            hub.credit(std::iter::once((0, &mut outbox)));
        }
        assert_eq!(hub.stats().dropped_slow, 0);
    }
}
