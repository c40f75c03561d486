//! A TCP stream whose reads and writes all end by one deadline, however the
//! bytes trickle in: before each system call the socket timeout is set to
//! what is left, and once nothing is left the call fails with `WouldBlock`.
//! This bounds multi-read operations (a TLS handshake, a WebSocket upgrade,
//! one frame arriving a byte at a time) that a per-call timeout cannot.
//!
//! The timeout last set is remembered, and a call whose time left is within
//! [`SLACK`] below it leaves the socket as it is: a feed reading tick after
//! tick with the same budget pays one `setsockopt` per connection, not one
//! per read (they were the agent's most frequent system call). A call can
//! therefore end up to `SLACK` after its deadline, never before it.
//!
//! A read interrupted by a signal (EINTR) also ends as `WouldBlock`: the
//! daemon wakes a feed thread that way to stop it at once (see
//! `daemon::feeds`), and to every layer above (OpenSSL, tungstenite, the
//! feed's read loop) this must look like "nothing arrived yet", not like a
//! broken connection that can no longer be closed with 1000.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How far past its deadline a read or write may end rather than set the
/// socket's timeout again (the kernel rounds timeouts up to its tick anyway).
pub const SLACK: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct TimedTcp {
    tcp: TcpStream,
    deadline: Option<Instant>,
    /// What `SO_RCVTIMEO` / `SO_SNDTIMEO` were last set to through this
    /// value; `None` while unknown (set by someone else, or never).
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

/// Sets `timeout` with `set` unless `current` already is within [`SLACK`]
/// above it (`None`, no timeout, only matches itself).
fn set_if_changed(
    current: &mut Option<Option<Duration>>,
    timeout: Option<Duration>,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    let close_enough = match (*current, timeout) {
        (Some(Some(now)), Some(want)) => now >= want && now - want <= SLACK,
        (Some(None), None) => true,
        _ => false,
    };
    if !close_enough {
        // Unknown until the call succeeds: a failed set leaves it as it was.
        *current = None;
        set(timeout)?;
        *current = Some(timeout);
    }
    Ok(())
}

impl TimedTcp {
    /// No deadline: the socket's own timeouts apply.
    pub fn new(tcp: TcpStream) -> Self {
        TimedTcp {
            tcp,
            deadline: None,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// The socket's own read timeout (what applies without a deadline);
    /// not set again when it already is.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let tcp = &self.tcp;
        set_if_changed(&mut self.read_timeout, timeout, |t| tcp.set_read_timeout(t))
    }

    /// The socket's own write timeout; not set again when it already is.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let tcp = &self.tcp;
        set_if_changed(&mut self.write_timeout, timeout, |t| {
            tcp.set_write_timeout(t)
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Every read and write from now on ends by `deadline` (None: no limit
    /// beyond the socket's own timeouts).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Time left before the deadline, or a `WouldBlock` error once it passed.
    fn left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(io::ErrorKind::WouldBlock.into()),
            },
        }
    }
}

impl Read for TimedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.set_read_timeout(Some(left))?;
        }
        match self.tcp.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }
    }
}

impl Write for TimedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.set_write_timeout(Some(left))?;
        }
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_stop_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _server = l.accept().unwrap();
        let mut t = TimedTcp::new(client);
        t.set_deadline(Some(Instant::now() + Duration::from_millis(50)));
        let t0 = Instant::now();
        let err = t.read(&mut [0u8; 8]).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Past the deadline: fails at once without touching the socket.
        assert_eq!(
            t.read(&mut [0u8; 8]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn a_timeout_is_set_again_only_when_it_would_overshoot() {
        let mut current = None;
        let mut sets = Vec::new();
        let mut set = |c: &mut Option<Option<Duration>>, t: Option<Duration>| {
            set_if_changed(c, t, |t| {
                sets.push(t);
                Ok(())
            })
            .unwrap()
        };
        let ms = |n| Some(Duration::from_millis(n));
        set(&mut current, ms(1000)); // unknown: set
        set(&mut current, Some(Duration::from_micros(999_990))); // within SLACK below: kept
        set(&mut current, ms(999)); // 1 ms below: kept
        set(&mut current, ms(500)); // would overshoot by 500 ms: set
        set(&mut current, ms(800)); // would end early: set
        set(&mut current, None);
        set(&mut current, None);
        assert_eq!(sets, vec![ms(1000), ms(500), ms(800), None]);
    }

    #[test]
    fn a_failed_set_leaves_the_timeout_unknown() {
        let mut current = Some(Some(Duration::from_secs(1)));
        let r = set_if_changed(&mut current, Some(Duration::from_millis(10)), |_| {
            Err(io::ErrorKind::Other.into())
        });
        assert!(r.is_err());
        assert_eq!(current, None);
    }
}
