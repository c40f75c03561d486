//! Waking a connection's owner from another thread: the watchdog (or a
//! stop command) shuts the socket down through a cloned handle, which ends
//! any read or write blocked on it at once, and a flag tells the owner that
//! the failure it then sees was ours, not the peer's. Every transport over
//! a `TcpStream` (WebSocket, framed TCP) hands one out.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Wakes a read or write blocked in another thread by shutting the socket down.
#[derive(Clone, Debug)]
pub struct Interrupter {
    stream: Arc<TcpStream>,
    interrupted: Arc<AtomicBool>,
}

impl Interrupter {
    /// An interrupter for `stream` (through a clone of its descriptor).
    pub fn new(stream: &TcpStream) -> io::Result<Self> {
        Ok(Interrupter {
            stream: Arc::new(stream.try_clone()?),
            interrupted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Shuts the connection down in both directions; the owner's next (or
    /// current) read or write fails with
    /// [`NetError::Interrupted`](super::NetError::Interrupted).
    pub fn shutdown(&self) {
        // The flag first: the owner, woken by the shutdown, must already see it.
        self.interrupted.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Whether [`shutdown`](Self::shutdown) was called (by any clone).
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    #[test]
    fn shutdown_wakes_a_blocked_read_and_sets_the_flag() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _server = l.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let intr = Interrupter::new(&client).unwrap();
        assert!(!intr.is_interrupted());
        let other = intr.clone();
        let (go, ready) = std::sync::mpsc::channel();
        let waker = std::thread::spawn(move || {
            ready.recv().unwrap();
            other.shutdown();
        });
        let t0 = Instant::now();
        go.send(()).unwrap();
        // Whether the read is already blocked or not when the shutdown lands,
        // it ends at once (end of stream or an error), not after 10 s.
        let got = client.read(&mut [0u8; 8]);
        assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(intr.is_interrupted());
        waker.join().unwrap();
    }
}
