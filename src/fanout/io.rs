//! The fan-out's one I/O thread: it accepts subscribers, reads their
//! requests and writes their queued lines, for every subscriber at once,
//! sleeping in epoll over the listener, the hub's wake eventfd and each
//! non-blocking connection. A subscriber costs one descriptor and a few
//! hundred bytes while idle; its queue and request buffer exist only while
//! it has something queued or half a request read. The thread's one 64 KiB
//! write buffer serves every subscriber in turn.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::hub::{Answer, Hub, Line, Outbox, SubscriberId};
use super::line::{self, Request};
use crate::os::epoll::{self as poll, Epoll, GONE, READABLE, WRITABLE};

/// A subscriber whose socket accepts nothing for this long is too slow.
/// The timer restarts whenever a write makes progress, so a stuck
/// subscriber goes after this (sooner if its queue fills first).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long accepting pauses after accept(2) itself failed (typically out
/// of file descriptors), rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Bytes handed to one write(2): the I/O thread's one write buffer, shared
/// by every subscriber (64 KiB for the thread, not per subscriber).
const WRITE_BUFFER: usize = 64 * 1024;
/// Bytes read from one subscriber per read(2).
const READ_CHUNK: usize = 16 * 1024;
/// epoll tokens: the wake eventfd, the listener, then each connection's
/// slot from `FIRST_CONN` on.
const WAKE: u64 = 0;
const LISTENER: u64 = 1;
const FIRST_CONN: u64 = 2;
/// Request budget per subscriber: a burst of this many requests...
pub const REQUEST_BURST: f64 = 8.0;
/// ...refilled at this many per second. Every `REQUEST_BYTES` read cost one
/// request too, so neither many small requests nor a few huge ones keep
/// the I/O thread busy. A subscriber out of budget is simply not read
/// until it has some again (its own writes then block); lines keep flowing
/// to it.
pub const REQUEST_RATE: f64 = 2.0;
const REQUEST_BYTES: f64 = 16.0 * 1024.0;
/// Refusals at the subscriber cap are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the I/O thread needs besides its descriptors.
pub struct IoSetup {
    pub hub: Arc<Hub>,
    pub listener: UnixListener,
    pub stopping: Arc<AtomicBool>,
    pub max_subscribers: usize,
}

/// One subscriber connection, as only the I/O thread sees it.
struct Conn {
    stream: UnixStream,
    who: SubscriberId,
    outbox: Outbox,
    /// Bytes of `outbox.lines[0]` already written.
    front_written: usize,
    /// When a write last found the socket full, until progress is made.
    blocked_since: Option<Instant>,
    /// The request read so far (no `\n` yet); empty, unallocated, between
    /// requests.
    request: Vec<u8>,
    /// The current request passed the hub's request cap: skip to its end.
    overlong: bool,
    /// The peer shut its sending side; it may still read.
    read_closed: bool,
    /// The events its descriptor is watched for now.
    watched: u32,
    budget: Budget,
}

/// A token bucket of requests.
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    fn new(now: Instant) -> Budget {
        Budget {
            tokens: REQUEST_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * REQUEST_RATE).min(REQUEST_BURST);
        self.at = now;
    }

    fn spend(&mut self, cost: f64) {
        self.tokens -= cost;
    }

    fn has_some(&self) -> bool {
        self.tokens > 0.0
    }

    /// How long until a spent budget has a whole request again.
    fn until_some(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / REQUEST_RATE).max(0.001))
    }
}

/// Why a connection is closed.
enum Close {
    /// Went over its queue bound (counted and logged by the hub).
    Overflowed,
    /// A write found the socket full for `WRITE_TIMEOUT`.
    WriteTimeout,
    /// It hung up.
    HungUp,
    /// Reading or writing failed.
    Failed(io::Error),
}

struct IoThread {
    hub: Arc<Hub>,
    epoll: Epoll,
    listener: UnixListener,
    listener_armed: bool,
    /// The write buffer (see `WRITE_BUFFER`).
    scratch: Vec<u8>,
    stopping: Arc<AtomicBool>,
    max_subscribers: usize,
    /// Indexed by slot, the same numbers as the hub's.
    conns: Vec<Option<Conn>>,
    open: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    refusals_unlogged: u64,
    refusal_logged_at: Option<Instant>,
}

/// Watches the wake eventfd and the listener: what [`run`] sleeps on.
/// Made before the thread starts, so a failure is the caller's error.
pub fn epoll_for(setup: &IoSetup) -> io::Result<Epoll> {
    let epoll = Epoll::new()?;
    epoll.add(setup.hub.wake_fd(), WAKE, READABLE)?;
    epoll.add(&setup.listener, LISTENER, READABLE)?;
    Ok(epoll)
}

/// Runs until `setup.stopping` is set and the wake eventfd notified.
pub fn run(setup: IoSetup, epoll: Epoll) {
    let mut io = IoThread {
        hub: setup.hub,
        epoll,
        listener: setup.listener,
        listener_armed: true,
        scratch: Vec::with_capacity(WRITE_BUFFER),
        stopping: setup.stopping,
        max_subscribers: setup.max_subscribers,
        conns: Vec::new(),
        open: 0,
        next_id: 1,
        accept_paused_until: None,
        refusals_unlogged: 0,
        refusal_logged_at: None,
    };
    io.run();
}

impl IoThread {
    fn run(&mut self) {
        let mut ready: Vec<poll::Ready> = Vec::with_capacity(64);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            // Tests only (never in the shipped binary).
            #[cfg(feature = "fault-injection")]
            crate::threads::fault::panic_if_triggered("fanout-io", "");
            // Idle first, then take and write the queues: a line queued
            // after the take wakes us, one queued before is taken.
            self.hub.io_idle();
            self.write_all(Instant::now());
            let timeout = self.arm(Instant::now());
            if let Err(e) = self.epoll.wait(&mut ready, timeout) {
                log::warn!("fan-out: waiting on subscribers failed: {e}");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
            self.hub.io_busy(ready.iter().any(|r| r.token() == WAKE));
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            for r in &ready {
                let (token, events) = (r.token(), r.events());
                if token == WAKE {
                    continue;
                }
                if token == LISTENER {
                    self.accept_all();
                    continue;
                }
                let slot = (token - FIRST_CONN) as usize;
                if events & READABLE != 0 {
                    if let Some(why) = self.read(slot, &mut buf, now) {
                        self.close(slot, why);
                        continue;
                    }
                }
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if events & GONE != 0 && events & READABLE == 0 {
                    self.close(slot, Close::HungUp);
                    continue;
                }
                if events & WRITABLE != 0 {
                    conn.blocked_since = None;
                }
            }
        }
        self.shut_down();
    }

    /// Brings every descriptor's watched events up to date (a subscriber
    /// out of request budget is not read, a full socket is watched for
    /// room) and returns how long to sleep at most: until a budget
    /// refills, a write times out or accepting resumes.
    fn arm(&mut self, now: Instant) -> Option<Duration> {
        let mut timeout: Option<Duration> = None;
        let mut earlier = |d: Duration| {
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        };
        let accepting = self.accept_paused_until.is_none_or(|t| now >= t);
        if accepting != self.listener_armed {
            let events = if accepting { READABLE } else { 0 };
            match self.epoll.modify(&self.listener, LISTENER, events) {
                Ok(()) => self.listener_armed = accepting,
                Err(e) => log::warn!("fan-out: cannot watch the listener: {e}"),
            }
        }
        if let Some(t) = self.accept_paused_until.filter(|_| !accepting) {
            earlier(t - now);
        } else {
            self.accept_paused_until = None;
        }
        for (slot, conn) in self.conns.iter_mut().enumerate() {
            let Some(conn) = conn else { continue };
            let mut events = 0;
            if !conn.read_closed {
                if conn.budget.tokens < REQUEST_BURST {
                    conn.budget.refill(now);
                }
                if conn.budget.has_some() {
                    events |= READABLE;
                } else {
                    earlier(conn.budget.until_some());
                }
            }
            if let Some(since) = conn.blocked_since {
                events |= WRITABLE;
                earlier((since + WRITE_TIMEOUT).saturating_duration_since(now));
            }
            if events != conn.watched {
                // With nothing asked, a hang-up is still reported.
                match self
                    .epoll
                    .modify(&conn.stream, FIRST_CONN + slot as u64, events)
                {
                    Ok(()) => conn.watched = events,
                    Err(e) => log::warn!("fan-out: cannot watch {}: {e}", conn.who),
                }
            }
        }
        timeout
    }

    /// Takes every waiting connection, refusing those past the cap with an
    /// error line.
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Typically out of file descriptors: wait rather than spin.
                    log::warn!("fan-out: accepting a subscriber failed: {e}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: UnixStream) {
        if let Err(e) = stream.set_nonblocking(true) {
            log::warn!("fan-out: cannot set up a new subscriber connection: {e}");
            return;
        }
        if self.open >= self.max_subscribers {
            self.refuse(stream);
            return;
        }
        let who = SubscriberId {
            id: self.next_id,
            pid: crate::os::socket::peer_pid(&stream),
        };
        self.next_id += 1;
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = self.epoll.add(&stream, FIRST_CONN + slot as u64, READABLE) {
            log::warn!("fan-out: cannot watch {who}: {e}");
            return;
        }
        if !self.hub.add(slot, who) {
            return;
        }
        self.conns[slot] = Some(Conn {
            watched: READABLE,
            stream,
            who,
            outbox: Outbox::default(),
            front_written: 0,
            blocked_since: None,
            request: Vec::new(),
            overlong: false,
            read_closed: false,
            budget: Budget::new(Instant::now()),
        });
        self.open += 1;
        log::info!("fan-out: {who} connected");
    }

    /// One error line (best effort: the socket is new, so it has room) and
    /// a close.
    fn refuse(&mut self, stream: UnixStream) {
        self.hub.count_refused();
        let msg = format!(
            "too many subscribers: {} are connected, the most agent.fanout_max_subscribers allows; connection closed",
            self.open
        );
        let _ = (&stream).write_all(&line::error_line(&msg));
        let _ = stream.shutdown(Shutdown::Both);
        self.refusals_unlogged += 1;
        let now = Instant::now();
        if self
            .refusal_logged_at
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            log::warn!(
                "fan-out: refused {} connection(s) past agent.fanout_max_subscribers = {}",
                self.refusals_unlogged,
                self.max_subscribers
            );
            self.refusals_unlogged = 0;
            self.refusal_logged_at = Some(now);
        }
    }

    /// Reads what the subscriber sent and answers its complete requests.
    /// Returns why to close it, if it must go.
    fn read(&mut self, slot: usize, buf: &mut [u8], now: Instant) -> Option<Close> {
        let conn = self.conns[slot].as_mut()?;
        let cap = self.hub.request_cap();
        conn.budget.refill(now);
        while conn.budget.has_some() {
            let n = match (&conn.stream).read(buf) {
                Ok(0) => {
                    // A peer that only shut down its sending side may still
                    // be reading: keep it until it hangs up completely.
                    conn.read_closed = true;
                    conn.request = Vec::new();
                    return None;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Close::Failed(e)),
            };
            conn.budget.spend(n as f64 / REQUEST_BYTES);
            let mut chunk = &buf[..n];
            while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                let answer = if conn.overlong {
                    conn.overlong = false;
                    let msg = format!(
                        "request longer than {cap} bytes ignored (a subscribe request names configured feeds only); expected {{\"subscribe\": [\"feed\", ...]}}"
                    );
                    conn.budget.spend(1.0);
                    self.hub.refuse(slot, &msg)
                } else {
                    conn.request.extend_from_slice(&chunk[..end]);
                    let request = std::mem::take(&mut conn.request);
                    if !request.iter().all(u8::is_ascii_whitespace) {
                        conn.budget.spend(1.0);
                    }
                    handle_request(&self.hub, slot, &request)
                };
                if let Answer::Gone = answer {
                    return Some(Close::Overflowed);
                }
                chunk = &chunk[end + 1..];
            }
            if !conn.overlong {
                conn.request.extend_from_slice(chunk);
                if conn.request.len() > cap {
                    conn.overlong = true;
                    conn.request = Vec::new();
                }
            }
        }
        None
    }

    /// Hands the hub's queues over and writes what each subscriber's socket
    /// takes; closes those over a bound or stuck past the write timeout.
    fn write_all(&mut self, now: Instant) {
        let overflowed = self.hub.hand_over(
            self.conns
                .iter_mut()
                .enumerate()
                .filter_map(|(slot, c)| c.as_mut().map(|c| (slot, &mut c.outbox))),
        );
        for slot in overflowed {
            self.close(slot, Close::Overflowed);
        }
        let mut wrote = false;
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            if conn.outbox.lines.is_empty() {
                continue;
            }
            wrote = true;
            let failed = match conn.blocked_since {
                Some(since) if now.duration_since(since) >= WRITE_TIMEOUT => {
                    Some(Close::WriteTimeout)
                }
                Some(_) => None,
                None => conn.flush(now, &mut self.scratch).err().map(Close::Failed),
            };
            if let Some(why) = failed {
                self.close(slot, why);
            }
        }
        if wrote {
            self.hub.credit(
                self.conns
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(slot, c)| c.as_mut().map(|c| (slot, &mut c.outbox))),
            );
        }
    }

    fn close(&mut self, slot: usize, why: Close) {
        let Some(conn) = self.conns[slot].take() else {
            return;
        };
        self.open -= 1;
        self.hub.remove(slot);
        let _ = conn.stream.shutdown(Shutdown::Both);
        let who = conn.who;
        match why {
            Close::Overflowed => log::debug!("fan-out: {who} closed: over its queue bound"),
            Close::WriteTimeout => {
                self.hub.count_dropped_slow();
                log::warn!(
                    "fan-out: {who} fell behind (its socket took nothing for {}); disconnected it",
                    crate::timefmt::human(WRITE_TIMEOUT)
                );
            }
            Close::HungUp => log::info!("fan-out: {who} disconnected"),
            Close::Failed(e) => log::info!("fan-out: {who} went away: {e}"),
        }
        while self.conns.last().is_some_and(Option::is_none) {
            self.conns.pop();
        }
        if self.conns.capacity() > 2 * self.conns.len() + 64 {
            self.conns.shrink_to_fit();
        }
    }

    fn shut_down(&mut self) {
        self.hub.close();
        for conn in self.conns.drain(..).flatten() {
            let _ = conn.stream.shutdown(Shutdown::Both);
            log::debug!("fan-out: {} disconnected: stopping", conn.who);
        }
        self.open = 0;
    }
}

impl Conn {
    /// Writes queued lines until the socket is full or the outbox empty.
    /// Only an error other than a full socket is returned.
    fn flush(&mut self, now: Instant, scratch: &mut Vec<u8>) -> io::Result<()> {
        while !self.outbox.lines.is_empty() {
            // Lines are copied into one buffer and written with one
            // write(2): the kernel copies one piece far faster than the
            // many small ones of a writev. A line larger than the buffer
            // goes on its own.
            scratch.clear();
            let front = &self.outbox.lines[0][self.front_written..];
            let bytes: &[u8] = if front.len() >= WRITE_BUFFER {
                front
            } else {
                for (i, line) in self.outbox.lines.iter().enumerate() {
                    let from = if i == 0 { self.front_written } else { 0 };
                    if scratch.len() + line.len() - from > WRITE_BUFFER {
                        break;
                    }
                    scratch.extend_from_slice(&line[from..]);
                }
                scratch
            };
            let n = match (&self.stream).write(bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked_since.get_or_insert(now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(n);
        }
        self.blocked_since = None;
        if self.outbox.lines.capacity() > 64 {
            // Drained: give the memory back.
            self.outbox.lines = VecDeque::new();
        }
        Ok(())
    }

    /// Accounts `n` written bytes against the front of the outbox.
    fn consume(&mut self, mut n: usize) {
        self.blocked_since = None;
        while n > 0 {
            let Some(front) = self.outbox.lines.front() else {
                return;
            };
            let left = front.len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            let line: Line = self.outbox.lines.pop_front().expect("front exists");
            self.front_written = 0;
            self.outbox.written_lines += 1;
            self.outbox.written_bytes += line.len();
        }
    }
}

fn handle_request(hub: &Hub, slot: usize, request: &[u8]) -> Answer {
    match line::parse_request(request) {
        Ok(Request::Blank) => Answer::Queued,
        Ok(Request::Subscribe(feeds)) => hub.subscribe(slot, feeds),
        Err(msg) => hub.reply(slot, line::error_line(&msg)),
    }
}
