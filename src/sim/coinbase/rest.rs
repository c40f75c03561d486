//! The simulated Coinbase REST API over HTTP/1.1: `GET
//! /api/v3/brokerage/accounts` with `Authorization: Bearer <JWT>`, whose
//! JWT must verify and carry `uri` = `"GET <Host><path>"` (no scheme, no
//! query); a refusal is 401. Every answer carries a `Date` header.

use super::server::Shared;
use crate::sim::shared::Host;
use crate::sim::shared::http::{self, Request};
use crate::sim::shared::net;
use serde_json::json;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

const ACCOUNTS: &str = "/api/v3/brokerage/accounts";

pub(crate) fn serve(shared: Arc<Shared>, tcp: TcpStream) {
    if net::setup(&tcp, Duration::from_millis(500)).is_err() {
        return;
    }
    http::serve(
        shared.base(),
        tcp,
        || shared.date_now(),
        r#"{"error":"INVALID_ARGUMENT","message":"bad request"}"#,
        |req| route(&shared, req),
    );
}

fn route(shared: &Shared, req: &Request) -> (u16, String) {
    let path = req.path.split('?').next().unwrap_or("");
    if path != ACCOUNTS {
        return (
            404,
            json!({"error": "NOT_FOUND", "message": "not found"}).to_string(),
        );
    }
    if req.method != "GET" {
        return (
            405,
            json!({"error": "INVALID_ARGUMENT", "message": "method"}).to_string(),
        );
    }
    shared.stats.update(|s| s.rest_calls += 1);
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    let uri = format!("GET {}{path}", req.header("host").unwrap_or(""));
    match shared.check_jwt("rest", token, Some(&uri)) {
        Ok(v) => {
            shared.event(format!("rest: accounts for {} ({})", v.kid, v.alg));
            let body = json!({
                "accounts": [
                    {"uuid": "8bfc20d7-f7c6-4422-bf07-8243ca4169fe", "name": "BTC Wallet",
                     "currency": "BTC", "available_balance": {"value": "0.01", "currency": "BTC"},
                     "active": true, "type": "ACCOUNT_TYPE_CRYPTO"},
                    {"uuid": "f1b7c3d2-0a4e-4f3b-9c1d-2e5f6a7b8c9d", "name": "USD Wallet",
                     "currency": "USD", "available_balance": {"value": "1000.00", "currency": "USD"},
                     "active": true, "type": "ACCOUNT_TYPE_FIAT"}
                ],
                "has_next": false, "cursor": "", "size": 2
            });
            (200, body.to_string())
        }
        Err(r) => {
            shared.stats.update(|s| s.rest_refused += 1);
            (
                401,
                json!({"error": "UNAUTHENTICATED", "message": r.to_string()}).to_string(),
            )
        }
    }
}
