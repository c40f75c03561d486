//! Webhook alerts and the dead-man's switch against loopback receivers:
//! each format's documented shape, deduplication and changes of state,
//! 429 with Retry-After, hanging and unreachable webhooks that delay
//! nothing else, the heartbeat following a feed outage in the real agent,
//! `alert-test`, and canary secrets absent from every payload, log and file.

mod common;
#[path = "alerts/receiver.rs"]
mod receiver;

use brokerguard::alert::{Alert, AlertKind};
use brokerguard::alerts::Alerts;
use brokerguard::clock::{Clock, SystemClock};
use brokerguard::config::{Config, parse_str};
use brokerguard::secret::Secret;
use brokerguard::sim::{Fault, SimConfig, Simulator};
use common::*;
use receiver::{Receiver, Reply};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CANARY_PATH: &str = "T0CANARY/B0CANARY/canaryWebhookSecret";
const CANARY_TOKEN: &str = "123456:CANARY-telegram-bot-token";
const CANARY_FEED_TOKEN: &str = "CANARY-feed-token-9f8e7d";

fn config(text: &str) -> Config {
    parse_str(text, Path::new("alerts-test.toml")).unwrap()
}

fn start(cfg: &Config, creds: Vec<(&'static str, String)>) -> Alerts {
    let lookup = move |n: &str| {
        creds
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| Secret::new(v.clone()))
    };
    Alerts::start(cfg, &lookup, Arc::new(SystemClock::new()))
}

fn down(feed: &str) -> Alert {
    Alert::new(AlertKind::FeedDown)
        .with("feed", feed)
        .with("state", "backoff")
        .with("down_for", "1m")
        .with("last_error", "connection refused")
}

fn recovered(feed: &str) -> Alert {
    Alert::new(AlertKind::FeedRecovered)
        .with("feed", feed)
        .with("downtime", "4m12s")
}

fn json_hook(name: &str, url: &str, extra: &str) -> String {
    format!("[[alerts.webhook]]\nname = \"{name}\"\nformat = \"json\"\nurl = \"{url}\"\n{extra}\n")
}

#[test]
fn every_format_reaches_its_receiver_in_its_documented_shape() {
    let rx = Receiver::start();
    let cfg = config(&format!(
        r#"
[[alerts.webhook]]
name = "slack"
format = "slack"
url = "${{SLACK_URL}}"
[[alerts.webhook]]
name = "discord"
format = "discord"
url = "${{DISCORD_URL}}"
[[alerts.webhook]]
name = "tg"
format = "telegram"
bot_token = "${{TG_TOKEN}}"
chat_id = "-100123"
api_url = "{}"
{}"#,
        rx.url(""),
        json_hook("json", &rx.url("/json"), "")
    ));
    let alerts = start(
        &cfg,
        vec![
            ("SLACK_URL", rx.url(&format!("/slack/{CANARY_PATH}"))),
            ("DISCORD_URL", rx.url(&format!("/discord/{CANARY_PATH}"))),
            ("TG_TOKEN", CANARY_TOKEN.to_string()),
        ],
    );
    alerts.dispatch(&down("kite_nse"));
    assert!(
        wait_for(Duration::from_secs(10), || rx.hits().len() >= 4),
        "{:?}",
        rx.hits()
    );
    let one = |prefix: &str| {
        let h = rx.hits_on(prefix);
        assert_eq!(h.len(), 1, "{prefix}: {h:?}");
        assert_eq!(h[0].method, "POST");
        h[0].json()
    };
    let slack = one("/slack/");
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("kite_nse down for 1m (backoff)")
    );
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert_eq!(slack["blocks"][1]["type"], "context");

    let discord = one("/discord/");
    assert!(
        discord["content"]
            .as_str()
            .unwrap()
            .starts_with("kite_nse down")
    );
    assert_eq!(discord["embeds"][0]["title"], "feed_down");
    assert_eq!(discord["embeds"][0]["fields"][0]["name"], "feed");

    let tg = one(&format!("/bot{CANARY_TOKEN}/sendMessage"));
    assert_eq!(tg["chat_id"], "-100123");
    assert!(tg["text"].as_str().unwrap().contains("state: backoff"));

    let json = one("/json");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["source"], "brokerguard");
    assert_eq!(json["alert"], "feed_down");
    assert_eq!(json["severity"], "error");
    assert_eq!(json["fields"]["feed"], "kite_nse");
    assert_eq!(json["test"], false);

    for h in rx.hits() {
        for canary in [CANARY_PATH, CANARY_TOKEN] {
            assert!(!h.body.contains(canary), "{canary} in {}", h.body);
        }
    }
    alerts.stop();
}

#[test]
fn repeats_are_held_back_and_changes_of_state_always_go() {
    let rx = Receiver::start();
    let cfg = config(&format!(
        "[agent]\nalert_repeat = \"1h\"\n{}{}",
        json_hook("all", &rx.url("/all"), ""),
        json_hook("errors", &rx.url("/errors"), "min_severity = \"error\"")
    ));
    let alerts = start(&cfg, vec![]);
    for a in [
        down("k"),
        down("k"),
        recovered("k"),
        down("k"),
        down("k"),
        Alert::new(AlertKind::FeedFlapping).with("feed", "k"),
    ] {
        alerts.dispatch(&a);
    }
    let kinds = |prefix: &str| -> Vec<String> {
        rx.hits_on(prefix)
            .iter()
            .map(|h| h.json()["alert"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(wait_for(Duration::from_secs(10), || kinds("/all").len()
        >= 4
        && kinds("/errors").len() >= 3));
    // Nothing more arrives: the repeats were held back.
    assert!(holds_for(Duration::from_millis(300), || kinds("/all")
        .len()
        == 4));
    assert_eq!(
        kinds("/all"),
        ["feed_down", "feed_recovered", "feed_down", "feed_flapping"]
    );
    // min_severity = "error": the recovery is not sent there.
    assert_eq!(
        kinds("/errors"),
        ["feed_down", "feed_down", "feed_flapping"]
    );
    alerts.stop();
}

#[test]
fn a_rotated_webhook_url_is_used_for_the_next_alert() {
    let rx = Receiver::start();
    let cfg = config("[[alerts.webhook]]\nname = \"ops\"\nformat = \"json\"\nurl = \"${HOOK}\"\n");
    let alerts = start(&cfg, vec![("HOOK", rx.url("/old"))]);
    alerts.dispatch(&down("a"));
    assert!(wait_for(Duration::from_secs(10), || rx
        .hits_on("/old")
        .len()
        == 1));
    // What the daemon does when the credential file changes.
    let lookup = |n: &str| (n == "HOOK").then(|| Secret::new(rx.url("/new")));
    alerts.update(&cfg, &lookup);
    alerts.dispatch(&down("b"));
    assert!(wait_for(Duration::from_secs(10), || rx
        .hits_on("/new")
        .len()
        == 1));
    assert_eq!(rx.hits_on("/old").len(), 1);
    alerts.stop();
}

#[test]
fn the_daily_report_goes_once_at_its_time_with_each_feeds_figures() {
    use brokerguard::clock::FakeClock;
    use brokerguard::feed::{FeedState, health::FeedHealth};
    let rx = Receiver::start();
    // 2026-11-22T02:59:00Z; the report is due at 08:30 IST = 03:00Z.
    let clock = FakeClock::at_unix(1_795_834_740);
    let cfg = config(&format!(
        "[alerts]\ndaily_report = \"08:30 Asia/Kolkata\"\n{}",
        json_hook("j", &rx.url("/j"), "")
    ));
    let alerts = Alerts::start(&cfg, &|_: &str| None, Arc::new(clock.clone()));
    let health = |state| {
        let mut h = FeedHealth::new("k", "generic", clock.mono(), clock.wall()).snapshot();
        h.state = state;
        vec![h]
    };
    alerts.observe(&health(FeedState::Live), true);
    for _ in 0..30 {
        clock.advance(Duration::from_secs(1));
        alerts.observe(&health(FeedState::Live), true);
    }
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1));
        alerts.observe(&health(FeedState::Backoff), false);
    }
    alerts.dispatch(&down("k"));
    assert!(wait_for(Duration::from_secs(5), || rx.hits().len() == 1));
    for _ in 0..25 {
        clock.advance(Duration::from_secs(1));
        alerts.observe(&health(FeedState::Live), true);
    }
    let reports = || -> Vec<serde_json::Value> {
        rx.hits()
            .iter()
            .map(|h| h.json())
            .filter(|v| v["alert"] == "daily_report")
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(5), || reports().len() == 1),
        "{:?}",
        rx.hits()
    );
    let r = &reports()[0];
    assert_eq!(r["severity"], "notice");
    assert_eq!(r["fields"]["alerts"], "1");
    // Down 10 s of the 60 s observed until 03:00Z.
    assert_eq!(r["fields"]["available"], "83.33%");
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .starts_with("daily report: 1 feeds, 83.33% available")
    );
    // Not again the same day.
    for _ in 0..120 {
        clock.advance(Duration::from_secs(1));
        alerts.observe(&health(FeedState::Live), true);
    }
    assert!(holds_for(Duration::from_millis(200), || reports().len() == 1));
    alerts.stop();
}

#[test]
fn a_429_with_retry_after_is_honoured_then_delivered_once() {
    let rx = Receiver::start();
    rx.script(vec![Reply::TooMany {
        retry_after: "2".into(),
    }]);
    let cfg = config(&json_hook("j", &rx.url("/j"), ""));
    let alerts = start(&cfg, vec![]);
    alerts.dispatch(&down("k"));
    alerts.dispatch(&recovered("k"));
    assert!(wait_for(Duration::from_secs(15), || rx.hits().len() >= 3));
    let hits = rx.hits();
    let gap = hits[1].at.duration_since(hits[0].at);
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(5),
        "retried after {gap:?}, asked for 2s"
    );
    // In order: the retried alert first, then the one queued behind it.
    let kinds: Vec<_> = hits.iter().map(|h| h.json()["alert"].clone()).collect();
    assert_eq!(kinds, ["feed_down", "feed_down", "feed_recovered"]);
    assert!(holds_for(Duration::from_millis(300), || rx.hits().len() == 3));
    alerts.stop();
}

#[test]
fn hanging_and_unreachable_webhooks_delay_nothing_else() {
    let good = Receiver::start();
    let hang = Receiver::with_default(Reply::Hang);
    // A port with nothing listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(&format!(
        "{}{}{}",
        json_hook("hang", &hang.url("/h"), ""),
        json_hook("dead", &format!("http://127.0.0.1:{dead}/d"), ""),
        json_hook("good", &good.url("/g"), "")
    ));
    let alerts = start(&cfg, vec![]);
    for i in 0..5 {
        let t0 = Instant::now();
        alerts.dispatch(&down(&format!("f{i}")));
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "dispatch took {:?}",
            t0.elapsed()
        );
        assert!(
            wait_for(Duration::from_secs(2), || good.hits().len() > i),
            "the good webhook waited behind the bad ones"
        );
        let late = good.hits()[i].at.duration_since(t0);
        assert!(late < Duration::from_secs(1), "alert {i} took {late:?}");
    }
    assert!(wait_for(Duration::from_secs(5), || !hang.hits().is_empty()));
    alerts.stop();
}

/// Waits for a Slack message whose text starts with `prefix`.
fn wait_slack(rx: &Receiver, prefix: &str) {
    let seen = || {
        rx.hits_on("/slack/").iter().any(|h| {
            h.json()["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
        })
    };
    assert!(
        wait_for(Duration::from_secs(10), seen),
        "no {prefix:?} in {:?}",
        rx.hits_on("/slack/")
    );
}

fn agent_config(dir: &Path, sim_url: &str, hang: &Receiver) -> String {
    let mut s = agent_toml(dir, "alert_after = \"1s\"\nstatus_every = \"200ms\"");
    s += &ws_feed_toml("sig", sim_url, "SIG_TOKEN", "stall_after = \"3s\"");
    // Waits for a credential never set, but is not required: the heartbeat
    // (the same readiness as /readyz) stays healthy while sig is live.
    s += &ws_feed_toml("spare", sim_url, "SPARE_TOKEN", "required = false");
    s += &format!(
        r#"
[alerts]
heartbeat_url = "${{HB_URL}}"
heartbeat_every = "1s"
[[alerts.webhook]]
name = "ops"
format = "slack"
url = "${{SLACK_URL}}"
[[alerts.webhook]]
name = "stuck"
format = "json"
url = "{}"
"#,
        hang.url("/stuck")
    );
    s
}

#[test]
fn the_agent_alerts_and_beats_through_an_outage_with_a_hanging_webhook() {
    let dir = TempDir::new("alerts-e2e");
    let rx = Receiver::start();
    let hang = Receiver::with_default(Reply::Hang);
    let sim = Simulator::start(SimConfig {
        tokens: vec![CANARY_FEED_TOKEN.into()],
        data_every: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = write_config(dir.path(), &agent_config(dir.path(), &sim.url(), &hang));
    std::fs::write(
        dir.join("credentials.env"),
        format!(
            "SIG_TOKEN={CANARY_FEED_TOKEN}\nSLACK_URL={}\nHB_URL={}\n",
            rx.url(&format!("/slack/{CANARY_PATH}")),
            rx.url(&format!("/hb/{CANARY_PATH}"))
        ),
    )
    .unwrap();
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let fan = FanoutClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
    let beats = |suffix: &str| {
        rx.hits_on("/hb/")
            .into_iter()
            .filter(|h| h.path.ends_with(suffix))
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(15), || feed_state(dir.path(), "sig")
            .as_deref()
            == Some("live")
            && beats(CANARY_PATH) >= 2),
        "live and beating: {:?}\n{}",
        rx.hits(),
        stderr_of(dir.path())
    );
    assert_eq!(feed_state(dir.path(), "spare").as_deref(), Some("waiting"));
    assert_eq!(
        beats("/fail"),
        0,
        "a feed with required = false failed the heartbeat"
    );

    // The broker dies.
    let down_at = Instant::now();
    sim.set_fault(Fault::RefuseConnections);
    assert!(
        wait_for(Duration::from_secs(10), || beats("/fail") >= 1),
        "{}",
        stderr_of(dir.path())
    );
    let fail_hit = rx
        .hits_on("/hb/")
        .into_iter()
        .find(|h| h.path.ends_with("/fail"))
        .unwrap();
    // Within heartbeat_every (1s) of the agent seeing it, plus the read tick
    // that notices the dead connection.
    let after = fail_hit.at.duration_since(down_at);
    assert!(
        after < Duration::from_secs(3),
        "fail URL hit {after:?} after the fault"
    );
    let ok_before = beats(CANARY_PATH);
    wait_slack(&rx, "sig down");
    // No healthy ping while down.
    assert_eq!(beats(CANARY_PATH), ok_before);

    // The broker is back: the feed recovers as fast as before, the bot gets
    // data, the heartbeat resumes, and the recovery is announced.
    let back_at = Instant::now();
    sim.clear_fault();
    assert!(
        wait_for(Duration::from_secs(10), || feed_state(dir.path(), "sig")
            .as_deref()
            == Some("live")),
        "{}",
        stderr_of(dir.path())
    );
    let recovered_in = back_at.elapsed();
    assert!(
        recovered_in < Duration::from_secs(3),
        "recovery took {recovered_in:?}"
    );
    assert!(wait_for(Duration::from_secs(5), || fan
        .first_after(back_at, |v| v["feed"] == "sig" && v.get("data").is_some())
        .is_some()));
    assert!(wait_for(Duration::from_secs(5), || beats(CANARY_PATH) > ok_before));
    wait_slack(&rx, "sig recovered after");
    assert!(!hang.hits().is_empty(), "the hanging webhook was tried");
    // Its timeout (a few seconds) is logged, once.
    assert!(wait_log(
        dir.path(),
        "webhook stuck (",
        Duration::from_secs(10)
    ));
    assert_eq!(stop_agent(&mut agent), Some(0));

    // No secret anywhere we write or send.
    let log = stderr_of(dir.path());
    if std::env::var_os("SHOW_AGENT_LOG").is_some() {
        eprintln!("{log}");
    }
    assert_eq!(log.matches("webhook stuck (").count(), 1, "{log}");
    let mut texts: Vec<String> = rx.hits().iter().map(|h| h.body.clone()).collect();
    texts.push(log);
    texts.extend(std::fs::read_to_string(dir.join("run/status.json")).ok());
    for t in &texts {
        for canary in [CANARY_PATH, CANARY_FEED_TOKEN] {
            assert!(!t.contains(canary), "{canary} leaked in:\n{t}");
        }
    }
}

#[test]
fn alert_test_prints_each_answer_and_exits_by_them() {
    let dir = TempDir::new("alert-test");
    let ok = Receiver::start();
    let gone = Receiver::with_default(Reply::Status(404));
    let body = format!(
        "{}\n[[alerts.webhook]]\nname = \"ops\"\nformat = \"slack\"\nurl = \"${{SLACK_URL}}\"\n{}",
        agent_toml(dir.path(), ""),
        json_hook("old", &gone.url("/gone"), "")
    );
    let cfg = write_config(dir.path(), &body);
    std::fs::write(
        dir.join("credentials.env"),
        format!("SLACK_URL={}\n", ok.url(&format!("/slack/{CANARY_PATH}"))),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let one = run_cli(
        &["alert-test", "--webhook", "ops", "--config", cfg],
        &[],
        None,
    );
    assert_eq!(one.code, Some(0), "{one:?}");
    assert!(one.stdout.contains("ops (slack, 127.0.0.1:"), "{one:?}");
    assert!(one.stdout.contains("HTTP 200 ok"), "{one:?}");
    let hit = &ok.hits()[0];
    assert!(hit.json()["text"].as_str().unwrap().contains("alert-test"));

    let all = run_cli(&["alert-test", "--config", cfg], &[], None);
    assert_eq!(all.code, Some(1), "{all:?}");
    assert!(all.stdout.contains("FAIL old"), "{all:?}");
    assert!(all.stdout.contains("HTTP 404"), "{all:?}");
    let unknown = run_cli(
        &["alert-test", "--webhook", "nope", "--config", cfg],
        &[],
        None,
    );
    assert_eq!(unknown.code, Some(64), "{unknown:?}");
    for run in [&one, &all, &unknown] {
        assert!(!run.all().contains(CANARY_PATH), "{run:?}");
    }
}

#[test]
fn a_stall_leaves_a_blackbox_file_ending_with_the_frames_before_it() {
    let dir = TempDir::new("blackbox");
    let rx = Receiver::start();
    let sim = Simulator::start(SimConfig {
        tokens: vec![CANARY_FEED_TOKEN.into()],
        data_every: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .unwrap();
    // The outage starts at the last data; the stall (and with it the dump)
    // is seen stall_after later, and feed_down comes alert_after after the
    // last data: alert_after > stall_after, as by default (60 s, 30 s), so
    // the alert can name the file.
    let mut toml = agent_toml(dir.path(), "alert_after = \"2500ms\"");
    toml += &ws_feed_toml("sig", &sim.url(), "SIG_TOKEN", "stall_after = \"1s\"");
    toml += &json_hook("j", &rx.url("/j"), "");
    let cfg = write_config(dir.path(), &toml);
    std::fs::write(
        dir.join("credentials.env"),
        format!("SIG_TOKEN={CANARY_FEED_TOKEN}\n"),
    )
    .unwrap();
    let mut agent = spawn_agent(dir.path(), &cfg, &[]);
    let fan = FanoutClient::connect(&dir.join("run/feeds.sock"), Duration::from_secs(10));
    assert!(wait_for(Duration::from_secs(15), || fan
        .count(|v| v.get("data").is_some())
        >= 10));
    sim.set_fault(Fault::SilentWithPongs);
    let folder = dir.join("state/blackbox");
    let dump = || {
        std::fs::read_dir(&folder)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("/sig-"))
    };
    assert!(
        wait_for(Duration::from_secs(10), || dump().is_some()),
        "{}",
        stderr_of(dir.path())
    );
    let path = dump().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The last frames are what the bot last received, in order, and a
    // transition out of live follows them.
    let frames_in: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["kind"] == "frame" && l["dir"] == "in")
        .collect();
    // (The bot's copy may still be on its way through the fan-out; after
    // it come only the next connection's acknowledgements, no data.)
    let last_data = || {
        fan.snapshot()
            .into_iter()
            .filter_map(|v| v.get("data").cloned())
            .rfind(|d| d["type"] == "data")
    };
    let last_in = frames_in.last().unwrap()["json"].clone();
    assert!(
        wait_for(Duration::from_secs(5), || last_data().as_ref()
            == Some(&last_in)),
        "ring ends with {last_in}, the bot last got {:?}",
        last_data()
    );
    let last_frame_at = lines.iter().rposition(|l| l["kind"] == "frame").unwrap();
    assert!(
        lines[last_frame_at..]
            .iter()
            .any(|l| l["kind"] == "transition" && l["state"] != "live"),
        "{text}"
    );
    // The auth message is there, with the token as a fingerprint.
    let auth = lines
        .iter()
        .find(|l| l["dir"] == "out" && l["json"]["type"] == "auth")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(auth["json"]["token"].as_str().unwrap().starts_with("hmac:"));
    assert!(!text.contains(CANARY_FEED_TOKEN));
    // The webhook's feed_down names the file.
    assert!(
        wait_for(Duration::from_secs(10), || rx.hits().iter().any(|h| {
            let v = h.json();
            v["alert"] == "feed_down"
                && v["fields"]["blackbox"].as_str() == Some(&*path.to_string_lossy())
        })),
        "{:?}",
        rx.hits()
    );
    // So does the journal's.
    let named = format!("blackbox={}", path.display());
    assert!(
        stderr_of(dir.path())
            .lines()
            .any(|l| l.contains("alert=feed_down") && l.contains(&named)),
        "{}",
        stderr_of(dir.path())
    );
    // `brokerguard blackbox FEED` prints the running feed's recorder.
    let cfg_s = cfg.to_str().unwrap();
    let shown = run_cli(&["blackbox", "sig", "--config", cfg_s], &[], None);
    assert_eq!(shown.code, Some(0), "{shown:?}");
    assert!(shown.stdout.lines().count() >= 10, "{shown:?}");
    for l in shown.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["kind"] == "frame" || v["kind"] == "transition", "{l}");
    }
    assert!(!shown.all().contains(CANARY_FEED_TOKEN));
    let unknown = run_cli(
        &["blackbox", "nope", "--config", cfg_s, "--timeout", "500ms"],
        &[],
        None,
    );
    assert_eq!(unknown.code, Some(1), "{unknown:?}");
    assert!(
        unknown.stderr.contains("does not run a feed"),
        "{unknown:?}"
    );

    assert_eq!(stop_agent(&mut agent), Some(0));
    assert!(stderr_of(dir.path()).contains("blackbox feed=sig"));
    let gone = run_cli(&["blackbox", "sig", "--config", cfg_s], &[], None);
    assert_eq!(gone.code, Some(3), "{gone:?}");
}
