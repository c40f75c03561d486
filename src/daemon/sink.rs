//! Where feed threads' output goes: the fan-out socket for the bot, and a
//! nudge to main so status.json is rewritten on every state change.

use super::events::Event;
use crate::fanout::Publisher;
use crate::feed::{FeedSink, FeedState};
use std::sync::Mutex;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

pub struct DaemonSink {
    pub publisher: Publisher,
    pub events: Mutex<Sender<Event>>,
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
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Event::FeedStateChanged);
    }
}
