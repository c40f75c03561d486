//! The simulated Alpaca REST API: `GET /<paper|live>/v2/account` with the
//! `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` headers. Paper keys are
//! known under `/paper` only and live keys under `/live` only, as paper
//! and live keys differ at Alpaca; an unknown key gets 401
//! `{"message": "unauthorized."}` (PROTOCOLS.md §2.3: the exact body is
//! not confirmed). Every answer carries a `Date` (with the configured
//! skew), over HTTP/1.1 keep-alive.

use super::server::Shared;
use crate::sim::shared::http::{read_request, respond};
use crate::sim::shared::{Host, net};
use serde_json::json;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(10);

pub(crate) fn serve(shared: Arc<Shared>, mut tcp: TcpStream) {
    if net::setup(&tcp, Duration::from_millis(500)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    loop {
        let req = match read_request(shared.base(), &mut tcp, &mut buf, IDLE) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let paper = req.path.starts_with("/paper/");
        let path = req
            .path
            .strip_prefix("/paper")
            .or_else(|| req.path.strip_prefix("/live"))
            .unwrap_or(&req.path);
        let (status, body) = if req.method != "GET" || path != "/v2/account" {
            (
                404,
                json!({"code": 40410000, "message": "endpoint not found."}),
            )
        } else {
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
                        "account_number": format!("{}{}", if paper { "PA" } else { "" }, &k.key_id[..k.key_id.len().min(8)]),
                        "status": "ACTIVE",
                        "currency": "USD",
                        "trading_blocked": false,
                        "crypto_status": "ACTIVE",
                    }),
                ),
                None => (401, json!({"message": "unauthorized."})),
            }
        };
        if respond(
            &mut tcp,
            status,
            &body.to_string(),
            shared.date_now(),
            close,
        )
        .is_err()
            || close
        {
            return;
        }
    }
}
