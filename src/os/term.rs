//! Terminal echo off while a secret is typed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Restores the terminal's settings when dropped (also on error or panic).
pub struct EchoOff<'fd> {
    fd: BorrowedFd<'fd>,
    saved: libc::termios,
}

impl<'fd> EchoOff<'fd> {
    /// Turns echo off on `fd`; `None` when it is not a terminal.
    pub fn new(fd: BorrowedFd<'fd>) -> io::Result<Option<EchoOff<'fd>>> {
        let raw = fd.as_raw_fd();
        // SAFETY: isatty takes a descriptor, which is borrowed and so open.
        if unsafe { libc::isatty(raw) } != 1 {
            return Ok(None);
        }
        // SAFETY: an all-zero termios is a valid value to be overwritten.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into the termios we own.
        super::cvt(unsafe { libc::tcgetattr(raw, &mut t) })?;
        let saved = t;
        t.c_lflag &= !(libc::ECHO | libc::ECHONL);
        // SAFETY: tcsetattr reads the termios we own.
        super::cvt(unsafe { libc::tcsetattr(raw, libc::TCSAFLUSH, &t) })?;
        Ok(Some(EchoOff { fd, saved }))
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: restoring settings read from the same, still open, descriptor.
        unsafe {
            libc::tcsetattr(self.fd.as_fd().as_raw_fd(), libc::TCSAFLUSH, &self.saved);
        }
    }
}
