//! The KiteTicker binary frame decoder: one WebSocket binary message in, the
//! list of ticks pykiteconnect's `on_ticks` would receive out (as JSON with
//! pykiteconnect's field names, in its key order).
//!
//! Decoding follows pykiteconnect `kiteconnect/ticker.py` (`_split_packets`,
//! `_parse_binary`, `_unpack_int`, commit f5531bd2) value for value:
//! - a frame is `[u16 count]` then `count` times `[u16 length][packet]`, all
//!   big-endian;
//! - a packet's kind is its length: 8 LTP, 28 index quote, 32 index full,
//!   44 quote, 184 full;
//! - `segment = instrument_token & 0xff`; prices are divided by 10 000 000
//!   for CDS (3), 10 000 for BCD (6), 100 otherwise; indices (9) are not
//!   `tradable`;
//! - index packets read OHLC as high, low, open, close; quote/full packets
//!   as open, high, low, close;
//! - `change` = (last_price − close) × 100 / close as a float, and the
//!   integer `0` when close is 0 (pykiteconnect's `d["change"] = 0`);
//! - market depth: five buy then five sell entries of
//!   `[u32 quantity][u32 price][u16 orders][2 bytes padding]`.
//!
//! Timestamps (`last_trade_time`, `exchange_timestamp`) are Unix seconds on
//! the wire. pykiteconnect turns them into naive local-time datetimes; we
//! emit RFC 3339 strings in **UTC with `Z`** (the project's convention), so
//! the instant is the same and no host time zone leaks in. A 0 on the wire
//! is emitted as `1970-01-01T00:00:00Z`, as pykiteconnect makes a datetime
//! of it too.
//!
//! Where we are stricter than pykiteconnect (it bounds-checks nothing): every
//! count and length is checked against the frame, and a frame that lies —
//! a length past the end, more packets announced than present, bytes left
//! after the last packet, a packet length that is no known kind — is
//! rejected whole with a [`FrameError`]; nothing here can panic on peer
//! bytes. (pykiteconnect skips a packet of unknown length and keeps the
//! rest; we drop the frame, because a length we cannot place means we no
//! longer know where the frame's packets are.)

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// Packet lengths, which are also the packet kinds.
pub const LTP_LEN: usize = 8;
pub const INDEX_QUOTE_LEN: usize = 28;
pub const INDEX_FULL_LEN: usize = 32;
pub const QUOTE_LEN: usize = 44;
pub const FULL_LEN: usize = 184;

/// `instrument_token & 0xff` of each exchange segment (pykiteconnect `EXCHANGE_MAP`).
pub const SEGMENT_NSE: u8 = 1;
pub const SEGMENT_NFO: u8 = 2;
pub const SEGMENT_CDS: u8 = 3;
pub const SEGMENT_BSE: u8 = 4;
pub const SEGMENT_BFO: u8 = 5;
pub const SEGMENT_BCD: u8 = 6;
pub const SEGMENT_MCX: u8 = 7;
pub const SEGMENT_MCXSX: u8 = 8;
pub const SEGMENT_INDICES: u8 = 9;

/// Depth entries per side, and the bytes of one entry.
pub const DEPTH_LEVELS: usize = 5;
const DEPTH_ENTRY_LEN: usize = 12;
const DEPTH_START: usize = 64;

/// A streaming mode, as Kite spells it (`ltp`, `quote`, `full`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Ltp,
    Quote,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ltp => "ltp",
            Mode::Quote => "quote",
            Mode::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "ltp" => Some(Mode::Ltp),
            "quote" => Some(Mode::Quote),
            "full" => Some(Mode::Full),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which layout a packet has (decided by its length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketKind {
    Ltp,
    IndexQuote,
    IndexFull,
    Quote,
    Full,
}

impl PacketKind {
    pub fn from_len(len: usize) -> Option<PacketKind> {
        match len {
            LTP_LEN => Some(PacketKind::Ltp),
            INDEX_QUOTE_LEN => Some(PacketKind::IndexQuote),
            INDEX_FULL_LEN => Some(PacketKind::IndexFull),
            QUOTE_LEN => Some(PacketKind::Quote),
            FULL_LEN => Some(PacketKind::Full),
            _ => None,
        }
    }

    /// The packet's length in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            PacketKind::Ltp => LTP_LEN,
            PacketKind::IndexQuote => INDEX_QUOTE_LEN,
            PacketKind::IndexFull => INDEX_FULL_LEN,
            PacketKind::Quote => QUOTE_LEN,
            PacketKind::Full => FULL_LEN,
        }
    }

    /// The `mode` pykiteconnect reports for this packet.
    pub fn mode(self) -> Mode {
        match self {
            PacketKind::Ltp => Mode::Ltp,
            PacketKind::IndexQuote | PacketKind::Quote => Mode::Quote,
            PacketKind::IndexFull | PacketKind::Full => Mode::Full,
        }
    }

    fn is_index(self) -> bool {
        matches!(self, PacketKind::IndexQuote | PacketKind::IndexFull)
    }
}

/// The price divisor of a segment: CDS 10 000 000, BCD 10 000, else 100.
pub fn divisor(segment: u8) -> f64 {
    match segment {
        SEGMENT_CDS => 10_000_000.0,
        SEGMENT_BCD => 10_000.0,
        _ => 100.0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ohlc {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DepthEntry {
    pub quantity: u32,
    pub price: f64,
    pub orders: u16,
}

/// Five levels a side, best first (as the exchange sends them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Depth {
    pub buy: [DepthEntry; DEPTH_LEVELS],
    pub sell: [DepthEntry; DEPTH_LEVELS],
}

/// One decoded packet. Fields a packet kind does not carry are `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub kind: PacketKind,
    pub tradable: bool,
    pub instrument_token: u32,
    pub last_price: f64,
    pub last_traded_quantity: Option<u32>,
    pub average_traded_price: Option<f64>,
    pub volume_traded: Option<u32>,
    pub total_buy_quantity: Option<u32>,
    pub total_sell_quantity: Option<u32>,
    pub ohlc: Option<Ohlc>,
    /// Percent change from the close (0 when the close is 0).
    pub change: Option<f64>,
    /// Unix seconds.
    pub last_trade_time: Option<u32>,
    pub oi: Option<u32>,
    pub oi_day_high: Option<u32>,
    pub oi_day_low: Option<u32>,
    /// Unix seconds.
    pub exchange_timestamp: Option<u32>,
    pub depth: Option<Depth>,
}

impl Tick {
    pub fn mode(&self) -> Mode {
        self.kind.mode()
    }
    pub fn segment(&self) -> u8 {
        (self.instrument_token & 0xff) as u8
    }
}

/// What one binary message was.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A 1-byte frame (Kite's idle heartbeat), or a frame announcing no
    /// packets: proves the connection alive, carries nothing.
    Heartbeat,
    /// At least one tick, in frame order.
    Ticks(Vec<Tick>),
}

/// Why a frame was dropped. Offsets are byte positions in the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A binary message with no bytes at all.
    Empty,
    /// The frame announced `count` packets but ended before the length of
    /// packet number `packet` (0-based).
    MissingPacket {
        count: u16,
        packet: u16,
        frame_len: usize,
    },
    /// Packet `packet` claims `length` bytes from offset `at`, past the end.
    PacketPastEnd {
        packet: u16,
        length: u16,
        at: usize,
        frame_len: usize,
    },
    /// Packet `packet` has a length that is no known packet kind.
    UnknownPacketLength { packet: u16, length: u16 },
    /// Bytes are left after the `count` announced packets.
    TrailingBytes { count: u16, extra: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => f.write_str("empty binary frame"),
            FrameError::MissingPacket {
                count,
                packet,
                frame_len,
            } => write!(
                f,
                "frame announces {count} packets but its {frame_len} bytes end before packet {}",
                packet + 1
            ),
            FrameError::PacketPastEnd {
                packet,
                length,
                at,
                frame_len,
            } => write!(
                f,
                "packet {} claims {length} bytes at offset {at}, past the end of the {frame_len}-byte frame",
                packet + 1
            ),
            FrameError::UnknownPacketLength { packet, length } => write!(
                f,
                "packet {} has length {length}, which is no known packet kind (8, 28, 32, 44, 184)",
                packet + 1
            ),
            FrameError::TrailingBytes { count, extra } => write!(
                f,
                "{extra} bytes follow the {count} packets the frame announces"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Splits a frame into its packets, checking every length against the
/// frame (pykiteconnect `_split_packets`, with the checks it lacks).
pub fn split_packets(frame: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    let frame_len = frame.len();
    let Some(count) = be_u16(frame, 0) else {
        // One byte: the heartbeat; the caller has handled it.
        return Ok(Vec::new());
    };
    let mut packets = Vec::with_capacity(usize::from(count).min(frame_len / 10));
    let mut at = 2usize;
    for packet in 0..count {
        let Some(length) = be_u16(frame, at) else {
            return Err(FrameError::MissingPacket {
                count,
                packet,
                frame_len,
            });
        };
        let start = at + 2;
        let end = start + usize::from(length);
        let Some(body) = frame.get(start..end) else {
            return Err(FrameError::PacketPastEnd {
                packet,
                length,
                at: start,
                frame_len,
            });
        };
        packets.push(body);
        at = end;
    }
    if at != frame_len {
        return Err(FrameError::TrailingBytes {
            count,
            extra: frame_len - at,
        });
    }
    Ok(packets)
}

/// Decodes one binary message.
pub fn decode(frame: &[u8]) -> Result<Decoded, FrameError> {
    if frame.len() == 1 {
        return Ok(Decoded::Heartbeat);
    }
    let packets = split_packets(frame)?;
    if packets.is_empty() {
        return Ok(Decoded::Heartbeat);
    }
    let mut ticks = Vec::with_capacity(packets.len());
    for (i, p) in packets.iter().enumerate() {
        let Some(kind) = PacketKind::from_len(p.len()) else {
            return Err(FrameError::UnknownPacketLength {
                packet: i as u16,
                length: p.len() as u16,
            });
        };
        ticks.push(parse_packet(kind, p));
    }
    Ok(Decoded::Ticks(ticks))
}

/// Decodes one binary message to the JSON array `on_ticks` would get;
/// `Ok(None)` for a heartbeat.
pub fn decode_json(frame: &[u8]) -> Result<Option<String>, FrameError> {
    match decode(frame)? {
        Decoded::Heartbeat => Ok(None),
        Decoded::Ticks(ticks) => Ok(Some(ticks_json(&ticks))),
    }
}

/// A list of ticks as a JSON array.
pub fn ticks_json(ticks: &[Tick]) -> String {
    // Serializing these types cannot fail: every map key is a string and
    // every value a number, string, bool or nested map/array of those.
    serde_json::to_string(ticks).expect("ticks always serialize")
}

/// Reads one packet whose length has been checked to be `kind.byte_len()`.
fn parse_packet(kind: PacketKind, p: &[u8]) -> Tick {
    // `p.len() == kind.byte_len()` was checked, so every offset below is in
    // range; `u32_at` still cannot panic, it reads 0 past the end.
    let u32_at = |at: usize| be_u32(p, at).unwrap_or(0);
    let u16_at = |at: usize| be_u16(p, at).unwrap_or(0);
    let instrument_token = u32_at(0);
    let segment = (instrument_token & 0xff) as u8;
    let div = divisor(segment);
    let price = |at: usize| f64::from(u32_at(at)) / div;
    let mut t = Tick {
        kind,
        tradable: segment != SEGMENT_INDICES,
        instrument_token,
        last_price: price(4),
        last_traded_quantity: None,
        average_traded_price: None,
        volume_traded: None,
        total_buy_quantity: None,
        total_sell_quantity: None,
        ohlc: None,
        change: None,
        last_trade_time: None,
        oi: None,
        oi_day_high: None,
        oi_day_low: None,
        exchange_timestamp: None,
        depth: None,
    };
    let ohlc = match kind {
        PacketKind::Ltp => return t,
        PacketKind::IndexQuote | PacketKind::IndexFull => Ohlc {
            high: price(8),
            low: price(12),
            open: price(16),
            close: price(20),
        },
        PacketKind::Quote | PacketKind::Full => {
            t.last_traded_quantity = Some(u32_at(8));
            t.average_traded_price = Some(price(12));
            t.volume_traded = Some(u32_at(16));
            t.total_buy_quantity = Some(u32_at(20));
            t.total_sell_quantity = Some(u32_at(24));
            Ohlc {
                open: price(28),
                high: price(32),
                low: price(36),
                close: price(40),
            }
        }
    };
    t.change = Some(if ohlc.close != 0.0 {
        (t.last_price - ohlc.close) * 100.0 / ohlc.close
    } else {
        0.0
    });
    t.ohlc = Some(ohlc);
    match kind {
        PacketKind::IndexFull => t.exchange_timestamp = Some(u32_at(28)),
        PacketKind::Full => {
            t.last_trade_time = Some(u32_at(44));
            t.oi = Some(u32_at(48));
            t.oi_day_high = Some(u32_at(52));
            t.oi_day_low = Some(u32_at(56));
            t.exchange_timestamp = Some(u32_at(60));
            let entry = |i: usize| {
                let at = DEPTH_START + i * DEPTH_ENTRY_LEN;
                DepthEntry {
                    quantity: u32_at(at),
                    price: price(at + 4),
                    orders: u16_at(at + 8),
                }
            };
            t.depth = Some(Depth {
                buy: std::array::from_fn(entry),
                sell: std::array::from_fn(|i| entry(i + DEPTH_LEVELS)),
            });
        }
        _ => {}
    }
    t
}

/// Unix seconds as RFC 3339 UTC (`2023-11-14T22:13:20Z`).
pub fn timestamp(secs: u32) -> String {
    crate::timefmt::rfc3339(UNIX_EPOCH + Duration::from_secs(u64::from(secs)))
}

/// OHLC in the key order pykiteconnect builds it for the packet kind.
struct OhlcOf<'a>(&'a Ohlc, bool);

impl Serialize for OhlcOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let OhlcOf(o, index) = *self;
        let mut m = s.serialize_map(Some(4))?;
        if index {
            m.serialize_entry("high", &o.high)?;
            m.serialize_entry("low", &o.low)?;
            m.serialize_entry("open", &o.open)?;
            m.serialize_entry("close", &o.close)?;
        } else {
            m.serialize_entry("open", &o.open)?;
            m.serialize_entry("high", &o.high)?;
            m.serialize_entry("low", &o.low)?;
            m.serialize_entry("close", &o.close)?;
        }
        m.end()
    }
}

impl Serialize for Tick {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("tradable", &self.tradable)?;
        m.serialize_entry("mode", &self.mode())?;
        m.serialize_entry("instrument_token", &self.instrument_token)?;
        m.serialize_entry("last_price", &self.last_price)?;
        if let Some(v) = self.last_traded_quantity {
            m.serialize_entry("last_traded_quantity", &v)?;
        }
        if let Some(v) = self.average_traded_price {
            m.serialize_entry("average_traded_price", &v)?;
        }
        if let Some(v) = self.volume_traded {
            m.serialize_entry("volume_traded", &v)?;
        }
        if let Some(v) = self.total_buy_quantity {
            m.serialize_entry("total_buy_quantity", &v)?;
        }
        if let Some(v) = self.total_sell_quantity {
            m.serialize_entry("total_sell_quantity", &v)?;
        }
        if let Some(o) = &self.ohlc {
            m.serialize_entry("ohlc", &OhlcOf(o, self.kind.is_index()))?;
            match self.change {
                // pykiteconnect leaves the integer 0 when the close is 0.
                Some(_) if o.close == 0.0 => m.serialize_entry("change", &0u8)?,
                Some(c) => m.serialize_entry("change", &c)?,
                None => {}
            }
        }
        if let Some(v) = self.last_trade_time {
            m.serialize_entry("last_trade_time", &timestamp(v))?;
        }
        if let Some(v) = self.oi {
            m.serialize_entry("oi", &v)?;
        }
        if let Some(v) = self.oi_day_high {
            m.serialize_entry("oi_day_high", &v)?;
        }
        if let Some(v) = self.oi_day_low {
            m.serialize_entry("oi_day_low", &v)?;
        }
        if let Some(v) = self.exchange_timestamp {
            m.serialize_entry("exchange_timestamp", &timestamp(v))?;
        }
        if let Some(d) = &self.depth {
            m.serialize_entry("depth", d)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Builds packets from the documented layout (PROTOCOLS.md §3.2), field
    /// by field, independently of the decoder's offsets table.
    struct Packet(Vec<u8>);

    impl Packet {
        fn new(token: u32) -> Self {
            Packet(token.to_be_bytes().to_vec())
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
    }

    fn frame(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut f = (packets.len() as u16).to_be_bytes().to_vec();
        for p in packets {
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
            f.extend_from_slice(p);
        }
        f
    }

    const NSE_TOKEN: u32 = 408_065; // 0x63A01: segment 1 (NSE)
    const INDEX_TOKEN: u32 = 256_265; // 0x3E909: segment 9 (NIFTY 50)
    const CDS_TOKEN: u32 = (1234 << 8) | 3;
    const BCD_TOKEN: u32 = (77 << 8) | 6;

    fn ltp(token: u32, price: u32) -> Vec<u8> {
        Packet::new(token).u32(price).0
    }

    fn quote(token: u32) -> Packet {
        Packet::new(token)
            .u32(150_025) // last price
            .u32(25) // last traded quantity
            .u32(149_990) // average traded price
            .u32(1_200_000) // volume
            .u32(3_400) // total buy
            .u32(5_600) // total sell
            .u32(148_000) // open
            .u32(151_000) // high
            .u32(147_500) // low
            .u32(149_000) // close
    }

    fn full(token: u32) -> Vec<u8> {
        let mut p = quote(token)
            .u32(1_700_000_000) // last trade time
            .u32(9_000) // oi
            .u32(9_500) // oi day high
            .u32(8_500) // oi day low
            .u32(1_700_000_005); // exchange timestamp
        for i in 0..10u32 {
            p = p.u32(100 + i).u32(150_000 + i * 5).u16(i as u16 + 1).u16(0);
        }
        p.0
    }

    fn index(token: u32, with_ts: bool) -> Vec<u8> {
        let p = Packet::new(token)
            .u32(2_250_050) // last price
            .u32(2_260_000) // high
            .u32(2_240_000) // low
            .u32(2_245_000) // open
            .u32(2_200_000) // close
            .u32(50_050); // change field: not read by pykiteconnect
        if with_ts { p.u32(1_700_000_100).0 } else { p.0 }
    }

    fn json_of(f: &[u8]) -> Value {
        serde_json::from_str(&decode_json(f).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn packet_lengths_are_the_documented_ones() {
        assert_eq!(ltp(1, 1).len(), LTP_LEN);
        assert_eq!(index(1, false).len(), INDEX_QUOTE_LEN);
        assert_eq!(index(1, true).len(), INDEX_FULL_LEN);
        assert_eq!(quote(1).0.len(), QUOTE_LEN);
        assert_eq!(full(1).len(), FULL_LEN);
    }

    #[test]
    fn ltp_packet() {
        let v = json_of(&frame(&[ltp(NSE_TOKEN, 123_456)]));
        assert_eq!(
            v,
            json!([{"tradable": true, "mode": "ltp", "instrument_token": 408065, "last_price": 1234.56}])
        );
    }

    #[test]
    fn index_quote_and_full_read_high_low_open_close() {
        let v = json_of(&frame(&[
            index(INDEX_TOKEN, false),
            index(INDEX_TOKEN, true),
        ]));
        let change = (22500.5 - 22000.0) * 100.0 / 22000.0;
        assert_eq!(
            v,
            json!([
                {"tradable": false, "mode": "quote", "instrument_token": INDEX_TOKEN, "last_price": 22500.5,
                 "ohlc": {"high": 22600.0, "low": 22400.0, "open": 22450.0, "close": 22000.0},
                 "change": change},
                {"tradable": false, "mode": "full", "instrument_token": INDEX_TOKEN, "last_price": 22500.5,
                 "ohlc": {"high": 22600.0, "low": 22400.0, "open": 22450.0, "close": 22000.0},
                 "change": change, "exchange_timestamp": "2023-11-14T22:15:00Z"}
            ])
        );
    }

    #[test]
    fn quote_packet() {
        let v = json_of(&frame(&[quote(NSE_TOKEN).0]));
        assert_eq!(
            v,
            json!([{"tradable": true, "mode": "quote", "instrument_token": NSE_TOKEN, "last_price": 1500.25,
                    "last_traded_quantity": 25, "average_traded_price": 1499.9, "volume_traded": 1200000,
                    "total_buy_quantity": 3400, "total_sell_quantity": 5600,
                    "ohlc": {"open": 1480.0, "high": 1510.0, "low": 1475.0, "close": 1490.0},
                    "change": (1500.25 - 1490.0) * 100.0 / 1490.0}])
        );
    }

    #[test]
    fn full_packet_with_depth_and_open_interest() {
        let v = json_of(&frame(&[full(NSE_TOKEN)]));
        let t = &v[0];
        assert_eq!(t["mode"], "full");
        assert_eq!(t["last_trade_time"], "2023-11-14T22:13:20Z");
        assert_eq!(t["exchange_timestamp"], "2023-11-14T22:13:25Z");
        assert_eq!(
            (
                t["oi"].clone(),
                t["oi_day_high"].clone(),
                t["oi_day_low"].clone()
            ),
            (json!(9000), json!(9500), json!(8500))
        );
        let depth = &t["depth"];
        assert_eq!(depth["buy"].as_array().unwrap().len(), 5);
        assert_eq!(depth["sell"].as_array().unwrap().len(), 5);
        assert_eq!(
            depth["buy"][0],
            json!({"quantity": 100, "price": 1500.0, "orders": 1})
        );
        assert_eq!(
            depth["buy"][4],
            json!({"quantity": 104, "price": 1500.2, "orders": 5})
        );
        assert_eq!(
            depth["sell"][0],
            json!({"quantity": 105, "price": 1500.25, "orders": 6})
        );
        assert_eq!(
            depth["sell"][4],
            json!({"quantity": 109, "price": 1500.45, "orders": 10})
        );
        // Quote fields are all there too.
        assert_eq!(t["volume_traded"], 1_200_000);
        assert_eq!(t["ohlc"]["open"], 1480.0);
    }

    #[test]
    fn keys_come_in_pykiteconnect_order() {
        let s = decode_json(&frame(&[full(NSE_TOKEN), index(INDEX_TOKEN, true)]))
            .unwrap()
            .unwrap();
        let order = [
            "\"tradable\"",
            "\"mode\"",
            "\"instrument_token\"",
            "\"last_price\"",
            "\"last_traded_quantity\"",
            "\"average_traded_price\"",
            "\"volume_traded\"",
            "\"total_buy_quantity\"",
            "\"total_sell_quantity\"",
            "\"ohlc\"",
            "\"open\"",
            "\"high\"",
            "\"low\"",
            "\"close\"",
            "\"change\"",
            "\"last_trade_time\"",
            "\"oi\"",
            "\"oi_day_high\"",
            "\"oi_day_low\"",
            "\"exchange_timestamp\"",
            "\"depth\"",
            "\"buy\"",
            "\"sell\"",
            // The index packet: high, low, open, close.
            "\"ohlc\"",
            "\"high\"",
            "\"low\"",
            "\"open\"",
            "\"close\"",
            "\"change\"",
            "\"exchange_timestamp\"",
        ];
        let mut from = 0;
        for key in order {
            let at = s[from..]
                .find(key)
                .unwrap_or_else(|| panic!("{key} after {from} in {s}"));
            from += at + key.len();
        }
    }

    #[test]
    fn segment_divisors_cds_bcd_and_default() {
        for (token, price, want) in [
            (CDS_TOKEN, 834_512_500u32, 83.45125),
            (BCD_TOKEN, 834_512, 83.4512),
            (NSE_TOKEN, 834_512, 8345.12),
            ((5 << 8) | 2, 834_512, 8345.12), // NFO
            ((5 << 8) | 7, 834_512, 8345.12), // MCX
            (5 << 8, 834_512, 8345.12),       // unknown segment: pykiteconnect's default
            ((5 << 8) | 200, 834_512, 8345.12),
        ] {
            let v = json_of(&frame(&[ltp(token, price)]));
            assert_eq!(v[0]["last_price"], json!(want), "token {token}");
            assert_eq!(v[0]["tradable"], true);
        }
        // Depth prices use the divisor too.
        let Decoded::Ticks(t) = decode(&frame(&[full(CDS_TOKEN)])).unwrap() else {
            panic!()
        };
        assert_eq!(t[0].depth.unwrap().buy[0].price, 150_000.0 / 10_000_000.0);
        assert_eq!(t[0].segment(), SEGMENT_CDS);
    }

    #[test]
    fn change_is_integer_zero_when_close_is_zero() {
        let p = Packet::new(NSE_TOKEN)
            .u32(100)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(0);
        let s = decode_json(&frame(&[p.0])).unwrap().unwrap();
        assert!(s.contains("\"change\":0}"), "{s}");
        // A real zero change (last == close) stays a float, as in Python.
        let p = Packet::new(NSE_TOKEN)
            .u32(100)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(1)
            .u32(100);
        let s = decode_json(&frame(&[p.0])).unwrap().unwrap();
        assert!(s.contains("\"change\":0.0}"), "{s}");
    }

    #[test]
    fn mixed_frame_keeps_packet_order() {
        let f = frame(&[
            ltp(1 << 8 | 1, 100),
            full(NSE_TOKEN),
            index(INDEX_TOKEN, false),
            quote(CDS_TOKEN).0,
        ]);
        let Decoded::Ticks(t) = decode(&f).unwrap() else {
            panic!()
        };
        let kinds: Vec<PacketKind> = t.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                PacketKind::Ltp,
                PacketKind::Full,
                PacketKind::IndexQuote,
                PacketKind::Quote
            ]
        );
    }

    #[test]
    fn heartbeats() {
        assert_eq!(decode(&[0]), Ok(Decoded::Heartbeat));
        assert_eq!(decode(&[0xff]), Ok(Decoded::Heartbeat));
        assert_eq!(decode_json(&[0]), Ok(None));
        // A frame announcing no packets carries nothing either.
        assert_eq!(decode(&[0, 0]), Ok(Decoded::Heartbeat));
    }

    #[test]
    fn lying_and_truncated_frames_are_rejected_whole() {
        let good = frame(&[ltp(NSE_TOKEN, 1), full(NSE_TOKEN)]);
        let mut count_too_big = good.clone();
        count_too_big[1] = 3;
        let mut length_past_end = good.clone();
        let last_len_at = 2 + 2 + LTP_LEN;
        length_past_end[last_len_at..last_len_at + 2].copy_from_slice(&185u16.to_be_bytes());
        let mut trailing = good.clone();
        trailing.push(0);
        let unknown = frame(&[ltp(NSE_TOKEN, 1), vec![0; 13]]);
        let cases: Vec<(&str, Vec<u8>, FrameError)> = vec![
            ("empty", vec![], FrameError::Empty),
            (
                "count larger than packets present",
                count_too_big,
                FrameError::MissingPacket {
                    count: 3,
                    packet: 2,
                    frame_len: good.len(),
                },
            ),
            (
                "packet length past the end",
                length_past_end,
                FrameError::PacketPastEnd {
                    packet: 1,
                    length: 185,
                    at: 2 + 2 + LTP_LEN + 2,
                    frame_len: good.len(),
                },
            ),
            (
                "bytes after the last packet",
                trailing,
                FrameError::TrailingBytes { count: 2, extra: 1 },
            ),
            (
                "unknown packet length",
                unknown,
                FrameError::UnknownPacketLength {
                    packet: 1,
                    length: 13,
                },
            ),
            (
                "count with no packets",
                vec![0, 1],
                FrameError::MissingPacket {
                    count: 1,
                    packet: 0,
                    frame_len: 2,
                },
            ),
            (
                "half a length",
                vec![0, 1, 0],
                FrameError::MissingPacket {
                    count: 1,
                    packet: 0,
                    frame_len: 3,
                },
            ),
            (
                "truncated full packet",
                good[..good.len() - 1].to_vec(),
                FrameError::PacketPastEnd {
                    packet: 1,
                    length: 184,
                    at: 14,
                    frame_len: good.len() - 1,
                },
            ),
            (
                "count 65535 on a short frame",
                vec![0xff, 0xff, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],
                FrameError::MissingPacket {
                    count: 65535,
                    packet: 1,
                    frame_len: 12,
                },
            ),
            (
                "length 65535",
                vec![0, 1, 0xff, 0xff, 1, 2, 3],
                FrameError::PacketPastEnd {
                    packet: 0,
                    length: 65535,
                    at: 4,
                    frame_len: 7,
                },
            ),
        ];
        for (what, f, want) in cases {
            assert_eq!(decode(&f), Err(want.clone()), "{what}");
            // Every message says what was wrong without the frame's bytes.
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(
            decode(&good).map(|d| matches!(d, Decoded::Ticks(ref t) if t.len() == 2)),
            Ok(true)
        );
    }

    #[test]
    fn every_truncation_of_a_good_frame_is_an_error_never_a_panic() {
        let good = frame(&[
            ltp(NSE_TOKEN, 1),
            full(NSE_TOKEN),
            index(INDEX_TOKEN, true),
            quote(BCD_TOKEN).0,
        ]);
        for n in 2..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        // Random bytes: errors or ticks, never a panic.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..600usize {
            let f: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            let _ = decode(&f);
        }
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(timestamp(u32::MAX), "2106-02-07T06:28:15Z");
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Ltp, Mode::Quote, Mode::Full] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("FULL"), None);
    }
}
