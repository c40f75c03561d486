//! Fan-out: hands every feed message to local subscribers on a Unix socket.
