//! The simulated Kraken REST API over HTTP/1.1 (keep-alive): `POST
//! /0/private/Balance` and `/0/private/GetWebSocketsToken`, each checked
//! the way Kraken checks it — the key is known, `API-Sign` is the
//! HMAC-SHA512 of path + SHA-256(nonce + body) under the key's secret (this
//! module's own implementation), and the nonce is above the last one
//! accepted for the key at the moment the request arrives — and `GET
//! /0/public/Time`. Every response carries a `Date` header.

use super::fault::KrakenFault;
use super::server::{Shared, setup};
use crate::sim::shared::http::{self, Request};
use crate::sim::shared::{Host, lock};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

pub(crate) fn serve(shared: Arc<Shared>, tcp: TcpStream) {
    if setup(&tcp).is_err() {
        return;
    }
    http::serve(
        shared.base(),
        tcp,
        || shared.date_now(),
        r#"{"error":["EGeneral:Bad request"]}"#,
        |req| route(&shared, req),
    );
}

fn error_body(shared: &Shared, e: &str) -> String {
    shared
        .stats
        .update(|s| *s.rest_errors.entry(e.to_string()).or_insert(0) += 1);
    serde_json::json!({"error": [e]}).to_string()
}

fn route(shared: &Shared, req: &Request) -> (u16, String) {
    let path = req.path.split('?').next().unwrap_or("");
    if req.method == "GET" && path == "/0/public/Time" {
        let now = shared.date_now();
        let body = serde_json::json!({"error": [], "result": {
            "unixtime": crate::timefmt::unix_secs(now),
            "rfc1123": http::http_date(now),
        }});
        return (200, body.to_string());
    }
    let Some(method) = path.strip_prefix("/0/private/") else {
        return (404, error_body(shared, "EGeneral:Unknown method"));
    };
    if req.method != "POST" {
        return (405, error_body(shared, "EGeneral:Invalid arguments"));
    }
    shared.stats.update(|s| s.rest_calls += 1);
    match private(shared, method, path, req) {
        Ok(result) => (
            200,
            serde_json::json!({"error": [], "result": result}).to_string(),
        ),
        Err(e) => (200, error_body(shared, e)),
    }
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
fn parse_form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).to_string()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The signature Kraken expects for `path` and `body` with `nonce` (the
/// nonce exactly as it appears in the body).
fn expected_sign(secret: &[u8], path: &str, nonce: &str, body: &[u8]) -> String {
    let mut sha = Sha256::new();
    sha.update(nonce.as_bytes());
    sha.update(body);
    let digest = sha.finalize();
    let mut message = path.as_bytes().to_vec();
    message.extend_from_slice(&digest);
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&message);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn private(
    shared: &Shared,
    method: &str,
    path: &str,
    req: &Request,
) -> Result<serde_json::Value, &'static str> {
    let key = req.header("api-key").unwrap_or("").to_string();
    let sign = req.header("api-sign").unwrap_or("");
    let body = String::from_utf8_lossy(&req.body).to_string();
    let form = parse_form(&body);
    let nonce_text = form
        .iter()
        .find(|(k, _)| k == "nonce")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if let (Some(fault), _) = shared.faults.current() {
        if fault.applies_to_key(&key) {
            let forced = match &fault {
                KrakenFault::Unavailable => Some("EService:Unavailable"),
                KrakenFault::Lockout { .. } => Some("EGeneral:Temporary lockout"),
                KrakenFault::InvalidKey { .. } => Some("EAPI:Invalid key"),
                KrakenFault::PermissionDenied { .. } => Some("EGeneral:Permission denied"),
                KrakenFault::RateLimit { .. } => Some("EAPI:Rate limit exceeded"),
                KrakenFault::InvalidNonce { .. } => Some("EAPI:Invalid nonce"),
                KrakenFault::InvalidNonceOnce if shared.faults.take_once(&fault) => {
                    Some("EAPI:Invalid nonce")
                }
                _ => None,
            };
            if let Some(e) = forced {
                return Err(e);
            }
        }
    }
    let mut keys = lock(&shared.keys);
    let Some(state) = keys.get_mut(&key) else {
        return Err("EAPI:Invalid key");
    };
    let Ok(nonce) = nonce_text.parse::<u64>() else {
        return Err("EAPI:Invalid nonce");
    };
    if sign.is_empty() || expected_sign(&state.secret, path, &nonce_text, &req.body) != sign {
        return Err("EAPI:Invalid signature");
    }
    // Checked and recorded while the key's lock is held: the order of
    // arrival decides, and the record keeps that order (recorded after the
    // lock was dropped, two calls could be listed in the other order).
    if state.last_nonce.is_some_and(|last| nonce <= last) {
        shared.stats.update(|s| {
            s.nonces_rejected
                .entry(key.clone())
                .or_default()
                .push(nonce)
        });
        drop(keys);
        return Err("EAPI:Invalid nonce");
    }
    state.last_nonce = Some(nonce);
    shared
        .stats
        .update(|s| s.nonces_seen.entry(key.clone()).or_default().push(nonce));
    drop(keys);
    match method {
        "Balance" => Ok(serde_json::json!({
            "ZUSD": "171288.6158",
            "XXBT": "0.0100000000",
            "XETH": "2.5000000000",
        })),
        "GetWebSocketsToken" => {
            let n = shared.token_counter.fetch_add(1, Ordering::SeqCst);
            let mut sha = Sha256::new();
            sha.update(key.as_bytes());
            sha.update(n.to_le_bytes());
            sha.update(crate::timefmt::rfc3339_millis(SystemTime::now()).as_bytes());
            let token = STANDARD.encode(&sha.finalize()[..30]);
            lock(&shared.tokens).insert(token.clone(), Instant::now() + shared.token_ttl);
            shared.stats.update(|s| s.tokens_issued += 1);
            shared.event(format!("rest: issued WebSocket token {n}"));
            Ok(serde_json::json!({"token": token, "expires": shared.token_ttl.as_secs()}))
        }
        "AddOrder" => {
            let field = |k: &str| {
                form.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            let n = shared.token_counter.fetch_add(1, Ordering::SeqCst);
            Ok(serde_json::json!({
                "descr": {"order": format!(
                    "{} {} {} @ {} {}",
                    field("type"), field("volume"), field("pair"), field("ordertype"), field("price")
                )},
                "txid": [format!("OSIM{n:02}-KRAKEN-SIMUL")],
            }))
        }
        _ => Err("EGeneral:Unknown method"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(
            parse_form("nonce=1&a+b=x%26y%3Dz&u=%C3%A9%2F%2B&bad=%G1&end=%4"),
            vec![
                ("nonce".into(), "1".into()),
                ("a b".into(), "x&y=z".into()),
                ("u".into(), "é/+".into()),
                ("bad".into(), "%G1".into()),
                ("end".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn verifies_the_published_signature() {
        let secret = STANDARD
            .decode("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==")
            .unwrap();
        assert_eq!(
            expected_sign(
                &secret,
                "/0/private/AddOrder",
                "1616492376594",
                b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
            ),
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
    }
}
