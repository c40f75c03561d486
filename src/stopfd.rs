//! A stop a sleeping thread sees at once: an eventfd that [`StopFd::wake`]
//! makes readable for good, and [`StopFd::wait`], which sleeps in `poll(2)`
//! until it or the thread's own descriptor (a listener, an inotify
//! instance) is readable. The fan-out's accept thread and the credential
//! watcher sleep on it instead of waking on a tick to look at a flag.

use crate::os::poll::{EventFd, PollFd, poll};
use std::io;
use std::os::fd::AsFd;
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

/// The stop side of a sleeping thread (share it with an `Arc`).
#[derive(Debug)]
pub struct StopFd(EventFd);

impl StopFd {
    pub fn new() -> io::Result<StopFd> {
        EventFd::new().map(StopFd)
    }

    /// Makes every [`wait`](Self::wait) from now on return `Stop` at once.
    pub fn wake(&self) {
        self.0.signal();
    }

    /// Whether [`wake`](Self::wake) has been called (without sleeping).
    pub fn is_woken(&self) -> bool {
        let mut fds = [PollFd::new(self.0.as_fd(), true, false)];
        poll(&mut fds, Some(Duration::ZERO)).is_ok() && fds[0].any()
    }

    /// Sleeps until `fd` is readable, a wake, or `timeout` (rounded up to
    /// a millisecond, so a short remaining debounce does not spin).
    pub fn wait(&self, fd: &impl AsFd, timeout: Duration) -> io::Result<Woken> {
        let mut fds = [
            PollFd::new(fd.as_fd(), true, false),
            PollFd::new(self.0.as_fd(), true, false),
        ];
        poll(&mut fds, Some(timeout))?;
        Ok(if fds[1].any() {
            Woken::Stop
        } else if fds[0].any() {
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
