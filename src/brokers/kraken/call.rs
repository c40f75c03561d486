//! One private REST call under Kraken's nonce and key-set rules, with the
//! nonce source and the HTTP exchange handed in (no I/O of its own):
//!
//! - `EAPI:Invalid nonce` → `alert=nonce_conflict`, one fresh draw and a
//!   retry (a sibling process's larger nonce may simply have arrived first);
//! - the same again → the next key set (`alert=key_fallback`), or the error
//!   stands when there is none;
//! - `EGeneral:Temporary lockout` → the next key set at once, or the error;
//! - anything else → the error, classified (see [`KrakenError::class`]).
//!
//! At most two attempts per key set, so a call ends after at most six.

use super::keys::{FallbackReason, KeyEvent, KeyFallback, KeySet};
use super::rest::{
    KrakenError, PrivateRequest, Reply, RequestError, parse_response, private_request,
};
use crate::alert::{Alert, AlertKind};
use crate::clock::Mono;
use std::fmt;

/// What the HTTP exchange returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

/// How a call failed.
#[derive(Debug)]
pub enum CallError<N, T> {
    /// The nonce source failed (e.g. the nonce store's lock).
    Nonce(N),
    /// The request never got an answer.
    Transport(T),
    /// Kraken (or the way to it) answered with an error.
    Kraken(KrakenError),
    /// The request could not be built (a bug in the caller).
    Request(RequestError),
    /// No key set with the index the fallback chose (a bug in the caller).
    NoKeySet(u8),
}

impl<N: fmt::Display, T: fmt::Display> fmt::Display for CallError<N, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Nonce(e) => write!(f, "cannot draw a nonce: {e}"),
            CallError::Transport(e) => e.fmt(f),
            CallError::Kraken(e) => e.fmt(f),
            CallError::Request(e) => e.fmt(f),
            CallError::NoKeySet(i) => write!(f, "key set {i} is not loaded"),
        }
    }
}

/// What the policy did after an `EAPI:Invalid nonce`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictAction {
    /// A fresh nonce and one retry with the same key set.
    Redraw,
    /// The conflict repeated: the next key set.
    Fallback,
    /// The conflict repeated and no key set is left.
    GiveUp,
}

impl ConflictAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictAction::Redraw => "redraw",
            ConflictAction::Fallback => "fallback",
            ConflictAction::GiveUp => "give_up",
        }
    }
}

/// Something the call's caller must log or alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    NonceConflict {
        account: String,
        method: String,
        key_set: u8,
        action: ConflictAction,
    },
    Key(KeyEvent),
}

impl CallEvent {
    /// The alert for the journal, if this is alert-worthy.
    pub fn alert(&self) -> Option<Alert> {
        match self {
            CallEvent::NonceConflict {
                account,
                method,
                key_set,
                action,
            } => Some(
                Alert::new(AlertKind::NonceConflict)
                    .with("broker", "kraken")
                    .with("account", account)
                    .with("method", method)
                    .with("key_set", key_set)
                    .with("action", action.as_str()),
            ),
            CallEvent::Key(k) => k.alert(),
        }
    }

    /// A line for the operator's log.
    pub fn message(&self) -> String {
        match self {
            CallEvent::NonceConflict {
                account,
                method,
                key_set,
                action,
            } => format!(
                "kraken account {account}: {method} got EAPI:Invalid nonce with key set {key_set} ({})",
                action.as_str()
            ),
            CallEvent::Key(k) => k.message(),
        }
    }
}

/// A finished call: its outcome and what happened on the way.
#[derive(Debug)]
pub struct CallReport<N, T> {
    pub result: Result<Reply, CallError<N, T>>,
    pub events: Vec<CallEvent>,
    /// Attempts sent to Kraken.
    pub attempts: u32,
    /// The key set of the last attempt.
    pub key_set: u8,
}

/// Calls `method` with `params`, drawing each nonce from `nonce` (given
/// the key id, see [`KeySet::key_id`]) and sending through `send`.
pub fn call_private<N, T>(
    method: &str,
    params: &[(&str, &str)],
    keys: &[KeySet],
    fallback: &mut KeyFallback,
    nonce: &mut dyn FnMut(&str) -> Result<u64, N>,
    send: &mut dyn FnMut(&PrivateRequest) -> Result<HttpReply, T>,
    now: Mono,
) -> CallReport<N, T> {
    let mut events = Vec::new();
    let mut attempts = 0;
    if let Some(ev) = fallback.tick(now) {
        events.push(CallEvent::Key(ev));
    }
    let account = fallback.account().to_string();
    let result = 'sets: loop {
        let index = fallback.in_use();
        let Some(set) = keys.iter().find(|k| k.index == index) else {
            break Err(CallError::NoKeySet(index));
        };
        let mut conflicts = 0;
        loop {
            let n = match nonce(&set.key_id()) {
                Ok(n) => n,
                Err(e) => break 'sets Err(CallError::Nonce(e)),
            };
            let req = match private_request(method, params, n, &set.key, &set.secret) {
                Ok(r) => r,
                Err(e) => break 'sets Err(CallError::Request(e)),
            };
            attempts += 1;
            let reply = match send(&req) {
                Ok(r) => r,
                Err(e) => break 'sets Err(CallError::Transport(e)),
            };
            match parse_response(reply.status, &reply.body) {
                Ok(r) => break 'sets Ok(r),
                Err(KrakenError::InvalidNonce) => {
                    conflicts += 1;
                    fallback.key_error(now);
                    let conflict = |action| CallEvent::NonceConflict {
                        account: account.clone(),
                        method: method.to_string(),
                        key_set: index,
                        action,
                    };
                    if conflicts == 1 {
                        events.push(conflict(ConflictAction::Redraw));
                        continue;
                    }
                    match fallback.fall_back(FallbackReason::NonceConflict, now) {
                        Some(ev) => {
                            events.push(conflict(ConflictAction::Fallback));
                            events.push(CallEvent::Key(ev));
                            continue 'sets;
                        }
                        None => {
                            events.push(conflict(ConflictAction::GiveUp));
                            break 'sets Err(CallError::Kraken(KrakenError::InvalidNonce));
                        }
                    }
                }
                Err(KrakenError::TemporaryLockout) => {
                    match fallback.fall_back(FallbackReason::Lockout, now) {
                        Some(ev) => {
                            events.push(CallEvent::Key(ev));
                            continue 'sets;
                        }
                        None => break 'sets Err(CallError::Kraken(KrakenError::TemporaryLockout)),
                    }
                }
                Err(e) => {
                    if e.is_key_error() {
                        fallback.key_error(now);
                    }
                    break 'sets Err(CallError::Kraken(e));
                }
            }
        }
    };
    CallReport {
        result,
        events,
        attempts,
        key_set: fallback.in_use(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::kraken::keys::DEFAULT_FALLBACK_RESET;
    use crate::brokers::kraken::sign::ApiSecret;
    use crate::secret::Secret;
    use base64::Engine;
    use std::collections::HashMap;
    use std::time::Duration;

    fn set(index: u8) -> KeySet {
        let b64 = base64::engine::general_purpose::STANDARD.encode([index; 64]);
        KeySet {
            index,
            key: Secret::new(format!("key-{index}")),
            secret: ApiSecret::from_base64(&Secret::new(b64)).unwrap(),
        }
    }

    fn ok() -> HttpReply {
        HttpReply {
            status: 200,
            body: r#"{"error":[],"result":{"ZUSD":"1.0"}}"#.into(),
        }
    }
    fn err(e: &str) -> HttpReply {
        HttpReply {
            status: 200,
            body: format!(r#"{{"error":["{e}"]}}"#),
        }
    }

    struct Run {
        ok: bool,
        kraken_error: Option<KrakenError>,
        attempts: u32,
        key_set: u8,
        /// (key used, nonce) of every attempt.
        sent: Vec<(String, u64)>,
        events: Vec<CallEvent>,
    }

    /// Runs one call whose answers come from `script` in order.
    fn run(sets: &[u8], fb: &mut KeyFallback, script: Vec<HttpReply>, now: u64) -> Run {
        let keys: Vec<KeySet> = sets.iter().map(|i| set(*i)).collect();
        let mut counters: HashMap<String, u64> = HashMap::new();
        let mut nonce = |id: &str| -> Result<u64, String> {
            let c = counters.entry(id.to_string()).or_insert(100);
            *c += 1;
            Ok(*c)
        };
        let mut script = script.into_iter();
        let mut sent = Vec::new();
        let mut send = |r: &PrivateRequest| -> Result<HttpReply, String> {
            sent.push((r.headers[0].1.expose().to_string(), r.nonce));
            assert!(r.body.starts_with(&format!("nonce={}", r.nonce)));
            script.next().ok_or_else(|| "script ran out".to_string())
        };
        let report = call_private(
            "Balance",
            &[],
            &keys,
            fb,
            &mut nonce,
            &mut send,
            Mono(Duration::from_secs(now)),
        );
        Run {
            ok: report.result.is_ok(),
            kraken_error: match report.result {
                Err(CallError::Kraken(e)) => Some(e),
                _ => None,
            },
            attempts: report.attempts,
            key_set: report.key_set,
            sent,
            events: report.events,
        }
    }

    fn actions(events: &[CallEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                CallEvent::NonceConflict {
                    key_set, action, ..
                } => format!("conflict@{key_set}:{}", action.as_str()),
                CallEvent::Key(KeyEvent::Switched { from, to, .. }) => {
                    format!("switch {from}->{to}")
                }
                CallEvent::Key(KeyEvent::Reset { from, .. }) => format!("reset {from}->1"),
            })
            .collect()
    }

    /// (key sets, answers, ok, error, attempts, set after, events)
    type PolicyRow = (
        &'static [u8],
        Vec<HttpReply>,
        bool,
        Option<KrakenError>,
        u32,
        u8,
        &'static [&'static str],
    );

    #[test]
    fn policy_table() {
        const NONCE: &str = "EAPI:Invalid nonce";
        const LOCK: &str = "EGeneral:Temporary lockout";
        let table: Vec<PolicyRow> = vec![
            (&[1, 2], vec![ok()], true, None, 1, 1, &[]),
            (
                &[1, 2],
                vec![err(NONCE), ok()],
                true,
                None,
                2,
                1,
                &["conflict@1:redraw"],
            ),
            (
                &[1, 2],
                vec![err(NONCE), err(NONCE), ok()],
                true,
                None,
                3,
                2,
                &["conflict@1:redraw", "conflict@1:fallback", "switch 1->2"],
            ),
            (
                &[1],
                vec![err(NONCE), err(NONCE)],
                false,
                Some(KrakenError::InvalidNonce),
                2,
                1,
                &["conflict@1:redraw", "conflict@1:give_up"],
            ),
            (
                &[1, 2, 3],
                vec![err(LOCK), ok()],
                true,
                None,
                2,
                2,
                &["switch 1->2"],
            ),
            (
                &[1, 2, 3],
                vec![err(LOCK), err(NONCE), err(NONCE), err(LOCK)],
                false,
                Some(KrakenError::TemporaryLockout),
                4,
                3,
                &[
                    "switch 1->2",
                    "conflict@2:redraw",
                    "conflict@2:fallback",
                    "switch 2->3",
                ],
            ),
            (
                &[1, 2],
                vec![err("EAPI:Invalid key")],
                false,
                Some(KrakenError::InvalidKey),
                1,
                1,
                &[],
            ),
            (
                &[1, 2],
                vec![err("EService:Unavailable")],
                false,
                Some(KrakenError::ServiceUnavailable),
                1,
                1,
                &[],
            ),
        ];
        for (i, (sets, script, want_ok, want_err, want_attempts, want_set, want_events)) in
            table.into_iter().enumerate()
        {
            let mut fb = KeyFallback::new("master", sets, DEFAULT_FALLBACK_RESET);
            let r = run(sets, &mut fb, script, 0);
            assert_eq!(r.ok, want_ok, "row {i}");
            assert_eq!(r.kraken_error, want_err, "row {i}");
            assert_eq!(r.attempts, want_attempts, "row {i}");
            assert_eq!(r.key_set, want_set, "row {i}");
            assert_eq!(actions(&r.events), want_events, "row {i}");
            // No nonce is ever sent twice for a key, and each key's nonces grow.
            let mut last: HashMap<&str, u64> = HashMap::new();
            for (key, n) in &r.sent {
                if let Some(prev) = last.insert(key, *n) {
                    assert!(*n > prev, "row {i}: {key} sent {n} after {prev}");
                }
            }
        }
    }

    #[test]
    fn alerts_name_account_and_action_and_sets_return_after_an_hour() {
        let mut fb = KeyFallback::new("master", &[1, 2], DEFAULT_FALLBACK_RESET);
        let r = run(
            &[1, 2],
            &mut fb,
            vec![err("EAPI:Invalid nonce"), err("EAPI:Invalid nonce"), ok()],
            100,
        );
        let alerts: Vec<String> = r
            .events
            .iter()
            .filter_map(CallEvent::alert)
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            alerts,
            [
                "alert=nonce_conflict broker=kraken account=master method=Balance key_set=1 action=redraw",
                "alert=nonce_conflict broker=kraken account=master method=Balance key_set=1 action=fallback",
                "alert=key_fallback account=master from=1 to=2 reason=nonce_conflict",
            ]
        );
        assert_eq!(r.sent[2].0, "key-2");
        // Still set 2 just before the hour is up, set 1 at the hour.
        let r = run(&[1, 2], &mut fb, vec![ok()], 100 + 3599);
        assert_eq!((r.key_set, r.sent[0].0.as_str()), (2, "key-2"));
        let r = run(&[1, 2], &mut fb, vec![ok()], 100 + 3600);
        assert_eq!((r.key_set, r.sent[0].0.as_str()), (1, "key-1"));
        assert_eq!(actions(&r.events), ["reset 2->1"]);
    }

    #[test]
    fn nonce_and_transport_failures_end_the_call() {
        let keys = vec![set(1)];
        let mut fb = KeyFallback::new("master", &[1], DEFAULT_FALLBACK_RESET);
        let mut nonce = |_: &str| -> Result<u64, &str> { Err("lock timeout") };
        let mut send = |_: &PrivateRequest| -> Result<HttpReply, &str> { Ok(ok()) };
        let r = call_private(
            "Balance",
            &[],
            &keys,
            &mut fb,
            &mut nonce,
            &mut send,
            Mono::default(),
        );
        assert!(matches!(r.result, Err(CallError::Nonce("lock timeout"))));
        assert_eq!(r.attempts, 0);
        let mut nonce = |_: &str| -> Result<u64, &str> { Ok(1) };
        let mut send =
            |_: &PrivateRequest| -> Result<HttpReply, &str> { Err("connection refused") };
        let r = call_private(
            "Balance",
            &[],
            &keys,
            &mut fb,
            &mut nonce,
            &mut send,
            Mono::default(),
        );
        assert_eq!(r.result.unwrap_err().to_string(), "connection refused");
    }
}
