//! etcd's v3 JSON gateway, the few calls the election needs, over the
//! project's one HTTP client (`net::http`: ureq with a named timeout per
//! phase). No gRPC stack and no async runtime: etcd 3.4 (Debian 12's
//! `etcd-server`) and 3.5+ serve the same JSON at `/v3/...`.
//!
//! The gateway's JSON is protobuf's: 64-bit integers are strings, keys and
//! values are base64, and fields holding their default (false, 0, empty)
//! are left out — so every field is read as optional.

use super::election::{Answer, Holder, LeaseId};
use crate::net::http::{Body, HttpClient, HttpOptions, Request};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A client for a list of etcd members; a call goes to the member that
/// answered last and, when it cannot be reached, to each other once.
pub struct Etcd {
    endpoints: Vec<String>,
    client: HttpClient,
    current: AtomicUsize,
}

/// Why a call failed (the text is what the operator reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdError(pub String);

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn field_int(v: &Value, name: &str) -> i64 {
    v.get(name).and_then(int).unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: Option<&Value>) -> Vec<u8> {
    v.and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

/// The end of a prefix range: the prefix with its last byte incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// Every phase of a call is bounded by `timeout` (a keep-alive must be
    /// answered well within a third of the lease).
    pub fn new(
        endpoints: &[String],
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Etcd, EtcdError> {
        let client = HttpClient::new(HttpOptions {
            connect_timeout: timeout,
            response_timeout: timeout,
            body_timeout: timeout,
            max_body_bytes: 1 << 20,
            ca_file,
            ..HttpOptions::default()
        })
        .map_err(|e| EtcdError(format!("cannot set up the etcd client: {e}")))?;
        Ok(Etcd {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            client,
            current: AtomicUsize::new(0),
        })
    }

    /// POSTs `body` to `path` on one member after another until one answers.
    fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last_error = EtcdError("no etcd endpoint configured".into());
        for i in 0..n {
            let at = (first + i) % n;
            let Some(base) = self.endpoints.get(at) else {
                break;
            };
            let req = Request::post(format!("{base}{path}"), Body::Json(body.to_string()));
            match self.client.send(&req) {
                Ok(resp) if resp.is_success() => {
                    self.current.store(at, Ordering::Relaxed);
                    return serde_json::from_str(&resp.body)
                        .map_err(|e| EtcdError(format!("{base}{path}: answer is not JSON: {e}")));
                }
                Ok(resp) => {
                    let v: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
                    let msg = v
                        .get("message")
                        .or_else(|| v.get("error"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let msg = crate::peertext::short(msg);
                    // An answer is an answer: another member would say the same.
                    return Err(EtcdError(format!(
                        "{base}{path}: HTTP {} {msg}",
                        resp.status
                    )));
                }
                Err(e) => last_error = EtcdError(format!("{base}: {e}")),
            }
        }
        Err(last_error)
    }

    pub fn grant(&self, ttl: Duration) -> Result<(LeaseId, Duration), EtcdError> {
        let v = self.call(
            "/v3/lease/grant",
            json!({"TTL": ttl.as_secs().max(1).to_string()}),
        )?;
        let id = field_int(&v, "ID");
        let granted = field_int(&v, "TTL");
        if id == 0 || granted <= 0 {
            let err = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no lease in the answer");
            return Err(EtcdError(format!(
                "lease grant refused: {}",
                crate::peertext::short(err)
            )));
        }
        Ok((id, Duration::from_secs(granted as u64)))
    }

    /// The lease's remaining TTL; zero when etcd no longer has it.
    pub fn keepalive(&self, lease: LeaseId) -> Result<Duration, EtcdError> {
        let v = self.call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))?;
        // 3.4 wraps the stream's one message in "result".
        let r = v.get("result").unwrap_or(&v);
        Ok(Duration::from_secs(field_int(r, "TTL").max(0) as u64))
    }

    pub fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        match self.call("/v3/lease/revoke", json!({"ID": lease.to_string()})) {
            Ok(_) => Ok(()),
            // Already gone is what we wanted.
            Err(e) if e.0.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One transaction: create `key` = `node` with `lease` if it does not
    /// exist (won, at the revision that is the epoch), else read its holder.
    pub fn campaign(&self, key: &str, node: &str, lease: LeaseId) -> Result<Answer, EtcdError> {
        let k = b64(key.as_bytes());
        let v = self.call(
            "/v3/kv/txn",
            json!({
                "compare": [{"key": k, "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": b64(node.as_bytes()), "lease": lease.to_string()}}],
                "failure": [{"request_range": {"key": k}}],
            }),
        )?;
        if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
            let epoch = v
                .get("header")
                .map(|h| field_int(h, "revision"))
                .unwrap_or(0);
            return Ok(Answer::Won { epoch });
        }
        let kv = v
            .pointer("/responses/0/response_range/kvs/0")
            .ok_or_else(|| {
                EtcdError("campaign: the key vanished between compare and read".into())
            })?;
        Ok(Answer::Held(Holder {
            node: crate::peertext::short(&String::from_utf8_lossy(&unb64(kv.get("value")))),
            lease: field_int(kv, "lease"),
            epoch: field_int(kv, "create_revision"),
        }))
    }

    /// The value of `key`, with its create revision.
    pub fn get(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, EtcdError> {
        let v = self.call("/v3/kv/range", json!({"key": b64(key.as_bytes())}))?;
        Ok(v.pointer("/kvs/0")
            .map(|kv| (unb64(kv.get("value")), field_int(kv, "create_revision"))))
    }

    /// Every key under `prefix` with its value.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        let v = self.call(
            "/v3/kv/range",
            json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes()))}),
        )?;
        Ok(v.get("kvs")
            .and_then(Value::as_array)
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(&unb64(kv.get("key"))).into_owned(),
                            unb64(kv.get("value")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn put(&self, key: &str, value: &[u8]) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/put",
            json!({"key": b64(key.as_bytes()), "value": b64(value)}),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn gateway_integers_are_strings_or_absent() {
        let v = json!({"ID": "2324035855649865733", "TTL": "5"});
        assert_eq!(field_int(&v, "ID"), 2324035855649865733);
        assert_eq!(field_int(&v, "missing"), 0);
        assert_eq!(field_int(&json!({"n": 3}), "n"), 3);
    }
}
