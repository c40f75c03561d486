//! Length-prefixed messages over plain TCP, as the TWS API frames them:
//! every message is `[u32 big-endian length][payload]` (PROTOCOLS.md §4.1),
//! after a few unframed bytes of greeting (`API\0`).
//!
//! The byte-level decoding is [`FrameDecoder`], pure and tested without
//! sockets. [`FramedConn`] drives it over a blocking socket with the same
//! discipline as the WebSocket transport: the connect has its own timeout
//! (from [`tcp::connect`], with keepalive and TCP_USER_TIMEOUT), every write
//! is bounded by the write timeout, a read waits at most one tick (≤ 1 s) so
//! the owning thread can check its commands, a handshake read fails with a
//! timeout naming its phase, and an [`Interrupter`] wakes a blocked call
//! from another thread.

use super::error::{NetError, Phase};
use super::interrupt::Interrupter;
use super::tcp;
use super::timed::TimedTcp;
use crate::timefmt::human;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Timeouts and limits of one framed connection.
#[derive(Clone, Debug)]
pub struct FramedOptions {
    /// Name lookup and TCP connect (each bounded by it, see [`tcp::connect`]).
    pub connect_timeout: Duration,
    /// Budget of the protocol's opening exchange, counted from the moment the
    /// TCP connection is up: see [`FramedConn::handshake_deadline`].
    pub handshake_timeout: Duration,
    /// Bound on each `send_raw` / `send_frame`.
    pub write_timeout: Duration,
    /// Longest a `read_frame_within` waits; clamped to 1 ms ..= 1 s.
    pub read_tick: Duration,
    /// Largest payload accepted from the peer; a longer one is
    /// [`NetError::TooLarge`] and ends the connection.
    pub max_frame_bytes: usize,
}

impl Default for FramedOptions {
    fn default() -> Self {
        FramedOptions {
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            read_tick: Duration::from_secs(1),
            // IB's own clients refuse messages above 0xFFFFFF bytes.
            max_frame_bytes: 16 << 20,
        }
    }
}

/// The peer announced a frame longer than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The length the prefix announced.
    pub len: u32,
    pub max: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer announced a frame of {} bytes, above the limit of {} (max_frame_bytes)",
            self.len, self.max
        )
    }
}

impl std::error::Error for FrameTooLarge {}

impl From<FrameTooLarge> for NetError {
    fn from(_: FrameTooLarge) -> Self {
        NetError::TooLarge
    }
}

/// Splits a byte stream into `[u32 BE length][payload]` frames. Bytes are
/// pushed as they arrive, in pieces of any size; complete frames are popped
/// in order. An oversize frame is refused as soon as its prefix is in, so a
/// hostile length never makes it buffer more than the limit, and once
/// refused the decoder stays failed (the stream cannot be resynchronised).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    max: usize,
    failed: Option<FrameTooLarge>,
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max: max_frame_bytes,
            failed: None,
        }
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame's payload, `Ok(None)` while it is incomplete.
    pub fn pop(&mut self) -> Result<Option<Vec<u8>>, FrameTooLarge> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail = &self.buf[self.pos..];
        let Some(prefix) = avail.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        if len as usize > self.max {
            let e = FrameTooLarge { len, max: self.max };
            self.failed = Some(e);
            self.buf = Vec::new();
            self.pos = 0;
            return Err(e);
        }
        let end = PREFIX_LEN + len as usize;
        if avail.len() < end {
            return Ok(None);
        }
        let frame = avail[PREFIX_LEN..end].to_vec();
        self.pos += end;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.len() / 2 {
            // Amortised: the consumed head is dropped once it is most of the buffer.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(Some(frame))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// `[length][payload]` as one buffer, so a frame goes out in one write.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, NetError> {
    let len = u32::try_from(payload.len()).map_err(|_| NetError::TooLarge)?;
    let mut out = Vec::with_capacity(PREFIX_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Why a connection can no longer be used; later calls report it again.
#[derive(Clone, Debug)]
enum Dead {
    TooLarge,
    Eof(String),
    Reset,
    /// Shut down by us: `close()`, or after a failure that left the stream
    /// in an unknown state (a frame half written).
    Local(String),
}

impl Dead {
    fn error(&self) -> NetError {
        match self {
            Dead::TooLarge => NetError::TooLarge,
            Dead::Eof(reason) => NetError::Closed {
                code: None,
                reason: reason.clone(),
            },
            Dead::Reset => NetError::Reset,
            Dead::Local(why) => NetError::Closed {
                code: None,
                reason: format!("closed locally: {why}"),
            },
        }
    }
}

/// An open framed connection.
pub struct FramedConn {
    io: TimedTcp,
    decoder: FrameDecoder,
    target: String,
    read_tick: Duration,
    write_timeout: Duration,
    handshake_timeout: Duration,
    handshake_deadline: Instant,
    interrupter: Interrupter,
    dead: Option<Dead>,
    /// The deadline of the current `read_frame_by` wait and when it began, so
    /// a timeout reports the whole budget even across several calls.
    wait_started: Option<(Instant, Instant)>,
}

impl fmt::Debug for FramedConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedConn")
            .field("target", &self.target)
            .field("buffered", &self.decoder.buffered())
            .field("dead", &self.dead)
            .finish()
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn target_name(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Connects to `host:port` (bounded by `connect_timeout`). Nothing is sent:
/// the protocol's greeting is the caller's.
pub fn connect(host: &str, port: u16, opts: &FramedOptions) -> Result<FramedConn, NetError> {
    connect_observed(host, port, opts, &mut |_| {})
}

/// [`connect`], reporting the resolved addresses and the connected peer to
/// `observe` as each step passes.
pub fn connect_observed(
    host: &str,
    port: u16,
    opts: &FramedOptions,
    observe: &mut dyn FnMut(super::transport::ConnectStep),
) -> Result<FramedConn, NetError> {
    let tcp = tcp::connect_observed(host, port, opts.connect_timeout, observe)?;
    let interrupter = Interrupter::new(&tcp).map_err(NetError::Io)?;
    Ok(FramedConn {
        io: TimedTcp::new(tcp),
        decoder: FrameDecoder::new(opts.max_frame_bytes),
        target: target_name(host, port),
        read_tick: opts
            .read_tick
            .clamp(Duration::from_millis(1), Duration::from_secs(1)),
        write_timeout: opts.write_timeout.max(Duration::from_millis(1)),
        handshake_timeout: opts.handshake_timeout,
        handshake_deadline: Instant::now() + opts.handshake_timeout,
        interrupter,
        dead: None,
        wait_started: None,
    })
}

impl FramedConn {
    /// `host:port` this connection goes to, as given to [`connect`].
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.io.tcp().peer_addr().ok()
    }

    /// A handle another thread can use to wake a blocked call.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    /// When the handshake budget (`handshake_timeout`, counted from the TCP
    /// connection) runs out: the deadline to give [`read_frame_by`](Self::read_frame_by).
    pub fn handshake_deadline(&self) -> Instant {
        self.handshake_deadline
    }

    /// Shuts the connection down; later calls fail with `Closed`.
    pub fn close(&mut self) {
        let _ = self.io.tcp().shutdown(Shutdown::Both);
        self.dead
            .get_or_insert(Dead::Local("close() called".into()));
    }

    /// Interrupted beats everything (the failure it caused is ours); then an
    /// earlier failure that ended the connection.
    fn usable(&self) -> Result<(), NetError> {
        if self.interrupter.is_interrupted() {
            return Err(NetError::Interrupted);
        }
        match &self.dead {
            Some(d) => Err(d.error()),
            None => Ok(()),
        }
    }

    /// Records a failure that ends the connection and returns its error.
    fn die(&mut self, dead: Dead) -> NetError {
        if matches!(dead, Dead::TooLarge | Dead::Local(_)) {
            // The peer must notice too: the stream is beyond repair.
            let _ = self.io.tcp().shutdown(Shutdown::Both);
        }
        let e = dead.error();
        self.dead = Some(dead);
        if self.interrupter.is_interrupted() {
            NetError::Interrupted
        } else {
            e
        }
    }

    /// Sends bytes as they are, without a prefix (the TWS greeting `API\0`).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.usable()?;
        self.io
            .set_deadline(Some(Instant::now() + self.write_timeout));
        match self.io.write_all(bytes).and_then(|()| self.io.flush()) {
            Ok(()) => Ok(()),
            Err(_) if self.interrupter.is_interrupted() => {
                Err(self.die(Dead::Local("interrupted".into())))
            }
            Err(e) if is_timeout(&e) => {
                // Part of the bytes may be out: the peer's framing is now unknown.
                self.die(Dead::Local(format!(
                    "a write did not finish within {}",
                    human(self.write_timeout)
                )));
                Err(NetError::timeout(
                    Phase::Write,
                    self.write_timeout,
                    self.target.clone(),
                ))
            }
            Err(e) if is_reset(&e) => Err(self.die(Dead::Reset)),
            Err(e) => {
                self.die(Dead::Local(format!("write failed: {e}")));
                Err(NetError::Io(e))
            }
        }
    }

    /// Sends one frame: the length prefix and `payload` in one write.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.usable()?;
        let frame = encode_frame(payload)?;
        self.send_raw(&frame)
    }

    /// Waits at most `limit` (and never more than the read tick, at least
    /// 1 ms) for the next complete frame; `Ok(None)` if none completed in
    /// time. A partly received frame is kept for the next call.
    pub fn read_frame_within(&mut self, limit: Duration) -> Result<Option<Vec<u8>>, NetError> {
        let wait = limit.clamp(Duration::from_millis(1), self.read_tick);
        self.fill(Instant::now() + wait)
    }

    /// Waits until `deadline` for the next complete frame, however long that
    /// is (a handshake, which has its own budget; an [`Interrupter`] still
    /// ends it). When the deadline passes first the error is a timeout naming
    /// `phase`, the budget and the target: `handshake_timeout` for
    /// [`handshake_deadline`](Self::handshake_deadline), else the time from
    /// the first call with this deadline (several calls with the same
    /// deadline share one budget, and the timeout reports all of it).
    pub fn read_frame_by(&mut self, deadline: Instant, phase: Phase) -> Result<Vec<u8>, NetError> {
        let started = match self.wait_started {
            Some((d, started)) if d == deadline => started,
            _ => {
                let now = Instant::now();
                self.wait_started = Some((deadline, now));
                now
            }
        };
        match self.fill(deadline)? {
            Some(frame) => Ok(frame),
            None => {
                let budget = if deadline == self.handshake_deadline {
                    self.handshake_timeout
                } else {
                    // To the nearest millisecond: the caller's budget, less the
                    // microseconds between computing the deadline and calling.
                    let waited = deadline.saturating_duration_since(started);
                    Duration::from_millis(((waited.as_micros() + 500) / 1000) as u64)
                };
                Err(NetError::timeout(phase, budget, self.target.clone()))
            }
        }
    }

    /// Reads until a frame is complete or `deadline` passes (`Ok(None)`).
    fn fill(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, NetError> {
        self.usable()?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.decoder.pop() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(_too_large) => return Err(self.die(Dead::TooLarge)),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.io.set_deadline(Some(deadline));
            match self.io.read(&mut chunk) {
                Ok(0) => {
                    let reason = match self.decoder.buffered() {
                        0 => "end of stream".to_string(),
                        n => format!("end of stream in the middle of a frame ({n} bytes of it)"),
                    };
                    return Err(self.die(Dead::Eof(reason)));
                }
                Ok(n) => self.decoder.push(&chunk[..n]),
                Err(_) if self.interrupter.is_interrupted() => return Err(NetError::Interrupted),
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => return Err(self.die(Dead::Reset)),
                Err(e) => {
                    self.die(Dead::Local(format!("read failed: {e}")));
                    return Err(NetError::Io(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        encode_frame(payload).unwrap()
    }

    #[test]
    fn one_frame_in_one_push() {
        let mut d = FrameDecoder::new(1024);
        d.push(&frame(b"v157..178"));
        assert_eq!(d.pop().unwrap(), Some(b"v157..178".to_vec()));
        assert_eq!(d.pop().unwrap(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn prefix_and_payload_split_at_every_byte() {
        let wire = [frame(b"176\0"), frame(b"20230228 17:24:14 EST\0")].concat();
        for cut in 0..=wire.len() {
            let mut d = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                d.push(part);
                while let Some(f) = d.pop().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(
                got,
                vec![b"176\0".to_vec(), b"20230228 17:24:14 EST\0".to_vec()],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let wire = frame(b"15\x001\x00DU1234567\x00");
        let mut d = FrameDecoder::new(1024);
        let mut got = None;
        for (i, b) in wire.iter().enumerate() {
            assert_eq!(got, None, "frame complete early, at byte {i}");
            d.push(&[*b]);
            got = d.pop().unwrap();
        }
        assert_eq!(got, Some(b"15\x001\x00DU1234567\x00".to_vec()));
    }

    #[test]
    fn several_frames_in_one_push_come_out_in_order() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[frame(b"a"), frame(b"bb"), frame(b""), frame(b"ccc")].concat());
        assert_eq!(d.pop().unwrap(), Some(b"a".to_vec()));
        assert_eq!(d.pop().unwrap(), Some(b"bb".to_vec()));
        assert_eq!(d.pop().unwrap(), Some(Vec::new()));
        assert_eq!(d.pop().unwrap(), Some(b"ccc".to_vec()));
        assert_eq!(d.pop().unwrap(), None);
    }

    #[test]
    fn zero_length_frame_is_a_frame() {
        let mut d = FrameDecoder::new(0);
        d.push(&[0, 0, 0]);
        assert_eq!(d.pop().unwrap(), None);
        d.push(&[0]);
        assert_eq!(d.pop().unwrap(), Some(Vec::new()));
    }

    #[test]
    fn frame_at_the_limit_passes_one_above_fails_at_its_prefix() {
        let mut d = FrameDecoder::new(4);
        d.push(&frame(b"1234"));
        assert_eq!(d.pop().unwrap(), Some(b"1234".to_vec()));
        // Only the prefix is in: refused before any payload is buffered.
        d.push(&5u32.to_be_bytes());
        let e = d.pop().unwrap_err();
        assert_eq!(e, FrameTooLarge { len: 5, max: 4 });
        assert!(e.to_string().contains("5 bytes"), "{e}");
        // Stays failed: the stream cannot be resynchronised.
        d.push(&frame(b"x"));
        assert_eq!(d.pop().unwrap_err(), e);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn huge_announced_length_is_refused_without_buffering() {
        let mut d = FrameDecoder::new(16 << 20);
        d.push(&u32::MAX.to_be_bytes());
        assert!(d.pop().is_err());
        assert!(matches!(
            NetError::from(FrameTooLarge { len: 1, max: 0 }),
            NetError::TooLarge
        ));
    }

    #[test]
    fn consumed_bytes_are_released() {
        let mut d = FrameDecoder::new(1024);
        for _ in 0..1000 {
            d.push(&frame(&[7u8; 100]));
            d.push(&frame(&[8u8; 100])[..50]);
            assert_eq!(d.pop().unwrap(), Some(vec![7u8; 100]));
            d.push(&frame(&[8u8; 100])[50..]);
            assert_eq!(d.pop().unwrap(), Some(vec![8u8; 100]));
        }
        assert_eq!(d.buffered(), 0);
        assert!(d.buf.capacity() < 4096, "{}", d.buf.capacity());
    }

    #[test]
    fn encode_puts_a_big_endian_length_first() {
        assert_eq!(frame(b"v157..178"), b"\x00\x00\x00\x09v157..178".to_vec());
        assert_eq!(frame(b""), vec![0, 0, 0, 0]);
    }

    #[test]
    fn ipv6_targets_get_brackets() {
        assert_eq!(target_name("127.0.0.1", 7497), "127.0.0.1:7497");
        assert_eq!(target_name("::1", 4002), "[::1]:4002");
        assert_eq!(target_name("[::1]", 4002), "[::1]:4002");
        assert_eq!(target_name("gw.example", 4001), "gw.example:4001");
    }
}
