//! Table tests of the TWS protocol core: what arrived, the actions expected.

use super::*;
use crate::brokers::ibkr::wire::{Writer, length_prefixed, split};

fn at(ms: u64) -> Mono {
    Mono(Duration::from_millis(ms))
}

fn frame(fields: &[&str]) -> Vec<u8> {
    let mut w = Writer::new();
    for f in fields {
        w.text(f);
    }
    w.finish()
}

fn err(req_id: &str, code: &str, msg: &str) -> Vec<u8> {
    frame(&["4", "2", req_id, code, msg, ""])
}

fn contracts() -> Vec<Contract> {
    vec![
        Contract::stock("AAPL", "SMART", "USD"),
        Contract::stock("MSFT", "SMART", "USD"),
    ]
}

/// One action, short: what a table row expects.
fn short(a: &Action) -> String {
    match a {
        Action::Send(Outbound::Raw(b)) if b.starts_with(b"API\0") => "send:greeting".into(),
        Action::Send(Outbound::Frame(b)) => {
            let f = split(b).unwrap();
            let name = match f[0] {
                b"1" => "reqMktData",
                b"2" => "cancelMktData",
                b"49" => "reqCurrentTime",
                b"71" => "startApi",
                _ => "frame",
            };
            match f[0] {
                b"1" | b"2" => format!("send:{name} {}", String::from_utf8_lossy(f[2])),
                _ => format!("send:{name}"),
            }
        }
        Action::Send(other) => format!("send:{other:?}"),
        Action::Data(_) => "data".into(),
        Action::Event { name, .. } => format!("event:{name}"),
        Action::Heartbeat => "heartbeat".into(),
        Action::Pong => "pong".into(),
        Action::LayerPassed { layer, .. } => format!("passed:{layer}"),
        Action::Ready => "ready".into(),
        Action::Subscribed { .. } => "subscribed".into(),
        Action::Degraded { .. } => "degraded".into(),
        Action::Restored { .. } => "restored".into(),
        Action::Note { key, value } => format!("note:{key}={value}"),
        Action::Fail(e) => format!(
            "fail:{}:{}",
            e.class.as_str(),
            e.layer.map_or("-", |l| l.as_str())
        ),
        Action::Alert(a) => format!("alert:{}", a.kind),
        Action::Log { level, .. } => format!("log:{}", level.as_str().to_ascii_lowercase()),
    }
}

fn shorts(actions: &[Action]) -> Vec<String> {
    actions.iter().map(short).collect()
}

fn hello() -> Vec<u8> {
    frame(&["176", "20230228 17:24:14 EST"])
}

/// A core through the handshake and `Ready`, not yet subscribed.
fn ready(contracts: Vec<Contract>) -> TwsCore {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, contracts));
    c.open(at(0));
    c.receive(Inbound::Frame(&hello()), at(5));
    c.receive(Inbound::Frame(&frame(&["15", "1", "DU1234567"])), at(6));
    let a = c.receive(Inbound::Frame(&frame(&["9", "1", "117"])), at(7));
    assert_eq!(shorts(&a), ["passed:auth", "ready"]);
    c
}

fn live(contracts: Vec<Contract>) -> TwsCore {
    let mut c = ready(contracts);
    c.subscribe(at(8));
    c
}

#[test]
fn handshake_greeting_start_api_ready() {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, contracts()));
    let a = c.open(at(0));
    let mut greeting = vec![0x41, 0x50, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09];
    greeting.extend_from_slice(b"v157..178");
    assert_eq!(a, vec![Action::Send(Outbound::Raw(greeting))]);

    let a = c.receive(Inbound::Frame(&hello()), at(10));
    assert_eq!(shorts(&a), ["passed:handshake", "send:startApi"]);
    match &a[0] {
        Action::LayerPassed { detail, .. } => {
            assert_eq!(
                detail,
                "API server version 176, connection time 20230228 17:24:14 EST"
            )
        }
        other => panic!("{other:?}"),
    }
    let Action::Send(Outbound::Frame(start)) = &a[1] else {
        panic!()
    };
    assert_eq!(
        length_prefixed(start),
        [
            0x00, 0x00, 0x00, 0x08, 0x37, 0x31, 0x00, 0x32, 0x00, 0x31, 0x00, 0x00
        ]
    );
    assert_eq!(c.server_version(), 176);

    // The usual order: accounts, then the id, then the farm notices.
    assert!(
        c.receive(Inbound::Frame(&frame(&["15", "1", "DU1234567"])), at(11))
            .is_empty()
    );
    let a = c.receive(Inbound::Frame(&frame(&["9", "1", "117"])), at(12));
    assert_eq!(shorts(&a), ["passed:auth", "ready"]);
    let facts = c.report().facts();
    assert_eq!(facts.accounts, ["DU1234567"]);
    assert_eq!(facts.next_valid_id, Some(117));
    assert!(facts.ready && !facts.client_id_rejected);
    let a = c.receive(
        Inbound::Frame(&err(
            "-1",
            "2104",
            "Market data farm connection is OK:usfarm.nj",
        )),
        at(13),
    );
    assert_eq!(shorts(&a), ["event:tws_message", "log:info"]);
}

#[test]
fn ready_needs_both_in_either_order() {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, vec![]));
    c.open(at(0));
    c.receive(Inbound::Frame(&hello()), at(1));
    assert!(
        c.receive(Inbound::Frame(&frame(&["9", "1", "1"])), at(2))
            .is_empty()
    );
    // An empty account list is not enough (ib_async waits for a non-empty one).
    assert!(
        c.receive(Inbound::Frame(&frame(&["15", "1", ""])), at(3))
            .is_empty()
    );
    let a = c.receive(Inbound::Frame(&frame(&["15", "1", "DU1,DU2"])), at(4));
    assert_eq!(shorts(&a), ["passed:auth", "ready"]);
}

#[test]
fn handshake_failures() {
    type Row = (&'static str, Vec<Vec<u8>>, Vec<&'static str>);
    let table: Vec<Row> = vec![
        (
            "server too old",
            vec![frame(&["150", "t"])],
            vec!["fail:config:handshake"],
        ),
        (
            "server above our max",
            vec![frame(&["190", "t"])],
            vec!["fail:protocol:handshake"],
        ),
        (
            "news before the version is skipped",
            vec![frame(&["4", "2", "x"])],
            vec!["log:debug"],
        ),
        (
            "bad version reply",
            vec![frame(&["v176", "t"])],
            vec!["fail:protocol:-"],
        ),
        (
            "unterminated reply",
            vec![b"176\0t".to_vec()],
            vec!["fail:protocol:-"],
        ),
        (
            "326 right after START_API",
            vec![
                hello(),
                err(
                    "-1",
                    "326",
                    "Unable to connect as the client id is already in use. Retry with a unique client id.",
                ),
            ],
            vec!["event:tws_message", "fail:going_away:auth"],
        ),
        (
            "garbage after the version",
            vec![hello(), b"\xff\xfe\0".to_vec()],
            vec!["fail:protocol:-"],
        ),
    ];
    for (name, frames, want) in table {
        let mut c = TwsCore::new(TwsCoreConfig::new(1, contracts()));
        c.open(at(0));
        let mut last = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            last = c.receive(Inbound::Frame(f), at(i as u64 + 1));
        }
        assert_eq!(shorts(&last), want, "{name}");
    }
}

#[test]
fn client_id_in_use_is_distinguishable() {
    let mut c = TwsCore::new(TwsCoreConfig::new(12, contracts()));
    let report = c.report();
    c.open(at(0));
    c.receive(Inbound::Frame(&hello()), at(1));
    assert_eq!(c.rejected_client_id(), None);
    let a = c.receive(
        Inbound::Frame(&err(
            "-1",
            "326",
            "Unable to connect as the client id is already in use.",
        )),
        at(2),
    );
    let Some(Action::Fail(e)) = a.last() else {
        panic!("{a:?}")
    };
    assert_eq!(e.class, ErrorClass::GoingAway);
    assert_eq!(e.layer, Some(Layer::Auth));
    assert!(
        e.message
            .starts_with("client id 12 is already in use (TWS error 326)"),
        "{e}"
    );
    assert_eq!(c.rejected_client_id(), Some(12));
    // The adapter's clone sees it after the core is gone.
    drop(c);
    let facts = report.facts();
    assert!(facts.client_id_rejected);
    assert_eq!(facts.client_id, 12);
    assert!(!facts.ready);
}

#[test]
fn not_ready_names_the_layer_it_stopped_at() {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, vec![]));
    c.open(at(0));
    let e = c.not_ready(Duration::from_secs(10));
    assert_eq!(e.layer, Some(Layer::Handshake));
    assert_eq!(e.class, ErrorClass::Network);
    assert!(
        e.message
            .starts_with("timeout (handshake): no answer to the API greeting within 10s"),
        "{e}"
    );
    assert!(
        e.message.contains("Enable ActiveX and Socket Clients"),
        "{e}"
    );
    assert!(e.message.contains("Trusted IPs"), "{e}");

    c.receive(Inbound::Frame(&hello()), at(1));
    let e = c.not_ready(Duration::from_secs(10));
    assert_eq!(e.layer, Some(Layer::Auth));
    assert!(
        e.message
            .contains("no managedAccounts and nextValidId within 10s"),
        "{e}"
    );
    assert!(
        e.message
            .contains("API session not ready: TWS is still logging in, or Read-Only API blocks it"),
        "{e}"
    );
    c.receive(Inbound::Frame(&frame(&["15", "1", "DU1"])), at(2));
    assert!(
        c.not_ready(Duration::from_secs(3))
            .message
            .contains("no nextValidId within 3s")
    );
}

#[test]
fn subscribe_requests_each_contract() {
    let mut c = ready(contracts());
    let a = c.subscribe(at(10));
    assert_eq!(shorts(&a), ["send:reqMktData 1000", "send:reqMktData 1001"]);
    let Action::Send(Outbound::Frame(req)) = &a[0] else {
        panic!()
    };
    assert_eq!(
        req,
        &frame(&[
            "1", "11", "1000", "0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", "",
            "0", "", "0", "0", ""
        ])
    );
    let a = c.receive(
        Inbound::Frame(&frame(&["81", "1000", "0.01", "9c0001", "3"])),
        at(11),
    );
    assert_eq!(shorts(&a), ["subscribed"]);
    // A request id that is not ours confirms nothing.
    assert!(
        c.receive(
            Inbound::Frame(&frame(&["81", "7", "0.01", "", "3"])),
            at(12)
        )
        .is_empty()
    );
}

#[test]
fn a_feed_without_contracts_holds_the_session() {
    let mut c = ready(vec![]);
    // The session's own answer is its first sign of life, asked for at once.
    assert_eq!(
        shorts(&c.subscribe(at(10))),
        ["log:info", "send:reqCurrentTime"]
    );
    let a = c.receive(Inbound::Frame(&frame(&["49", "1", "1700000000"])), at(11));
    assert_eq!(shorts(&a), ["pong", "heartbeat"]);
    assert_eq!(shorts(&c.keepalive(at(20))), ["send:reqCurrentTime"]);
    let a = c.receive(Inbound::Frame(&frame(&["49", "1", "1700000001"])), at(21));
    assert_eq!(shorts(&a), ["pong", "heartbeat"]);
}

#[test]
fn keepalive_is_req_current_time_and_its_answer_a_pong() {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, contracts()));
    assert!(c.has_keepalive());
    c.open(at(0));
    // Nothing to send before the session exists.
    assert!(c.keepalive(at(1)).is_empty());
    let mut c = live(contracts());
    let a = c.keepalive(at(15_000));
    assert_eq!(
        a,
        vec![Action::Send(Outbound::Frame(b"49\x001\x00".to_vec()))]
    );
    let a = c.receive(
        Inbound::Frame(&frame(&["49", "1", "1700000000"])),
        at(15_010),
    );
    assert_eq!(shorts(&a), ["pong"]);
    // An answer nobody asked for proves nothing.
    let a = c.receive(
        Inbound::Frame(&frame(&["49", "1", "1700000001"])),
        at(15_020),
    );
    assert_eq!(shorts(&a), ["log:debug"]);
    // Unanswered: no pong, whatever else arrives (the engine's pong_timeout acts).
    c.keepalive(at(30_000));
    let a = c.receive(
        Inbound::Frame(&frame(&["2", "6", "1000", "8", "100"])),
        at(30_500),
    );
    assert_eq!(shorts(&a), ["data"]);
}

#[test]
fn live_codes_table() {
    let broken = "Market data farm connection is broken:usfarm";
    let ok = "Market data farm connection is OK:usfarm";
    type Row = (&'static str, Vec<Vec<u8>>, Vec<&'static str>);
    let table: Vec<Row> = vec![
        (
            "1100 connectivity lost",
            vec![err(
                "-1",
                "1100",
                "Connectivity between IB and Trader Workstation has been lost.",
            )],
            vec!["event:tws_message", "log:warn", "degraded"],
        ),
        (
            "1102 restored, data maintained: nothing re-sent",
            vec![
                err("-1", "1100", "lost"),
                err(
                    "-1",
                    "1102",
                    "Connectivity between IB and TWS has been restored - data maintained.",
                ),
            ],
            vec!["event:tws_message", "log:info", "restored"],
        ),
        (
            "1101 restored, data lost: every reqMktData re-sent",
            vec![
                err("-1", "1100", "lost"),
                err(
                    "-1",
                    "1101",
                    "Connectivity between IB and TWS has been restored - data lost.",
                ),
            ],
            vec![
                "event:tws_message",
                "log:info",
                "send:reqMktData 1000",
                "send:reqMktData 1001",
                "restored",
            ],
        ),
        (
            "2103 market data farm broken",
            vec![err("-1", "2103", broken)],
            vec!["event:tws_message", "log:warn", "degraded"],
        ),
        (
            "2104 after 2103: market data cancelled and re-requested",
            vec![err("-1", "2103", broken), err("-1", "2104", ok)],
            vec![
                "event:tws_message",
                "log:info",
                "send:cancelMktData 1000",
                "send:cancelMktData 1001",
                "send:reqMktData 1000",
                "send:reqMktData 1001",
                "restored",
            ],
        ),
        (
            "2104 names the farm with its site suffix",
            vec![
                err("-1", "2103", broken),
                err("-1", "2104", "Market data farm connection is OK:usfarm.nj"),
            ],
            vec![
                "event:tws_message",
                "log:info",
                "send:cancelMktData 1000",
                "send:cancelMktData 1001",
                "send:reqMktData 1000",
                "send:reqMktData 1001",
                "restored",
            ],
        ),
        (
            "2104 with no farm broken is a notice",
            vec![err("-1", "2104", ok)],
            vec!["event:tws_message", "log:info"],
        ),
        (
            "2105 HMDS broken",
            vec![err(
                "-1",
                "2105",
                "HMDS data farm connection is broken:ushmds",
            )],
            vec!["event:tws_message", "log:warn", "degraded"],
        ),
        (
            "2106 after 2105: restored, nothing re-sent",
            vec![
                err("-1", "2105", "HMDS data farm connection is broken:ushmds"),
                err("-1", "2106", "HMDS data farm connection is OK:ushmds"),
            ],
            vec!["event:tws_message", "log:info", "restored"],
        ),
        (
            "2157 sec-def broken",
            vec![err(
                "-1",
                "2157",
                "Sec-def data farm connection is broken:secdefnj",
            )],
            vec!["event:tws_message", "log:warn", "degraded"],
        ),
        (
            "2158 after 2157 and 2103: still degraded for market data",
            vec![
                err("-1", "2103", broken),
                err(
                    "-1",
                    "2157",
                    "Sec-def data farm connection is broken:secdefnj",
                ),
                err("-1", "2158", "Sec-def data farm connection is OK:secdefnj"),
            ],
            vec!["event:tws_message", "log:info", "degraded"],
        ),
        (
            "2108 inactive farm: nothing to do",
            vec![err(
                "-1",
                "2108",
                "Market data farm connection is inactive but should be available upon demand.:usfarm",
            )],
            vec!["event:tws_message", "log:info"],
        ),
        (
            "1300 socket port reset: reconnect",
            vec![err(
                "-1",
                "1300",
                "TWS socket port has been reset and this connection is being dropped.",
            )],
            vec!["event:tws_message", "fail:network:-"],
        ),
        (
            "200 for our request: configuration error",
            vec![err(
                "1001",
                "200",
                "No security definition has been found for the request",
            )],
            vec!["event:tws_message", "fail:config:data"],
        ),
        (
            "354 not subscribed: configuration error too",
            vec![err(
                "1000",
                "354",
                "Requested market data is not subscribed.",
            )],
            vec!["event:tws_message", "fail:config:data"],
        ),
        (
            "322 duplicate ticker id: protocol error",
            vec![err("1000", "322", "Duplicate ticker id")],
            vec!["event:tws_message", "fail:protocol:data"],
        ),
        (
            "10167 delayed data warning for our request: logged",
            vec![err(
                "1000",
                "10167",
                "Requested market data is not subscribed. Displaying delayed market data.",
            )],
            vec!["event:tws_message", "log:info"],
        ),
        (
            "10197 competing session: logged, not a config error",
            vec![err(
                "1000",
                "10197",
                "No market data during competing live session",
            )],
            vec!["event:tws_message", "log:warn"],
        ),
        (
            "200 for a request that is not ours: logged",
            vec![err("5", "200", "No security definition")],
            vec!["event:tws_message", "log:warn"],
        ),
        (
            "an error without a request: logged at warn",
            vec![err("-1", "504", "Not connected")],
            vec!["event:tws_message", "log:warn"],
        ),
        (
            "a malformed message ends the connection",
            vec![frame(&["1", "6", "1000", "4", "not-a-price", "1", "0"])],
            vec!["fail:protocol:-"],
        ),
        (
            "an unknown message id is skipped",
            vec![frame(&["62", "1"])],
            vec![],
        ),
        (
            "a WebSocket text cannot arrive here",
            vec![],
            vec!["fail:protocol:-"],
        ),
    ];
    for (name, frames, want) in table {
        let mut c = live(contracts());
        let mut last = Vec::new();
        if frames.is_empty() {
            last = c.receive(Inbound::Text("{}"), at(100));
        }
        for (i, f) in frames.iter().enumerate() {
            last = c.receive(Inbound::Frame(f), at(100 + i as u64));
        }
        assert_eq!(shorts(&last), want, "{name}");
    }
}

#[test]
fn contract_errors_name_the_contract() {
    let mut c = live(contracts());
    let a = c.receive(
        Inbound::Frame(&err(
            "1001",
            "200",
            "No security definition has been found for the request",
        )),
        at(100),
    );
    let Some(Action::Fail(e)) = a.last() else {
        panic!("{a:?}")
    };
    assert_eq!(e.class, ErrorClass::Config);
    assert_eq!(
        e.message,
        "TWS refused market data for contracts[1] (MSFT STK SMART USD): error 200: \
         No security definition has been found for the request; fix the contract in the configuration"
    );
    match &a[0] {
        Action::Event { name, fields } => {
            assert_eq!(*name, "tws_message");
            assert_eq!(fields["code"], 200);
            assert_eq!(fields["req_id"], 1001);
            assert_eq!(fields["symbol"], "MSFT");
            assert_eq!(fields["severity"], "error");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn degraded_at_connect_is_reported_once_live() {
    let mut c = ready(contracts());
    // A farm broken during the nightly reset, before we subscribe.
    let a = c.receive(
        Inbound::Frame(&err(
            "-1",
            "2103",
            "Market data farm connection is broken:usfarm",
        )),
        at(8),
    );
    assert_eq!(shorts(&a), ["event:tws_message", "log:warn"]);
    let a = c.subscribe(at(9));
    assert_eq!(
        shorts(&a),
        ["send:reqMktData 1000", "send:reqMktData 1001", "degraded"]
    );
    // Requested after the break: recovery restores without re-requesting.
    let a = c.receive(
        Inbound::Frame(&err(
            "-1",
            "2104",
            "Market data farm connection is OK:usfarm",
        )),
        at(10),
    );
    assert_eq!(shorts(&a), ["event:tws_message", "log:info", "restored"]);
}

#[test]
fn ticks_become_data_lines() {
    let mut c = live(contracts());
    let data = |a: Vec<Action>| -> serde_json::Value {
        match a.as_slice() {
            [Action::Data(s)] => serde_json::from_str(s).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let v = data(c.receive(
        Inbound::Frame(&frame(&["1", "6", "1000", "1", "187.25", "300", "1"])),
        at(1),
    ));
    assert_eq!(
        v,
        serde_json::json!({"type": "tick_price", "symbol": "AAPL", "req_id": 1000, "tick_type": 1,
            "tick": "bid", "price": 187.25, "size": 300.0, "can_auto_execute": true,
            "past_limit": false, "pre_open": false})
    );
    let v = data(c.receive(
        Inbound::Frame(&frame(&["2", "6", "1001", "8", "12345"])),
        at(2),
    ));
    assert_eq!(
        v,
        serde_json::json!({"type": "tick_size", "symbol": "MSFT", "req_id": 1001, "tick_type": 8,
            "tick": "volume", "size": 12345.0})
    );
    let v = data(c.receive(
        Inbound::Frame(&frame(&["46", "6", "1000", "45", "1700000000"])),
        at(3),
    ));
    assert_eq!(v["tick"], "last_timestamp");
    assert_eq!(v["value"], "1700000000");
    let v = data(c.receive(
        Inbound::Frame(&frame(&["45", "6", "1000", "49", "0"])),
        at(4),
    ));
    assert_eq!(v["type"], "tick_generic");
    assert_eq!(v["value"], 0.0);
    // An empty price is dropped, as ib_async drops it; unknown ids too.
    assert!(
        c.receive(
            Inbound::Frame(&frame(&["1", "6", "1000", "1", "", "0", "0"])),
            at(5)
        )
        .is_empty()
    );
    assert!(
        c.receive(
            Inbound::Frame(&frame(&["1", "6", "42", "1", "1.0", "1", "0"])),
            at(6)
        )
        .is_empty()
    );
    // Delayed data is an event for the bot and a warning in the log.
    let a = c.receive(Inbound::Frame(&frame(&["58", "1", "1000", "3"])), at(7));
    assert_eq!(shorts(&a), ["event:market_data_type", "log:warn"]);
    let a = c.receive(Inbound::Frame(&frame(&["58", "1", "1000", "1"])), at(8));
    assert_eq!(shorts(&a), ["event:market_data_type"]);
}

#[test]
fn closing_cancels_what_is_subscribed() {
    let mut c = live(contracts());
    assert_eq!(
        shorts(&c.closing()),
        ["send:cancelMktData 1000", "send:cancelMktData 1001"]
    );
    let mut c = ready(contracts());
    assert!(c.closing().is_empty());
}

#[test]
fn truncated_frames_never_panic() {
    let good = [
        frame(&["1", "6", "1000", "1", "187.25", "300", "1"]),
        err("1000", "200", "x"),
        frame(&["15", "1", "DU1"]),
        frame(&["81", "1000", "0.01", "9c0001", "3"]),
    ];
    for g in &good {
        for n in 0..g.len() {
            let mut c = live(contracts());
            let _ = c.receive(Inbound::Frame(&g[..n]), at(1));
        }
    }
}

#[test]
fn managed_accounts_are_cleaned_and_bounded_before_they_reach_status() {
    let mut c = TwsCore::new(TwsCoreConfig::new(1, contracts()));
    c.open(at(0));
    c.receive(Inbound::Frame(&hello()), at(5));
    let many: Vec<String> = (0..10_000).map(|i| format!("DU{i}\u{1b}[2J")).collect();
    c.receive(Inbound::Frame(&frame(&["15", "1", &many.join(",")])), at(6));
    let a = c.receive(Inbound::Frame(&frame(&["9", "1", "117"])), at(7));
    let facts = c.report().facts();
    assert_eq!(facts.accounts.len(), 32);
    assert_eq!(facts.accounts[0], "DU0 [2J");
    match &a[0] {
        Action::LayerPassed { detail, .. } => {
            assert!(!detail.contains('\u{1b}') && detail.len() < 600, "{detail}")
        }
        other => panic!("{other:?}"),
    }
}
