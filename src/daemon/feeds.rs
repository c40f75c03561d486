//! The set of running feeds: start, replace on reload or credential change,
//! stop and join within a deadline. Shared with the watchdog thread.

use crate::brokers::{BuildContext, BuildError};
use crate::clock::Clock;
use crate::config::FeedConfig;
use crate::feed::health::HealthData;
use crate::feed::runner::{self, FeedCommand, FeedHandle, FeedSink, RunnerSettings};
use crate::feed::{Adapter, ConnectProgress, ErrorClass, FeedError, Session};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One running feed with the configuration it was started from.
pub struct RunningFeed {
    pub config: FeedConfig,
    pub handle: FeedHandle,
}

/// All feeds; the watchdog thread holds a clone of the Arc.
#[derive(Clone, Default)]
pub struct FeedSet {
    inner: Arc<Mutex<Vec<RunningFeed>>>,
}

/// Stands in for a feed's adapter that could not be built: the feed parks
/// with the reason (a missing credential wakes it when it appears; an
/// invalid setting when the configuration changes).
struct UnbuiltAdapter {
    error: FeedError,
}

impl Adapter for UnbuiltAdapter {
    fn connect(&mut self, _: &mut dyn ConnectProgress) -> Result<Box<dyn Session>, FeedError> {
        Err(self.error.clone())
    }
    fn has_ping(&self) -> bool {
        true
    }
}

/// Builds an adapter, or a parked stand-in when it cannot be built.
pub fn adapter_for(f: &FeedConfig, ctx: &BuildContext<'_>) -> Box<dyn Adapter> {
    match f.broker.build(f, ctx) {
        Ok(a) => a,
        Err(e) => {
            let class = match e {
                BuildError::MissingCredential { .. } => ErrorClass::MissingCredential,
                BuildError::Invalid { .. } => ErrorClass::Config,
            };
            Box::new(UnbuiltAdapter {
                error: FeedError::new(class, e.to_string()).at(crate::feed::Layer::Credentials),
            })
        }
    }
}

/// The feed's calendar; a calendar that cannot be built (its time zone is
/// found nowhere) is logged and the feed is judged as 24/7.
fn calendar_for(f: &FeedConfig, ctx: &BuildContext<'_>) -> Option<Arc<crate::calendar::Calendar>> {
    ctx.calendar_of(f).unwrap_or_else(|e| {
        log::warn!(
            "feed={}: {e}; its silence is judged as if the market were always open",
            f.name
        );
        None
    })
}

impl FeedSet {
    pub fn lock(&self) -> MutexGuard<'_, Vec<RunningFeed>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn health(&self) -> Vec<HealthData> {
        self.lock()
            .iter()
            .map(|f| f.handle.health.snapshot())
            .collect()
    }

    pub fn start(
        &self,
        f: &FeedConfig,
        ctx: &BuildContext<'_>,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn FeedSink>,
    ) -> std::io::Result<()> {
        let adapter = adapter_for(f, ctx);
        let settings = RunnerSettings::from_config(f, adapter.as_ref(), calendar_for(f, ctx));
        let handle = runner::spawn(&f.name, f.broker.name(), adapter, settings, clock, sink)?;
        self.lock().push(RunningFeed {
            config: f.clone(),
            handle,
        });
        Ok(())
    }

    /// Sends a new adapter to a running feed; it reconnects at once: a
    /// blocked read is interrupted rather than left to its tick (up to a
    /// second on a quiet feed), so a rotated token is in use well under one.
    pub fn replace(&self, f: &FeedConfig, ctx: &BuildContext<'_>, reason: &str) {
        let mut feeds = self.lock();
        if let Some(rf) = feeds.iter_mut().find(|r| r.config.name == f.name) {
            let adapter = adapter_for(f, ctx);
            let settings = RunnerSettings::from_config(f, adapter.as_ref(), calendar_for(f, ctx));
            rf.handle.settings = settings.clone();
            rf.config = f.clone();
            // Holding the slot keeps the feed from registering a connection
            // made with the new adapter before the interrupt: only the
            // connection in use when the command was sent is cut.
            let slot = rf
                .handle
                .interrupter
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let _ = rf.handle.commands.send(FeedCommand::Replace {
                adapter,
                settings: Box::new(settings),
                reason: reason.to_string(),
            });
            if let Some(interrupt) = slot.as_ref() {
                interrupt();
            }
        }
    }

    /// Removes feeds from the set and stops them, waiting at most `timeout`.
    pub fn stop_some(&self, names: &[String], timeout: Duration) {
        let taken: Vec<RunningFeed> = {
            let mut feeds = self.lock();
            let (out, keep): (Vec<_>, Vec<_>) = feeds
                .drain(..)
                .partition(|f| names.contains(&f.config.name));
            *feeds = keep;
            out
        };
        stop_and_join(taken, timeout);
    }

    /// Stops every feed (graceful close), waiting at most `timeout`.
    pub fn stop_all(&self, timeout: Duration) {
        let taken: Vec<RunningFeed> = self.lock().drain(..).collect();
        stop_and_join(taken, timeout);
    }
}

fn stop_and_join(mut feeds: Vec<RunningFeed>, timeout: Duration) {
    for f in &feeds {
        let _ = f.handle.commands.send(FeedCommand::Stop);
    }
    let start = Instant::now();
    let mut interrupted = false;
    loop {
        feeds.retain_mut(|f| match f.handle.thread.as_ref() {
            Some(t) if t.is_finished() => {
                if let Some(t) = f.handle.thread.take() {
                    let _ = t.join();
                }
                false
            }
            Some(_) => true,
            None => false,
        });
        if feeds.is_empty() {
            return;
        }
        let waited = start.elapsed();
        if waited >= timeout {
            let names: Vec<&str> = feeds.iter().map(|f| f.config.name.as_str()).collect();
            log::warn!("feeds {names:?} did not stop within {timeout:?}; leaving them behind");
            return;
        }
        // Half way through, wake anything blocked in a socket call.
        if !interrupted && waited >= timeout / 2 {
            for f in &feeds {
                f.handle.interrupt();
            }
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
