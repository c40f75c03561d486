//! Socket options std does not expose.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Sets an integer socket option (`SO_*`, `TCP_*`).
pub fn set_int_option(sock: &impl AsFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the descriptor is borrowed, so open; the pointer and length
    // describe a local c_int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    super::cvt(rc).map(drop)
}

/// Makes closing the socket send a RST instead of a FIN (SO_LINGER 0).
pub fn reset_on_close(sock: &impl AsFd) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor is borrowed; the pointer and length describe `linger`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    super::cvt(rc).map(drop)
}

/// The connecting process's pid on a Unix socket (SO_PEERCRED).
pub fn peer_pid(sock: &impl AsFd) -> Option<i32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_pair_is_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_pid(&a), Some(std::process::id() as i32));
        assert!(set_int_option(&a, libc::SOL_SOCKET, libc::SO_SNDBUF, 8192).is_ok());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(reset_on_close(&l).is_ok());
    }
}
