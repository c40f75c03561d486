//! The simulated Alpaca REST API: `GET /<paper|live>/v2/account` with the
//! `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` headers. Paper keys are
//! known under `/paper` only and live keys under `/live` only, as paper
//! and live keys differ at Alpaca; an unknown key gets 401
//! `{"message": "unauthorized."}` (PROTOCOLS.md §2.3: the exact body is
//! not confirmed). Every answer carries a `Date` (with the configured
//! skew), over the simulators' shared HTTP/1.1 end.

use super::server::Shared;
use crate::sim::shared::http::{self, Request};
use crate::sim::shared::{Host, net};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn serve(shared: Arc<Shared>, tcp: TcpStream) {
    if net::setup(&tcp, Duration::from_millis(500)).is_err() {
        return;
    }
    let s = shared.clone();
    http::serve(
        shared.base(),
        tcp,
        || s.date_now(),
        r#"{"message":"bad request."}"#,
        |req| {
            let (status, body) = route(&shared, req);
            (status, body.to_string())
        },
    );
}

fn route(shared: &Shared, req: &Request) -> (u16, Value) {
    let target = req.path.split('?').next().unwrap_or("");
    let paper = target.starts_with("/paper/");
    let path = target
        .strip_prefix("/paper")
        .or_else(|| target.strip_prefix("/live"))
        .unwrap_or(target);
    if req.method != "GET" || path != "/v2/account" {
        return (
            404,
            json!({"code": 40410000, "message": "endpoint not found."}),
        );
    }
    shared.stats.update(|s| s.rest_calls += 1);
    let key = shared
        .key(
            req.header("apca-api-key-id").unwrap_or(""),
            req.header("apca-api-secret-key").unwrap_or(""),
        )
        .filter(|k| k.paper == paper);
    match key {
        Some(k) => (
            200,
            json!({
                "id": "904837e3-3b76-47ec-b432-046db621571b",
                "account_number": format!(
                    "{}{}",
                    if paper { "PA" } else { "" },
                    &k.key_id[..k.key_id.len().min(8)]
                ),
                "status": "ACTIVE",
                "currency": "USD",
                "trading_blocked": false,
                "crypto_status": "ACTIVE",
            }),
        ),
        None => (401, json!({"message": "unauthorized."})),
    }
}
