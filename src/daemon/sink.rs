//! Where feed threads' output goes: the fan-out socket for the bot, a
//! nudge to main so status.json is rewritten on every state change, and
//! each state change into the feed's flight recorder, which is written out
//! to `<state_dir>/blackbox/` when the feed goes down.

use super::events::Event;
use crate::fanout::Publisher;
use crate::feed::recorder;
use crate::feed::{FeedSink, FeedState};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

pub struct DaemonSink {
    pub publisher: Publisher,
    pub events: Mutex<Sender<Event>>,
    /// `<state_dir>/blackbox`: where a feed's recorder is written when it
    /// goes down.
    pub blackbox_dir: PathBuf,
}

impl DaemonSink {
    /// Records the change; writes the ring out when the feed went down.
    fn record_state(&self, feed: &str, state: FeedState, error: Option<&str>) {
        let Some(rec) = recorder::registered(feed) else {
            return;
        };
        let now = SystemTime::now();
        if !rec.state(state, error, now) {
            return;
        }
        let dump = rec.to_ndjson();
        let entries = dump.lines().count();
        match recorder::write_dump(
            &self.blackbox_dir,
            feed,
            &dump,
            now,
            recorder::DEFAULT_FOLDER_CAP,
        ) {
            Ok(path) => {
                crate::notice!(
                    "blackbox feed={feed} state={state} entries={entries} file={}",
                    path.display()
                );
                rec.dumped(path);
            }
            Err(e) => log::warn!(
                "blackbox feed={feed}: cannot write its flight recorder to {}: {e}",
                self.blackbox_dir.display()
            ),
        }
    }
}

impl FeedSink for DaemonSink {
    fn data(&self, feed: &str, message: &str, ts: SystemTime) {
        self.publisher.data(feed, message, ts);
    }
    fn reconnected(&self, feed: &str, down: Duration) {
        self.publisher.reconnected(feed, down);
    }
    fn event(&self, feed: &str, name: &str, fields: &serde_json::Map<String, serde_json::Value>) {
        self.publisher.event(feed, name, fields);
    }
    fn state(&self, feed: &str, state: FeedState, error: Option<&str>) {
        self.publisher.state(feed, state.as_str(), error);
        self.record_state(feed, state, error);
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Event::FeedStateChanged);
    }
}
