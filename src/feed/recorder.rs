//! The flight recorder: each feed's last frames and state transitions in a
//! bounded ring (by default 1 000 entries and 1 MiB, whichever is reached
//! first; the oldest go), written out whole when the feed goes down, so a
//! post-mortem starts from what the broker actually sent.
//!
//! Secrets never enter it: before an entry is stored, every secret known
//! to the feed (its credential values, set with [`Recorder::set_secrets`])
//! is replaced by its fingerprint wherever it appears, and in a JSON frame
//! the value of any key that names a secret (`token`, `key`, `secret`,
//! `signature`, `password`, ...) is replaced by its fingerprint too (a
//! session token the broker issued is not a credential, but is secret).
//!
//! The ring and its serialisation are pure (time comes in as an argument);
//! the session driver records what the core sent and received through the
//! feed thread's [`current`] recorder, and the daemon's sink records state
//! transitions and writes the file (`<state_dir>/blackbox/<feed>-<UTC
//! time>.ndjson`, one JSON object a line, oldest files pruned beyond a size
//! cap: [`write_dump`]).

use crate::feed::state::FeedState;
use crate::secret::Secret;
use crate::secret::fingerprint_of;
use base64::Engine;
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Entries kept per feed by default.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;
/// Bytes of frames kept per feed by default (payload lengths).
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// Bytes of dump files kept in the blackbox folder; the oldest beyond go.
pub const DEFAULT_FOLDER_CAP: u64 = 64 << 20;
/// A feed that keeps going down writes at most one dump per this long
/// (a flapping feed would otherwise write one per short connection).
pub const DUMP_MIN_GAP: Duration = Duration::from_secs(60);
/// A frame larger than this is recorded cut, with its full length noted.
pub const FRAME_MAX: usize = 64 << 10;
/// The per-entry cost counted besides its payload (time, kind, queue slot).
const ENTRY_OVERHEAD: usize = 64;

/// JSON keys whose string values are secrets, matched case-insensitively
/// as substrings (`api_key`, `accessToken`, `X-Signature`).
const SECRET_KEY_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passphrase",
    "signature",
    "apikey",
    "api_key",
    "key_id",
    "jwt",
    "otp",
];

/// Which way a frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the broker.
    In,
    /// To the broker.
    Out,
}

/// A frame's payload, already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A JSON text frame (valid JSON), embedded as JSON.
    Json(String),
    /// A text frame that is not JSON.
    Text(String),
    /// A binary frame, written as base64.
    Binary(Vec<u8>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Json(s) | Payload::Text(s) => s.len(),
            Payload::Binary(b) => b.len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Frame {
        at: SystemTime,
        dir: Direction,
        payload: Payload,
        /// The frame's length as sent, when the payload was cut.
        cut_from: Option<usize>,
    },
    Transition {
        at: SystemTime,
        state: String,
        detail: Option<String>,
    },
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Entry::Frame { payload, .. } => payload.len(),
                Entry::Transition { state, detail, .. } => {
                    state.len() + detail.as_ref().map_or(0, String::len)
                }
            }
    }

    /// One NDJSON line (no newline).
    pub fn to_json_line(&self) -> String {
        let v = match self {
            Entry::Frame {
                at,
                dir,
                payload,
                cut_from,
            } => {
                let mut m = serde_json::Map::new();
                m.insert("time".into(), crate::timefmt::rfc3339_millis(*at).into());
                m.insert("kind".into(), "frame".into());
                m.insert(
                    "dir".into(),
                    match dir {
                        Direction::In => "in",
                        Direction::Out => "out",
                    }
                    .into(),
                );
                match payload {
                    Payload::Json(s) => {
                        let v = serde_json::from_str(s).unwrap_or_else(|_| s.clone().into());
                        m.insert("json".into(), v);
                    }
                    Payload::Text(s) => {
                        m.insert("text".into(), s.clone().into());
                    }
                    Payload::Binary(b) => {
                        m.insert(
                            "base64".into(),
                            base64::engine::general_purpose::STANDARD.encode(b).into(),
                        );
                    }
                }
                if let Some(n) = cut_from {
                    m.insert("cut_from_bytes".into(), (*n).into());
                }
                serde_json::Value::Object(m)
            }
            Entry::Transition { at, state, detail } => serde_json::json!({
                "time": crate::timefmt::rfc3339_millis(*at),
                "kind": "transition",
                "state": state,
                "detail": detail,
            }),
        };
        v.to_string()
    }
}

/// A bounded ring of entries.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Ring {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    pub fn push(&mut self, e: Entry) {
        self.bytes += e.cost();
        self.entries.push_back(e);
        while self.entries.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.cost();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Every entry, one JSON object a line, oldest first.
    pub fn to_ndjson(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out += &e.to_json_line();
            out.push('\n');
        }
        out
    }
}

/// Replaces every secret in `text` by its fingerprint, then in JSON the
/// values of secret-named keys. Returns the payload to store. A frame is
/// parsed only when it names such a key: most frames (market data) are
/// stored as they came and embedded as JSON when written out.
pub fn redact_text(text: &str, secrets: &[Secret]) -> Payload {
    let mut s = text.to_string();
    for secret in secrets.iter().filter(|x| x.len() >= 4) {
        if s.contains(secret.expose()) {
            s = s.replace(secret.expose(), &secret.fingerprint());
        }
    }
    if !s.trim_start().starts_with(['{', '[']) {
        return Payload::Text(s);
    }
    if !mentions_secret_key(&s) {
        return Payload::Json(s);
    }
    match serde_json::from_str::<serde_json::Value>(&s) {
        Ok(mut v) => {
            redact_json(&mut v);
            Payload::Json(v.to_string())
        }
        Err(_) => Payload::Text(s),
    }
}

fn mentions_secret_key(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| lower.contains(w))
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| k.contains(w))
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    serde_json::Value::String(s) if is_secret_key(k) && !s.starts_with("hmac:") => {
                        *s = fingerprint_of(s.as_bytes());
                    }
                    _ => redact_json(x),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Replaces every secret's bytes in `bytes` by its fingerprint.
pub fn redact_bytes(bytes: &[u8], secrets: &[Secret]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for secret in secrets.iter().filter(|x| x.len() >= 4) {
        let needle = secret.expose().as_bytes();
        let fp = secret.fingerprint();
        let mut i = 0;
        while i + needle.len() <= out.len() {
            if &out[i..i + needle.len()] == needle {
                out.splice(i..i + needle.len(), fp.bytes());
                i += fp.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// One feed's recorder: the ring and the secrets to keep out of it.
/// Shared by the feed thread (frames) and the daemon (transitions, dumps).
#[derive(Debug)]
pub struct Recorder {
    pub feed: String,
    inner: Mutex<(Ring, Vec<Secret>)>,
    /// The last state recorded and the last dump (when, where).
    dumps: Mutex<DumpState>,
}

#[derive(Debug, Default)]
struct DumpState {
    last_state: Option<FeedState>,
    last: Option<(Instant, PathBuf)>,
}

/// Whether a change of state is the feed going down (leaving `live` for
/// anything but a stop, or being parked), which writes a dump; `recent`
/// says a dump was written less than [`DUMP_MIN_GAP`] ago.
pub fn is_down_transition(prev: Option<FeedState>, next: FeedState, recent: bool) -> bool {
    if recent {
        return false;
    }
    match next {
        FeedState::Parked => prev != Some(FeedState::Parked),
        FeedState::Live | FeedState::Stopped => false,
        _ => prev == Some(FeedState::Live),
    }
}

/// How old a flight-recorder dump may be and still be named by an alert.
const DUMP_NAMED_WITHIN: Duration = Duration::from_secs(3600);

/// A feed's trouble alert with `blackbox=<file>` added: the flight
/// recorder written when the feed went down, where a post-mortem starts.
/// The journal's line (the watchdog) and the webhooks name the same file.
pub fn with_dump(a: &crate::alert::Alert) -> crate::alert::Alert {
    use crate::alert::AlertKind as K;
    let troubled = matches!(
        a.kind,
        K::FeedDown | K::FeedFlapping | K::CredentialRejected | K::ConfigInvalid
    );
    let file = a
        .get("feed")
        .filter(|_| troubled && a.get("blackbox").is_none())
        .and_then(registered)
        .and_then(|r| r.last_dump(DUMP_NAMED_WITHIN));
    match file {
        Some(p) => a.clone().with("blackbox", p.display()),
        None => a.clone(),
    }
}

impl Recorder {
    pub fn new(feed: &str, max_entries: usize, max_bytes: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            feed: feed.to_string(),
            inner: Mutex::new((Ring::new(max_entries, max_bytes), Vec::new())),
            dumps: Mutex::new(DumpState::default()),
        })
    }

    /// Records a change of state; true when it is the feed going down and
    /// the ring should be written out now ([`is_down_transition`]).
    pub fn state(&self, state: FeedState, detail: Option<&str>, at: SystemTime) -> bool {
        self.transition(state.as_str(), detail, at);
        let mut d = self.dumps.lock().unwrap_or_else(|p| p.into_inner());
        let recent = d
            .last
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() < DUMP_MIN_GAP);
        let prev = d.last_state.replace(state);
        is_down_transition(prev, state, recent)
    }

    /// Remembers the file a dump went to.
    pub fn dumped(&self, path: PathBuf) {
        self.dumps.lock().unwrap_or_else(|p| p.into_inner()).last = Some((Instant::now(), path));
    }

    /// The last dump's file, if written within `within`.
    pub fn last_dump(&self, within: Duration) -> Option<PathBuf> {
        let d = self.dumps.lock().unwrap_or_else(|p| p.into_inner());
        d.last
            .as_ref()
            .filter(|(t, _)| t.elapsed() < within)
            .map(|(_, p)| p.clone())
    }

    /// The secrets known to the feed (its credential values), replaced
    /// wherever they would be recorded.
    pub fn set_secrets(&self, secrets: Vec<Secret>) {
        self.lock().1 = secrets;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Ring, Vec<Secret>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a text frame (redacted before it is stored).
    pub fn text(&self, dir: Direction, text: &str, at: SystemTime) {
        let (cut, cut_from) = cut_text(text);
        let mut g = self.lock();
        let payload = redact_text(cut, &g.1);
        g.0.push(Entry::Frame {
            at,
            dir,
            payload,
            cut_from,
        });
    }

    /// Records a binary frame (redacted before it is stored).
    pub fn binary(&self, dir: Direction, bytes: &[u8], at: SystemTime) {
        let cut_from = (bytes.len() > FRAME_MAX).then_some(bytes.len());
        let mut g = self.lock();
        let payload = Payload::Binary(redact_bytes(&bytes[..bytes.len().min(FRAME_MAX)], &g.1));
        g.0.push(Entry::Frame {
            at,
            dir,
            payload,
            cut_from,
        });
    }

    pub fn transition(&self, state: &str, detail: Option<&str>, at: SystemTime) {
        let mut g = self.lock();
        let detail = detail.map(|d| match redact_text(d, &g.1) {
            Payload::Json(s) | Payload::Text(s) => s,
            Payload::Binary(_) => String::new(),
        });
        g.0.push(Entry::Transition {
            at,
            state: state.to_string(),
            detail,
        });
    }

    /// The whole ring as NDJSON, oldest first.
    pub fn to_ndjson(&self) -> String {
        self.lock().0.to_ndjson()
    }

    /// (entries, bytes counted) now.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.0.len(), g.0.bytes())
    }
}

fn cut_text(text: &str) -> (&str, Option<usize>) {
    if text.len() <= FRAME_MAX {
        return (text, None);
    }
    let mut end = FRAME_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], Some(text.len()))
}

/// Every running feed's recorder, by feed name (the daemon registers them;
/// the feed thread, the sink and `blackbox` look them up).
fn registry() -> &'static Mutex<HashMap<String, Arc<Recorder>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Recorder>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

pub fn register(r: Arc<Recorder>) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(r.feed.clone(), r);
}

pub fn unregister(feed: &str) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(feed);
}

pub fn registered(feed: &str) -> Option<Arc<Recorder>> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(feed)
        .cloned()
}

/// Every registered recorder, by feed name.
pub fn all_registered() -> Vec<Arc<Recorder>> {
    let mut v: Vec<Arc<Recorder>> = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    v.sort_by(|a, b| a.feed.cmp(&b.feed));
    v
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Recorder>>> = const { RefCell::new(None) };
}

/// Makes `r` the recorder of this (feed) thread: the session driver records
/// into it without every broker adapter having to pass it along.
pub fn set_current(r: Option<Arc<Recorder>>) {
    CURRENT.with(|c| *c.borrow_mut() = r);
}

/// This thread's recorder, if it is a feed thread with one.
pub fn current() -> Option<Arc<Recorder>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `<feed>-<UTC time>.ndjson`, e.g. `sig-20261122T090001.123Z.ndjson`.
pub fn dump_name(feed: &str, at: SystemTime) -> String {
    let t = crate::timefmt::rfc3339_millis(at).replace([':', '-'], "");
    format!("{feed}-{t}.ndjson")
}

/// Writes `ndjson` to `<folder>/<dump_name>` (created 0750, file 0640),
/// then removes the oldest `.ndjson` files while the folder holds more
/// than `cap` bytes (never the one just written).
pub fn write_dump(
    folder: &Path,
    feed: &str,
    ndjson: &str,
    at: SystemTime,
    cap: u64,
) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(folder)?;
    let path = folder.join(dump_name(feed, at));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&path)?;
    f.write_all(ndjson.as_bytes())?;
    prune(folder, cap, &path)?;
    Ok(path)
}

fn prune(folder: &Path, cap: u64, keep: &Path) -> std::io::Result<()> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(folder)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + ms)
    }

    fn frame(n: usize) -> Entry {
        Entry::Frame {
            at: t(n as u64),
            dir: Direction::In,
            payload: Payload::Text("x".repeat(n)),
            cut_from: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_within_both_bounds() {
        // (max entries, max bytes, frame sizes pushed, sizes kept)
        let o = ENTRY_OVERHEAD;
        let cases: Vec<(usize, usize, Vec<usize>, Vec<usize>)> = vec![
            (3, 1 << 20, vec![1, 2, 3, 4, 5], vec![3, 4, 5]),
            (100, 3 * (o + 10), vec![10, 10, 10, 10], vec![10, 10, 10]),
            (100, 2 * o + 30, vec![10, 20, 25], vec![25]),
            // One entry larger than the byte bound is still kept alone.
            (100, 10, vec![1, 500], vec![500]),
        ];
        for (max_e, max_b, pushed, kept) in cases {
            let mut r = Ring::new(max_e, max_b);
            for n in &pushed {
                r.push(frame(*n));
            }
            let got: Vec<usize> = r
                .entries()
                .map(|e| match e {
                    Entry::Frame { payload, .. } => payload.len(),
                    _ => 0,
                })
                .collect();
            assert_eq!(got, kept, "{max_e} {max_b} {pushed:?}");
            assert_eq!(r.bytes(), kept.iter().map(|n| n + o).sum::<usize>());
        }
    }

    #[test]
    fn lines_embed_json_as_json_and_binary_as_base64() {
        let entries = [
            (
                Entry::Frame {
                    at: t(0),
                    dir: Direction::In,
                    payload: Payload::Json(r#"{"channel":"ticker","data":[1]}"#.into()),
                    cut_from: None,
                },
                r#"{"dir":"in","json":{"channel":"ticker","data":[1]},"kind":"frame","time":"2026-11-18T11:06:40.000Z"}"#,
            ),
            (
                Entry::Frame {
                    at: t(1),
                    dir: Direction::Out,
                    payload: Payload::Binary(vec![0, 1, 2, 255]),
                    cut_from: Some(70000),
                },
                r#"{"base64":"AAEC/w==","cut_from_bytes":70000,"dir":"out","kind":"frame","time":"2026-11-18T11:06:40.001Z"}"#,
            ),
            (
                Entry::Transition {
                    at: t(2),
                    state: "backoff".into(),
                    detail: Some("stalled".into()),
                },
                r#"{"detail":"stalled","kind":"transition","state":"backoff","time":"2026-11-18T11:06:40.002Z"}"#,
            ),
        ];
        for (e, want) in entries {
            assert_eq!(e.to_json_line(), want);
        }
    }

    #[test]
    fn secrets_are_replaced_by_fingerprints_before_storing() {
        let key = Secret::new("CANARY-api-key-1234");
        let secrets = vec![key.clone()];
        let cases: Vec<(&str, &str, &str)> = vec![
            // A credential anywhere in the text.
            (
                r#"{"type":"auth","token":"CANARY-api-key-1234"}"#,
                "CANARY",
                "hmac:",
            ),
            // A broker-issued token (not a credential) under a secret key.
            (
                r#"{"method":"subscribe","params":{"channel":"executions","token":"CANARYsessiontoken"}}"#,
                "CANARYsessiontoken",
                "executions",
            ),
            (
                "wss://ws.example/?api_key=CANARY-api-key-1234&access_token=x",
                "CANARY",
                "hmac:",
            ),
            (
                r#"[{"apiKey":"CANARYk","nested":{"X-Signature":"CANARYs"}}]"#,
                "CANARY",
                "nested",
            ),
        ];
        for (text, absent, present) in cases {
            let p = redact_text(text, &secrets);
            let shown = format!("{p:?}");
            assert!(!shown.contains(absent), "{text} -> {shown}");
            assert!(shown.contains(present), "{text} -> {shown}");
        }
        let b = redact_bytes(b"\x00\x01CANARY-api-key-1234\xff", &secrets);
        assert!(!b.windows(6).any(|w| w == b"CANARY"));
        assert!(b.starts_with(b"\x00\x01hmac:"));

        let r = Recorder::new("f", 10, 1 << 20);
        r.set_secrets(secrets);
        r.text(Direction::Out, r#"{"token":"CANARY-api-key-1234"}"#, t(0));
        r.binary(Direction::Out, b"CANARY-api-key-1234", t(1));
        r.transition("parked", Some("rejected key CANARY-api-key-1234"), t(2));
        let dump = r.to_ndjson();
        assert!(!dump.contains("CANARY"), "{dump}");
        assert_eq!(dump.lines().count(), 3);
    }

    #[test]
    fn dumps_follow_a_feed_going_down() {
        use FeedState::*;
        // (previous, next, dump written recently, dump now)
        let cases = [
            (Some(Live), Backoff, false, true),
            (Some(Live), Connecting, false, true),
            (Some(Live), Parked, false, true),
            (Some(Backoff), Parked, false, true),
            (Some(Parked), Parked, false, false),
            (Some(Live), Backoff, true, false),
            (Some(Connecting), Backoff, false, false),
            (None, Connecting, false, false),
            (Some(Live), Stopped, false, false),
            (Some(Backoff), Live, false, false),
        ];
        for (prev, next, recent, want) in cases {
            assert_eq!(
                is_down_transition(prev, next, recent),
                want,
                "{prev:?} -> {next:?} recent={recent}"
            );
        }
    }

    #[test]
    fn dumps_are_named_by_feed_and_time_and_pruned_oldest_first() {
        let dir = std::env::temp_dir().join(format!("bg-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(dump_name("sig", t(123)), "sig-20261118T110640.123Z.ndjson");
        let line = "x".repeat(100);
        let mut paths = Vec::new();
        for i in 0..5 {
            let p = write_dump(&dir, "sig", &line, t(i * 1000), 350).unwrap();
            // Distinct modification times for the pruning order.
            let when = std::fs::FileTimes::new().set_modified(t(i * 1000));
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_times(when)
                .unwrap();
            paths.push(p);
        }
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
