//! `poll(2)` over borrowed descriptors, and an eventfd to wake a poller.
//!
//! [`PollFd`] has the layout of the kernel's `struct pollfd` and borrows
//! its descriptor for its lifetime, so a slice of them is passed to the
//! kernel as it is (no copy, no allocation per wait) and can never name a
//! descriptor that was closed meanwhile.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// One descriptor to watch, and what the last [`poll`] saw on it.
#[repr(transparent)]
pub struct PollFd<'fd> {
    raw: libc::pollfd,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// Watches `fd` for input when `read`, for output when `write`; hang-up
    /// and errors are always reported.
    pub fn new(fd: BorrowedFd<'fd>, read: bool, write: bool) -> PollFd<'fd> {
        let mut events = 0;
        if read {
            events |= libc::POLLIN;
        }
        if write {
            events |= libc::POLLOUT;
        }
        PollFd {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: PhantomData,
        }
    }

    /// Readable (for a listener: a connection waits; for an eventfd: woken).
    pub fn readable(&self) -> bool {
        self.raw.revents & libc::POLLIN != 0
    }

    pub fn writable(&self) -> bool {
        self.raw.revents & libc::POLLOUT != 0
    }

    /// The peer closed both directions, or the descriptor failed.
    pub fn hung_up(&self) -> bool {
        self.raw.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    }

    /// Anything at all was reported.
    pub fn any(&self) -> bool {
        self.raw.revents != 0
    }
}

/// Milliseconds for poll: rounded up, so a short remaining wait does not
/// spin at 0 ms; `None` waits without a deadline.
fn millis(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// Waits until one of `fds` reports something or `timeout` passes; returns
/// how many reported (0: timeout, or a signal interrupted the wait).
pub fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    for f in fds.iter_mut() {
        f.raw.revents = 0;
    }
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `PollFd` is a transparent `pollfd`, the slice is live and
    // writable for the call, and every descriptor is borrowed, so open.
    let rc = unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), n, millis(timeout)) };
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

/// A counter descriptor that becomes readable once [`EventFd::signal`] is
/// called and stays readable (nobody reads it): a stop flag a poller sees.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Close-on-exec and non-blocking.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = super::cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: a new descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one to the counter, making the descriptor readable. It fails
    /// only when the counter would overflow, that is when it is readable
    /// already, so the result is not reported.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Resets the counter, so the descriptor is unreadable until the next
    /// signal (the fan-out's wake; a stop flag is never drained).
    pub fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; the descriptor is
        // non-blocking, so an empty counter is EAGAIN, which is fine.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl std::os::fd::AsRawFd for EventFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_input_hang_up_and_a_signalled_eventfd() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let ev = EventFd::new().unwrap();
        let short = Some(Duration::from_millis(5));
        {
            let mut fds = [
                PollFd::new(b.as_fd(), true, false),
                PollFd::new(ev.as_fd(), true, false),
            ];
            assert_eq!(poll(&mut fds, short).unwrap(), 0);
            a.write_all(b"x").unwrap();
            assert_eq!(poll(&mut fds, short).unwrap(), 1);
            assert!(fds[0].readable() && !fds[1].any());
            ev.signal();
            ev.signal();
            assert_eq!(poll(&mut fds, None).unwrap(), 2);
            assert!(fds[1].readable());
        }
        drop(a);
        let mut fds = [PollFd::new(b.as_fd(), false, false)];
        assert_eq!(poll(&mut fds, short).unwrap(), 1);
        assert!(fds[0].hung_up());
    }
}
