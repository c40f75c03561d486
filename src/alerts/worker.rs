//! One small thread per webhook: it takes alerts from a bounded queue and
//! posts them in order, one request at a time with short named timeouts,
//! so a slow, failing or unreachable webhook delays only itself — never a
//! feed, the journal, the fan-out, another webhook or the heartbeat.
//!
//! Retries are scheduled, never slept in line: a failed post keeps its
//! place at the head with a due time (the service's `Retry-After` on 429,
//! else a doubling backoff), and the thread waits on its queue until then.
//! Its own failures are logged once per outage (the first failure, then
//! the recovery), and every alert it gives up on, or that finds its queue
//! full, is counted in [`super::DELIVERIES_FAILED`].

use super::payload::{Outgoing, body};
use super::target::{Target, TargetError, webhook_target};
use crate::config::WebhookConfig;
use crate::net::http::{Body, HttpClient, HttpOptions, Request, Response, parse_imf_fixdate};
use crate::secret::Secret;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Alerts waiting in a webhook's channel (beyond them: counted, dropped).
pub const QUEUE_MAX: usize = 64;
/// Alerts held for retry or in order behind one (beyond them: the newest
/// are counted and dropped).
pub const PENDING_MAX: usize = 256;
/// Attempts per alert before it is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(120);
/// The longest `Retry-After` honoured (a longer one is cut to this).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(900);
/// Per request: the connect (with the name lookup and TLS), then the
/// request and response headers, then the body. A hanging service costs a
/// few seconds of this webhook's own thread and nothing else.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(4);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest answer read (services answer "ok" or a short JSON).
const ANSWER_MAX: usize = 64 << 10;

/// The HTTP options of every alerts request (webhooks, heartbeat).
pub fn http_options() -> HttpOptions {
    HttpOptions {
        connect_timeout: CONNECT_TIMEOUT,
        response_timeout: RESPONSE_TIMEOUT,
        body_timeout: BODY_TIMEOUT,
        max_body_bytes: ANSWER_MAX,
        secret_path: true,
        ..HttpOptions::default()
    }
}

/// What one attempt came to, as the retry policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The service answered with this status (and maybe a wait).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: a timeout, a refused connection, TLS; the text (already
    /// scrubbed) says which.
    Failed(String),
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry { after: Duration, why: String },
    GiveUp(String),
}

/// The backoff before attempt `attempt + 1` (attempt 1 is the first).
pub fn backoff(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    BACKOFF_FIRST.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// The retry policy: 2xx delivered; 429 waits as told (else backs off);
/// 408, 5xx and transport failures back off; any other answer (a wrong
/// URL's 404, a revoked webhook's 401/403) will not improve by retrying.
/// After [`MAX_ATTEMPTS`] the alert is given up.
pub fn judge(attempt_no: u32, a: &Attempt) -> Verdict {
    let retry = |after: Duration, why: String| {
        if attempt_no >= MAX_ATTEMPTS {
            Verdict::GiveUp(format!("{why}; gave up after {attempt_no} attempts"))
        } else {
            Verdict::Retry { after, why }
        }
    };
    match a {
        Attempt::Answered { status, .. } if (200..300).contains(status) => Verdict::Delivered,
        Attempt::Answered {
            status: 429,
            retry_after,
        } => retry(
            retry_after
                .unwrap_or_else(|| backoff(attempt_no))
                .min(RETRY_AFTER_MAX),
            "HTTP 429 (rate limited)".to_string(),
        ),
        Attempt::Answered { status, .. } if *status == 408 || *status >= 500 => {
            retry(backoff(attempt_no), format!("HTTP {status}"))
        }
        Attempt::Answered { status, .. } => Verdict::GiveUp(format!(
            "HTTP {status}{}",
            match status {
                401 | 403 =>
                    " (the service refused: is the webhook revoked or the bot token wrong?)",
                404 => " (no such webhook: check the URL or bot token credential)",
                400 => " (the service refused the message: check chat_id)",
                _ => "",
            }
        )),
        Attempt::Failed(why) => retry(backoff(attempt_no), why.clone()),
    }
}

/// How long a 429 asks to wait: `Retry-After` in seconds or as an HTTP
/// date, else Discord's and Telegram's own field in the JSON body
/// (`retry_after`, `parameters.retry_after`).
pub fn retry_after(resp: &Response, now: SystemTime) -> Option<Duration> {
    if let Some(v) = resp.header("retry-after").map(str::trim) {
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(
                    secs.min(RETRY_AFTER_MAX.as_secs_f64()),
                ));
            }
        }
        if let Some(at) = parse_imf_fixdate(v) {
            return Some(at.duration_since(now).unwrap_or_default());
        }
    }
    let v: serde_json::Value = serde_json::from_str(&resp.body).ok()?;
    let secs = v["retry_after"]
        .as_f64()
        .or_else(|| v["parameters"]["retry_after"].as_f64())?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(RETRY_AFTER_MAX.as_secs_f64())))
}

/// The webhook as the worker and the dispatcher see it; replaced whole when
/// the configuration or a credential changes.
#[derive(Clone, Debug)]
pub struct Slot {
    pub config: WebhookConfig,
    pub target: Result<Target, TargetError>,
}

impl Slot {
    pub fn new(config: &WebhookConfig, lookup: &dyn Fn(&str) -> Option<Secret>) -> Slot {
        Slot {
            config: config.clone(),
            target: webhook_target(config, lookup),
        }
    }
}

/// Sends one alert to `slot`'s webhook: one attempt, no retry.
pub fn attempt(client: &HttpClient, slot: &Slot, o: &Outgoing) -> Attempt {
    let target = match &slot.target {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    let text = body(slot.config.format, o, slot.config.chat_id.as_deref());
    let req = Request::post(target.url().expose(), Body::Json(text));
    match client.send(&req) {
        Ok(resp) => Attempt::Answered {
            status: resp.status,
            retry_after: (resp.status == 429)
                .then(|| retry_after(&resp, SystemTime::now()))
                .flatten(),
        },
        Err(e) => Attempt::Failed(target.scrub(&e.to_string())),
    }
}

/// The dispatcher's end of a webhook's worker.
pub struct Worker {
    pub name: String,
    slot: Arc<Mutex<Slot>>,
    tx: Option<SyncSender<Arc<Outgoing>>>,
    /// A full queue was logged (cleared when an alert fits again).
    overflow_logged: AtomicBool,
}

impl Worker {
    pub fn spawn(slot: Slot) -> std::io::Result<Worker> {
        let name = slot.config.name.clone();
        let slot = Arc::new(Mutex::new(slot));
        let (tx, rx) = mpsc::sync_channel(QUEUE_MAX);
        let client = HttpClient::new(http_options()).map_err(std::io::Error::other)?;
        let s = slot.clone();
        // A panic (a bug) loses the alert being posted and restarts the
        // thread on the same queue; it ends when the agent drops its sender.
        crate::threads::spawn_isolated(
            &format!("webhook-{name}"),
            crate::threads::FEED_STACK, // TLS handshakes, as the validator
            crate::threads::Restart::WithBackoff {
                stopping: Box::new(|| false),
            },
            move || run(&s, &rx, &client),
        )?;
        Ok(Worker {
            name,
            slot,
            tx: Some(tx),
            overflow_logged: AtomicBool::new(false),
        })
    }

    pub fn slot(&self) -> Slot {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_slot(&self, slot: Slot) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = slot;
    }

    /// Queues `o` without waiting; a full queue counts it as failed.
    pub fn offer(&self, o: Arc<Outgoing>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(o) {
            Ok(()) => self.overflow_logged.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(o)) => {
                super::count_failure();
                if !self.overflow_logged.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "webhook {}: {QUEUE_MAX} alerts already queued (the service is slow or down); \
                         dropped alert={} and counted it in brokerguard_alert_deliveries_failed_total",
                        self.name,
                        o.alert.kind
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => super::count_failure(),
        }
    }

    /// Closes the queue: the thread ends after its current request.
    pub fn stop(mut self) {
        self.tx = None;
    }
}

struct Job {
    o: Arc<Outgoing>,
    attempts: u32,
    due: Instant,
}

fn run(slot: &Mutex<Slot>, rx: &Receiver<Arc<Outgoing>>, client: &HttpClient) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    // The first failure of an outage, logged; cleared by a delivery.
    let mut failing: Option<Instant> = None;
    let mut failures = 0u64;
    loop {
        let wait = pending.front().map_or(Duration::from_secs(3600), |j| {
            j.due.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(o) => push(&mut pending, o),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(o) = rx.try_recv() {
            push(&mut pending, o);
        }
        while let Some(job) = pending.front_mut() {
            if job.due > Instant::now() {
                break;
            }
            let s = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
            job.attempts += 1;
            let a = attempt(client, &s, &job.o);
            let label = s
                .target
                .as_ref()
                .map_or("not resolved".to_string(), |t| t.label().to_string());
            match judge(job.attempts, &a) {
                Verdict::Delivered => {
                    if let Some(since) = failing.take() {
                        crate::notice!(
                            "webhook {} ({label}) delivers again after {failures} failed attempts over {}",
                            s.config.name,
                            crate::timefmt::human(since.elapsed())
                        );
                    }
                    failures = 0;
                    pending.pop_front();
                }
                Verdict::Retry { after, why } => {
                    failures += 1;
                    if failing.is_none() {
                        failing = Some(Instant::now());
                        log::warn!(
                            "webhook {} ({label}) failed: {why}; alert={} retries in {} \
                             (further failures are counted, not logged, until it delivers again)",
                            s.config.name,
                            job.o.alert.kind,
                            crate::timefmt::human(after)
                        );
                    }
                    job.due = Instant::now() + after;
                    break;
                }
                Verdict::GiveUp(why) => {
                    failures += 1;
                    super::count_failure();
                    if failing.is_none() {
                        failing = Some(Instant::now());
                        log::warn!(
                            "webhook {} ({label}) failed: {why}; alert={} dropped and counted",
                            s.config.name,
                            job.o.alert.kind
                        );
                    }
                    pending.pop_front();
                }
            }
        }
    }
}

fn push(pending: &mut VecDeque<Job>, o: Arc<Outgoing>) {
    if pending.len() >= PENDING_MAX {
        super::count_failure();
        return;
    }
    pending.push_back(Job {
        o,
        attempts: 0,
        due: Instant::now(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Answered {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_policy_table() {
        let s = Duration::from_secs;
        let cases: Vec<(u32, Attempt, Verdict)> = vec![
            (1, answered(200, None), Verdict::Delivered),
            (1, answered(204, None), Verdict::Delivered),
            (
                1,
                answered(429, Some(7)),
                Verdict::Retry {
                    after: s(7),
                    why: "HTTP 429 (rate limited)".into(),
                },
            ),
            (
                3,
                answered(429, None),
                Verdict::Retry {
                    after: s(4),
                    why: "HTTP 429 (rate limited)".into(),
                },
            ),
            (
                1,
                answered(429, Some(86_400)),
                Verdict::Retry {
                    after: RETRY_AFTER_MAX,
                    why: "HTTP 429 (rate limited)".into(),
                },
            ),
            (
                2,
                answered(503, None),
                Verdict::Retry {
                    after: s(2),
                    why: "HTTP 503".into(),
                },
            ),
            (
                1,
                Attempt::Failed("timeout".into()),
                Verdict::Retry {
                    after: s(1),
                    why: "timeout".into(),
                },
            ),
            (
                MAX_ATTEMPTS,
                Attempt::Failed("timeout".into()),
                Verdict::GiveUp(format!("timeout; gave up after {MAX_ATTEMPTS} attempts")),
            ),
        ];
        for (n, a, want) in cases {
            assert_eq!(judge(n, &a), want, "{n} {a:?}");
        }
        assert!(
            matches!(judge(1, &answered(404, None)), Verdict::GiveUp(w) if w.contains("check the URL"))
        );
        assert_eq!(backoff(30), BACKOFF_MAX);
    }

    fn resp(headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status: 429,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
            date: None,
            sent_at: SystemTime::UNIX_EPOCH,
            received_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn retry_after_in_every_form_services_use() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let cases: Vec<(Response, Option<Duration>)> = vec![
            (
                resp(&[("retry-after", "3")], ""),
                Some(Duration::from_secs(3)),
            ),
            (
                resp(&[("retry-after", "Wed, 21 Oct 2015 07:28:10 GMT")], ""),
                Some(Duration::from_secs(10)),
            ),
            (
                resp(
                    &[],
                    r#"{"message":"You are being rate limited.","retry_after":0.5,"global":false}"#,
                ),
                Some(Duration::from_millis(500)),
            ),
            (
                resp(
                    &[],
                    r#"{"ok":false,"error_code":429,"parameters":{"retry_after":12}}"#,
                ),
                Some(Duration::from_secs(12)),
            ),
            (resp(&[], "slow down"), None),
        ];
        for (r, want) in cases {
            assert_eq!(retry_after(&r, now), want, "{r:?}");
        }
    }
}
