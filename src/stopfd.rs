//! A stop a sleeping thread sees at once: an eventfd that [`StopFd::wake`]
//! makes readable for good, and [`StopFd::wait`], which sleeps in `poll(2)`
//! until it or the thread's own descriptor (a listener, an inotify
//! instance) is readable. The credential watcher sleeps on it instead of
//! waking on a tick to look at a flag (the fan-out's I/O thread has its own
//! epoll set, woken through an [`EventFd`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What [`StopFd::wait`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The thread's own descriptor is readable.
    Ready,
    /// [`StopFd::wake`] was called: time to go (wins over `Ready`).
    Stop,
    /// Nothing within the timeout (or interrupted by a signal).
    Timeout,
}

/// An eventfd counter: [`EventFd::notify`] makes it readable,
/// [`EventFd::drain`] unreadable again. The fan-out's I/O thread is woken
/// through one; [`StopFd`] is one that is never drained.
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
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; it
        // fails only if the counter would overflow, i.e. it is readable
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

/// The stop side of a sleeping thread (share it with an `Arc`).
#[derive(Debug)]
pub struct StopFd(EventFd);

impl StopFd {
    pub fn new() -> io::Result<StopFd> {
        EventFd::new().map(StopFd)
    }

    /// Makes every [`wait`](Self::wait) from now on return `Stop` at once.
    pub fn wake(&self) {
        self.0.notify();
    }

    /// Sleeps until `fd` is readable, a wake, or `timeout` (rounded up to
    /// a millisecond, so a short remaining debounce does not spin).
    pub fn wait(&self, fd: &impl AsRawFd, timeout: Duration) -> io::Result<Woken> {
        let mut fds = [
            libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = libc::c_int::try_from(timeout.as_nanos().div_ceil(1_000_000))
            .unwrap_or(libc::c_int::MAX);
        // SAFETY: two valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Woken::Timeout)
            } else {
                Err(e)
            };
        }
        Ok(if fds[1].revents != 0 {
            Woken::Stop
        } else if fds[0].revents != 0 {
            Woken::Ready
        } else {
            Woken::Timeout
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wait_reports_ready_timeout_and_a_stop_that_wins() {
        let stop = StopFd::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let short = Duration::from_millis(10);
        assert_eq!(stop.wait(&b, short).unwrap(), Woken::Timeout);
        a.write_all(b"x").unwrap();
        assert_eq!(stop.wait(&b, short).unwrap(), Woken::Ready);
        stop.wake();
        assert_eq!(stop.wait(&b, Duration::from_secs(30)).unwrap(), Woken::Stop);
        // For good: a second wait (and a second wake) still say stop.
        stop.wake();
        assert_eq!(stop.wait(&b, Duration::from_secs(30)).unwrap(), Woken::Stop);
    }
}
