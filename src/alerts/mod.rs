//! Alerts heard away from the box: the `[[alerts.webhook]]`s (Slack,
//! Discord, Telegram, JSON) and the dead-man's switch heartbeat.
//!
//! Every [`Alert::emit`] also reaches [`Alerts::dispatch`] through the hook
//! in `crate::alert`: a non-blocking hand-off that deduplicates
//! (`dedup.rs`: the same alert at most once per `[agent] alert_repeat`,
//! changes of state always) and offers the alert to each webhook's bounded
//! queue. Each webhook has its own small worker thread (`worker.rs`) that
//! posts in order with short named timeouts and schedules its retries, so
//! a slow or dead service delays nothing but itself. The heartbeat has its
//! own thread (`heartbeat.rs`). URLs and tokens come from the credentials
//! (`target.rs`) and are shown only as host + fingerprint.
//!
//! `brokerguard alert-test` uses [`test_webhooks`]: one synchronous post
//! per webhook, each answer printed.

pub mod dedup;
pub mod heartbeat;
pub mod payload;
pub mod report;
pub mod target;
pub mod worker;

use crate::alert::{Alert, Dispatch};
use crate::clock::Clock;
use crate::config::Config;
use crate::net::http::HttpClient;
use crate::secret::Secret;
use dedup::Dedup;
use heartbeat::{Heartbeat, Urls};
use payload::Outgoing;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use worker::{Attempt, Slot, Worker};

/// `brokerguard_alert_deliveries_failed_total`: alerts a webhook did not
/// deliver — given up after their retries or refused by the service, or
/// dropped because the webhook's queue was full. A counter for the life of
/// the process (the metrics endpoint reads it).
pub static DELIVERIES_FAILED: AtomicU64 = AtomicU64::new(0);

fn count_failure() {
    DELIVERIES_FAILED.fetch_add(1, Ordering::Relaxed);
}

/// This host's name, as the messages say where they come from.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The running alerts service (webhooks and heartbeat).
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    host: String,
    workers: Mutex<Vec<Worker>>,
    dedup: Mutex<Dedup>,
    repeat: Mutex<Duration>,
    heartbeat: Mutex<Option<Heartbeat>>,
    /// The last health sent to the heartbeat.
    health: Mutex<Option<bool>>,
    /// What the daily report will say.
    tally: Mutex<report::Tally>,
    /// The daily report's schedule and when its period began.
    daily: Mutex<Option<Daily>>,
}

struct Daily {
    spec: crate::config::DailyReportConfig,
    next: Option<std::time::SystemTime>,
    since: std::time::SystemTime,
}

impl Alerts {
    /// Starts a worker per webhook and the heartbeat (when configured), and
    /// hooks [`Alert::emit`] to them. With nothing configured nothing runs.
    pub fn start(
        cfg: &Config,
        lookup: &dyn Fn(&str) -> Option<Secret>,
        clock: Arc<dyn Clock>,
    ) -> Alerts {
        let alerts = Alerts {
            inner: Arc::new(Inner {
                clock,
                host: host_name(),
                workers: Mutex::new(Vec::new()),
                dedup: Mutex::new(Dedup::default()),
                repeat: Mutex::new(cfg.agent.alert_repeat),
                heartbeat: Mutex::new(None),
                health: Mutex::new(None),
                tally: Mutex::new(report::Tally::default()),
                daily: Mutex::new(None),
            }),
        };
        alerts.update(cfg, lookup);
        let inner = Arc::downgrade(&alerts.inner);
        let hook: Dispatch = Arc::new(move |a: &Alert| {
            if let Some(inner) = inner.upgrade() {
                inner.dispatch(a);
            }
        });
        crate::alert::set_dispatch(Some(hook));
        alerts
    }

    /// The configuration or a credential changed: webhooks are added,
    /// removed or re-pointed, the heartbeat likewise. Queued alerts stay.
    pub fn update(&self, cfg: &Config, lookup: &dyn Fn(&str) -> Option<Secret>) {
        let inner = &self.inner;
        *inner.repeat.lock().unwrap_or_else(|p| p.into_inner()) = cfg.agent.alert_repeat;
        {
            let mut daily = inner.daily.lock().unwrap_or_else(|p| p.into_inner());
            let now = inner.clock.wall();
            match (&cfg.alerts.daily_report, daily.as_mut()) {
                (None, _) => *daily = None,
                (Some(spec), Some(d)) if d.spec == *spec => {}
                (Some(spec), old) => {
                    let since = old.map_or(now, |d| d.since);
                    *daily = Some(Daily {
                        spec: spec.clone(),
                        next: report::next_after(now, spec),
                        since,
                    });
                }
            }
        }
        let mut workers = inner.workers.lock().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::take(&mut *workers);
        let mut kept: Vec<Worker> = Vec::new();
        for w in old {
            if cfg.alerts.webhooks.iter().any(|c| c.name == w.name) {
                kept.push(w);
            } else {
                log::info!("webhook {} removed", w.name);
                w.stop();
            }
        }
        for c in &cfg.alerts.webhooks {
            let slot = Slot::new(c, lookup);
            if let Err(e) = &slot.target {
                log::warn!("{e}; its alerts wait and are retried");
            }
            match kept.iter().position(|w| w.name == c.name) {
                Some(i) => {
                    let w = kept.remove(i);
                    w.set_slot(slot);
                    workers.push(w);
                }
                None => match Worker::spawn(slot) {
                    Ok(w) => workers.push(w),
                    Err(e) => log::warn!("webhook {}: cannot start its thread: {e}", c.name),
                },
            }
        }
        drop(workers);

        let mut hb = inner.heartbeat.lock().unwrap_or_else(|p| p.into_inner());
        match (Urls::from_config(&cfg.alerts, lookup), hb.as_ref()) {
            (None, _) => {
                if let Some(h) = hb.take() {
                    h.stop();
                }
            }
            (Some(urls), Some(h)) => h.set_urls(urls),
            (Some(urls), None) => {
                for e in [&urls.ok, &urls.fail]
                    .into_iter()
                    .filter_map(|r| r.as_ref().err())
                {
                    log::warn!("{e}");
                }
                match Heartbeat::spawn(urls) {
                    Ok(h) => {
                        if let Some(health) =
                            *inner.health.lock().unwrap_or_else(|p| p.into_inner())
                        {
                            h.health(health);
                        }
                        *hb = Some(h);
                    }
                    Err(e) => log::warn!("cannot start the heartbeat thread: {e}"),
                }
            }
        }
    }

    /// Every status write: the feeds' health, for the heartbeat (whether
    /// the agent is ready, `crate::status::ready`) and the daily report,
    /// which goes out from here when due.
    pub fn observe(&self, health: &[crate::feed::health::HealthData], healthy: bool) {
        self.set_health(healthy);
        let inner = &self.inner;
        inner
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(health, inner.clock.mono());
        let now = inner.clock.wall();
        let period = {
            let mut daily = inner.daily.lock().unwrap_or_else(|p| p.into_inner());
            let Some(d) = daily.as_mut() else { return };
            if d.next.is_none_or(|n| now < n) {
                return;
            }
            let period = now.duration_since(d.since).unwrap_or_default();
            d.since = now;
            d.next = report::next_after(now, &d.spec);
            period
        };
        let alert = inner
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .report(&crate::timefmt::human(period));
        // Logged as a notice (as `emit` would) and handed to this service's
        // webhooks directly.
        crate::notice!("{alert}");
        inner.dispatch(&alert);
    }

    /// The agent's health (`crate::status::ready`), reported often; the
    /// heartbeat hears of changes only.
    pub fn set_health(&self, healthy: bool) {
        let mut last = self.inner.health.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(healthy) {
            return;
        }
        *last = Some(healthy);
        if let Some(h) = &*self
            .inner
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            h.health(healthy);
        }
    }

    /// Hands `a` to the webhooks as if it had been emitted.
    pub fn dispatch(&self, a: &Alert) {
        self.inner.dispatch(a);
    }

    /// Unhooks and ends the threads (each after its current request).
    pub fn stop(self) {
        crate::alert::set_dispatch(None);
        for w in self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            w.stop();
        }
        self.inner
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl Inner {
    fn dispatch(&self, a: &Alert) {
        if let (crate::alert::Severity::Error, Some(feed)) = (a.kind.severity(), a.get("feed")) {
            self.tally
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .alert(feed);
        }
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers.is_empty() {
            return;
        }
        let repeat = *self.repeat.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = self.dedup.lock().unwrap_or_else(|p| p.into_inner()).admit(
            a,
            self.clock.mono(),
            repeat,
        );
        if !admitted {
            return;
        }
        let o = Arc::new(Outgoing::new(
            crate::feed::recorder::with_dump(a),
            self.clock.wall(),
            &self.host,
        ));
        let severity = a.kind.severity();
        for w in workers.iter() {
            if severity >= w.slot().config.min_severity {
                w.offer(o.clone());
            }
        }
    }
}

/// What one webhook answered to `alert-test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestAnswer {
    pub webhook: String,
    pub format: &'static str,
    /// `host hmac:...`, or why the URL could not be built.
    pub target: String,
    pub delivered: bool,
    /// `HTTP 200 ok`, `HTTP 404 ...`, or the transport error; scrubbed.
    pub answer: String,
}

/// Posts one test alert to each webhook (or only `only`), synchronously,
/// once each (no retries: the operator is watching). `None` when `only`
/// names no configured webhook.
pub fn test_webhooks(
    cfg: &Config,
    lookup: &dyn Fn(&str) -> Option<Secret>,
    only: Option<&str>,
) -> Option<Vec<TestAnswer>> {
    let chosen: Vec<_> = cfg
        .alerts
        .webhooks
        .iter()
        .filter(|w| only.is_none_or(|n| n == w.name))
        .collect();
    if only.is_some() && chosen.is_empty() {
        return None;
    }
    let client = HttpClient::new(worker::http_options());
    let o = Outgoing::test(std::time::SystemTime::now(), &host_name());
    let answers = chosen
        .into_iter()
        .map(|w| {
            let slot = Slot::new(w, lookup);
            let target = match &slot.target {
                Ok(t) => t.label().to_string(),
                Err(e) => e.to_string(),
            };
            let (delivered, answer) = match (&client, &slot.target) {
                (_, Err(e)) => (false, e.to_string()),
                (Err(e), _) => (false, format!("cannot make an HTTP client: {e}")),
                (Ok(c), Ok(t)) => match worker::attempt(c, &slot, &o) {
                    Attempt::Answered { status, .. } => {
                        let ok = (200..300).contains(&status);
                        let verdict = worker::judge(
                            worker::MAX_ATTEMPTS,
                            &Attempt::Answered {
                                status,
                                retry_after: None,
                            },
                        );
                        let text = match verdict {
                            worker::Verdict::Delivered => format!("HTTP {status} ok"),
                            worker::Verdict::GiveUp(why) | worker::Verdict::Retry { why, .. } => {
                                why
                            }
                        };
                        (ok, t.scrub(&text))
                    }
                    Attempt::Failed(why) => (false, why),
                },
            };
            TestAnswer {
                webhook: w.name.clone(),
                format: w.format.as_str(),
                target,
                delivered,
                answer,
            }
        })
        .collect();
    Some(answers)
}
