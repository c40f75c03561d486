//! Credentials across threads and the file system: the inotify watcher sees
//! every way a credentials file is rewritten, reads a finished write at once
//! and debounces a write in progress; and the
//! canary sweep: planted secret values never appear in any error, event,
//! alert line, status entry or doctor report.

use brokerguard::brokers::registry::{BROKERS, Settings};
use brokerguard::brokers::substitute;
use brokerguard::brokers::websocket::WsSettings;
use brokerguard::brokers::{BrokerRef, websocket};
use brokerguard::commands::doctor;
use brokerguard::config::required_credentials;
use brokerguard::config::{AgentConfig, Config, FeedConfig};
use brokerguard::credentials::dotenv;
use brokerguard::credentials::format;
use brokerguard::credentials::format::Rules;
use brokerguard::credentials::monitor::Monitor;
use brokerguard::credentials::required::{Required, TEMPLATE_FIELD};
use brokerguard::credentials::setcred::set_credential;
use brokerguard::credentials::store::{CredentialStore, Sources};
use brokerguard::credentials::watcher::Watcher;
use brokerguard::secret::Secret;
use brokerguard::status::schema::CredentialStatus;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

const DEBOUNCE: Duration = Duration::from_millis(100);
/// Generous for a loaded CI box; the watcher normally reacts at once to a
/// finished write and in ~debounce to one still in progress.
const DEADLINE: Duration = Duration::from_secs(3);

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "bg-credit-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn token_req() -> Vec<Required> {
    vec![Required {
        name: "TOKEN".into(),
        feed: "f".into(),
        broker: Rules::generic(),
        field: TEMPLATE_FIELD.into(),
        optional: false,
    }]
}

/// The value of TOKEN in `file` as the agent would load it now.
fn token_in(file: &Path) -> Option<String> {
    let sources = Sources::fixed(None, vec![file.to_path_buf()], &[]);
    let out = CredentialStore::load(&sources, &token_req());
    out.store.get("TOKEN").map(|c| c.value.expose().to_string())
}

/// A watcher on `file` whose callback reports the value it then finds.
fn watch(file: &Path) -> (Watcher, Receiver<Option<String>>) {
    let (tx, rx) = mpsc::channel();
    let f = file.to_path_buf();
    let w = Watcher::start(
        &[file.to_path_buf()],
        DEBOUNCE,
        Box::new(move || {
            let _ = tx.send(token_in(&f));
        }),
    )
    .unwrap();
    (w, rx)
}

/// Waits for a callback that sees `want`; the time it took.
fn expect_value(rx: &Receiver<Option<String>>, want: &str, style: &str) -> Duration {
    let start = Instant::now();
    loop {
        let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_else(|| {
            panic!("{style}: no change callback with the new value within {DEADLINE:?}")
        });
        match rx.recv_timeout(left) {
            Ok(Some(v)) if v == want => return start.elapsed(),
            Ok(_) => {}
            Err(_) => panic!("{style}: no change callback with the new value within {DEADLINE:?}"),
        }
    }
}

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?}");
}

#[test]
fn watcher_sees_every_write_style() {
    let d = temp_dir("styles");
    let file = d.join("credentials.env");
    fs::write(&file, "OTHER=x\nTOKEN=v0\n").unwrap();
    let (w, rx) = watch(&file);
    let elsewhere = temp_dir("styles-src");

    // 1. Editor style: write a temp file beside it, rename over.
    let tmp = d.join(".credentials.env.swp");
    fs::write(&tmp, "OTHER=x\nTOKEN=v1\n").unwrap();
    fs::rename(&tmp, &file).unwrap();
    expect_value(&rx, "v1", "rename-over");

    // 2. cp from another folder (truncates and writes in place).
    let src = elsewhere.join("new.env");
    fs::write(&src, "OTHER=x\nTOKEN=v2\n").unwrap();
    run(Command::new("cp").arg(&src).arg(&file));
    expect_value(&rx, "v2", "cp");

    // 3. Truncate, then write in pieces.
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        f.write_all(b"OTHER=x\n").unwrap();
        f.flush().unwrap();
        f.write_all(b"TOKEN=v3\n").unwrap();
    }
    expect_value(&rx, "v3", "truncate+write");

    // 4. sed -i (GNU sed writes a temp file in the folder and renames it).
    run(Command::new("sed")
        .arg("-i")
        .arg("s/TOKEN=v3/TOKEN=v4/")
        .arg(&file));
    expect_value(&rx, "v4", "sed -i");

    // 5. Delete, then create again.
    fs::remove_file(&file).unwrap();
    fs::write(&file, "TOKEN=v5\n").unwrap();
    expect_value(&rx, "v5", "delete+recreate");

    // 6. set-credential (atomic temp + rename, as the CLI does).
    set_credential(&file, "TOKEN", &Secret::new("v6")).unwrap();
    expect_value(&rx, "v6", "set-credential");
    // set-credential closes its file after the rename: a second finished
    // write of the same content, read again at once. Let it pass.
    while rx.recv_timeout(DEBOUNCE * 2).is_ok() {}

    // Changes to other files in the folder are ignored.
    fs::write(d.join("unrelated.txt"), "x").unwrap();
    assert!(
        rx.recv_timeout(DEBOUNCE * 4).is_err(),
        "unrelated file triggered a reload"
    );

    w.stop();
    fs::remove_dir_all(&d).unwrap();
    fs::remove_dir_all(&elsewhere).unwrap();
}

#[test]
fn watcher_follows_symlink_swaps_and_target_writes() {
    let d = temp_dir("symlink");
    fs::create_dir(d.join("v1")).unwrap();
    fs::create_dir(d.join("v2")).unwrap();
    fs::write(d.join("v1/token.env"), "TOKEN=one\n").unwrap();
    fs::write(d.join("v2/token.env"), "TOKEN=two\n").unwrap();
    let link = d.join("token.env");
    std::os::unix::fs::symlink("v1/token.env", &link).unwrap();
    let (w, rx) = watch(&link);

    // A write to the current target (in another folder) is seen.
    fs::write(d.join("v1/token.env"), "TOKEN=one-b\n").unwrap();
    expect_value(&rx, "one-b", "write to symlink target");

    // Atomic swap of the link (ln -s new tmp && mv -T tmp link).
    std::os::unix::fs::symlink("v2/token.env", d.join("token.env.tmp")).unwrap();
    fs::rename(d.join("token.env.tmp"), &link).unwrap();
    expect_value(&rx, "two", "symlink swap");

    // After the swap, writes to the new target are seen too.
    let tmp = d.join("v2/.tmp");
    fs::write(&tmp, "TOKEN=two-b\n").unwrap();
    fs::rename(&tmp, d.join("v2/token.env")).unwrap();
    expect_value(&rx, "two-b", "rename over the new target");

    w.stop();
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn watcher_waits_for_a_folder_that_does_not_exist_yet() {
    let d = temp_dir("late");
    let file = d.join("later/credentials.env");
    let (w, rx) = watch(&file);
    fs::create_dir(d.join("later")).unwrap();
    fs::write(&file, "TOKEN=late\n").unwrap();
    expect_value(&rx, "late", "folder created after start");
    // And the folder is now watched normally.
    fs::write(&file, "TOKEN=later\n").unwrap();
    expect_value(&rx, "later", "write after the folder appeared");
    w.stop();
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn watcher_debounces_writes_in_progress_into_one_callback() {
    let d = temp_dir("burst");
    let file = d.join("credentials.env");
    fs::write(&file, "TOKEN=0\n").unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    // A wider window than the default so a busy CI box cannot split the burst.
    let debounce = Duration::from_millis(300);
    let w = Watcher::start(
        std::slice::from_ref(&file),
        debounce,
        Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    // A writer that keeps the file open and writes in pieces: no close, so
    // only the debounce says when it is done.
    let mut writer = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&file)
        .unwrap();
    let mut last_gap = Duration::ZERO;
    let mut prev = Instant::now();
    for i in 1..=20 {
        use std::io::Write;
        writer.write_all(format!("TOKEN={i}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        last_gap = last_gap.max(prev.elapsed());
        prev = Instant::now();
    }
    let burst_end = Instant::now();
    while count.load(Ordering::SeqCst) == 0 {
        assert!(
            burst_end.elapsed() < DEADLINE,
            "no callback after the burst"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = burst_end.elapsed();
    assert!(
        latency >= debounce - Duration::from_millis(20),
        "fired before the burst settled: {latency:?}"
    );
    // Nothing more may come while the writer pauses: the burst was one change.
    let settle = Instant::now();
    while settle.elapsed() < debounce * 3 {
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "burst split (largest gap between writes {last_gap:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Closing the file finishes the write: read at once, no debounce.
    let closed = Instant::now();
    drop(writer);
    while count.load(Ordering::SeqCst) < 2 {
        assert!(closed.elapsed() < DEADLINE, "no callback after the close");
        std::thread::sleep(Duration::from_millis(1));
    }
    let on_close = closed.elapsed();
    w.stop();
    assert!(
        on_close < debounce / 2,
        "a closed write waited for the debounce: {on_close:?}"
    );
    assert_eq!(token_in(&file).as_deref(), Some("20"));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn watcher_reads_a_file_renamed_into_place_at_once() {
    let d = temp_dir("renamed");
    let file = d.join("credentials.env");
    fs::write(&file, "TOKEN=old\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let f = file.clone();
    // A debounce far longer than any wake-up: a callback within it proves
    // the finished write did not wait for it.
    let debounce = Duration::from_secs(2);
    let w = Watcher::start(
        std::slice::from_ref(&file),
        debounce,
        Box::new(move || {
            let _ = tx.send((Instant::now(), token_in(&f)));
        }),
    )
    .unwrap();
    let tmp = d.join(".credentials.env.new");
    fs::write(&tmp, "TOKEN=new\n").unwrap();
    let renamed = Instant::now();
    fs::rename(&tmp, &file).unwrap();
    let (at, value) = rx
        .recv_timeout(DEADLINE)
        .expect("a callback after the rename");
    w.stop();
    assert_eq!(value.as_deref(), Some("new"));
    let took = at - renamed;
    assert!(
        took < debounce / 4,
        "the rename waited for the debounce: {took:?}"
    );
    fs::remove_dir_all(&d).unwrap();
}

// ---- canary sweep ----------------------------------------------------------

fn assert_clean(what: &str, shown: &str) {
    assert!(!shown.contains("CANARY"), "{what} leaks a secret: {shown}");
}

fn canary_config(file: &Path) -> Config {
    let mut agent = AgentConfig::defaults();
    agent.credential_files = vec![file.to_path_buf()];
    let mut feeds = Vec::new();
    // One feed of every broker of this build, so a new broker's credential
    // fields are swept too.
    for b in BROKERS {
        let mut f = FeedConfig::new(b.name(), BrokerRef(*b));
        f.account = Some("main".into());
        feeds.push(f);
    }
    let mut ws = FeedConfig::new("signals", BrokerRef(&websocket::BROKER));
    ws.settings = Settings::new(WsSettings {
        auth: Some(r#"{"token":"${SIGNALS_TOKEN}","gone":"${ABSENT_TOKEN}"}"#.into()),
        ..WsSettings::default()
    });
    feeds.push(ws);
    Config {
        path: PathBuf::from("/etc/brokerguard/brokerguard.toml"),
        agent,
        feeds,
        calendars: Default::default(),
        http: None,
        metrics: Default::default(),
        alerts: Default::default(),
        ha: None,
    }
}

#[test]
fn canary_secrets_appear_in_no_output() {
    let d = temp_dir("canary");
    let file = d.join("credentials.env");
    let required = |c: &Config| required_credentials(c);
    let cfg = canary_config(&file);
    let req = required(&cfg);
    let names: Vec<String> = req.iter().map(|r| r.name.clone()).collect();

    // Every required credential gets a canary value with a format problem
    // (surrounding quotes, whitespace, wrong length...), so every message path runs.
    let mut text = String::new();
    for (i, n) in names.iter().enumerate() {
        if n == "ABSENT_TOKEN" || n == "SIGNALS_TOKEN" {
            continue;
        }
        let v = match i % 3 {
            0 => format!("\"CANARY-{i}-quoted\""),
            1 => format!("' CANARY-{i}-spaced '"),
            _ => format!("CANARY-{i}-plain"),
        };
        text.push_str(&format!("{n}={v}\n"));
    }
    fs::write(&file, &text).unwrap();
    let env = [
        ("SIGNALS_TOKEN", "CANARY-env-only\r"),
        ("INVOCATION_ID", "x"),
    ];
    let sources = Sources::fixed(None, vec![file.clone()], &env);

    let first = CredentialStore::load(&sources, &req);
    for n in names
        .iter()
        .filter(|n| *n != "SIGNALS_TOKEN" && *n != "ABSENT_TOKEN")
    {
        assert!(
            first
                .store
                .get(n)
                .unwrap()
                .value
                .expose()
                .contains("CANARY"),
            "{n}"
        );
    }
    let mut monitor = Monitor::new();
    let t0 = SystemTime::now();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, s: String| outputs.push((what.to_string(), s));

    record("store debug", format!("{:?}", first.store));
    record("outcome debug", format!("{first:?}"));
    for p in &first.problems {
        record("problem", p.to_string());
        record("problem debug", format!("{p:?}"));
    }
    record(
        "status",
        serde_json::to_string(
            &first
                .store
                .states(&req)
                .into_iter()
                .map(CredentialStatus::from)
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    for e in monitor.observe(t0, &req, &first.store, &first.problems) {
        record("event", e.alert_line());
        record("event debug", format!("{e:?}"));
    }

    // Rotation, a malformed line holding a canary, then loss.
    fs::write(&file, text.replace("CANARY-", "CANARY-rotated-")).unwrap();
    let second = CredentialStore::reload(&first.store, &sources, &req);
    for e in monitor.observe(t0, &req, &second.store, &second.problems) {
        record("rotation event", e.alert_line());
    }
    fs::write(
        &file,
        format!("{text}CANARY-no-equals-line\nX='CANARY-unterminated\n"),
    )
    .unwrap();
    let third = CredentialStore::reload(&second.store, &sources, &req);
    assert!(!third.problems.is_empty());
    for p in &third.problems {
        record("invalid problem", p.to_string());
    }
    for e in monitor.observe(t0, &req, &third.store, &third.problems) {
        record("invalid event", e.alert_line());
        record("invalid event debug", format!("{e:?}"));
    }
    fs::write(&file, "").unwrap();
    let fourth = CredentialStore::reload(&third.store, &sources, &req);
    for e in monitor.observe(t0, &req, &fourth.store, &fourth.problems) {
        record("lost event", e.alert_line());
    }

    // Substitution result and missing-credential error.
    let lookup = |n: &str| first.store.get(n).map(|c| c.value.clone());
    let sub = substitute("signals", r#"{"t":"${SIGNALS_TOKEN}"}"#, &lookup).unwrap();
    assert!(sub.expose().contains("CANARY"));
    record("substituted", format!("{sub:?} {sub}"));
    let missing = substitute("signals", "${ABSENT_TOKEN}", &lookup).unwrap_err();
    record("missing", format!("{missing} {missing:?}"));

    // Format checks straight on canaries, every field.
    for r in &req {
        for v in ["CANARY", " CANARY ", "'CANARY'", "CANARY\nX", "CANARY\r"] {
            for p in format::check(&r.broker, &r.field, &Secret::new(v)) {
                record("format", format!("{p} {p:?}"));
            }
        }
    }

    // Parser errors on lines made of canaries.
    for bad in [
        "CANARY",
        "CANARY X=1",
        "A='CANARY",
        "A=\"CANARY",
        "A='CANARY'CANARY",
        "A=CAN\rARY",
    ] {
        let e = dotenv::parse(bad, &file).unwrap_err();
        record("dotenv", format!("{e} {e:?}"));
    }

    // set-credential refusals.
    for v in ["CANARY\nX", "CANARY\r"] {
        let e = set_credential(&file, "A", &Secret::new(v)).unwrap_err();
        record("setcred", format!("{e} {e:?}"));
    }
    let e =
        set_credential(&d.join("no/such/dir/c.env"), "A", &Secret::new("CANARY-io")).unwrap_err();
    record("setcred io", format!("{e} {e:?}"));

    // doctor, text and JSON, with the canary file back in place.
    fs::write(&file, format!("{text}CANARY-broken-line\n")).unwrap();
    let report = doctor::audit(&cfg, &sources, &doctor::SystemHost::at(&d));
    record("doctor text", report.to_text());
    record("doctor json", report.to_json());
    fs::write(&file, &text).unwrap();
    let report = doctor::audit(&cfg, &sources, &doctor::SystemHost::at(&d));
    assert!(!report.ok());
    record("doctor text 2", report.to_text());
    record("doctor json 2", report.to_json());

    assert!(
        outputs.len() > 40,
        "the sweep covered too little: {}",
        outputs.len()
    );
    for (what, shown) in &outputs {
        assert_clean(what, shown);
    }
    // The sweep would catch a leak: the canary is really in the store.
    let real = first.store.get("SIGNALS_TOKEN").unwrap();
    assert!(real.value.expose().contains("CANARY"));
    fs::remove_dir_all(&d).unwrap();
}

/// Twenty token-file renames: time from the rename to the callback that
/// sees the new value. Printed for the closing note; bounded for CI.
#[test]
fn rotation_latency_of_twenty_renames() {
    let d = temp_dir("latency");
    let file = d.join("token.env");
    fs::write(&file, "TOKEN=t0\n").unwrap();
    let (w, rx) = watch(&file);
    let mut took = Vec::new();
    for i in 1..=20 {
        let tmp = d.join(".token.env.new");
        fs::write(&tmp, format!("TOKEN=t{i}\n")).unwrap();
        fs::rename(&tmp, &file).unwrap();
        took.push(expect_value(&rx, &format!("t{i}"), "rename rotation"));
    }
    w.stop();
    took.sort();
    let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
    eprintln!(
        "rename -> watcher callback with new value, 20 rotations, debounce {DEBOUNCE:?}: median {median:?}, worst {worst:?}"
    );
    // A rename is a finished write: read at once, not after the debounce.
    assert!(
        median < DEBOUNCE / 2,
        "a rename waited for the debounce: median {median:?}"
    );
    assert!(worst < Duration::from_secs(1), "worst {worst:?}");
    fs::remove_dir_all(&d).unwrap();
}
