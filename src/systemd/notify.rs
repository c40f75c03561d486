//! sd_notify without libsystemd: one datagram per message to `NOTIFY_SOCKET`
//! (a filesystem path, or `@name` for an abstract socket).
//!
//! Sending never blocks for long (write timeout) and never fails the agent:
//! callers log a failed send and carry on, since losing a `STATUS=` update is
//! better than stopping a feed over it.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// How long one send may block (a full socket buffer in a stuck systemd).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection-less sender to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when unset or empty (not run by systemd
    /// with `Type=notify`), or when the value is unusable (logged as a warning).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        if value.is_empty() {
            return None;
        }
        match Notifier::from_socket_var(&value) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!(
                    "NOTIFY_SOCKET={} is unusable ({e}); systemd will not hear from us",
                    value.to_string_lossy()
                );
                None
            }
        }
    }

    /// From a `NOTIFY_SOCKET` value: `/path/to/socket` or `@abstract-name`.
    pub fn from_socket_var(value: &OsStr) -> io::Result<Notifier> {
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(value)?,
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected an absolute path or @abstract-name (vsock addresses are not supported)",
                ));
            }
        };
        Notifier::new(addr)
    }

    /// To an explicit address (tests).
    pub fn new(addr: SocketAddr) -> io::Result<Notifier> {
        let sock = UnixDatagram::unbound()?;
        sock.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Notifier { sock, addr })
    }

    /// Sends one raw message (newline-separated `KEY=value` assignments).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        let sent = self.sock.send_to_addr(msg.as_bytes(), &self.addr)?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram truncated",
            ));
        }
        Ok(())
    }

    /// `READY=1`: startup (or a reload) finished.
    pub fn ready(&self) -> io::Result<()> {
        self.send("READY=1")
    }

    /// `STATUS=<line>`, shown by `systemctl status`.
    pub fn status(&self, line: &str) -> io::Result<()> {
        self.send(&status_message(line))
    }

    /// `WATCHDOG=1`: we are alive.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    /// `RELOADING=1` with the monotonic timestamp systemd requires for
    /// `Type=notify-reload` (harmless for `Type=notify`).
    pub fn reloading(&self) -> io::Result<()> {
        self.send(&reloading_message(monotonic_usec()))
    }

    /// `STOPPING=1`: a graceful stop has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }
}

/// `STATUS=` with the line flattened: a newline would start a new assignment.
pub fn status_message(line: &str) -> String {
    let flat: String = line
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={flat}")
}

/// `RELOADING=1\nMONOTONIC_USEC=<usec>`.
pub fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares against.
pub fn monotonic_usec() -> u64 {
    crate::os::process::monotonic_usec()
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if systemd set
/// it for this process. `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] with the environment given: `usec` is
/// `$WATCHDOG_USEC`, `pid` is `$WATCHDOG_PID` (the watchdog is meant for
/// another process when it names one that is not `our_pid`).
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    our_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_one_line() {
        assert_eq!(
            status_message("3/4 feeds live;\nbooks: backoff\r\n8s"),
            "STATUS=3/4 feeds live; books: backoff  8s"
        );
    }

    #[test]
    fn reloading_carries_the_timestamp() {
        assert_eq!(
            reloading_message(123_456),
            "RELOADING=1\nMONOTONIC_USEC=123456"
        );
    }

    #[test]
    fn monotonic_moves_forward() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn watchdog_is_half_the_timeout_for_us() {
        assert_eq!(
            watchdog_interval_from(Some("20000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval_from(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(watchdog_interval_from(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("20000000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }

    #[test]
    fn rejects_unknown_socket_forms() {
        assert!(Notifier::from_socket_var(OsStr::new("vsock:2:1234")).is_err());
        assert!(Notifier::from_socket_var(OsStr::new("relative/path")).is_err());
    }
}
