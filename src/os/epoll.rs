//! epoll(7), for the fan-out's I/O thread (poll(2) would hand the kernel
//! every subscriber's descriptor on every wake-up). The eventfd feed
//! threads wake it with is [`super::poll::EventFd`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[cfg(test)]
use super::poll::EventFd;
use std::time::Duration;

/// Readable (a listener: a connection waits).
pub const READABLE: u32 = libc::EPOLLIN as u32;
/// Writable again.
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// Hung up or failed: reported whatever was asked for.
pub const GONE: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// One readiness report: the token a descriptor was registered with and
/// its events.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Ready(libc::epoll_event);

impl Ready {
    pub fn token(&self) -> u64 {
        self.0.u64
    }

    pub fn events(&self) -> u32 {
        self.0.events
    }
}

/// An epoll instance (level-triggered).
#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; a non-negative result is a new descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by no one else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for `events` (hang-ups are always reported), tagged
    /// with `token`. A descriptor leaves the set when it is closed.
    pub fn add(&self, fd: &impl AsRawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), token, events)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: &impl AsRawFd, token: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), token, events)
    }

    /// Waits up to `timeout` (rounded up to a millisecond; `None`: until
    /// something is ready) and fills `ready` with what is. A signal
    /// interrupting the wait reports nothing.
    pub fn wait(&self, ready: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX)
        });
        ready.clear();
        let room = ready.capacity().max(1);
        ready.reserve(room);
        let max = libc::c_int::try_from(ready.capacity()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `max` events into the vector's
        // spare capacity, which is at least that large; `Ready` is a
        // `repr(transparent)` epoll_event.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                ready.as_mut_ptr().cast::<libc::epoll_event>(),
                max,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: the kernel initialised the first `n` (≤ max) entries.
        unsafe { ready.set_len(n as usize) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_reports_a_notified_eventfd_until_drained() {
        let ev = EventFd::new().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(&ev, 7, READABLE).unwrap();
        let short = Some(Duration::from_millis(5));
        let mut ready = Vec::new();
        epoll.wait(&mut ready, short).unwrap();
        assert!(ready.is_empty());
        ev.signal();
        ev.signal();
        epoll.wait(&mut ready, short).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token(), 7);
        assert_ne!(ready[0].events() & READABLE, 0);
        ev.drain();
        epoll.wait(&mut ready, short).unwrap();
        assert!(ready.is_empty());
        // Not watched for anything: nothing, even when readable.
        epoll.modify(&ev, 7, 0).unwrap();
        ev.signal();
        epoll.wait(&mut ready, short).unwrap();
        assert!(ready.is_empty());
    }
}
