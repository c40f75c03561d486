//! Transports: TCP, TLS and WebSocket over blocking sockets, each phase with
//! its own named timeout.
