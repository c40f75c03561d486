//! Main's side of failover: which feeds run on this agent for its role,
//! starting and stopping the private ones when the role changes, and the
//! `standby` entries status shows for the feeds held back.
//!
//! The rule: without `[ha]` every feed runs. With it, a feed marked
//! `standby = true` (public data, config check refuses it on a feed that
//! sends a credential) always runs; every other feed runs only while this
//! agent is the leader. The fence (`crate::fence`) already stops a private
//! session from sending the instant the leadership is in doubt; main then
//! closes and joins those feeds, and tells the ha thread when none is left
//! (it waits for that before releasing the lease on a step-down).

use super::{Agent, DaemonError};
use crate::config::{Config, FeedConfig};
use crate::feed::health::HealthData;
use crate::feed::state::FeedState;
use crate::ha::HaHandle;
use crate::nonce::NonceStore;

impl Agent {
    /// Starts the ha thread when `[ha]` is configured.
    pub(super) fn start_ha(&mut self) -> Result<(), DaemonError> {
        let Some(ha) = self.cfg.ha.clone() else {
            return Ok(());
        };
        let tx = std::sync::Mutex::new(self.events_tx.clone());
        let on_change = Box::new(move || {
            let _ = tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(super::events::Event::HaChanged);
        });
        let nonces = NonceStore::new(&self.cfg.agent.state_dir, self.clock.clone());
        let handle = HaHandle::start(&ha, nonces, self.clock.clone(), on_change).map_err(|e| {
            DaemonError::Os {
                what: "start failover (the [ha] table)".into(),
                source: std::io::Error::other(e),
            }
        })?;
        log::info!(
            "ha: node {} in cluster {} with a {} lease; private feeds wait for the leadership",
            ha.node,
            ha.cluster,
            crate::timefmt::human(ha.lease)
        );
        self.ha = Some(handle);
        Ok(())
    }

    /// Whether `f` runs on this agent now.
    pub(super) fn should_run(&self, f: &FeedConfig) -> bool {
        match &self.ha {
            None => true,
            Some(ha) => f.standby || ha.is_leader(),
        }
    }

    /// Brings the running feeds in line with the role: private feeds start
    /// on becoming leader and stop on losing it.
    pub(super) fn reconcile_ha(&mut self) {
        let Some(ha) = &self.ha else {
            return;
        };
        let running: Vec<String> = self
            .feeds
            .lock()
            .iter()
            .map(|f| f.config.name.clone())
            .collect();
        let (stop, start): (Vec<FeedConfig>, Vec<FeedConfig>) = self
            .cfg
            .feeds
            .iter()
            .filter(|f| running.contains(&f.name) != self.should_run(f))
            .cloned()
            .partition(|f| running.contains(&f.name));
        if !stop.is_empty() {
            let names: Vec<String> = stop.iter().map(|f| f.name.clone()).collect();
            log::info!("ha: stopping private feeds {names:?} (no longer leader)");
            self.feeds.stop_some(&names, self.cfg.agent.stop_timeout);
        }
        for f in &start {
            log::info!("ha: starting feed {} (leader)", f.name);
            if let Err(e) = self.start_feed(f) {
                log::warn!("{e}");
            }
        }
        if let Some(v) = &self.validator {
            v.update(
                &self.validated_feeds(),
                &self.store,
                &self.cfg.agent.state_dir,
                &self.cfg.calendars,
            );
        }
        let private_running = self.feeds.lock().iter().any(|f| !f.config.standby);
        ha.set_private_stopped(!private_running);
        self.write_status(true);
    }

    /// The feeds whose credentials the validator proves over REST: on a
    /// failover standby only those that run here, since a signed check
    /// (Kraken's `Balance`) draws a nonce of the key the leader is using,
    /// and a standby's nonce from its own clock could overtake the
    /// leader's. Presence and format are checked for every feed anyway.
    pub(super) fn validated_feeds(&self) -> Vec<FeedConfig> {
        self.cfg
            .feeds
            .iter()
            .filter(|f| self.should_run(f))
            .cloned()
            .collect()
    }

    /// Status entries for the configured feeds this agent holds back.
    pub(super) fn held_back(&self) -> Vec<HealthData> {
        if self.ha.is_none() {
            return Vec::new();
        }
        let running: Vec<String> = self
            .feeds
            .lock()
            .iter()
            .map(|f| f.config.name.clone())
            .collect();
        self.cfg
            .feeds
            .iter()
            .filter(|f| !running.contains(&f.name))
            .map(|f| {
                let mut h = crate::feed::health::FeedHealth::new(
                    &f.name,
                    f.broker.name(),
                    self.clock.mono(),
                    self.clock.wall(),
                )
                .snapshot();
                // Not down: held back on purpose, with no outage record.
                h.state = FeedState::Standby;
                h.outage = None;
                h
            })
            .collect()
    }

    /// `[ha]` is read once, at start.
    pub(super) fn ha_reload_note(old: &Config, new: &Config) {
        if old.ha != new.ha {
            log::warn!("the [ha] table changed: it takes effect at the next restart");
        }
    }
}
