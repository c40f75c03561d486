//! Zerodha Kite end to end: the real binary (`brokerguard run`,
//! `kite-login`, `config check`, `check`) against the in-process Kite
//! simulator (`brokerguard::sim::kite`) over loopback.
//!
//! - the daily login: a token that died at 06:00 parks the feed; the login
//!   URL; the checksum exchange; the token written atomically (a rename,
//!   owner and mode kept); the feed live on the new token, same PID;
//!   Kite's refusals shown plainly with exit 1;
//! - a rejected token parks the feed with no retry storm (upgrades counted
//!   at the simulator over seconds) until the token changes;
//! - decoded ticks on the fan-out with pykiteconnect's field names and the
//!   simulator's values; a lying frame dropped, counted, the connection kept;
//! - a 429 on the upgrade: rate limited, `alert=connection_limit`, no loop;
//! - the limits refused at `config check`, at file:line:col;
//! - `check` naming each failing layer;
//! - the canary sweep at `RUST_LOG=trace`: the api_key and the access
//!   token never reach stderr, status.json, the fan-out or a command's output.
//!
//! The token_expiring clock (weekends, holidays) is tested purely, with a
//! fake clock, in `src/brokers/kite/watch.rs` and `src/brokers/kite/tests.rs`.

mod common;
use brokerguard::sim::kite::{KiteFault, KiteSim, KiteSimConfig, KiteSimHandle, Lie, sim_tick};
use common::*;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Generous: each normally takes well under a second on a shared machine.
const SLOW: Duration = Duration::from_secs(15);

const API_KEY: &str = "canarykey7f3a9c2";
const API_SECRET: &str = "canarysecret00000000000000000001";
const OLD_TOKEN: &str = "CanaryOldAccessToken0000000000a1";

const NSE: u32 = 408_065;
const NIFTY: u32 = 256_265;

fn sim(tokens: &[&str], fault: Option<KiteFault>) -> KiteSimHandle {
    KiteSim::start(KiteSimConfig {
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        access_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        data_every: Some(Duration::from_millis(100)),
        heartbeat_every: Some(Duration::from_millis(300)),
        fault,
        ..KiteSimConfig::default()
    })
    .expect("the Kite simulator starts")
}

fn kite_feed(name: &str, sim: &KiteSimHandle, extra: &str) -> String {
    format!(
        r#"
[[feed]]
name = "{name}"
broker = "kite"
account = "main"
instruments = [{NSE}, {NIFTY}]
mode = "full"
url = "{}"
rest_url = "{}"
connect_timeout = "1s"
handshake_timeout = "2s"
backoff = {{ initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }}
{extra}
"#,
        sim.ticker_url(),
        sim.rest_url()
    )
}

/// An agent with one Kite feed `nse` on its own simulator.
struct Rig {
    dir: TempDir,
    sim: KiteSimHandle,
    agent: Agent,
    bot: FanoutClient,
}

struct Spec<'a> {
    tag: &'a str,
    /// Tokens the simulator accepts at first.
    accepted: &'a [&'a str],
    fault: Option<KiteFault>,
    /// Extra lines in the credentials file.
    extra_creds: &'a str,
    agent_extra: &'a str,
    log_level: &'a str,
    feed_extra: &'a str,
    env: &'a [(&'a str, &'a str)],
}

impl<'a> Spec<'a> {
    fn new(tag: &'a str) -> Self {
        Spec {
            tag,
            accepted: &[OLD_TOKEN],
            fault: None,
            extra_creds: "",
            agent_extra: "",
            log_level: "info",
            feed_extra: "",
            env: &[],
        }
    }
}

impl Rig {
    fn start(spec: Spec<'_>) -> Rig {
        let dir = TempDir::new(spec.tag);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let sim = sim(spec.accepted, spec.fault);
        let creds = dir.join("credentials.env");
        std::fs::write(
            &creds,
            format!(
                "# Kite, account main\nKITE_MAIN_API_KEY={API_KEY}\nKITE_MAIN_API_SECRET={API_SECRET}\n\
                 KITE_MAIN_ACCESS_TOKEN={OLD_TOKEN}\n{}",
                spec.extra_creds
            ),
        )
        .unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        let body = agent_toml(
            dir.path(),
            &format!(
                "alert_after = \"2s\"\npreflight = \"off\"\n{}",
                spec.agent_extra
            ),
        )
        .replace(
            "log_level = \"info\"",
            &format!("log_level = \"{}\"", spec.log_level),
        ) + &kite_feed("nse", &sim, spec.feed_extra);
        let cfg = write_config(dir.path(), &body);
        let agent = spawn_agent(dir.path(), &cfg, spec.env);
        let bot = FanoutClient::connect(&dir.join("run/feeds.sock"), SLOW);
        Rig {
            dir,
            sim,
            agent,
            bot,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("brokerguard.toml")
    }

    fn creds(&self) -> PathBuf {
        self.dir.join("credentials.env")
    }

    fn log(&self) -> String {
        stderr_of(self.dir.path())
    }

    fn state(&self) -> Option<String> {
        feed_state(self.dir.path(), "nse")
    }

    fn field(&self, f: &str) -> Value {
        feed_field(self.dir.path(), "nse", f).unwrap_or(Value::Null)
    }

    fn info(&self, key: &str) -> Option<String> {
        self.field("info")[key].as_str().map(String::from)
    }

    fn wait_state(&self, want: &str) {
        assert!(
            wait_for(SLOW, || self.state().as_deref() == Some(want)),
            "feed never became {want} (now {:?}, last error {:?}); stderr:\n{}",
            self.state(),
            self.field("last_error"),
            self.log()
        );
    }

    fn wait_log(&self, needle: &str) {
        assert!(
            wait_log(self.dir.path(), needle, SLOW),
            "never logged {needle:?}; stderr:\n{}",
            self.log()
        );
    }

    fn pid(&self) -> u64 {
        status_json(self.dir.path()).unwrap()["agent"]["pid"]
            .as_u64()
            .unwrap()
    }

    /// `brokerguard kite-login --account ACCOUNT --config … ARGS`.
    fn kite_login(&self, account: &str, args: &[&str]) -> CliRun {
        let config = self.config();
        let mut all = vec![
            "kite-login",
            "--account",
            account,
            "--config",
            config.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run_cli(&all, &[], None)
    }

    /// Data lines of feed `nse` on the fan-out.
    fn data(&self) -> Vec<Value> {
        self.bot
            .snapshot()
            .into_iter()
            .filter(|v| v["feed"] == "nse" && v.get("data").is_some())
            .collect()
    }

    fn finish(mut self) -> String {
        assert_eq!(stop_agent(&mut self.agent), Some(0), "{}", self.log());
        self.sim.stop();
        self.log()
    }
}

/// The dead token's reconnect: 06:00 IST came (the simulator forgets the
/// token) and Kite drops the connection.
fn expire_tokens(sim: &KiteSimHandle) {
    sim.set_access_tokens(Vec::<String>::new());
    sim.set_fault(KiteFault::Close { code: 1000 });
    sim.clear_fault();
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn the_daily_login_writes_the_token_atomically_and_the_feed_goes_live_on_it_with_the_same_pid() {
    let rig = Rig::start(Spec {
        extra_creds: &format!("KITE_ALT_API_KEY={API_KEY}\nKITE_ALT_API_SECRET=not-the-secret\n"),
        ..Spec::new("kite-login")
    });
    rig.wait_state("live");
    let pid = rig.pid();
    assert_eq!(
        rig.sim.stats().upgrades_without_version,
        0,
        "X-Kite-Version: 3 on every upgrade"
    );
    // The token in hand was timed at its first success.
    assert!(
        wait_for(SLOW, || rig
            .info("token_issued")
            .is_some_and(|v| v.ends_with("(first seen working)"))),
        "{:?}",
        rig.field("info")
    );

    // 06:00 IST: the token is dead, the reconnect is refused, the feed parks.
    expire_tokens(&rig.sim);
    rig.wait_state("parked");
    // The remedy carries the agent's --config (not the default one).
    let login = format!(
        "sudo brokerguard kite-login --account main --config {}",
        rig.config().display()
    );
    assert_eq!(
        rig.field("last_error"),
        format!("access token rejected (expired?) — run: {login}")
    );
    rig.wait_log(&format!("alert=credential_rejected feed=nse error=\"access token rejected (expired?) — run: {login}\""));
    assert_eq!(rig.info("token_state").as_deref(), Some("rejected by Kite"));

    // Without a request token: where to log in, and what to do next.
    let url = rig.kite_login("main", &[]);
    assert_eq!(url.code, Some(0), "{url:?}");
    assert!(
        url.stdout.contains(&format!(
            "https://kite.zerodha.com/connect/login?v=3&api_key={API_KEY}"
        )),
        "{}",
        url.stdout
    );
    assert!(
        url.stdout.contains("--request-token <request_token>"),
        "{}",
        url.stdout
    );

    // The exchange: the token lands in the first credentials file by rename,
    // the file's mode and other lines kept.
    let before = ino(&rig.creds());
    let request_token = rig.sim.issue_request_token();
    let redirect = format!(
        "https://bot.example/kite?action=login&status=success&request_token={request_token}"
    );
    let login = rig.kite_login("main", &["--request-token", &redirect]);
    assert_eq!(login.code, Some(0), "{login:?}");
    let tokens = rig.sim.access_tokens();
    assert_eq!(
        tokens.len(),
        1,
        "the simulator issued one token: {tokens:?}"
    );
    let new_token = tokens[0].clone();
    assert!(
        !login.all().contains(&new_token),
        "the token reached the terminal: {}",
        login.all()
    );
    assert!(
        login.stdout.starts_with(&format!(
            "KITE_MAIN_ACCESS_TOKEN written to {} (fingerprint {}; Kite user SIM001).",
            rig.creds().display(),
            fp(new_token.as_str())
        )),
        "{}",
        login.stdout
    );
    assert!(
        login.stdout.contains("(06:00 IST)") && login.stdout.contains("reconnects feed nse"),
        "{}",
        login.stdout
    );
    let text = std::fs::read_to_string(rig.creds()).unwrap();
    assert!(
        text.starts_with("# Kite, account main\nKITE_MAIN_API_KEY="),
        "{text}"
    );
    assert_eq!(text.matches("KITE_MAIN_ACCESS_TOKEN=").count(), 1, "{text}");
    assert!(
        text.contains(&format!("KITE_MAIN_ACCESS_TOKEN={new_token}\n")),
        "{text}"
    );
    assert!(
        text.contains("KITE_ALT_API_SECRET=not-the-secret"),
        "{text}"
    );
    assert_ne!(ino(&rig.creds()), before, "written by rename, not in place");
    assert_eq!(
        std::fs::metadata(rig.creds()).unwrap().mode() & 0o777,
        0o600
    );

    // The watcher reconnects the feed on the new token: no restart.
    rig.wait_state("live");
    assert_eq!(rig.pid(), pid, "the same agent");
    assert!(
        wait_for(SLOW, || rig
            .info("token_issued")
            .is_some_and(|v| v.ends_with("(kite-login)"))),
        "{:?}",
        rig.field("info")
    );
    assert_eq!(rig.info("token_state").as_deref(), Some("valid"));
    rig.wait_log("token_rotated feed=nse name=KITE_MAIN_ACCESS_TOKEN");
    let seq = rig.data().len();
    assert!(
        wait_for(SLOW, || rig.data().len() > seq + 3),
        "no data on the new token"
    );

    // Kite's refusals, plainly, exit 1: the request token again...
    let again = rig.kite_login("main", &["--request-token", &request_token]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again.stderr.starts_with(
            "brokerguard kite-login: Kite refused the request token: it is invalid, expired"
        ),
        "{}",
        again.stderr
    );
    // The hint to run again reads the same configuration as this run.
    let config = rig.config();
    assert!(
        again.stderr.trim_end().ends_with(&format!(
            "run at once: sudo brokerguard kite-login --account main --config {} --request-token <new token>",
            config.display()
        )),
        "{}",
        again.stderr
    );
    // ...a wrong api_secret (account alt, REST root given on the command line)...
    let rest = rig.sim.rest_url();
    let fresh = rig.sim.issue_request_token();
    let checksum = rig.kite_login("alt", &["--request-token", &fresh, "--rest-url", &rest]);
    assert_eq!(checksum.code, Some(1), "{checksum:?}");
    assert!(
        checksum.stderr.contains("Kite refused the checksum: the api_secret does not belong to this api_key (check KITE_ALT_API_SECRET"),
        "{}",
        checksum.stderr
    );
    // ...and a secret that is not set.
    let none = rig.kite_login("nosuch", &["--request-token", &fresh, "--rest-url", &rest]);
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr.contains("KITE_NOSUCH_API_KEY is not set"),
        "{}",
        none.stderr
    );
    assert!(
        none.stderr.trim_end().ends_with(&format!(
            "set it with: sudo brokerguard set-credential KITE_NOSUCH_API_KEY --config {}",
            config.display()
        )),
        "{}",
        none.stderr
    );
    // The file still holds the good token, and the refusals left it alone.
    assert!(
        std::fs::read_to_string(rig.creds())
            .unwrap()
            .contains(&new_token)
    );
    let log = rig.finish();
    assert!(
        !log.contains(&new_token) && !log.contains(OLD_TOKEN),
        "a token in the log"
    );
}

#[test]
fn a_rejected_token_parks_the_feed_with_no_retry_storm_until_the_token_changes() {
    let rig = Rig::start(Spec {
        accepted: &[],
        ..Spec::new("kite-403")
    });
    rig.wait_state("parked");
    assert!(
        rig.field("last_error")
            .as_str()
            .unwrap()
            .starts_with("access token rejected (expired?)")
    );
    // Parked means parked: one refused upgrade, and no more for seconds.
    assert!(
        holds_for(Duration::from_secs(4), || rig.sim.stats().upgrades_refused
            == [403]),
        "upgrades refused: {:?}",
        rig.sim.stats().upgrades_refused
    );
    assert!(
        rig.field("retry_in_ms").as_u64().unwrap() > 9 * 60 * 1000,
        "{:?}",
        rig.field("retry_in_ms")
    );
    // A new token (as a frontend's set-credential would write it) wakes it.
    let good = "CanaryNewAccessToken000000000002";
    rig.sim.add_access_token(good);
    let text = std::fs::read_to_string(rig.creds())
        .unwrap()
        .replace(OLD_TOKEN, good);
    replace_by_rename(&rig.creds(), &text);
    rig.wait_state("live");
    assert_eq!(rig.sim.stats().upgrades_refused, [403]);
    let log = rig.finish();
    assert_eq!(
        log.matches("alert=credential_rejected feed=nse error=")
            .count(),
        1,
        "{log}"
    );
}

fn divisor(token: u32) -> f64 {
    match token & 0xff {
        3 => 10_000_000.0,
        6 => 10_000.0,
        _ => 100.0,
    }
}

/// The simulator's documented values for `token` in frame `n`, with
/// pykiteconnect's field names (as `tests/kite_sim.rs` states them), read
/// back through the same JSON parser as the fan-out lines (so a float's
/// text, not the parser's last digit, is what is compared).
fn expected_full(token: u32, n: u32) -> Value {
    serde_json::from_str(&expected_full_values(token, n).to_string()).unwrap()
}

fn expected_full_values(token: u32, n: u32) -> Value {
    let t = sim_tick(token, n);
    let d = divisor(token);
    let p = |v: u32| f64::from(v) / d;
    let ts = |s: u32| brokerguard::timefmt::rfc3339(UNIX_EPOCH + Duration::from_secs(u64::from(s)));
    let change = (p(t.last_price) - p(t.close)) * 100.0 / p(t.close);
    let ohlc = json!({"open": p(t.open), "high": p(t.high), "low": p(t.low), "close": p(t.close)});
    if token & 0xff == 9 {
        return json!({"tradable": false, "mode": "full", "instrument_token": token, "last_price": p(t.last_price),
                      "ohlc": ohlc, "change": change, "exchange_timestamp": ts(t.exchange_timestamp)});
    }
    let level = |l: &brokerguard::sim::kite::SimLevel| json!({"quantity": l.quantity, "price": p(l.price), "orders": l.orders});
    json!({
        "tradable": true, "mode": "full", "instrument_token": token, "last_price": p(t.last_price),
        "last_traded_quantity": t.last_traded_quantity, "average_traded_price": p(t.average_traded_price),
        "volume_traded": t.volume_traded, "total_buy_quantity": t.total_buy_quantity,
        "total_sell_quantity": t.total_sell_quantity, "ohlc": ohlc, "change": change,
        "last_trade_time": ts(t.last_trade_time), "oi": t.oi, "oi_day_high": t.oi_day_high,
        "oi_day_low": t.oi_day_low, "exchange_timestamp": ts(t.exchange_timestamp),
        "depth": {"buy": t.buy.iter().map(level).collect::<Vec<_>>(), "sell": t.sell.iter().map(level).collect::<Vec<_>>()}
    })
}

/// The frame number of a full-mode data line (from NSE's last price).
fn frame_n(data: &Value) -> Option<u32> {
    let nse = data.as_array()?.first()?;
    let raw = (nse["last_price"].as_f64()? * 100.0).round() as u32;
    raw.checked_sub(sim_tick(NSE, 0).last_price)
}

#[test]
fn decoded_ticks_reach_the_fanout_and_a_lying_frame_is_dropped_counted_and_survived() {
    let rig = Rig::start(Spec::new("kite-ticks"));
    rig.wait_state("live");
    let full = |v: &Value| v["data"][0]["mode"] == "full";
    assert!(
        wait_for(SLOW, || rig.data().iter().filter(|v| full(v)).count() >= 3),
        "no full ticks"
    );
    // Every full data line is exactly the simulator's frame n, decoded.
    let lines = rig.data();
    let mut checked = 0;
    for line in lines.iter().filter(|v| full(v)) {
        let n = frame_n(&line["data"]).expect("a frame number");
        assert_eq!(
            line["data"],
            json!([expected_full(NSE, n), expected_full(NIFTY, n)]),
            "frame {n}"
        );
        checked += 1;
    }
    assert!(checked >= 3);
    // Heartbeats prove liveness but are not forwarded: every data line is ticks.
    assert!(lines.iter().all(|v| v["data"].is_array()), "{lines:?}");

    // One lying frame: dropped, counted, logged; the connection goes on.
    let conns = rig.sim.stats().ticker_connections;
    let seen = rig.data().len();
    rig.sim.set_fault(KiteFault::LieOnce(Lie::Count));
    assert!(rig.sim.wait_for(|s| s.lying_frames_sent >= 1, SLOW));
    rig.sim.clear_fault();
    assert!(
        wait_for(SLOW, || rig.info("frames_dropped").as_deref() == Some("1")),
        "{:?}",
        rig.field("info")
    );
    rig.wait_log("dropped a ticker frame of");
    assert!(
        wait_for(SLOW, || rig.data().len() > seen + 5),
        "data stopped after the lie"
    );
    assert_eq!(
        rig.sim.stats().ticker_connections,
        conns,
        "the connection was kept"
    );
    assert_eq!(rig.state().as_deref(), Some("live"));
    // seq grows by one per data line: none was skipped for the dropped frame.
    let seqs: Vec<u64> = rig
        .data()
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    rig.finish();
}

#[test]
fn a_429_on_the_upgrade_is_rate_limited_with_connection_limit_and_no_tight_loop() {
    let rig = Rig::start(Spec {
        fault: Some(KiteFault::RejectUpgrade { status: 429 }),
        ..Spec::new("kite-429")
    });
    rig.wait_state("backoff");
    let err = rig.field("last_error");
    assert_eq!(
        err,
        "the Kite ticker refused the upgrade with HTTP 429: the key's 3 connections are taken elsewhere: \
         another program, or a second agent"
    );
    rig.wait_log("alert=connection_limit feed=nse account=main limit=3");
    assert!(
        holds_for(Duration::from_secs(3), || rig.sim.stats().upgrades_refused
            == [429]),
        "{:?}",
        rig.sim.stats().upgrades_refused
    );
    assert!(rig.field("retry_in_ms").as_u64().unwrap() > 50_000);
    rig.finish();
}

#[test]
fn config_check_refuses_a_feed_above_3000_instruments_and_a_fourth_feed_on_one_account() {
    let dir = TempDir::new("kite-limits");
    let tokens: Vec<String> = (1..=3001).map(|n| n.to_string()).collect();
    let mut body = agent_toml(dir.path(), "");
    body.push_str(&format!(
        "\n[[feed]]\nname = \"big\"\nbroker = \"kite\"\naccount = \"main\"\ninstruments = [{}]\n",
        tokens.join(", ")
    ));
    for i in 0..3 {
        body.push_str(&format!(
            "\n[[feed]]\nname = \"f{i}\"\nbroker = \"kite\"\naccount = \"main\"\ninstruments = [{}]\n",
            NSE + i
        ));
    }
    let cfg = write_config(dir.path(), &body);
    let out = run_cli(
        &["config", "check", "--config", cfg.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(out.code, Some(78), "{out:?}");
    let c = cfg.display();
    let line_of = |needle: &str, from: &str| {
        let start = body.find(from).unwrap();
        1 + body[..start + body[start..].find(needle).unwrap()]
            .matches('\n')
            .count()
    };
    let (big, fourth) = (
        line_of("instruments = ", "name = \"big\""),
        line_of("account = ", "name = \"f2\""),
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "{c}:{big}:15: feed[0].instruments: feed big: 3001 instruments, but Kite allows 3000 per connection; \
             split them into 2 feeds of at most 3000 instruments each, on the same account"
        ))),
        "{}",
        out.stderr
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "{c}:{fourth}:11: feed[3].account: API key of account main is used by 4 feeds (big, f0, f1, f2), \
             but Kite allows 3 ticker connections per API key; merge them into at most 3 feeds"
        ))),
        "{}",
        out.stderr
    );
    // Split as told: three feeds on main, the fourth on another account.
    let fixed = body
        .replace(
            &format!("instruments = [{}]", tokens.join(", ")),
            "instruments = [1, 2]",
        )
        .replacen(
            "name = \"f2\"\nbroker = \"kite\"\naccount = \"main\"",
            "name = \"f2\"\nbroker = \"kite\"\naccount = \"second\"",
            1,
        );
    std::fs::write(&cfg, fixed).unwrap();
    let ok = run_cli(
        &["config", "check", "--config", cfg.to_str().unwrap()],
        &[],
        None,
    );
    assert_eq!(ok.code, Some(0), "{ok:?}");
}

#[test]
fn check_names_each_failing_layer_with_its_remedy() {
    let dir = TempDir::new("kite-check");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let good = sim(&[OLD_TOKEN], None);
    let refusing = sim(&[], None);
    let busy = sim(&[OLD_TOKEN], Some(KiteFault::RejectUpgrade { status: 503 }));
    let silent = sim(&[OLD_TOKEN], Some(KiteFault::Silent));
    // A port with nothing behind it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("ws://127.0.0.1:{}/", closed.local_addr().unwrap().port());
    drop(closed);
    std::fs::write(
        dir.join("credentials.env"),
        format!(
            "KITE_MAIN_API_KEY={API_KEY}\nKITE_MAIN_ACCESS_TOKEN={OLD_TOKEN}\nKITE_NOTOKEN_API_KEY={API_KEY}\n\
             KITE_OTHER_API_KEY={API_KEY}\nKITE_OTHER_ACCESS_TOKEN={OLD_TOKEN}\n"
        ),
    )
    .unwrap();
    let feed = |name: &str, url: &str, rest: &str, account: &str| {
        format!(
            "\n[[feed]]\nname = \"{name}\"\nbroker = \"kite\"\naccount = \"{account}\"\ninstruments = [{NSE}]\n\
             url = \"{url}\"\nrest_url = \"{rest}\"\nconnect_timeout = \"1s\"\nhandshake_timeout = \"2s\"\nstall_after = \"2s\"\n"
        )
    };
    let mut body = agent_toml(dir.path(), "");
    body += &feed("live", &good.ticker_url(), &good.rest_url(), "main");
    body += &feed("notoken", &good.ticker_url(), &good.rest_url(), "notoken");
    body += &feed("refused", &closed_url, &good.rest_url(), "main");
    body += &feed("maintenance", &busy.ticker_url(), &busy.rest_url(), "main");
    // At most three feeds per account (config check says so).
    body += &feed(
        "expired",
        &refusing.ticker_url(),
        &refusing.rest_url(),
        "other",
    );
    let cfg = write_config(dir.path(), &body);
    let out = run_cli(&["check", "--config", cfg.to_str().unwrap()], &[], None);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: String = out.stdout.clone();
    let block = |name: &str| -> String {
        report
            .split("\n")
            .skip_while(|l| !l.starts_with(&format!("{name} (kite)")))
            .take(8)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let live = block("live");
    assert!(live.contains("ok   auth        api_key and access_token accepted at the WebSocket upgrade; REST: GET /user/profile answered for SIM001"), "{live}");
    // Kite's heartbeat byte is its documented proof of a live
    // subscription: on a loaded machine it can come before the first tick.
    assert!(
        live.contains("ok   data        first data received")
            || live.contains("ok   data        first heartbeat received"),
        "{live}"
    );
    let notoken = block("notoken");
    assert!(
        notoken.contains(
            "FAIL credentials waiting for credential KITE_NOTOKEN_ACCESS_TOKEN (feed notoken)"
        ),
        "{notoken}"
    );
    assert!(
        notoken.contains("sudo brokerguard kite-login --account notoken"),
        "{notoken}"
    );
    let refused = block("refused");
    assert!(refused.contains("FAIL tcp"), "{refused}");
    let maintenance = block("maintenance");
    assert!(
        maintenance
            .contains("FAIL handshake   the Kite ticker is unavailable (HTTP 503, maintenance?)"),
        "{maintenance}"
    );
    let expired = block("expired");
    assert!(
        expired.contains("FAIL auth        access token rejected (expired?) — run: sudo brokerguard kite-login --account other"),
        "{expired}"
    );
    assert!(
        expired.contains("ok   handshake   the ticker answered the WebSocket upgrade (HTTP 403)"),
        "{expired}"
    );
    // The data layer: a ticker that upgrades and subscribes but sends nothing.
    let cfg2 = write_config(
        dir.path(),
        &(agent_toml(dir.path(), "")
            + &feed("quiet", &silent.ticker_url(), &silent.rest_url(), "main")),
    );
    let out2 = run_cli(&["check", "--config", cfg2.to_str().unwrap()], &[], None);
    assert_eq!(out2.code, Some(1), "{out2:?}");
    assert!(
        out2.stdout.contains("FAIL data        nothing within 2s"),
        "{}",
        out2.stdout
    );
    for o in [&out, &out2] {
        assert!(
            !o.all().contains(OLD_TOKEN) && !o.all().contains(API_KEY),
            "{}",
            o.all()
        );
    }
    println!("{}\n{}", out.stdout, out2.stdout);
}

/// Everything an operator or the bot can read, at `RUST_LOG=trace`, with
/// the REST check every second, a 403, a lying frame and a login: neither
/// the api_key nor any access token appears anywhere.
#[test]
fn canaries_never_leak_at_trace() {
    let rig = Rig::start(Spec {
        log_level: "trace",
        feed_extra: "validate_every = \"1s\"",
        env: &[("RUST_LOG", "trace")],
        ..Spec::new("kite-canary")
    });
    rig.wait_state("live");
    assert!(
        rig.sim.wait_for(|s| s.profile_ok >= 2, SLOW),
        "the REST check ran: {:?}",
        rig.sim.stats()
    );
    rig.sim.set_fault(KiteFault::LieOnce(Lie::Length));
    assert!(rig.sim.wait_for(|s| s.lying_frames_sent >= 1, SLOW));
    rig.sim.clear_fault();
    expire_tokens(&rig.sim);
    rig.wait_state("parked");
    let request_token = rig.sim.issue_request_token();
    let login = rig.kite_login("main", &["--request-token", &request_token]);
    assert_eq!(login.code, Some(0), "{login:?}");
    rig.wait_state("live");
    let new_token = rig.sim.access_tokens()[0].clone();
    assert!(rig.sim.wait_for(|s| s.profile_ok >= 3, SLOW));
    let config = rig.config();
    let status = run_cli(&["status", "--config", config.to_str().unwrap()], &[], None);
    // Live again on the new token: the rejection is history, not advice.
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("nse "))
        .unwrap_or_default();
    assert!(
        row.contains(" live ") && row.contains("earlier (") && row.contains("ago): access token"),
        "{}",
        status.stdout
    );
    assert!(
        !status.stdout.contains("  nse: access token rejected"),
        "the old remedy reads as current:\n{}",
        status.stdout
    );
    let status_json = std::fs::read_to_string(rig.dir.join("run/status.json")).unwrap();
    let doctor = run_cli(
        &["doctor", "--online", "--config", config.to_str().unwrap()],
        &[],
        None,
    );
    let fanout: Vec<String> = rig.bot.snapshot().iter().map(Value::to_string).collect();
    assert!(fanout.len() > 10);
    let state_files: String = std::fs::read_dir(rig.dir.join("state"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(state_files.contains("kite-login"), "{state_files}");
    let log = rig.finish();
    assert!(
        log.contains(" TRACE ") || log.contains(" DEBUG "),
        "trace logging was on:\n{log}"
    );
    for secret in [
        API_KEY,
        API_SECRET,
        OLD_TOKEN,
        new_token.as_str(),
        request_token.as_str(),
    ] {
        for (what, text) in [
            ("stderr", log.as_str()),
            ("status.json", status_json.as_str()),
            ("status", status.all().as_str()),
            ("doctor", doctor.all().as_str()),
            ("kite-login", login.all().as_str()),
            ("state files", state_files.as_str()),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {what}:\n{text}"
            );
        }
        assert!(
            !fanout.iter().any(|l| l.contains(secret)),
            "{secret} in the fan-out"
        );
    }
}
