//! systemd integration without libsystemd: sd_notify over a plain datagram socket.

pub mod notify;
