//! Signed private REST calls over the network, for one account of one
//! feed: the request pieces from `rest`, the nonce-conflict and fallback
//! policy from `call`, nonces from the host's shared [`NonceStore`], and
//! the HTTP client of [`BuildContext::http_client`] (so every answer's
//! `Date` feeds the clock-drift check).
//!
//! Each attempt claims the key's signed calls across every process on the
//! host ([`NonceStore::lock_calls`]) from the nonce draw until the answer
//! is in: brokerguard's own calls then reach Kraken in the order their
//! nonces were drawn, and `EAPI:Invalid nonce` only comes from a client
//! outside brokerguard (or network reordering), which the policy's one
//! redraw is for.
//!
//! The key set in use is a fact about the account in this process, shared
//! by its feeds and the credential validator: one [`KeyFallback`] per
//! account and key sets, kept in [`shared_fallback`], so a locked-out set
//! is not tried again by the next caller.

use super::call::{CallError, CallEvent, HttpReply, call_private};
use super::keys::{
    KeyEvent, KeyFallback, KeySet, KeySets, KeySetsError, key_set_names, load_key_sets,
};
use super::rest::{KrakenError, PrivateRequest, Reply};
use crate::brokers::BuildContext;
use crate::clock::Clock;
use crate::config::FeedConfig;
use crate::feed::session::{Stage, classify};
use crate::feed::{ErrorClass, FeedError, Layer};
use crate::net::NetError;
use crate::net::http::{Body, HttpClient, Request};
use crate::nonce::{CallLock, NonceError, NonceStore};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

/// A successful call.
#[derive(Debug)]
pub struct Called {
    pub reply: Reply,
    /// The key set that made it (1, 2 or 3).
    pub key_set: u8,
    /// Requests sent.
    pub attempts: u32,
    /// Fresh nonces drawn after `EAPI:Invalid nonce`.
    pub redraws: u32,
}

/// A failed call: the feed error (class and layer decide what happens
/// next), and what is known about how far it got.
#[derive(Debug)]
pub struct CallFailure {
    pub error: FeedError,
    /// Kraken's own error, when it answered with one.
    pub kraken: Option<KrakenError>,
    /// An HTTP answer came back (the REST endpoint was reached).
    pub answered: bool,
    /// The key set of the last attempt.
    pub key_set: u8,
}

/// The signed REST calls of one feed's account.
pub struct SignedRest {
    account: String,
    base: String,
    http: HttpClient,
    nonces: NonceStore,
    keys: Vec<KeySet>,
    fallback: Arc<Mutex<KeyFallback>>,
    clock: Arc<dyn Clock>,
    /// How long an attempt waits for another process's call with the key.
    call_wait: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key-set state of `account` with exactly these key sets in this
/// process (new key values start afresh at set 1).
pub fn shared_fallback(account: &str, sets: &KeySets, reset: Duration) -> Arc<Mutex<KeyFallback>> {
    static ACCOUNTS: OnceLock<Mutex<HashMap<String, Arc<Mutex<KeyFallback>>>>> = OnceLock::new();
    let fingerprints: Vec<String> = sets
        .sets
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}",
                s.index,
                s.key.fingerprint(),
                s.secret.fingerprint()
            )
        })
        .collect();
    let id = format!("{account}|{}|{}", fingerprints.join(","), reset.as_millis());
    lock(ACCOUNTS.get_or_init(Default::default))
        .entry(id)
        .or_insert_with(|| Arc::new(Mutex::new(KeyFallback::for_sets(account, sets, reset))))
        .clone()
}

impl SignedRest {
    /// The signed calls of `feed`'s `account`, with its key sets read
    /// through `ctx.lookup`. An unusable first key set is an error of the
    /// credentials layer: missing (parked until it is set) or malformed
    /// (parked until it changes).
    pub fn for_feed(
        feed: &FeedConfig,
        ctx: &BuildContext<'_>,
        account: &str,
        reset: Duration,
    ) -> Result<SignedRest, FeedError> {
        // The key's nonce counter and call lock are filed under its
        // fingerprint, which must be the same in every process on the host:
        // keyed by the state folder's key, not by a key of this process's
        // own (a process that never installed it, a library user or a test
        // child, would file its nonces apart and race the others unseen).
        // The agent and the command line install it at start; then there is
        // nothing to read here.
        if !crate::secret::fingerprint::host_key_installed() {
            crate::secret::fingerprint::use_host_key(&ctx.state_dir).map_err(|e| {
                FeedError::config(format!("feed {}: {e}", feed.name)).at(Layer::Credentials)
            })?;
        }
        let sets = load_key_sets(account, ctx.lookup).map_err(|e| {
            let class = match &e {
                KeySetsError::Missing { .. }
                | KeySetsError::Unusable(super::keys::KeySetProblem::Incomplete { .. }) => {
                    ErrorClass::MissingCredential
                }
                KeySetsError::Unusable(_) => ErrorClass::Config,
            };
            FeedError::new(class, format!("feed {}: {e}", feed.name)).at(Layer::Credentials)
        })?;
        for p in &sets.skipped {
            log::warn!(
                "feed={} kraken account {account}: {p}; that fallback key set is not used",
                feed.name
            );
        }
        let http = ctx.http_client(feed).map_err(|e| {
            FeedError::config(format!("feed {}: cannot set up HTTPS: {e}", feed.name))
                .at(Layer::Tls)
        })?;
        Ok(SignedRest {
            account: account.to_string(),
            base: feed
                .rest_url
                .clone()
                .unwrap_or_else(|| super::settings::DEFAULT_REST_URL.to_string()),
            http,
            nonces: NonceStore::new(&ctx.state_dir, ctx.clock.clone()),
            fallback: shared_fallback(account, &sets, reset),
            keys: sets.sets,
            clock: ctx.clock.clone(),
            call_wait: feed.handshake_timeout,
        })
    }

    /// The REST base URL (may hold credentials in odd setups: show it
    /// only through `redact_url`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The key set in use now (1, 2 or 3).
    pub fn key_set_in_use(&self) -> u8 {
        lock(&self.fallback).in_use()
    }

    /// `POST /0/private/<method>` with no parameters but the nonce, under
    /// the nonce-conflict and fallback policy. Alerts the policy raises
    /// (`nonce_conflict`, `key_fallback`) are emitted here.
    pub fn call(&self, method: &str) -> Result<Called, CallFailure> {
        let mut fallback = lock(&self.fallback);
        // The claim on the key's calls, from the draw until the answer.
        let held: RefCell<Option<CallLock>> = RefCell::new(None);
        let answered = RefCell::new(false);
        let date: RefCell<Option<SystemTime>> = RefCell::new(None);
        let mut nonce = |key_id: &str| -> Result<u64, NonceError> {
            held.replace(None);
            let claim = self.nonces.lock_calls(key_id, self.call_wait)?;
            let n = self.nonces.draw(key_id)?;
            held.replace(Some(claim));
            Ok(n)
        };
        let mut send = |req: &PrivateRequest| -> Result<HttpReply, NetError> {
            let mut r = Request::post(req.url(&self.base), Body::Form(req.body.clone()));
            for (name, value) in &req.headers {
                r = r.header(name.clone(), value.clone());
            }
            let out = self.http.send(&r);
            // The answer is in (or never will be): the next call may go.
            held.replace(None);
            let resp = out?;
            answered.replace(true);
            date.replace(resp.date);
            Ok(HttpReply {
                status: resp.status,
                body: resp.body,
            })
        };
        let report = call_private(
            method,
            &[],
            &self.keys,
            &mut fallback,
            &mut nonce,
            &mut send,
            self.clock.mono(),
        );
        drop(held);
        let redraws = report
            .events
            .iter()
            .filter(|e| matches!(e, CallEvent::NonceConflict { .. }))
            .count() as u32;
        for e in &report.events {
            emit(e);
        }
        let key_set = report.key_set;
        let names = key_set_names(&self.account, key_set);
        let answered = answered.into_inner();
        let fail = |error: FeedError, kraken: Option<KrakenError>| CallFailure {
            error,
            kraken,
            answered,
            key_set,
        };
        match report.result {
            Ok(reply) => Ok(Called {
                reply,
                key_set,
                attempts: report.attempts,
                redraws,
            }),
            Err(CallError::Kraken(k)) => {
                let now = date.into_inner().unwrap_or_else(|| self.clock.wall());
                let base = k.to_feed_error(now);
                let error = FeedError {
                    message: format!(
                        "Kraken {method} with key set {key_set} ({} / {}): {}",
                        names.key, names.secret, base.message
                    ),
                    ..base
                };
                Err(fail(error, Some(k)))
            }
            Err(CallError::Transport(e)) => {
                let base = classify(e, Stage::Opening);
                let error = FeedError {
                    message: format!("Kraken REST {method}: {}", base.message),
                    ..base
                };
                Err(fail(error, None))
            }
            Err(CallError::Nonce(e)) => {
                // Another process's call or a slow disk is worth a retry;
                // a folder the service cannot write is not.
                let class = match e {
                    NonceError::CallsBusy { .. } | NonceError::LockTimeout { .. } => {
                        ErrorClass::Network
                    }
                    _ => ErrorClass::Config,
                };
                let error = FeedError::new(class, format!("Kraken {method}: {e}")).at(Layer::Auth);
                Err(fail(error, None))
            }
            Err(e @ (CallError::Request(_) | CallError::NoKeySet(_))) => Err(fail(
                FeedError::protocol(format!("Kraken {method}: internal error: {e}"))
                    .at(Layer::Auth),
                None,
            )),
        }
    }
}

/// The journal's view of what the call policy did.
fn emit(e: &CallEvent) {
    match e.alert() {
        Some(a) => a.emit(),
        None => match e {
            CallEvent::Key(KeyEvent::Reset { .. }) => crate::notice!("{}", e.message()),
            _ => log::info!("{}", e.message()),
        },
    }
}
