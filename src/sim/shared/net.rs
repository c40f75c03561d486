//! Listeners and the socket helpers of a connection thread: loopback
//! binding, a listener that a "refuse connections" fault closes and its
//! clearing binds again, the accept loop, the timeouts that let a
//! connection thread look at the stop flag every tick, the live-count
//! guard, a reset via SO_LINGER 0, and holding a socket open unanswered.

use super::{Base, Host, TICK, lock};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A client that does not read for this long is dropped (a slow reader
/// must not stall a connection thread past its next tick for long).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long an accept thread sleeps when no connection is waiting.
const ACCEPT_IDLE: Duration = Duration::from_millis(5);

/// `127.0.0.1:port`; the simulators never listen beyond loopback.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A non-blocking listener on `addr`, so the accept thread can look at the
/// stop flag between attempts.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A listener a fault can close (connect() is then refused, as when the
/// broker process died) and bind again on the same port.
pub(crate) struct Rebinding {
    addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
}

impl Rebinding {
    /// Binds 127.0.0.1:`port` (0 picks a free one); `refusing` closes it at
    /// once, keeping the port for when the fault is cleared.
    pub(crate) fn bind(port: u16, refusing: bool) -> io::Result<Self> {
        let listener = bind(loopback(port))?;
        Ok(Rebinding {
            addr: listener.local_addr()?,
            listener: Mutex::new(if refusing { None } else { Some(listener) }),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Follows a fault change: closed while refusing, bound again after
    /// (if the port is briefly unavailable, [`accept`](Self::accept) retries).
    pub(crate) fn follow(&self, refusing: bool) {
        let mut listener = lock(&self.listener);
        if refusing {
            // Dropping the listener closes it: connect() is refused at once.
            *listener = None;
        } else if listener.is_none() {
            *listener = bind(self.addr).ok();
        }
    }

    /// One accept attempt, binding again first unless `refusing()`. The
    /// fault is read under the listener's lock, so a refuse set meanwhile
    /// cannot be undone by a late re-bind.
    pub(crate) fn accept(
        &self,
        refusing: impl FnOnce() -> bool,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let mut listener = lock(&self.listener);
        if listener.is_none() && !refusing() {
            *listener = bind(self.addr).ok();
        }
        match listener.as_ref() {
            Some(l) => l.accept(),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    pub(crate) fn close(&self) {
        *lock(&self.listener) = None;
    }
}

/// Runs `accept` until the simulator stops, handing each connection to
/// `on_accept`.
pub(crate) fn accept_loop(
    base: &Base,
    mut accept: impl FnMut() -> io::Result<(TcpStream, SocketAddr)>,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    while !base.stopping() {
        match accept() {
            Ok((tcp, peer)) => on_accept(tcp, peer),
            Err(_) => thread::sleep(ACCEPT_IDLE),
        }
    }
}

/// A connection thread to start: its name and what it runs.
pub(crate) type ConnectionThread = (String, Box<dyn FnOnce() + Send>);

/// Starts thread `name` accepting on `listener` until the simulator stops;
/// `start` makes each accepted connection's thread (registering it in the
/// simulator's stats as it likes). A thread that cannot start is said as
/// an event line.
pub(crate) fn spawn_acceptor<H: Host>(
    host: &Arc<H>,
    name: &str,
    listener: TcpListener,
    mut start: impl FnMut(TcpStream, SocketAddr) -> ConnectionThread + Send + 'static,
) -> io::Result<()> {
    let h = host.clone();
    host.base().spawn_accept(name, move || {
        accept_loop(
            h.base(),
            || listener.accept(),
            |tcp, peer| {
                let (name, run) = start(tcp, peer);
                if let Err(e) = h.base().spawn(name, run) {
                    h.event(format!("cannot start a connection thread: {e}"));
                }
            },
        )
    })
}

/// Makes an accepted socket blocking with a read timeout of one tick, so
/// the connection thread looks at the stop flag and the fault every tick.
pub(crate) fn setup(tcp: &TcpStream, write_timeout: Duration) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(TICK))?;
    tcp.set_write_timeout(Some(write_timeout))
}

/// Whether a read or write only ran into its timeout (the thread's tick).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Held by a connection thread: however the thread ends, the connection
/// is forgotten, counted gone and said so (as `"{label} {id}: ended"`).
pub(crate) struct Live<H: Host> {
    host: Arc<H>,
    id: usize,
    label: &'static str,
}

impl<H: Host> Live<H> {
    pub(crate) fn new(host: Arc<H>, id: usize, label: &'static str) -> Self {
        Live { host, id, label }
    }
}

impl<H: Host> Drop for Live<H> {
    fn drop(&mut self) {
        self.host.base().forget(self.id);
        self.host.connection_ended(self.id);
        self.host
            .event(format!("{} {}: ended", self.label, self.id));
    }
}

/// Closes the socket with SO_LINGER 0, so the peer gets a RST.
pub(crate) fn reset(tcp: &TcpStream) {
    // Best effort: a socket that refuses still closes, with a FIN.
    let _ = crate::os::socket::reset_on_close(tcp);
}

/// Keeps an accepted socket open without ever answering, until the peer
/// goes away or the simulator stops.
pub(crate) fn hold<S: Read>(base: &Base, mut stream: S) {
    let mut buf = [0u8; 4096];
    while !base.stopping() {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn a_refusing_listener_keeps_its_port_and_binds_again() {
        let l = Rebinding::bind(0, true).unwrap();
        assert_ne!(l.addr().port(), 0);
        assert!(TcpStream::connect(l.addr()).is_err());
        assert!(l.accept(|| true).is_err());
        l.follow(false);
        let client = TcpStream::connect(l.addr()).unwrap();
        let mut accepted = None;
        for _ in 0..500 {
            if let Ok((tcp, _)) = l.accept(|| false) {
                accepted = Some(tcp);
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert!(accepted.is_some());
        drop(client);
        l.close();
        assert!(TcpStream::connect(l.addr()).is_err());
    }
}
