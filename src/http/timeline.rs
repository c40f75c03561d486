//! The last 24 hours of each feed, one slot per minute, for the operator
//! page's bands and sparklines: a bounded ring per feed (1 440 slots of 2
//! bytes: 2.8 KiB a feed), fed from main's status publications, so it
//! costs no wake-up of its own.
//!
//! A slot holds the worst class the feed was seen in during that minute
//! (down > flapping > market closed > live, 3 bits) and how many messages
//! arrived in it (13 bits as a small float: exact below 512, then within
//! 0.2 %, up to 16 million a minute; a sparkline needs no more). Pure: the
//! caller passes the time.

use crate::status::ready::feed_ready;
use crate::status::schema::{FeedStatus, StatusDoc};
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Minutes kept.
pub const SLOTS: usize = 24 * 60;
/// The class bits of a slot (the rest count messages, see [`encode`]).
const CLASS_SHIFT: u32 = 13;
const COUNT_MASK: u16 = (1 << CLASS_SHIFT) - 1;
/// Mantissa bits of an encoded count (the other 4 are its exponent).
const MANTISSA: u32 = 9;

/// A message count in 13 bits: `exponent << 9 | mantissa`, the count being
/// `mantissa << exponent` (rounded down), saturating at the largest.
pub fn encode(n: u64) -> u16 {
    let bits = 64 - n.leading_zeros();
    let exp = bits.saturating_sub(MANTISSA);
    if exp > 15 {
        return COUNT_MASK;
    }
    ((exp << MANTISSA) as u16) | ((n >> exp) as u16)
}

/// The count an encoded slot stands for.
pub fn decode(c: u16) -> u64 {
    let c = c & COUNT_MASK;
    u64::from(c & ((1 << MANTISSA) - 1)) << (c >> MANTISSA)
}

/// What a feed was during a minute, from better to worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Not sampled (the agent was not running, or the feed did not exist).
    Unknown = 0,
    Live = 1,
    /// Quiet because its market is closed (or standing by).
    Closed = 2,
    Flapping = 3,
    Down = 4,
}

impl Class {
    /// One letter per minute on the wire: `.` `L` `C` `F` `D`.
    pub fn letter(self) -> char {
        match self {
            Class::Unknown => '.',
            Class::Live => 'L',
            Class::Closed => 'C',
            Class::Flapping => 'F',
            Class::Down => 'D',
        }
    }

    fn from_bits(b: u16) -> Class {
        match b {
            1 => Class::Live,
            2 => Class::Closed,
            3 => Class::Flapping,
            4 => Class::Down,
            _ => Class::Unknown,
        }
    }

    /// The class of a feed as one status document shows it.
    pub fn of(f: &FeedStatus) -> Class {
        if f.flapping.is_some() {
            Class::Flapping
        } else if f.state == "live" && feed_ready(f) {
            Class::Live
        } else if feed_ready(f) {
            Class::Closed
        } else {
            Class::Down
        }
    }
}

/// One feed's ring.
struct Ring {
    name: String,
    /// `slots[minute % SLOTS]`.
    slots: Box<[u16]>,
    /// The unix minute of the newest slot written.
    newest: u64,
    /// The message counter at the last sample (to count per minute).
    last_messages: Option<u64>,
}

/// Every feed's ring.
#[derive(Default)]
pub struct Timeline {
    rings: Vec<Ring>,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

impl Timeline {
    /// One sample of every feed in `doc`, taken at `wall`. Feeds no longer
    /// in the document lose their ring.
    pub fn record(&mut self, doc: &StatusDoc, wall: SystemTime) {
        let minute = minute_of(wall);
        self.rings
            .retain(|r| doc.feeds.iter().any(|f| f.name == r.name));
        for f in &doc.feeds {
            let i = match self.rings.iter().position(|r| r.name == f.name) {
                Some(i) => i,
                None => {
                    self.rings.push(Ring {
                        name: f.name.clone(),
                        slots: vec![0u16; SLOTS].into_boxed_slice(),
                        newest: minute,
                        last_messages: None,
                    });
                    self.rings.len() - 1
                }
            };
            self.rings[i].sample(minute, Class::of(f), f.messages);
        }
    }

    /// `{"minute": M, "feeds": [{"name", "classes", "counts"}]}`: for each
    /// feed, [`SLOTS`] letters (oldest first, the last one minute `M`,
    /// unix minutes) and the messages of each minute.
    pub fn to_json(&self, now: SystemTime, out: &mut String) {
        let minute = minute_of(now);
        let _ = write!(out, "{{\"minute\":{minute},\"feeds\":[");
        for (n, r) in self.rings.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            out.push_str(&serde_json::Value::from(r.name.as_str()).to_string());
            out.push_str(",\"classes\":\"");
            for m in (minute + 1).saturating_sub(SLOTS as u64)..=minute {
                out.push(Class::from_bits(r.get(m) >> CLASS_SHIFT).letter());
            }
            out.push_str("\",\"counts\":[");
            for (k, m) in ((minute + 1).saturating_sub(SLOTS as u64)..=minute).enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", decode(r.get(m)));
            }
            out.push_str("]}");
        }
        out.push_str("]}");
    }

    /// Heap bytes the rings hold (for the footprint notes).
    pub fn bytes(&self) -> usize {
        self.rings.len() * SLOTS * std::mem::size_of::<u16>()
    }
}

impl Ring {
    /// The slot of unix minute `m`, or 0 when it is not in the last day
    /// up to the newest sample.
    fn get(&self, m: u64) -> u16 {
        if m > self.newest || self.newest - m >= SLOTS as u64 {
            return 0;
        }
        self.slots[(m % SLOTS as u64) as usize]
    }

    fn sample(&mut self, minute: u64, class: Class, messages: u64) {
        // Minutes skipped since the last sample (the clock jumped, or the
        // agent was busy) are cleared: nothing was seen in them.
        if minute > self.newest {
            let skipped = (minute - self.newest).min(SLOTS as u64);
            for k in 1..=skipped {
                self.slots[((self.newest + k) % SLOTS as u64) as usize] = 0;
            }
            self.newest = minute;
        } else if self.newest - minute >= SLOTS as u64 {
            return;
        }
        let delta = self
            .last_messages
            .map_or(0, |last| messages.saturating_sub(last));
        self.last_messages = Some(messages);
        let slot = &mut self.slots[(minute % SLOTS as u64) as usize];
        let worst = Class::from_bits(*slot >> CLASS_SHIFT).max(class);
        let count = encode(decode(*slot) + delta);
        *slot = ((worst as u16) << CLASS_SHIFT) | count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn doc(state: &str, messages: u64) -> StatusDoc {
        StatusDoc {
            feeds: vec![FeedStatus {
                name: "a".into(),
                state: state.into(),
                messages,
                last_message_age_ms: Some(5),
                ..FeedStatus::default()
            }],
            ..StatusDoc::default()
        }
    }

    fn at(minute: u64, sec: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(minute * 60 + sec)
    }

    fn shown(t: &Timeline, now: SystemTime) -> serde_json::Value {
        let mut s = String::new();
        t.to_json(now, &mut s);
        serde_json::from_str(&s).unwrap()
    }

    #[test]
    fn the_worst_of_a_minute_and_its_messages_are_kept() {
        let mut t = Timeline::default();
        let base = 30_000_000;
        t.record(&doc("live", 100), at(base, 0));
        t.record(&doc("live", 160), at(base, 30));
        t.record(&doc("backoff", 160), at(base + 1, 0));
        t.record(&doc("live", 170), at(base + 1, 40));
        t.record(&doc("live", 200), at(base + 3, 0));
        let v = shown(&t, at(base + 3, 10));
        let classes = v["feeds"][0]["classes"].as_str().unwrap();
        assert_eq!(classes.len(), SLOTS);
        // base: live; base+1: down at some point; base+2: not seen; base+3: live.
        assert!(classes.ends_with("LD.L"), "{}", &classes[SLOTS - 6..]);
        let counts = v["feeds"][0]["counts"].as_array().unwrap();
        let last4: Vec<u64> = counts[SLOTS - 4..]
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(last4, [60, 10, 0, 30]);
        assert_eq!(v["minute"], base + 3);
    }

    #[test]
    fn counts_are_exact_when_small_and_close_when_large() {
        for n in [0, 1, 7, 511] {
            assert_eq!(decode(encode(n)), n);
        }
        for n in [512u64, 1000, 65_535, 1_000_003, 16_000_000] {
            let back = decode(encode(n));
            assert!(
                back <= n && (n - back) as f64 / n as f64 <= 0.002,
                "{n} -> {back}"
            );
        }
        assert_eq!(encode(u64::MAX), COUNT_MASK);
        assert!(encode(u64::MAX) < 1 << CLASS_SHIFT);
    }

    #[test]
    fn a_day_later_the_ring_has_wrapped_and_gone_feeds_are_dropped() {
        let mut t = Timeline::default();
        let base = 30_000_000;
        t.record(&doc("live", 0), at(base, 0));
        t.record(&doc("live", 0), at(base + SLOTS as u64 + 5, 0));
        let v = shown(&t, at(base + SLOTS as u64 + 5, 0));
        let classes = v["feeds"][0]["classes"].as_str().unwrap();
        assert_eq!(classes.matches('L').count(), 1, "only the newest minute");
        assert_eq!(t.bytes(), SLOTS * 2);
        t.record(&StatusDoc::default(), at(base + SLOTS as u64 + 6, 0));
        assert_eq!(t.bytes(), 0);
        let closed = {
            let mut d = doc("backoff", 0);
            d.feeds[0].market = Some("closed".into());
            d
        };
        assert_eq!(Class::of(&closed.feeds[0]), Class::Closed);
        let mut flap = doc("live", 0);
        flap.feeds[0].flapping = Some(3);
        assert_eq!(Class::of(&flap.feeds[0]), Class::Flapping);
    }
}
