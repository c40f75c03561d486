//! A TCP stream whose reads and writes all end by one deadline, however the
//! bytes trickle in: before each system call the socket timeout is set to
//! what is left, and once nothing is left the call fails with `WouldBlock`.
//! This bounds multi-read operations (a TLS handshake, a WebSocket upgrade,
//! one frame arriving a byte at a time) that a per-call timeout cannot.
//!
//! A read interrupted by a signal (EINTR) also ends as `WouldBlock`: the
//! daemon wakes a feed thread that way to stop it at once (see
//! `daemon::feeds`), and to every layer above (OpenSSL, tungstenite, the
//! feed's read loop) this must look like "nothing arrived yet", not like a
//! broken connection that can no longer be closed with 1000.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TimedTcp {
    tcp: TcpStream,
    deadline: Option<Instant>,
}

impl TimedTcp {
    /// No deadline: the socket's own timeouts apply.
    pub fn new(tcp: TcpStream) -> Self {
        TimedTcp {
            tcp,
            deadline: None,
        }
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
            self.tcp.set_read_timeout(Some(left))?;
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
            self.tcp.set_write_timeout(Some(left))?;
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
}
