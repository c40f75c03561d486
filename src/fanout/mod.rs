//! Fan-out: hands every feed message to local subscribers (the trading bot
//! and friends) on a Unix socket, as one JSON object per line.
//!
//! Feed threads publish through a [`Publisher`]; publishing never blocks on
//! a subscriber. Each subscriber has a bounded queue drained by its own
//! writer thread; a subscriber whose queue overflows is disconnected and
//! counted in [`FanoutStats::dropped_slow`]. The wire format is in
//! docs/ARCHITECTURE.md ("Contracts": fan-out) and [`mod@line`]; besides it, a subscribe
//! request is confirmed with `{"subscribed":[...]}` (every later line follows
//! the new set) and a bad one answered with `{"error":"..."}`. A connection
//! cut while a line was being written ends in a fragment without `\n`,
//! which clients discard.

mod hub;
pub mod line;
mod socket;
mod subscriber;

use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::stopfd::{StopFd, Woken};
use hub::Hub;
use socket::FileId;

pub use subscriber::WRITE_TIMEOUT;

/// How long the accept thread waits for a connection before it re-checks
/// whether it should stop. A stop wakes it at once through its stop pair,
/// so this is only a backstop; it used to be the way stops were seen, ten
/// wake-ups a second for nothing.
const ACCEPT_TICK: Duration = Duration::from_secs(30);
/// How long the accept thread pauses after accept(2) itself failed
/// (typically out of file descriptors), rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long [`Fanout::stop`] waits for its threads before abandoning them.
const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// Counters for status.json and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Connected subscribers now.
    pub subscribers: usize,
    /// Subscribers disconnected since start because they fell behind.
    pub dropped_slow: u64,
    /// Lines handed to the fan-out since start (data and events), whether
    /// or not anyone was listening.
    pub lines_published: u64,
}

/// The running fan-out socket. Dropping it stops it, like [`Fanout::stop`].
pub struct Fanout {
    hub: Arc<Hub>,
    path: PathBuf,
    file_id: FileId,
    stopping: Arc<AtomicBool>,
    /// Made readable to wake the accept thread, which polls it.
    stop_waker: Arc<StopFd>,
    accept_thread: Option<JoinHandle<()>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// The handle feed threads publish through. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    hub: Arc<Hub>,
}

impl Fanout {
    /// Binds `socket_path` (mode 0660) and starts accepting subscribers,
    /// each with a queue of `queue_len` lines. A stale socket file at the
    /// path is replaced; any other file there is an error naming the path.
    pub fn start(socket_path: &Path, queue_len: usize) -> io::Result<Fanout> {
        let (listener, file_id) = socket::bind(socket_path)?;
        let fail = |e: io::Error| {
            socket::remove_if_ours(socket_path, file_id);
            io::Error::new(
                e.kind(),
                format!("fan-out socket {}: {e}", socket_path.display()),
            )
        };
        listener.set_nonblocking(true).map_err(fail)?;
        let stop_waker = Arc::new(StopFd::new().map_err(fail)?);
        let stop_seen = Arc::clone(&stop_waker);
        let hub = Arc::new(Hub::new(queue_len));
        let stopping = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let accept_thread = {
            let (hub, stopping, threads) = (
                Arc::clone(&hub),
                Arc::clone(&stopping),
                Arc::clone(&threads),
            );
            thread::Builder::new()
                .name("fanout-accept".into())
                .stack_size(crate::threads::SMALL_STACK)
                .spawn(move || accept_loop(&listener, &stop_seen, &hub, &stopping, &threads))
                .map_err(fail)?
        };
        log::info!("fan-out: listening on {}", socket_path.display());
        Ok(Fanout {
            hub,
            path: socket_path.to_owned(),
            file_id,
            stopping,
            stop_waker,
            accept_thread: Some(accept_thread),
            threads,
        })
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            hub: Arc::clone(&self.hub),
        }
    }

    pub fn stats(&self) -> FanoutStats {
        self.hub.stats()
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the listener, disconnects every subscriber, joins the threads
    /// (abandoning any still running after about a second, with a warning)
    /// and removes the socket file. Publishers may outlive this: they then
    /// publish to nobody.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_DEADLINE;
        self.stopping.store(true, Ordering::SeqCst);
        // The accept thread wakes now and, seeing `stopping`, never
        // accepts again.
        self.stop_waker.wake();
        let mut pending = vec![accept_thread];
        // Once the accept thread has exited, no new subscriber can appear
        // behind the hub's back.
        join_until(&mut pending, deadline);
        self.hub.close();
        pending.append(&mut self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        join_until(&mut pending, deadline);
        if !pending.is_empty() {
            log::warn!(
                "fan-out: {} thread(s) did not stop within {}; abandoned",
                pending.len(),
                crate::timefmt::human(STOP_DEADLINE)
            );
        }
        socket::remove_if_ours(&self.path, self.file_id);
        log::info!("fan-out: stopped");
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Publisher {
    /// Publishes one broker message of `feed`, received at `ts`. `message`
    /// is embedded as JSON if it is valid JSON, otherwise as a string.
    pub fn data(&self, feed: &str, message: &str, ts: SystemTime) {
        self.hub
            .publish_data(feed, |seq| line::data_line(feed, seq, ts, message));
    }

    /// Tells subscribers `feed` is back after being down for `down`.
    pub fn reconnected(&self, feed: &str, down: Duration) {
        self.hub
            .publish_event(feed, || line::reconnected_line(feed, down));
    }

    /// Tells subscribers `feed` entered `state` (with the error that caused
    /// it, if any).
    pub fn state(&self, feed: &str, state: &str, error: Option<&str>) {
        self.hub
            .publish_event(feed, || line::state_line(feed, state, error));
    }

    /// A broker-specific event line (a book resync, a broker notice).
    pub fn event(
        &self,
        feed: &str,
        event: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) {
        self.hub
            .publish_event(feed, || line::event_line(feed, event, fields));
    }

    pub fn stats(&self) -> FanoutStats {
        self.hub.stats()
    }
}

fn accept_loop(
    listener: &UnixListener,
    stop: &StopFd,
    hub: &Arc<Hub>,
    stopping: &AtomicBool,
    threads: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !stopping.load(Ordering::SeqCst) {
        match stop.wait(listener, ACCEPT_TICK) {
            Ok(Woken::Timeout) => continue,
            Ok(Woken::Stop) => break,
            Ok(Woken::Ready) => {}
            Err(e) => {
                log::warn!("fan-out: waiting for subscribers failed: {e}");
                thread::sleep(ACCEPT_RETRY);
                continue;
            }
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let started = subscriber::start(hub, stream);
                let mut threads = threads.lock().unwrap_or_else(PoisonError::into_inner);
                // Forget threads of subscribers that already left.
                threads.retain(|t| !t.is_finished());
                threads.extend(started);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // Typically out of file descriptors: wait rather than spin.
                log::warn!("fan-out: accepting a subscriber failed: {e}");
                thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// Joins the threads that finish before `deadline`; leaves the rest in
/// `pending`.
fn join_until(pending: &mut Vec<JoinHandle<()>>, deadline: Instant) {
    loop {
        let mut i = 0;
        while i < pending.len() {
            if pending[i].is_finished() {
                let _ = pending.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
        if pending.is_empty() || Instant::now() >= deadline {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
