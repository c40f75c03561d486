//! The shared table of subscribers and per-feed sequence numbers, and the
//! one rule that matters: a publisher never waits for a subscriber. Lines
//! are offered with `try_send` under a short lock; a full queue disconnects
//! that subscriber.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};

use super::FanoutStats;

/// One serialised line, shared by every queue it is put on.
pub type Line = Arc<[u8]>;

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

struct Subscriber {
    who: SubscriberId,
    /// `None` until the subscriber sends a subscribe request: all feeds.
    feeds: Option<Vec<String>>,
    queue: SyncSender<Line>,
    /// A handle used only to shut the connection down, which wakes both of
    /// the subscriber's threads.
    stream: UnixStream,
}

impl Subscriber {
    fn wants(&self, feed: &str) -> bool {
        self.feeds
            .as_ref()
            .is_none_or(|feeds| feeds.iter().any(|f| f == feed))
    }
}

#[derive(Default)]
struct Table {
    subscribers: Vec<Subscriber>,
    seqs: HashMap<String, u64>,
    closed: bool,
}

impl Table {
    fn next_seq(&mut self, feed: &str) -> u64 {
        if let Some(seq) = self.seqs.get_mut(feed) {
            *seq += 1;
            *seq
        } else {
            self.seqs.insert(feed.to_owned(), 1);
            1
        }
    }

    fn any_wants(&self, feed: &str) -> bool {
        self.subscribers.iter().any(|s| s.wants(feed))
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.subscribers.iter().position(|s| s.who.id == id)
    }
}

/// Why a subscriber left the table.
enum Removal {
    /// Its queue was full when a line was offered.
    QueueFull,
    /// Writing to it failed (a write timeout counts as falling behind).
    WriteFailed(io::Error),
    /// It closed its socket.
    Closed,
    /// Reading its requests failed.
    ReadFailed(io::Error),
}

pub struct Hub {
    table: Mutex<Table>,
    queue_len: usize,
    subscriber_count: AtomicUsize,
    next_id: AtomicU64,
    dropped_slow: AtomicU64,
    lines_published: AtomicU64,
}

impl Hub {
    pub fn new(queue_len: usize) -> Hub {
        Hub {
            table: Mutex::new(Table::default()),
            // A zero-length sync_channel is a rendezvous: every try_send
            // would fail and drop the subscriber.
            queue_len: queue_len.max(1),
            subscriber_count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            dropped_slow: AtomicU64::new(0),
            lines_published: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock cannot leave the table half
        // updated in a way that matters more than losing the fan-out.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> FanoutStats {
        FanoutStats {
            subscribers: self.subscriber_count.load(Ordering::Relaxed),
            dropped_slow: self.dropped_slow.load(Ordering::Relaxed),
            lines_published: self.lines_published.load(Ordering::Relaxed),
        }
    }

    /// Registers a connection; returns its id and the receiving end of its
    /// queue, or `None` once the hub is closed.
    pub fn add(
        &self,
        stream: UnixStream,
        pid: Option<i32>,
    ) -> Option<(SubscriberId, Receiver<Line>)> {
        let (queue, rx) = sync_channel(self.queue_len);
        let who = SubscriberId {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            pid,
        };
        let mut table = self.lock();
        if table.closed {
            return None;
        }
        table.subscribers.push(Subscriber {
            who,
            feeds: None,
            queue,
            stream,
        });
        self.subscriber_count
            .store(table.subscribers.len(), Ordering::Relaxed);
        Some((who, rx))
    }

    pub fn is_registered(&self, id: u64) -> bool {
        self.lock().position(id).is_some()
    }

    /// A data line: takes the feed's next `seq` (always, so gaps are real
    /// gaps), and serialises only if someone wants the feed.
    pub fn publish_data(&self, feed: &str, make: impl FnOnce(u64) -> Vec<u8>) {
        self.lines_published.fetch_add(1, Ordering::Relaxed);
        let seq = {
            let mut table = self.lock();
            let seq = table.next_seq(feed);
            if !table.any_wants(feed) {
                return;
            }
            seq
        };
        // Serialised outside the lock so feeds do not wait on each other's
        // formatting. Lines of one feed stay in order because each feed
        // publishes from its own single thread.
        self.offer(feed, make(seq).into());
    }

    /// An event line: no `seq`, and nothing at all to do with nobody there.
    pub fn publish_event(&self, feed: &str, make: impl FnOnce() -> Vec<u8>) {
        self.lines_published.fetch_add(1, Ordering::Relaxed);
        if self.subscriber_count.load(Ordering::Relaxed) == 0 || !self.lock().any_wants(feed) {
            return;
        }
        self.offer(feed, make().into());
    }

    fn offer(&self, feed: &str, line: Line) {
        let mut removed = Vec::new();
        {
            let mut table = self.lock();
            let mut i = 0;
            while i < table.subscribers.len() {
                let sub = &table.subscribers[i];
                if sub.wants(feed) {
                    match sub.queue.try_send(Line::clone(&line)) {
                        // Disconnected: its writer quit and is removing it.
                        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                        Err(TrySendError::Full(_)) => {
                            removed.push((table.subscribers.swap_remove(i), Removal::QueueFull));
                            continue;
                        }
                    }
                }
                i += 1;
            }
            self.subscriber_count
                .store(table.subscribers.len(), Ordering::Relaxed);
        }
        for (sub, why) in removed {
            self.finish(sub, why);
        }
    }

    /// Applies a subscribe request and confirms it in the subscriber's own
    /// stream: every line queued after the confirmation follows the new set.
    /// Returns false if the subscriber is gone.
    pub fn subscribe(&self, id: u64, feeds: Vec<String>) -> bool {
        let reply: Line = super::line::subscribed_line(&feeds).into();
        let mut table = self.lock();
        let Some(i) = table.position(id) else {
            return false;
        };
        table.subscribers[i].feeds = Some(feeds);
        self.reply_locked(table, i, reply)
    }

    /// Queues a line for one subscriber only (an error answer). Returns
    /// false if the subscriber is gone.
    pub fn reply(&self, id: u64, line: Vec<u8>) -> bool {
        let table = self.lock();
        let Some(i) = table.position(id) else {
            return false;
        };
        self.reply_locked(table, i, line.into())
    }

    fn reply_locked(&self, mut table: MutexGuard<'_, Table>, i: usize, line: Line) -> bool {
        match table.subscribers[i].queue.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(_)) => {
                let sub = table.subscribers.swap_remove(i);
                self.subscriber_count
                    .store(table.subscribers.len(), Ordering::Relaxed);
                drop(table);
                self.finish(sub, Removal::QueueFull);
                false
            }
        }
    }

    /// The subscriber's writer could not write: it is removed (if it still
    /// was registered) and its connection shut down.
    pub fn write_failed(&self, id: u64, error: io::Error) {
        self.remove(id, Removal::WriteFailed(error));
    }

    /// The subscriber hung up.
    pub fn closed(&self, id: u64) {
        self.remove(id, Removal::Closed);
    }

    /// Reading the subscriber's requests failed.
    pub fn read_failed(&self, id: u64, error: io::Error) {
        self.remove(id, Removal::ReadFailed(error));
    }

    fn remove(&self, id: u64, why: Removal) {
        let sub = {
            let mut table = self.lock();
            let Some(i) = table.position(id) else {
                return;
            };
            let sub = table.subscribers.swap_remove(i);
            self.subscriber_count
                .store(table.subscribers.len(), Ordering::Relaxed);
            sub
        };
        self.finish(sub, why);
    }

    /// Disconnects every subscriber and refuses new ones (stop).
    pub fn close(&self) {
        let subscribers = {
            let mut table = self.lock();
            table.closed = true;
            self.subscriber_count.store(0, Ordering::Relaxed);
            std::mem::take(&mut table.subscribers)
        };
        for sub in subscribers {
            let _ = sub.stream.shutdown(Shutdown::Both);
            log::debug!("fan-out: {} disconnected: stopping", sub.who);
        }
    }

    /// Shuts the connection down (waking its threads) and says why, once.
    fn finish(&self, sub: Subscriber, why: Removal) {
        let _ = sub.stream.shutdown(Shutdown::Both);
        match why {
            Removal::QueueFull => {
                self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "fan-out: {} fell behind ({} lines queued, none read); disconnected it",
                    sub.who,
                    self.queue_len
                );
            }
            Removal::WriteFailed(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "fan-out: {} fell behind (a write waited past the timeout); disconnected it",
                    sub.who
                );
            }
            Removal::WriteFailed(e) => {
                log::info!("fan-out: {} went away: {e}", sub.who);
            }
            Removal::Closed => log::info!("fan-out: {} disconnected", sub.who),
            Removal::ReadFailed(e) => {
                log::info!("fan-out: {} went away: {e}", sub.who);
            }
        }
    }
}
