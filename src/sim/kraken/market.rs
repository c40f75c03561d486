//! The simulator's own market: order books held as integer ticks and
//! lots (so their text, and Kraken's checksum over it, follow from the
//! symbol's precision), random but plausible changes, and the v2 JSON of
//! book, ticker, trade and OHLC messages, numbers written with their full
//! precision. Written apart from the agent's book code, so the two cannot
//! share a mistake.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A symbol the simulator lists, with its precisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSpec {
    pub symbol: String,
    /// Decimals of a price (BTC/USD: 1, so 452852 ticks is 45285.2).
    pub price_decimals: u32,
    /// Decimals of a quantity (8: 100000 lots is 0.00100000).
    pub qty_decimals: u32,
    /// Where prices start, in ticks.
    pub mid_ticks: u64,
}

/// The symbols listed when none are configured.
pub fn default_symbols() -> Vec<SymbolSpec> {
    let s = |symbol: &str, price_decimals, mid_ticks| SymbolSpec {
        symbol: symbol.to_string(),
        price_decimals,
        qty_decimals: 8,
        mid_ticks,
    };
    vec![
        s("BTC/USD", 1, 452_852),
        s("ETH/USD", 2, 200_012),
        s("SOL/USD", 2, 14_250),
        s("XRP/USD", 5, 50_005),
    ]
}

/// A small xorshift generator: the simulator needs variety, not secrecy.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// `value` with `decimals` digits after the point.
pub fn fixed(value: u64, decimals: u32) -> String {
    if decimals == 0 {
        return value.to_string();
    }
    let unit = 10u64.pow(decimals);
    format!(
        "{}.{:0width$}",
        value / unit,
        value % unit,
        width = decimals as usize
    )
}

/// CRC-32 as zlib computes it, bit by bit.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = !0;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One symbol's book on the exchange (deeper than any subscriber sees).
#[derive(Clone, Debug)]
pub struct SimBook {
    pub spec: SymbolSpec,
    /// What the subscriber sees: the top `depth` levels of each side.
    pub depth: usize,
    /// Price ticks → lots.
    bids: BTreeMap<u64, u64>,
    asks: BTreeMap<u64, u64>,
}

/// The levels (ticks, lots) an update carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookChange {
    bids: Vec<(u64, u64)>,
    asks: Vec<(u64, u64)>,
}

/// Levels beyond the subscriber's depth kept on each side, so a removal
/// always has a level to bring into view.
const RESERVE: usize = 20;

impl SimBook {
    pub fn new(spec: SymbolSpec, depth: usize, rng: &mut Rng) -> Self {
        let mut b = SimBook {
            spec,
            depth,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
        };
        let mid = b.spec.mid_ticks.max(10_000);
        for i in 0..(depth + RESERVE) as u64 {
            b.bids.insert(mid - 1 - i * 2, lots(rng));
            b.asks.insert(mid + 1 + i * 2, lots(rng));
        }
        b
    }

    /// Bids best first (highest), cut to the view.
    fn bid_view(&self) -> Vec<(u64, u64)> {
        self.bids
            .iter()
            .rev()
            .take(self.depth)
            .map(|(p, q)| (*p, *q))
            .collect()
    }

    /// Asks best first (lowest), cut to the view.
    fn ask_view(&self) -> Vec<(u64, u64)> {
        self.asks
            .iter()
            .take(self.depth)
            .map(|(p, q)| (*p, *q))
            .collect()
    }

    pub fn best_bid(&self) -> u64 {
        self.bids.keys().next_back().copied().unwrap_or(0)
    }

    pub fn best_ask(&self) -> u64 {
        self.asks.keys().next().copied().unwrap_or(0)
    }

    /// Kraken's checksum: top 10 asks low → high, then top 10 bids high →
    /// low, each as price and quantity without `.` or leading zeros —
    /// which, for fixed-precision text, are the tick and lot counts.
    pub fn checksum(&self) -> u32 {
        let mut s = String::new();
        for (p, q) in self
            .ask_view()
            .iter()
            .take(10)
            .chain(self.bid_view().iter().take(10))
        {
            let _ = write!(s, "{p}{q}");
        }
        crc32(s.as_bytes())
    }

    fn levels_json(&self, levels: &[(u64, u64)]) -> String {
        let items: Vec<String> = levels
            .iter()
            .map(|(p, q)| {
                format!(
                    r#"{{"price":{},"qty":{}}}"#,
                    fixed(*p, self.spec.price_decimals),
                    fixed(*q, self.spec.qty_decimals)
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    fn message(
        &self,
        kind: &str,
        bids: &[(u64, u64)],
        asks: &[(u64, u64)],
        corrupt: bool,
        ts: &str,
    ) -> String {
        let mut checksum = self.checksum();
        if corrupt {
            checksum ^= 0x5A5A_5A5A;
        }
        format!(
            r#"{{"channel":"book","type":"{kind}","data":[{{"symbol":{},"bids":{},"asks":{},"checksum":{checksum},"timestamp":"{ts}"}}]}}"#,
            json_str(&self.spec.symbol),
            self.levels_json(bids),
            self.levels_json(asks),
        )
    }

    /// The snapshot a new subscriber gets.
    pub fn snapshot(&self, corrupt: bool, ts: &str) -> String {
        self.message("snapshot", &self.bid_view(), &self.ask_view(), corrupt, ts)
    }

    /// Changes the book a little and returns what a subscriber needs
    /// (changed and new levels in view, `qty` 0 for deleted ones; levels
    /// that only fell out of view are not sent), or `None` if nothing in
    /// view changed.
    pub fn step(&mut self, rng: &mut Rng) -> Option<BookChange> {
        let (bids_before, asks_before) = (self.bid_view(), self.ask_view());
        for _ in 0..rng.range(1, 3) {
            let bid_side = rng.next() % 2 == 0;
            match rng.next() % 4 {
                // Change a quantity in view.
                0 | 1 => {
                    let view = if bid_side { &bids_before } else { &asks_before };
                    if let Some((p, _)) =
                        view.get(rng.range(0, view.len().saturating_sub(1) as u64) as usize)
                    {
                        let side = if bid_side {
                            &mut self.bids
                        } else {
                            &mut self.asks
                        };
                        side.insert(*p, lots(rng));
                    }
                }
                // Delete a level in view.
                2 => {
                    let view = if bid_side { &bids_before } else { &asks_before };
                    if let Some((p, _)) =
                        view.get(rng.range(0, view.len().saturating_sub(1) as u64) as usize)
                    {
                        let side = if bid_side {
                            &mut self.bids
                        } else {
                            &mut self.asks
                        };
                        side.remove(p);
                    }
                }
                // A new level inside the spread or the view.
                _ => {
                    let (bb, ba) = (self.best_bid(), self.best_ask());
                    if bid_side {
                        let p = bb + 1 - rng.range(0, 2 * self.depth as u64).min(bb);
                        if p < ba && p > 0 {
                            self.bids.entry(p).or_insert_with(|| lots(rng));
                        }
                    } else {
                        let p = ba - 1 + rng.range(0, 2 * self.depth as u64);
                        if p > bb {
                            self.asks.entry(p).or_insert_with(|| lots(rng));
                        }
                    }
                }
            }
        }
        self.refill(rng);
        let bids = diff(&bids_before, &self.bid_view(), &self.bids);
        let asks = diff(&asks_before, &self.ask_view(), &self.asks);
        if bids.is_empty() && asks.is_empty() {
            return None;
        }
        Some(BookChange { bids, asks })
    }

    /// The update message for a change from [`SimBook::step`].
    pub fn update(&self, change: &BookChange, corrupt: bool, ts: &str) -> String {
        self.message("update", &change.bids, &change.asks, corrupt, ts)
    }

    /// Keeps levels below the view so deletions are refilled.
    fn refill(&mut self, rng: &mut Rng) {
        while self.bids.len() < self.depth + RESERVE {
            let worst = self
                .bids
                .keys()
                .next()
                .copied()
                .unwrap_or(self.spec.mid_ticks);
            if worst < 3 {
                break;
            }
            self.bids.insert(worst - 2, lots(rng));
        }
        while self.asks.len() < self.depth + RESERVE {
            let worst = self
                .asks
                .keys()
                .next_back()
                .copied()
                .unwrap_or(self.spec.mid_ticks);
            self.asks.insert(worst + 2, lots(rng));
        }
    }

    /// A ticker message from the top of the book.
    pub fn ticker(&self, kind: &str) -> String {
        let d = self.spec.price_decimals;
        let q = self.spec.qty_decimals;
        let bid = self.best_bid();
        let ask = self.best_ask();
        let bq = self.bids.get(&bid).copied().unwrap_or(0);
        let aq = self.asks.get(&ask).copied().unwrap_or(0);
        format!(
            r#"{{"channel":"ticker","type":"{kind}","data":[{{"symbol":{},"bid":{},"bid_qty":{},"ask":{},"ask_qty":{},"last":{},"volume":{},"vwap":{},"low":{},"high":{},"change":{},"change_pct":0.00}}]}}"#,
            json_str(&self.spec.symbol),
            fixed(bid, d),
            fixed(bq, q),
            fixed(ask, d),
            fixed(aq, q),
            fixed(bid, d),
            fixed(12_345_678_900, q),
            fixed((bid + ask) / 2, d),
            fixed(bid.saturating_sub(100), d),
            fixed(ask + 100, d),
            fixed(0, d),
        )
    }

    /// A trade message at the top of the book.
    pub fn trade(&self, kind: &str, trade_id: u64, rng: &mut Rng, ts: &str) -> String {
        let buy = rng.next() % 2 == 0;
        let price = if buy {
            self.best_ask()
        } else {
            self.best_bid()
        };
        format!(
            r#"{{"channel":"trade","type":"{kind}","data":[{{"symbol":{},"side":"{}","price":{},"qty":{},"ord_type":"market","trade_id":{trade_id},"timestamp":"{ts}"}}]}}"#,
            json_str(&self.spec.symbol),
            if buy { "buy" } else { "sell" },
            fixed(price, self.spec.price_decimals),
            fixed(lots(rng), self.spec.qty_decimals),
        )
    }

    /// An OHLC (candle) message around the top of the book.
    pub fn ohlc(&self, kind: &str, interval: u64, ts: &str) -> String {
        let d = self.spec.price_decimals;
        let mid = (self.best_bid() + self.best_ask()) / 2;
        format!(
            r#"{{"channel":"ohlc","type":"{kind}","data":[{{"symbol":{},"open":{},"high":{},"low":{},"close":{},"trades":12,"volume":{},"vwap":{},"interval_begin":"{ts}","interval":{interval},"timestamp":"{ts}"}}]}}"#,
            json_str(&self.spec.symbol),
            fixed(mid, d),
            fixed(mid + 20, d),
            fixed(mid.saturating_sub(20), d),
            fixed(mid, d),
            fixed(250_000_000, self.spec.qty_decimals),
            fixed(mid, d),
        )
    }
}

/// A quantity between 0.00010000 and 2.50000000 (in lots of 1e-8).
fn lots(rng: &mut Rng) -> u64 {
    rng.range(10_000, 250_000_000)
}

/// What a subscriber holding `before` needs to reach `after`.
fn diff(before: &[(u64, u64)], after: &[(u64, u64)], full: &BTreeMap<u64, u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = after
        .iter()
        .filter(|lvl| !before.contains(lvl))
        .copied()
        .collect();
    for (p, _) in before {
        let still_in_view = after.iter().any(|(a, _)| a == p);
        if !still_in_view && !full.contains_key(p) {
            out.push((*p, 0));
        }
    }
    out
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_fixed_text() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(fixed(452852, 1), "45285.2");
        assert_eq!(fixed(100_000, 8), "0.00100000");
        assert_eq!(fixed(5005, 5), "0.05005");
        assert_eq!(fixed(7, 0), "7");
    }

    #[test]
    fn the_published_example_checksums_to_974947235() {
        let spec = SymbolSpec {
            symbol: "X/Y".into(),
            price_decimals: 5,
            qty_decimals: 8,
            mid_ticks: 5003,
        };
        let mut b = SimBook {
            spec,
            depth: 10,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
        };
        for p in [5005, 5010, 5015, 5020, 5025, 5030, 5035, 5040, 5045, 5050] {
            b.asks.insert(p, 500);
        }
        for p in [5000, 4995, 4990, 4980, 4975, 4970, 4965, 4960, 4955, 4950] {
            b.bids.insert(p, 500);
        }
        assert_eq!(b.checksum(), 974_947_235);
    }

    #[test]
    fn updates_keep_the_book_sane() {
        let mut rng = Rng::new(42);
        let mut b = SimBook::new(default_symbols().remove(0), 10, &mut rng);
        let snap = b.snapshot(false, "t");
        assert!(snap.contains(r#""qty":"#) && snap.contains("\"BTC/USD\""));
        let mut sent = 0;
        for _ in 0..500 {
            if let Some(change) = b.step(&mut rng) {
                let msg = b.update(&change, false, "t");
                assert!(msg.contains(&format!(r#""checksum":{}"#, b.checksum())));
                sent += 1;
            }
            assert!(b.best_bid() < b.best_ask());
            assert!(b.bid_view().len() == 10 && b.ask_view().len() == 10);
        }
        assert!(sent > 400);
    }
}
