//! The watchdog thread against a feed thread stuck in a blocking read that
//! has no timeout of its own: it must shut the socket down through the
//! cloned handle so the thread returns and reconnects.

use brokerguard::brokers::{BrokerRef, websocket};
use brokerguard::clock::{Clock, SystemClock};
use brokerguard::config::FeedConfig;
use brokerguard::daemon::feeds::{FeedSet, RunningFeed, runner_settings};
use brokerguard::daemon::watchdog_thread::{self, WatchdogShared};
use brokerguard::feed::runner::{self, FeedSink};
use brokerguard::feed::{Adapter, ConnectProgress, FeedError, FeedState, Incoming, Session};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Connects to a server that never sends anything and reads with no timeout.
struct BlockingAdapter {
    addr: std::net::SocketAddr,
    connects: Arc<AtomicU64>,
}

struct BlockingSession {
    stream: TcpStream,
}

impl Adapter for BlockingAdapter {
    fn connect(
        &mut self,
        progress: &mut dyn ConnectProgress,
    ) -> Result<Box<dyn Session>, FeedError> {
        let stream =
            TcpStream::connect(self.addr).map_err(|e| FeedError::network(e.to_string()))?;
        let clone = stream.try_clone().unwrap();
        progress.socket_opened(Box::new(move || {
            let _ = clone.shutdown(Shutdown::Both);
        }));
        self.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(BlockingSession { stream }))
    }
    fn has_ping(&self) -> bool {
        false
    }
}

impl Session for BlockingSession {
    fn subscribe(&mut self) -> Result<(), FeedError> {
        Ok(())
    }
    fn read(&mut self) -> Result<Incoming, FeedError> {
        // Deliberately no read timeout: a stuck call the watchdog must break.
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => Err(FeedError::network("connection shut down")),
            Ok(_) => Ok(Incoming::Data("{}".into())),
            Err(e) => Err(FeedError::network(e.to_string())),
        }
    }
    fn ping(&mut self) -> Result<(), FeedError> {
        Ok(())
    }
    fn poll(&mut self) -> Result<bool, FeedError> {
        Ok(false)
    }
    fn close(&mut self) {}
}

struct NullSink;
impl FeedSink for NullSink {
    fn data(&self, _: &str, _: &str, _: SystemTime) {}
    fn reconnected(&self, _: &str, _: Duration) {}
    fn state(&self, _: &str, _: FeedState, _: Option<&str>) {}
}

#[test]
fn watchdog_forces_a_stuck_read_to_return() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s); // accept and never answer
        }
    });

    let mut cfg = FeedConfig::new("stuck", BrokerRef(&websocket::BROKER));
    cfg.write_timeout = Duration::from_millis(200);
    cfg.stall_after = Duration::from_secs(600);
    let connects = Arc::new(AtomicU64::new(0));
    let adapter = BlockingAdapter {
        addr,
        connects: connects.clone(),
    };
    let settings = runner_settings(&cfg, &adapter, None, Duration::from_secs(60));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let handle = runner::spawn(
        "stuck",
        "websocket",
        Box::new(adapter),
        settings,
        clock.clone(),
        Arc::new(NullSink),
    )
    .unwrap();
    let feeds = FeedSet::default();
    feeds.lock().push(RunningFeed {
        config: cfg,
        handle,
    });

    let shared = Arc::new(WatchdogShared {
        feeds: feeds.clone(),
        clock,
        notifier: None,
        notify_every: None,
        main_tick_ms: AtomicU64::new(0),
        beat_ms: AtomicU64::new(0),
        alert_after: Mutex::new(Duration::from_secs(600)),
        alert_repeat: Mutex::new(Duration::from_secs(900)),
        stop: Default::default(),
    });
    let wd = watchdog_thread::spawn(shared.clone()).unwrap();

    // The first connection blocks forever in read(); only the watchdog can end it.
    let start = Instant::now();
    let end = start + Duration::from_secs(15);
    while connects.load(Ordering::SeqCst) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        connects.load(Ordering::SeqCst) >= 2,
        "the stuck read was never broken"
    );
    let took = start.elapsed();
    // io budget 1.4 s + tick deadline 3 s + 2 s grace, plus a tick of the watchdog.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let h = feeds.health().pop().unwrap();
    assert!(h.last_error.unwrap_or_default().contains("shut down"));

    shared.stop.request();
    wd.join().unwrap();
    let t = Instant::now();
    feeds.stop_all(Duration::from_secs(4));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop_all interrupts a stuck feed at half its timeout"
    );
}
