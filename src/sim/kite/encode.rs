//! The simulator's own KiteTicker encoder, written from the documented
//! layout (PROTOCOLS.md §3.2, Kite's WebSocket docs), not from the agent's
//! decoder, and the deterministic values it streams.
//!
//! ## The values (so a test can state them)
//! For instrument token `T` in the `n`-th data frame of a connection
//! (`n` = 0, 1, 2, …; a lying frame does not use up an `n`), with
//! `b = 100_000 + ((T >> 8) % 100) * 1_000`, every field is an integer on
//! the wire (prices in the segment's units: ÷100, CDS ÷10 000 000, BCD
//! ÷10 000 when decoded):
//!
//! | field | value |
//! | --- | --- |
//! | last_price | `b + n` |
//! | last_traded_quantity | `10 + n % 90` |
//! | average_traded_price | `b + n − 25` |
//! | volume_traded | `1 000 × (n + 1)` |
//! | total_buy_quantity / total_sell_quantity | `50 000 + n` / `60 000 + n` |
//! | open / high / low / close | `b − 1 000` / `b + 1 000 + n` / `b − 1 500` / `b − 500` |
//! | last_trade_time | `1 700 000 000 + n` (Unix seconds) |
//! | oi / oi_day_high / oi_day_low | `20 000 + n` / `25 000` / `15 000` |
//! | exchange_timestamp | `1 700 000 000 + n + 1` |
//! | depth buy k (k = 0..4) | quantity `100 (k+1)`, price `b + n − 5 (k+1)`, orders `k + 1` |
//! | depth sell k | quantity `150 (k+1)`, price `b + n + 5 (k+1)`, orders `10 + k` |
//! | index packets, bytes 24–28 | `last_price − close` (not read by pykiteconnect) |
//!
//! A token's packet follows its mode: `ltp` 8 bytes; `quote` 44 bytes (28
//! for an index, segment `T & 0xff == 9`); `full` 184 bytes (32 for an
//! index). One data frame carries every subscribed token, in the order
//! first subscribed.

use std::fmt;
use std::str::FromStr;

/// Segment of index instruments (`token & 0xff`).
pub const INDICES_SEGMENT: u32 = 9;
/// `last_trade_time` of frame 0.
pub const SIM_EPOCH: u32 = 1_700_000_000;

/// A streaming mode the simulator keeps per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimMode {
    Ltp,
    Quote,
    Full,
}

impl SimMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SimMode::Ltp => "ltp",
            SimMode::Quote => "quote",
            SimMode::Full => "full",
        }
    }
}

impl FromStr for SimMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ltp" => Ok(SimMode::Ltp),
            "quote" => Ok(SimMode::Quote),
            "full" => Ok(SimMode::Full),
            _ => Err(format!("unknown mode \"{s}\"")),
        }
    }
}

impl fmt::Display for SimMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One depth level, raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimLevel {
    pub quantity: u32,
    pub price: u32,
    pub orders: u16,
}

/// Every value of one token in one frame, raw (before any divisor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTick {
    pub token: u32,
    pub last_price: u32,
    pub last_traded_quantity: u32,
    pub average_traded_price: u32,
    pub volume_traded: u32,
    pub total_buy_quantity: u32,
    pub total_sell_quantity: u32,
    pub open: u32,
    pub high: u32,
    pub low: u32,
    pub close: u32,
    pub last_trade_time: u32,
    pub oi: u32,
    pub oi_day_high: u32,
    pub oi_day_low: u32,
    pub exchange_timestamp: u32,
    pub buy: [SimLevel; 5],
    pub sell: [SimLevel; 5],
}

/// Whether `token` is an index (not tradable; its own packet layouts).
pub fn is_index(token: u32) -> bool {
    token & 0xff == INDICES_SEGMENT
}

/// The values of `token` in data frame `n` (see the module doc).
pub fn sim_tick(token: u32, n: u32) -> SimTick {
    let b = 100_000 + ((token >> 8) % 100) * 1_000;
    let lp = b.wrapping_add(n);
    SimTick {
        token,
        last_price: lp,
        last_traded_quantity: 10 + n % 90,
        average_traded_price: lp.wrapping_sub(25),
        volume_traded: 1_000u32.wrapping_mul(n.wrapping_add(1)),
        total_buy_quantity: 50_000u32.wrapping_add(n),
        total_sell_quantity: 60_000u32.wrapping_add(n),
        open: b - 1_000,
        high: (b + 1_000).wrapping_add(n),
        low: b - 1_500,
        close: b - 500,
        last_trade_time: SIM_EPOCH.wrapping_add(n),
        oi: 20_000u32.wrapping_add(n),
        oi_day_high: 25_000,
        oi_day_low: 15_000,
        exchange_timestamp: SIM_EPOCH.wrapping_add(n).wrapping_add(1),
        buy: std::array::from_fn(|k| {
            let k = k as u32;
            SimLevel {
                quantity: 100 * (k + 1),
                price: lp.wrapping_sub(5 * (k + 1)),
                orders: (k + 1) as u16,
            }
        }),
        sell: std::array::from_fn(|k| {
            let k = k as u32;
            SimLevel {
                quantity: 150 * (k + 1),
                price: lp.wrapping_add(5 * (k + 1)),
                orders: (10 + k) as u16,
            }
        }),
    }
}

/// Appends big-endian integers.
struct Out(Vec<u8>);

impl Out {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
}

/// The packet of one tick in `mode`.
pub fn encode_packet(t: &SimTick, mode: SimMode) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(184));
    o.u32(t.token).u32(t.last_price);
    if mode == SimMode::Ltp {
        return o.0;
    }
    if is_index(t.token) {
        // Index layout: high, low, open, close, then the change field.
        o.u32(t.high)
            .u32(t.low)
            .u32(t.open)
            .u32(t.close)
            .u32(t.last_price.wrapping_sub(t.close));
        if mode == SimMode::Full {
            o.u32(t.exchange_timestamp);
        }
        return o.0;
    }
    o.u32(t.last_traded_quantity)
        .u32(t.average_traded_price)
        .u32(t.volume_traded)
        .u32(t.total_buy_quantity)
        .u32(t.total_sell_quantity)
        .u32(t.open)
        .u32(t.high)
        .u32(t.low)
        .u32(t.close);
    if mode == SimMode::Full {
        o.u32(t.last_trade_time)
            .u32(t.oi)
            .u32(t.oi_day_high)
            .u32(t.oi_day_low)
            .u32(t.exchange_timestamp);
        for level in t.buy.iter().chain(t.sell.iter()) {
            o.u32(level.quantity)
                .u32(level.price)
                .u16(level.orders)
                .u16(0);
        }
    }
    o.0
}

/// `[u16 count]` then `[u16 length][packet]` for each packet.
pub fn encode_frame(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(
        2 + packets.iter().map(|p| p.len() + 2).sum::<usize>(),
    ));
    o.u16(packets.len() as u16);
    for p in packets {
        o.u16(p.len() as u16);
        o.0.extend_from_slice(p);
    }
    o.0
}

/// Data frame `n` for the subscribed (token, mode)s.
pub fn data_frame(subscribed: &[(u32, SimMode)], n: u32) -> Vec<u8> {
    let packets: Vec<Vec<u8>> = subscribed
        .iter()
        .map(|&(token, mode)| encode_packet(&sim_tick(token, n), mode))
        .collect();
    encode_frame(&packets)
}

/// The idle heartbeat: one byte.
pub const HEARTBEAT: [u8; 1] = [0];

/// How a lying frame lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lie {
    /// The count announces one packet more than the frame holds.
    Count,
    /// The last packet's length runs one byte past the end of the frame.
    Length,
    /// An extra packet of 13 bytes, a length no packet kind has.
    Unknown,
    /// One stray byte after the last packet.
    Trailing,
}

impl Lie {
    pub fn as_str(self) -> &'static str {
        match self {
            Lie::Count => "count",
            Lie::Length => "length",
            Lie::Unknown => "unknown",
            Lie::Trailing => "trailing",
        }
    }
}

impl FromStr for Lie {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "count" => Ok(Lie::Count),
            "length" => Ok(Lie::Length),
            "unknown" => Ok(Lie::Unknown),
            "trailing" => Ok(Lie::Trailing),
            _ => Err(format!(
                "unknown lie \"{s}\"; expected count, length, unknown or trailing"
            )),
        }
    }
}

/// `frame` made to lie as `lie` says (a frame with no packets gets one LTP
/// packet first, so there is something to lie about).
pub fn lying_frame(subscribed: &[(u32, SimMode)], n: u32, lie: Lie) -> Vec<u8> {
    let mut subs = subscribed.to_vec();
    if subs.is_empty() {
        subs.push((256_265, SimMode::Ltp));
    }
    let mut packets: Vec<Vec<u8>> = subs
        .iter()
        .map(|&(token, mode)| encode_packet(&sim_tick(token, n), mode))
        .collect();
    match lie {
        Lie::Count => {
            let mut f = encode_frame(&packets);
            let count = (packets.len() as u16).wrapping_add(1);
            f[..2].copy_from_slice(&count.to_be_bytes());
            f
        }
        Lie::Length => {
            let mut f = encode_frame(&packets);
            let last_len = packets.last().map_or(0, Vec::len);
            let at = f.len() - last_len - 2;
            f[at..at + 2].copy_from_slice(&((last_len + 1) as u16).to_be_bytes());
            f
        }
        Lie::Unknown => {
            packets.push(vec![0x5a; 13]);
            encode_frame(&packets)
        }
        Lie::Trailing => {
            let mut f = encode_frame(&packets);
            f.push(0);
            f
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NSE: u32 = 408_065;
    const NIFTY: u32 = 256_265;

    #[test]
    fn packet_sizes_follow_the_mode_and_the_segment() {
        let t = sim_tick(NSE, 0);
        assert_eq!(encode_packet(&t, SimMode::Ltp).len(), 8);
        assert_eq!(encode_packet(&t, SimMode::Quote).len(), 44);
        assert_eq!(encode_packet(&t, SimMode::Full).len(), 184);
        let i = sim_tick(NIFTY, 0);
        assert_eq!(encode_packet(&i, SimMode::Ltp).len(), 8);
        assert_eq!(encode_packet(&i, SimMode::Quote).len(), 28);
        assert_eq!(encode_packet(&i, SimMode::Full).len(), 32);
    }

    #[test]
    fn documented_values() {
        // 408065 >> 8 = 1594; 1594 % 100 = 94: b = 194 000.
        let t = sim_tick(NSE, 3);
        assert_eq!(t.last_price, 194_003);
        assert_eq!(
            (t.open, t.high, t.low, t.close),
            (193_000, 195_003, 192_500, 193_500)
        );
        assert_eq!(
            t.buy[0],
            SimLevel {
                quantity: 100,
                price: 193_998,
                orders: 1
            }
        );
        assert_eq!(
            t.sell[4],
            SimLevel {
                quantity: 750,
                price: 194_028,
                orders: 14
            }
        );
        assert_eq!(t.exchange_timestamp, SIM_EPOCH + 4);
    }

    #[test]
    fn frame_bytes_by_hand() {
        let f = data_frame(&[(NSE, SimMode::Ltp)], 0);
        // count 1, length 8, token 0x00063A01, price 194000 = 0x0002F5D0
        assert_eq!(
            f,
            [0, 1, 0, 8, 0x00, 0x06, 0x3A, 0x01, 0x00, 0x02, 0xF5, 0xD0]
        );
        let full = encode_packet(&sim_tick(NSE, 0), SimMode::Full);
        // First buy level at offset 64: quantity 100, price 193 995, orders 1, padding.
        assert_eq!(&full[64..76], &[0, 0, 0, 100, 0, 2, 0xF5, 0xCB, 0, 1, 0, 0]);
    }

    #[test]
    fn lies() {
        let subs = [(NSE, SimMode::Ltp)];
        assert_eq!(&lying_frame(&subs, 0, Lie::Count)[..2], &[0, 2]);
        let l = lying_frame(&subs, 0, Lie::Length);
        assert_eq!(&l[2..4], &[0, 9]);
        assert_eq!(l.len(), 12);
        let u = lying_frame(&subs, 0, Lie::Unknown);
        assert_eq!(&u[..2], &[0, 2]);
        assert_eq!(u.len(), 12 + 2 + 13);
        assert_eq!(lying_frame(&subs, 0, Lie::Trailing).len(), 13);
        assert_eq!(&lying_frame(&[], 0, Lie::Count)[..2], &[0, 2]);
    }
}
