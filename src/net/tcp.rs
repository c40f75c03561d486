//! TCP connect with a bounded name lookup, a per-address connect timeout and
//! keepalive settings that make a half-open connection die within about
//! 30 s instead of hanging forever. Raw-TCP brokers (IBKR) use this directly;
//! the WebSocket transport builds on it.

use super::error::{NetError, Phase};
use super::transport::ConnectStep;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Idle time before the first keepalive probe.
pub const KEEPALIVE_IDLE_SECS: i32 = 10;
/// Interval between keepalive probes.
pub const KEEPALIVE_INTERVAL_SECS: i32 = 5;
/// Unanswered probes before the kernel drops the connection.
pub const KEEPALIVE_COUNT: i32 = 3;
/// Unacknowledged sent data older than this kills the connection.
pub const USER_TIMEOUT_MS: u32 = 20_000;

/// Connects to `host:port`. The name lookup runs in a helper thread bounded
/// by `connect_timeout` (getaddrinfo can hang on a broken resolver); each
/// resolved address is then tried with `connect_timeout`. The stream comes
/// back with TCP_NODELAY, keepalive and TCP_USER_TIMEOUT set, and its read
/// and write timeouts set to `connect_timeout` until the caller sets its own.
pub fn connect(host: &str, port: u16, connect_timeout: Duration) -> Result<TcpStream, NetError> {
    connect_observed(host, port, connect_timeout, &mut |_| {})
}

/// [`connect`], reporting the resolved addresses and the connected peer to
/// `observe` as each step passes.
pub fn connect_observed(
    host: &str,
    port: u16,
    connect_timeout: Duration,
    observe: &mut dyn FnMut(ConnectStep),
) -> Result<TcpStream, NetError> {
    let connect_timeout = connect_timeout.max(Duration::from_millis(1));
    let addrs = resolve(host, port, connect_timeout)?;
    observe(ConnectStep::Resolved(
        addrs.iter().map(|a| a.ip()).collect(),
    ));
    let mut last_err = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, connect_timeout) {
            Ok(stream) => {
                configure(&stream, connect_timeout).map_err(NetError::Io)?;
                observe(ConnectStep::Connected(addr));
                return Ok(stream);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                last_err = Some(NetError::timeout(
                    Phase::Connect,
                    connect_timeout,
                    addr.to_string(),
                ));
            }
            Err(source) => last_err = Some(NetError::Connect { addr, source }),
        }
    }
    Err(last_err.unwrap_or_else(|| NetError::Resolve {
        host: host.to_string(),
        detail: "no addresses".into(),
    }))
}

/// Resolves `host` (a name or an IP literal, IPv6 with or without brackets).
pub fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, NetError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = bare.to_string();
    // The helper is detached: if getaddrinfo hangs we give up waiting, and
    // the thread ends whenever the resolver finally answers.
    thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>()),
            );
        })
        .map_err(NetError::Io)?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(NetError::Resolve {
            host: bare.into(),
            detail: "no addresses".into(),
        }),
        Ok(Err(e)) => Err(NetError::Resolve {
            host: bare.into(),
            detail: e.to_string(),
        }),
        Err(_) => Err(NetError::timeout(
            Phase::Resolve,
            timeout,
            format!("{bare}:{port}"),
        )),
    }
}

fn configure(stream: &TcpStream, io_timeout: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    set_keepalive(stream)
}

/// SO_KEEPALIVE with short probes plus TCP_USER_TIMEOUT, so a peer that
/// vanished (VPS network blip, NAT state lost) is noticed by the kernel.
pub fn set_keepalive(stream: &TcpStream) -> io::Result<()> {
    use crate::os::socket::set_int_option;
    let fd = stream;
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_int_option(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        KEEPALIVE_IDLE_SECS,
    )?;
    set_int_option(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL_SECS,
    )?;
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_COUNT)?;
    set_int_option(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        USER_TIMEOUT_MS as i32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_without_lookup() {
        let a = resolve("127.0.0.1", 80, Duration::from_millis(1)).unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        let a = resolve("[::1]", 443, Duration::from_millis(1)).unwrap();
        assert_eq!(a, vec!["[::1]:443".parse().unwrap()]);
    }
}
