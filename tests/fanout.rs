//! Fan-out socket behaviour across threads and real Unix sockets: line
//! content and order, subscribe filters, `seq` continuity, dropping a slow
//! subscriber without slowing a fast one, the socket file's life cycle,
//! and the bounds: the subscriber cap, unknown names, the byte bound, a
//! subscribe flood, idle connections costing the agent no thread.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use brokerguard::fanout::{Fanout, FanoutSettings, FanoutStats};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(10);

/// A temporary folder removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("bg-fanout-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn sock(&self) -> PathBuf {
        self.0.join("feeds.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Records log lines, with the thread that logged them (tests run in
/// parallel), so tests can check what an operator would see.
struct Captured(Mutex<Vec<(thread::ThreadId, log::Level, String)>>);

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push((
            thread::current().id(),
            record.level(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

fn logs() -> &'static Captured {
    static LOGGER: OnceLock<&'static Captured> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let logger: &'static Captured = Box::leak(Box::new(Captured(Mutex::new(Vec::new()))));
        log::set_logger(logger).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
        logger
    })
}

struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, text: &str) {
        self.reader.get_mut().write_all(text.as_bytes()).unwrap();
    }

    /// The next line as JSON; fails the test after the deadline or at EOF.
    fn line(&mut self) -> Value {
        let mut text = String::new();
        let n = self
            .reader
            .read_line(&mut text)
            .expect("a line before the deadline");
        assert!(n > 0, "unexpected end of stream");
        assert!(text.ends_with('\n'), "line ends with a newline: {text:?}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
    }

    /// Reads lines until end of stream (the fan-out disconnected us). A
    /// connection cut mid-write may end in a fragment without `\n`, which a
    /// client must discard; it can only be the very end of the stream.
    fn rest_until_eof(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let mut text = String::new();
            match self.reader.read_line(&mut text) {
                Ok(0) => return out,
                Ok(_) if !text.ends_with('\n') => {
                    let mut more = String::new();
                    assert_eq!(self.reader.read_line(&mut more).unwrap(), 0);
                    return out;
                }
                Ok(_) => out.push(serde_json::from_str(&text).unwrap()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("no end of stream before the deadline: {e}"),
            }
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn wait_subscribers(fanout: &Fanout, n: usize) {
    wait_for(&format!("{n} subscriber(s)"), || {
        fanout.stats().subscribers == n
    });
}

/// The feeds these tests publish, `queue_lines` per subscriber, the
/// default bounds otherwise.
fn settings(queue_lines: usize) -> FanoutSettings {
    FanoutSettings {
        feeds: ["a", "b", "signals", "ticks", "f0", "f1", "f2", "f3"]
            .map(String::from)
            .to_vec(),
        queue_lines,
        queue_bytes: 1 << 30,
        max_subscribers: 64,
    }
}

fn ts(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[test]
fn subscriber_receives_data_and_events_in_order() {
    let dir = TempDir::new("order");
    let fanout = Fanout::start(&dir.sock(), settings(64)).unwrap();
    let publisher = fanout.publisher();
    let mut client = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);

    publisher.state("signals", "connecting", None);
    publisher.data(
        "signals",
        r#"{"type":"signal","id":7}"#,
        ts(1_795_338_001_123),
    );
    publisher.data("signals", "not json", ts(1_795_338_001_124));
    publisher.state("signals", "backoff", Some("server closed (1000)"));
    publisher.reconnected("signals", Duration::from_millis(812));
    publisher.data("kite", "[1,2]", ts(1_795_338_002_000));

    assert_eq!(
        client.line(),
        json!({"feed":"signals","event":"state","state":"connecting"})
    );
    assert_eq!(
        client.line(),
        json!({"feed":"signals","seq":1,"ts":"2026-11-22T09:00:01.123Z","data":{"type":"signal","id":7}})
    );
    assert_eq!(
        client.line(),
        json!({"feed":"signals","seq":2,"ts":"2026-11-22T09:00:01.124Z","data":"not json"})
    );
    assert_eq!(
        client.line(),
        json!({"feed":"signals","event":"state","state":"backoff","error":"server closed (1000)"})
    );
    assert_eq!(
        client.line(),
        json!({"feed":"signals","event":"reconnected","down_ms":812})
    );
    assert_eq!(
        client.line(),
        json!({"feed":"kite","seq":1,"ts":"2026-11-22T09:00:02.000Z","data":[1,2]})
    );
    assert_eq!(fanout.stats().lines_published, 6);
    fanout.stop();
}

#[test]
fn subscribe_filter_selects_feeds_and_can_change() {
    let dir = TempDir::new("filter");
    let fanout = Fanout::start(&dir.sock(), settings(64)).unwrap();
    let publisher = fanout.publisher();
    let mut client = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);

    client.send("{\"subscribe\": [\"a\"]}\n");
    assert_eq!(client.line(), json!({"subscribed":["a"]}));
    publisher.data("b", "1", ts(0));
    publisher.state("b", "live", None);
    publisher.data("a", "2", ts(0));
    publisher.reconnected("b", Duration::from_secs(1));
    publisher.reconnected("a", Duration::from_secs(2));
    let line = client.line();
    assert_eq!(
        (&line["feed"], &line["seq"], &line["data"]),
        (&json!("a"), &json!(1), &json!(2))
    );
    assert_eq!(
        client.line(),
        json!({"feed":"a","event":"reconnected","down_ms":2000})
    );

    // A malformed request is answered and changes nothing.
    client.send("{\"subscribe\": \"b\"}\n");
    let err = client.line();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("expected {\"subscribe\""),
        "{err}"
    );
    publisher.data("b", "3", ts(0));
    publisher.data("a", "4", ts(0));
    assert_eq!(client.line()["data"], json!(4));

    // Switch to b: its seq kept counting while we were not listening.
    client.send("{\"subscribe\": [\"b\"]}\n");
    assert_eq!(client.line(), json!({"subscribed":["b"]}));
    publisher.data("a", "5", ts(0));
    publisher.data("b", "6", ts(0));
    let line = client.line();
    assert_eq!(
        (&line["feed"], &line["seq"], &line["data"]),
        (&json!("b"), &json!(3), &json!(6))
    );

    // An empty set means nothing; the request split across writes still counts.
    client.send("{\"subscribe\"");
    client.send(": []}\n");
    assert_eq!(client.line(), json!({"subscribed":[]}));
    publisher.data("a", "7", ts(0));
    publisher.data("b", "8", ts(0));
    client.send("{\"subscribe\": [\"a\", \"b\"]}\n");
    assert_eq!(client.line(), json!({"subscribed":["a","b"]}));
    publisher.data("b", "9", ts(0));
    assert_eq!(client.line()["data"], json!(9));
    fanout.stop();
}

#[test]
fn seq_is_continuous_per_feed_and_shared_by_subscribers() {
    let dir = TempDir::new("seq");
    let fanout = Fanout::start(&dir.sock(), settings(10_000)).unwrap();
    let publisher = fanout.publisher();
    // Published before anyone listens: still counted.
    for _ in 0..5 {
        publisher.data("a", "{}", ts(0));
    }
    let mut first = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);
    for i in 0..3000u64 {
        let feed = if i % 3 == 0 { "b" } else { "a" };
        publisher.data(feed, &format!("{{\"i\":{i}}}"), ts(i));
        if i == 1500 {
            // Reconnect events in the middle do not disturb seq.
            publisher.state(feed, "backoff", Some("reset"));
            publisher.reconnected(feed, Duration::from_millis(5));
        }
    }
    let mut second = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);
    publisher.data("a", "\"last\"", ts(0));

    let (mut next_a, mut next_b, mut events) = (6u64, 1u64, 0);
    for i in 0..3000u64 {
        let mut line = first.line();
        while line.get("event").is_some() {
            events += 1;
            line = first.line();
        }
        assert_eq!(line["data"], json!({"i": i}));
        let next = if line["feed"] == "a" {
            &mut next_a
        } else {
            &mut next_b
        };
        assert_eq!(line["seq"], json!(*next), "{line}");
        *next += 1;
    }
    assert_eq!(events, 2);
    assert_eq!((next_a, next_b), (2006, 1001));
    let last = json!({"feed":"a","seq":2006,"ts":"1970-01-01T00:00:00.000Z","data":"last"});
    assert_eq!(first.line(), last);
    assert_eq!(second.line(), last);
    fanout.stop();
}

/// A subscriber that keeps up, beside one that does not: `fast` reads in
/// its own thread while `payload` is published on "ticks", never more than
/// `slack` lines ahead of it, until `enough(lines published, dropped)`;
/// then an `"end"` line. Returns the lines published and the `seq`s the
/// fast one read (and its connection, kept open).
fn publish_beside_a_fast_reader(
    fanout: &Fanout,
    mut fast: Client,
    payload: &str,
    slack: u64,
    mut enough: impl FnMut(u64, u64) -> bool,
) -> (u64, Vec<u64>, Client) {
    let publisher = fanout.publisher();
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = Arc::clone(&received);
        thread::spawn(move || {
            let mut seqs = Vec::new();
            loop {
                let line = fast.line();
                if line["data"] == json!("end") {
                    // Hand the connection back so it stays open.
                    return (seqs, fast);
                }
                seqs.push(line["seq"].as_u64().unwrap());
                received.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut published = 0u64;
    let end = Instant::now() + DEADLINE * 3;
    while !enough(published, fanout.stats().dropped_slow) {
        assert!(Instant::now() < end, "slow subscriber never dropped");
        while published - received.load(Ordering::SeqCst) > slack {
            assert!(Instant::now() < end, "fast subscriber stopped reading");
            thread::yield_now();
        }
        publisher.data("ticks", payload, ts(published));
        published += 1;
    }
    publisher.data("ticks", "\"end\"", ts(0));
    let (seqs, fast) = reader.join().unwrap();
    (published, seqs, fast)
}

#[test]
fn slow_subscriber_is_dropped_while_fast_one_gets_every_line() {
    let logs = logs();
    let dir = TempDir::new("slow");
    let queue_len = 64;
    let fanout = Fanout::start(&dir.sock(), settings(queue_len)).unwrap();
    let mut slow = Client::connect(&dir.sock());
    let fast = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);

    let payload = format!("{{\"secret_marker\":\"{}\"}}", "x".repeat(200));
    // Keep publishing until the slow one is dropped, then a little more.
    // The fast subscriber never gets more than half a queue behind, so
    // only the slow one can overflow.
    let mut after_drop = 0;
    let (published, seqs, _fast) = publish_beside_a_fast_reader(
        &fanout,
        fast,
        &payload,
        queue_len as u64 / 2,
        |_, dropped| {
            if dropped > 0 {
                after_drop += 1;
            }
            after_drop > 500
        },
    );
    assert_eq!(seqs, (1..=published).collect::<Vec<_>>());
    assert_eq!(
        fanout.stats(),
        FanoutStats {
            subscribers: 1,
            dropped_slow: 1,
            refused: 0,
            lines_published: published + 1,
        }
    );

    // The slow one got a clean prefix of the stream, then end of stream.
    let got = slow.rest_until_eof();
    assert!(!got.is_empty() && (got.len() as u64) < published);
    for (i, line) in got.iter().enumerate() {
        assert_eq!(line["seq"], json!(i as u64 + 1));
    }

    // A full queue is found while publishing, so it is logged on this thread.
    let me = thread::current().id();
    let logged = logs.0.lock().unwrap();
    let warns: Vec<_> = logged
        .iter()
        .filter(|(thread, level, msg)| {
            *thread == me && *level == log::Level::Warn && msg.contains("fell behind")
        })
        .collect();
    assert_eq!(warns.len(), 1, "{logged:?}");
    assert!(!warns[0].2.contains("secret_marker"), "{}", warns[0].2);
    drop(logged);
    fanout.stop();
}

#[test]
fn closed_subscriber_is_removed_and_half_closed_one_kept() {
    let dir = TempDir::new("closed");
    let fanout = Fanout::start(&dir.sock(), settings(64)).unwrap();
    let publisher = fanout.publisher();
    let gone = Client::connect(&dir.sock());
    let mut half = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);
    half.send("{\"subscribe\": [\"a\"]}\n");
    assert_eq!(half.line(), json!({"subscribed":["a"]}));
    half.reader.get_ref().shutdown(Shutdown::Write).unwrap();
    drop(gone);
    wait_subscribers(&fanout, 1);
    publisher.data("a", "1", ts(0));
    assert_eq!(half.line()["seq"], json!(1));
    assert_eq!(fanout.stats().dropped_slow, 0);
    drop(half);
    wait_subscribers(&fanout, 0);
    fanout.stop();
}

#[test]
fn socket_has_mode_0660() {
    let dir = TempDir::new("mode");
    let fanout = Fanout::start(&dir.sock(), settings(8)).unwrap();
    let meta = fs::symlink_metadata(dir.sock()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    fanout.stop();
}

#[test]
fn stale_socket_is_replaced() {
    let dir = TempDir::new("stale");
    drop(UnixListener::bind(dir.sock()).unwrap());
    assert!(dir.sock().exists(), "a stale socket file is left behind");
    let fanout = Fanout::start(&dir.sock(), settings(8)).unwrap();
    let _client = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);
    fanout.stop();
}

#[test]
fn live_socket_is_not_stolen() {
    let dir = TempDir::new("live");
    let first = Fanout::start(&dir.sock(), settings(8)).unwrap();
    let err = Fanout::start(&dir.sock(), settings(8))
        .err()
        .expect("second start refused");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&dir.sock().display().to_string()),
        "{err}"
    );
    let _client = Client::connect(&dir.sock());
    wait_subscribers(&first, 1);
    first.stop();
}

#[test]
fn regular_file_at_path_is_refused_and_kept() {
    let dir = TempDir::new("regular");
    fs::write(dir.sock(), "precious").unwrap();
    let err = Fanout::start(&dir.sock(), settings(8))
        .err()
        .expect("start refused");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string().contains(&dir.sock().display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dir.sock()).unwrap(), "precious");
}

#[test]
fn stop_disconnects_joins_and_removes_socket() {
    let dir = TempDir::new("stop");
    let fanout = Fanout::start(&dir.sock(), settings(8)).unwrap();
    let publisher = fanout.publisher();
    let mut idle = Client::connect(&dir.sock());
    let mut subscribed = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);
    subscribed.send("{\"subscribe\": [\"a\"]}\n");
    assert_eq!(subscribed.line(), json!({"subscribed":["a"]}));

    let logs = logs();
    let started = Instant::now();
    fanout.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "stop took {took:?}");
    // stop logs on the calling thread; it warns if it had to abandon threads.
    let me = thread::current().id();
    let mine: Vec<_> = logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(thread, _, _)| *thread == me)
        .map(|(_, level, msg)| (*level, msg.clone()))
        .collect();
    assert!(
        mine.contains(&(log::Level::Info, "fan-out: stopped".to_string())),
        "{mine:?}"
    );
    assert!(
        !mine.iter().any(|(_, msg)| msg.contains("abandoned")),
        "{mine:?}"
    );
    assert!(!dir.sock().exists(), "socket file removed");
    assert!(idle.rest_until_eof().is_empty());
    assert!(subscribed.rest_until_eof().is_empty());
    assert!(UnixStream::connect(dir.sock()).is_err());
    // Publishers outliving the fan-out publish to nobody.
    publisher.data("a", "1", ts(0));
    publisher.state("a", "live", None);
    assert_eq!(publisher.stats().subscribers, 0);
}

#[test]
fn publishing_with_nobody_listening_is_cheap_and_counted() {
    let dir = TempDir::new("nobody");
    let fanout = Fanout::start(&dir.sock(), settings(8)).unwrap();
    let publisher = fanout.publisher();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let publisher = publisher.clone();
            thread::spawn(move || {
                for _ in 0..10_000 {
                    publisher.data(&format!("f{t}"), "{}", ts(0));
                }
                publisher.reconnected("f0", Duration::ZERO);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(fanout.stats().lines_published, 40_004);
    // seq kept counting for each feed with nobody listening.
    let mut client = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);
    publisher.data("f2", "{}", ts(0));
    assert_eq!(client.line()["seq"], json!(10_001));
    fanout.stop();
}

#[test]
fn subscriber_stuck_on_a_full_socket_is_dropped_after_write_timeout() {
    let dir = TempDir::new("stuck");
    // A queue too long to overflow here: only the write timeout can act.
    let fanout = Fanout::start(&dir.sock(), settings(1_000_000)).unwrap();
    let publisher = fanout.publisher();
    let mut stuck = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);
    let payload = format!("\"{}\"", "y".repeat(1000));
    let started = Instant::now();
    // About 10 MB: far more than a Unix socket buffers.
    for i in 0..10_000 {
        publisher.data("a", &payload, ts(i));
    }
    wait_for("the stuck subscriber to be dropped", || {
        fanout.stats().dropped_slow == 1
    });
    let waited = started.elapsed();
    assert!(
        waited + Duration::from_millis(50) >= brokerguard::fanout::WRITE_TIMEOUT,
        "dropped after {waited:?}, before the write timeout"
    );
    assert_eq!(fanout.stats().subscribers, 0);
    let got = stuck.rest_until_eof();
    assert!(!got.is_empty() && got.len() < 10_000, "{}", got.len());
    fanout.stop();
}

/// One line as JSON from a raw stream (no buffering beyond the line).
fn read_json_line(stream: &UnixStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    match reader.read_line(&mut text) {
        Ok(n) if n > 0 && text.ends_with('\n') => Some(serde_json::from_str(&text).unwrap()),
        _ => None,
    }
}

#[test]
fn a_subscriber_past_the_cap_gets_an_error_line_and_is_closed() {
    let dir = TempDir::new("cap");
    let fanout = Fanout::start(
        &dir.sock(),
        FanoutSettings {
            max_subscribers: 2,
            ..settings(64)
        },
    )
    .unwrap();
    let publisher = fanout.publisher();
    let mut first = Client::connect(&dir.sock());
    let _second = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);

    let mut third = Client::connect(&dir.sock());
    let refused = third.line();
    let msg = refused["error"].as_str().expect("an error line");
    assert!(msg.contains("too many subscribers"), "{msg}");
    assert!(msg.contains("fanout_max_subscribers"), "{msg}");
    assert!(third.rest_until_eof().is_empty(), "closed after the error");
    assert_eq!(fanout.stats().refused, 1);
    assert_eq!(fanout.stats().subscribers, 2);

    // The two within the cap are served as before.
    publisher.data("a", "1", ts(0));
    assert_eq!(first.line()["seq"], json!(1));
    // A place freed is a place taken.
    drop(first);
    wait_subscribers(&fanout, 1);
    let mut again = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);
    publisher.data("a", "2", ts(0));
    assert_eq!(again.line()["seq"], json!(2));
    fanout.stop();
}

#[test]
fn unknown_feed_names_are_refused_with_the_configured_feeds() {
    let dir = TempDir::new("unknown");
    let fanout = Fanout::start(&dir.sock(), settings(64)).unwrap();
    let publisher = fanout.publisher();
    let mut client = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 1);

    client.send("{\"subscribe\": [\"a\", \"nope\"]}\n");
    let err = client.line();
    let msg = err["error"].as_str().expect("an error line");
    assert!(msg.contains("unknown feed \"nope\""), "{msg}");
    assert!(
        msg.contains("configured feeds are: a, b, f0, f1, f2, f3, signals, ticks"),
        "{msg}"
    );
    // The refused request subscribed to nothing: not "a", and no longer
    // every feed either.
    publisher.data("a", "1", ts(0));
    publisher.state("b", "live", None);
    client.send("{\"subscribe\": [\"b\"]}\n");
    assert_eq!(client.line(), json!({"subscribed":["b"]}));
    publisher.data("b", "2", ts(0));
    assert_eq!(client.line()["data"], json!(2));

    // Thousands of made-up names: refused whole, the names counted rather
    // than echoed.
    let names: Vec<String> = (0..5_000).map(|i| format!("\"x{i}\"")).collect();
    let request = format!("{{\"subscribe\": [\"b\", {}]}}\n", names.join(","));
    client.send(&request);
    let err = client.line();
    let msg = err["error"].as_str().expect("an error line");
    assert!(msg.len() < 400, "{msg}");
    assert!(
        msg.contains("request longer than") || msg.contains("more"),
        "{msg}"
    );
    publisher.data("b", "3", ts(0));
    client.send("{\"subscribe\": [\"a\"]}\n");
    assert_eq!(client.line(), json!({"subscribed":["a"]}));
    fanout.stop();
}

#[test]
fn a_queue_past_its_byte_bound_drops_the_slow_subscriber_and_counts_it() {
    let logs = logs();
    let dir = TempDir::new("bytes");
    let queue_bytes = 64 * 1024;
    // A line bound it never reaches: only the byte bound can act.
    let fanout = Fanout::start(
        &dir.sock(),
        FanoutSettings {
            queue_bytes,
            ..settings(1_000_000)
        },
    )
    .unwrap();
    let mut slow = Client::connect(&dir.sock());
    let fast = Client::connect(&dir.sock());
    wait_subscribers(&fanout, 2);
    let payload = format!("\"{}\"", "z".repeat(1000));
    // The fast one stays within a few lines: far below the bound.
    let (published, seqs, _fast) =
        publish_beside_a_fast_reader(&fanout, fast, &payload, 16, |_, dropped| dropped > 0);
    assert_eq!(seqs, (1..=published).collect::<Vec<_>>());
    let stats = fanout.stats();
    assert_eq!((stats.subscribers, stats.dropped_slow), (1, 1));
    // Far fewer lines than any line bound: the bytes did it.
    assert!(published < 2_000, "{published}");
    let got = slow.rest_until_eof();
    assert!((got.len() as u64) < published);

    let me = thread::current().id();
    let logged = logs.0.lock().unwrap();
    let warn = logged
        .iter()
        .find(|(thread, level, msg)| {
            *thread == me && *level == log::Level::Warn && msg.contains("fell behind")
        })
        .expect("a warning");
    assert!(
        warn.2.contains(&format!("{queue_bytes} bytes")),
        "{}",
        warn.2
    );
    drop(logged);
    fanout.stop();
}

#[test]
fn a_subscribe_flood_does_not_starve_a_normal_subscriber() {
    let dir = TempDir::new("flood");
    let fanout = Fanout::start(&dir.sock(), settings(4096)).unwrap();
    let publisher = fanout.publisher();
    let mut normal = Client::connect(&dir.sock());
    normal.send("{\"subscribe\": [\"ticks\"]}\n");
    assert_eq!(normal.line(), json!({"subscribed":["ticks"]}));

    // 30 clients each asking, again and again, for 10 000 made-up names in
    // 60 KB requests.
    let request: Arc<Vec<u8>> = Arc::new({
        let names: Vec<String> = (0..10_000).map(|i| format!("\"{i:04}\"")).collect();
        format!("{{\"subscribe\":[{}]}}\n", names.join(",")).into_bytes()
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..30)
        .map(|_| {
            let stream = UnixStream::connect(dir.sock()).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let (request, stop) = (Arc::clone(&request), Arc::clone(&stop));
            thread::spawn(move || {
                let mut answers = Vec::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while !stop.load(Ordering::SeqCst) {
                    let _ = (&stream).write_all(&request);
                    let mut text = String::new();
                    if let Ok(n) = reader.read_line(&mut text) {
                        if n == 0 {
                            break;
                        }
                        if let Ok(v) = serde_json::from_str::<Value>(&text) {
                            answers.push(v);
                        }
                    }
                }
                answers
            })
        })
        .collect();

    let lines = 3_000u64;
    for i in 0..lines {
        publisher.data("ticks", &i.to_string(), ts(i));
        if i % 100 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    for i in 0..lines {
        let line = normal.line();
        assert_eq!(line["seq"], json!(i + 1), "{line}");
    }
    stop.store(true, Ordering::SeqCst);
    let mut refusals = 0;
    for f in flooders {
        for answer in f.join().unwrap() {
            assert!(answer.get("subscribed").is_none(), "{answer}");
            if answer.get("error").is_some() {
                refusals += 1;
            }
        }
    }
    assert!(refusals > 0, "no flooding request was answered");
    assert_eq!(fanout.stats().dropped_slow, 0);
    fanout.stop();
}

#[test]
fn a_thousand_idle_connections_add_no_thread_to_the_agent() {
    let dir = common::TempDir::new("fanout-idle");
    let config = common::write_config(
        dir.path(),
        &common::agent_toml(dir.path(), "fanout_max_subscribers = 1100"),
    );
    let mut agent = common::spawn_agent(dir.path(), &config, &[]);
    let pid = agent.id();
    let socket = dir.join("run/feeds.sock");
    assert!(
        common::wait_for(DEADLINE, || UnixStream::connect(&socket).is_ok()),
        "no fan-out socket; stderr:\n{}",
        common::stderr_of(dir.path())
    );
    let tasks = || fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
    let fds = || fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    // Settled: the agent has started every thread it runs with (on a
    // loaded machine the last of them may come late, so the count must
    // hold still for half a second, tried until the deadline).
    let mut threads = tasks();
    assert!(
        common::wait_for(DEADLINE, || {
            threads = tasks();
            common::holds_for(Duration::from_millis(500), || tasks() == threads)
        }),
        "the agent's thread count never settled"
    );
    let fds_before = fds();

    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    // Connections are taken in order: once the last one is answered,
    // every idle one before it is held.
    let last = UnixStream::connect(&socket).unwrap();
    last.set_read_timeout(Some(DEADLINE)).unwrap();
    (&last).write_all(b"{\"subscribe\":[]}\n").unwrap();
    assert_eq!(read_json_line(&last), Some(json!({"subscribed":[]})));
    assert!(fds() >= fds_before + 1000, "the idle connections are held");
    // A thread per connection would add a thousand and never go back; a
    // short-lived helper thread of the agent's own may come and go.
    assert!(
        common::wait_for(DEADLINE, || tasks() == threads),
        "{} threads with 1001 subscribers, {threads} before",
        tasks()
    );
    drop(idle);
    drop(last);
    assert_eq!(common::stop_agent(&mut agent), Some(0));
}
