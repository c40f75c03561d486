//! The fan-out's only libc calls besides the socket file's: an eventfd
//! that feed threads write to wake the I/O thread, and poll(2) over every
//! descriptor that thread watches. Kept in this one small file so the
//! unsafe is in one place (and can move with the other libc wrappers).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, pollfd};

/// A counter descriptor: [`EventFd::notify`] makes it readable,
/// [`EventFd::drain`] makes it unreadable again.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by no one else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable (one write; it cannot block).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It
        // fails only when the counter would overflow, i.e. it is readable
        // already, which is all we want.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Resets the counter, so the descriptor is unreadable until the next
    /// notify.
    pub fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; non-blocking, so an
        // empty counter is EAGAIN, which is fine.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A `pollfd` for `fd` waiting for `events`.
pub fn entry(fd: RawFd, events: i16) -> pollfd {
    pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2) over `fds` for up to `timeout` (rounded up to a millisecond;
/// `None` waits until something happens). Returns how many have events;
/// a signal interrupting the wait counts as none.
pub fn poll(fds: &mut [pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
    });
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a live, exclusively borrowed slice of `n` pollfds for
    // the duration of the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(rc as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_is_readable_after_notify_until_drained() {
        let ev = EventFd::new().unwrap();
        let short = Some(Duration::from_millis(5));
        let mut fds = [entry(ev.as_raw_fd(), POLLIN)];
        assert_eq!(poll(&mut fds, short).unwrap(), 0);
        ev.notify();
        ev.notify();
        assert_eq!(poll(&mut fds, short).unwrap(), 1);
        assert_ne!(fds[0].revents & POLLIN, 0);
        ev.drain();
        fds[0].revents = 0;
        assert_eq!(poll(&mut fds, short).unwrap(), 0);
    }
}
