//! The two threads behind one subscriber connection: a writer that drains
//! its queue onto the socket (with a write timeout), and a reader that takes
//! subscribe requests and notices when the subscriber hangs up.

use std::io::{self, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::hub::{Hub, Line, SubscriberId};
use super::line::{self, Request};
use super::socket::{self, Readiness};

/// A subscriber whose socket accepts nothing for this long is too slow.
/// The kernel restarts the timer when a write makes partial progress, so a
/// stuck subscriber goes after one to two of these (sooner if its queue
/// fills first).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle reader re-checks that its subscriber is still wanted.
/// Only a backstop: every removal shuts the connection down, which wakes
/// the reader at once, so a tick of a second was a wake-up a second per
/// subscriber for nothing.
const READ_TICK: Duration = Duration::from_secs(30);

/// Sets up an accepted connection and starts its threads. Returns the
/// threads to join at stop, or none if the hub is closed or setup failed.
pub fn start(hub: &Arc<Hub>, stream: UnixStream) -> Vec<JoinHandle<()>> {
    let pid = socket::peer_pid(&stream);
    let prepared = (|| -> io::Result<(UnixStream, UnixStream)> {
        // Accepted sockets do not inherit the listener's O_NONBLOCK on
        // Linux, but say so rather than rely on it.
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        stream.set_read_timeout(Some(READ_TICK))?;
        Ok((stream.try_clone()?, stream.try_clone()?))
    })();
    let (writer_stream, reader_stream) = match prepared {
        Ok(pair) => pair,
        Err(e) => {
            log::warn!("fan-out: cannot set up a new subscriber connection: {e}");
            return Vec::new();
        }
    };
    let Some((who, queue)) = hub.add(stream, pid) else {
        return Vec::new();
    };
    log::info!("fan-out: {who} connected");

    let mut threads = Vec::with_capacity(2);
    let writer_hub = Arc::clone(hub);
    match thread::Builder::new()
        .name(format!("fanout-w{}", who.id))
        .stack_size(crate::threads::SMALL_STACK)
        .spawn(move || write_loop(&writer_hub, who, writer_stream, queue))
    {
        Ok(handle) => threads.push(handle),
        Err(e) => {
            hub.write_failed(who.id, e);
            return threads;
        }
    }
    let reader_hub = Arc::clone(hub);
    match thread::Builder::new()
        .name(format!("fanout-r{}", who.id))
        .stack_size(crate::threads::SMALL_STACK)
        .spawn(move || read_loop(&reader_hub, who, reader_stream))
    {
        Ok(handle) => threads.push(handle),
        Err(e) => hub.read_failed(who.id, e),
    }
    threads
}

fn write_loop(hub: &Hub, who: SubscriberId, stream: UnixStream, queue: Receiver<Line>) {
    let mut out = BufWriter::with_capacity(64 * 1024, stream);
    // recv fails once the hub has dropped the subscriber's queue.
    while let Ok(first) = queue.recv() {
        // Batch whatever else is already queued into as few writes as
        // possible; a subscriber that keeps up pays one syscall per burst.
        let mut result = out.write_all(&first);
        while result.is_ok() {
            match queue.try_recv() {
                Ok(next) => result = out.write_all(&next),
                Err(_) => break,
            }
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            hub.write_failed(who.id, e);
            return;
        }
    }
}

fn read_loop(hub: &Hub, who: SubscriberId, stream: UnixStream) {
    let mut buf = [0u8; 4096];
    let mut request = Vec::new();
    let mut overlong = false;
    loop {
        match (&stream).read(&mut buf) {
            // The peer will send nothing more (or we shut the socket down).
            Ok(0) => break,
            Ok(n) => {
                let mut chunk = &buf[..n];
                while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                    let answered = if overlong {
                        overlong = false;
                        let msg = format!(
                            "request longer than {} bytes ignored; expected {{\"subscribe\": [\"feed\", ...]}}",
                            line::MAX_REQUEST_LEN
                        );
                        hub.reply(who.id, line::error_line(&msg))
                    } else {
                        request.extend_from_slice(&chunk[..end]);
                        handle_request(hub, who.id, &request)
                    };
                    request.clear();
                    if !answered {
                        return;
                    }
                    chunk = &chunk[end + 1..];
                }
                if !overlong {
                    request.extend_from_slice(chunk);
                    if request.len() > line::MAX_REQUEST_LEN {
                        overlong = true;
                        request = Vec::new();
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if !hub.is_registered(who.id) {
                    return;
                }
            }
            Err(e) => {
                hub.read_failed(who.id, e);
                return;
            }
        }
    }
    // A peer that only shut down its sending side may still be reading:
    // keep it until it hangs up completely.
    loop {
        if !hub.is_registered(who.id) {
            return;
        }
        match socket::poll(&stream, false, READ_TICK) {
            Ok(Readiness::Timeout | Readiness::Readable) => {}
            Ok(Readiness::HangUp) => {
                hub.closed(who.id);
                return;
            }
            Err(e) => {
                hub.read_failed(who.id, e);
                return;
            }
        }
    }
}

/// Returns false when the subscriber is gone and the reader should stop.
fn handle_request(hub: &Hub, id: u64, request: &[u8]) -> bool {
    match line::parse_request(request) {
        Ok(Request::Blank) => true,
        Ok(Request::Subscribe(feeds)) => hub.subscribe(id, feeds),
        Err(msg) => hub.reply(id, line::error_line(&msg)),
    }
}
