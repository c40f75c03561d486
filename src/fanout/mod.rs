//! Fan-out: hands every feed message to local subscribers (the trading bot
//! and friends) on a Unix socket, as one JSON object per line.
//!
//! Feed threads publish through a [`Publisher`]; publishing never blocks on
//! a subscriber: it appends to each interested subscriber's queue (bounded
//! in lines and in bytes) and wakes the one I/O thread (`fanout-io`), which
//! accepts, reads requests and writes for every subscriber with epoll
//! over non-blocking sockets. A subscriber whose queue overflows, or whose
//! socket takes nothing for [`WRITE_TIMEOUT`], is disconnected and counted
//! in [`FanoutStats::dropped_slow`]; one past `max_subscribers` gets an
//! `{"error":...}` line and is closed. The wire format is in
//! docs/ARCHITECTURE.md ("Contracts": fan-out) and [`mod@line`]; besides it,
//! a subscribe request naming only configured feeds is confirmed with
//! `{"subscribed":[...]}` (every later line follows the new set); one
//! naming any other feed, or too long, is answered with `{"error":"..."}`
//! and leaves the subscriber subscribed to nothing; a line that is not a
//! subscribe request is answered with an error and changes nothing. Requests
//! are capped in size ([`line::max_request_len`]) and rate (a subscriber
//! out of budget is not read until it has some again). A connection cut
//! while a line was being written ends in a fragment without `\n`, which
//! clients discard.

mod hub;
mod io;
pub mod line;
mod socket;

use std::io as stdio;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use hub::{Hub, QueueLimits};
use socket::FileId;

pub use io::{REQUEST_BURST, REQUEST_RATE, WRITE_TIMEOUT};

/// How long [`Fanout::stop`] waits for its thread before abandoning it.
const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// Counters for status.json and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Connected subscribers now.
    pub subscribers: usize,
    /// Subscribers disconnected since start because they fell behind.
    pub dropped_slow: u64,
    /// Connections refused since start because `max_subscribers` were
    /// connected.
    pub refused: u64,
    /// Lines handed to the fan-out since start (data and events), whether
    /// or not anyone was listening.
    pub lines_published: u64,
}

/// What the fan-out is configured with (`[agent]` `fanout_*` keys and the
/// feed names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanoutSettings {
    /// The names a subscriber may ask for; any other name is refused.
    pub feeds: Vec<String>,
    /// Lines queued per subscriber before it is dropped.
    pub queue_lines: usize,
    /// Bytes queued per subscriber before it is dropped.
    pub queue_bytes: usize,
    /// Connections served at once; one more gets an error line.
    pub max_subscribers: usize,
}

impl FanoutSettings {
    pub fn from_config(cfg: &crate::config::Config) -> FanoutSettings {
        FanoutSettings {
            feeds: cfg.feeds.iter().map(|f| f.name.clone()).collect(),
            queue_lines: cfg.agent.fanout_queue,
            queue_bytes: cfg.agent.fanout_queue_bytes,
            max_subscribers: cfg.agent.fanout_max_subscribers,
        }
    }
}

/// The running fan-out socket. Dropping it stops it, like [`Fanout::stop`].
pub struct Fanout {
    hub: Arc<Hub>,
    path: PathBuf,
    file_id: FileId,
    stopping: Arc<AtomicBool>,
    io_thread: Option<JoinHandle<()>>,
}

/// The handle feed threads publish through. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    hub: Arc<Hub>,
}

impl Fanout {
    /// Binds `socket_path` (mode 0660) and starts the I/O thread. A stale
    /// socket file at the path is replaced; any other file there is an
    /// error naming the path.
    pub fn start(socket_path: &Path, settings: FanoutSettings) -> stdio::Result<Fanout> {
        let (listener, file_id) = socket::bind(socket_path)?;
        let fail = |e: stdio::Error| {
            socket::remove_if_ours(socket_path, file_id);
            stdio::Error::new(
                e.kind(),
                format!("fan-out socket {}: {e}", socket_path.display()),
            )
        };
        listener.set_nonblocking(true).map_err(fail)?;
        let wake = crate::os::poll::EventFd::new().map_err(fail)?;
        let hub = Arc::new(Hub::new(
            QueueLimits {
                lines: settings.queue_lines,
                bytes: settings.queue_bytes,
            },
            &settings.feeds,
            wake,
        ));
        let stopping = Arc::new(AtomicBool::new(false));
        let setup = io::IoSetup {
            hub: Arc::clone(&hub),
            listener,
            stopping: Arc::clone(&stopping),
            max_subscribers: settings.max_subscribers,
        };
        let epoll = io::epoll_for(&setup).map_err(fail)?;
        // A panic (a bug) drops every subscriber connection with the
        // thread's state; the restarted thread serves the same listener
        // (this duplicate of it keeps the socket open meanwhile), and the
        // bots reconnect as after any disconnect.
        let spare = setup.listener.try_clone().map_err(fail)?;
        let (h, s, max) = (
            Arc::clone(&hub),
            Arc::clone(&stopping),
            settings.max_subscribers,
        );
        let stop_asked = Arc::clone(&stopping);
        let mut first = Some((setup, epoll));
        let io_thread = crate::threads::spawn_isolated(
            "fanout-io",
            crate::threads::SMALL_STACK,
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(move || stop_asked.load(Ordering::SeqCst)),
            },
            move || {
                let (setup, epoll) = match first.take() {
                    Some(first) => first,
                    None => {
                        h.forget_all();
                        let again = spare.try_clone().and_then(|listener| {
                            let setup = io::IoSetup {
                                hub: Arc::clone(&h),
                                listener,
                                stopping: Arc::clone(&s),
                                max_subscribers: max,
                            };
                            io::epoll_for(&setup).map(|epoll| (setup, epoll))
                        });
                        match again {
                            Ok(again) => again,
                            Err(e) => {
                                log::warn!(
                                    "fan-out: cannot serve subscribers again after the I/O thread's crash: {e}; restart the service"
                                );
                                return;
                            }
                        }
                    }
                };
                io::run(setup, epoll)
            },
        )
        .map_err(fail)?;
        log::info!(
            "fan-out: listening on {} (up to {} subscribers)",
            socket_path.display(),
            settings.max_subscribers
        );
        Ok(Fanout {
            hub,
            path: socket_path.to_owned(),
            file_id,
            stopping,
            io_thread: Some(io_thread),
        })
    }

    /// The feed names subscribers may ask for from now on (a reload).
    /// Subscriptions already made stay as they are.
    pub fn set_feeds(&self, feeds: &[String]) {
        self.hub.set_feeds(feeds);
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
        let Some(io_thread) = self.io_thread.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_DEADLINE;
        self.stopping.store(true, Ordering::SeqCst);
        // The I/O thread wakes now, sees `stopping`, closes every
        // subscriber and the hub, and returns.
        self.hub.wake_fd().signal();
        while !io_thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if io_thread.is_finished() {
            let _ = io_thread.join();
        } else {
            // Publishers must not queue for subscribers nobody will serve.
            self.hub.close();
            log::warn!(
                "fan-out: the I/O thread did not stop within {}; abandoned",
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
