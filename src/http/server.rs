//! The listener's threads: one accept thread and a fixed pool of
//! [`WORKERS`] workers fed through a bounded queue of [`QUEUE`]
//! connections. No thread per connection: when the queue is full the
//! accept thread answers 503 itself and closes.
//!
//! Every connection is bounded: its whole request head must arrive within
//! [`READ_TIMEOUT`] of its accept, queueing included (a slow-loris client is cut off then, whatever it
//! drips), each write may block [`WRITE_TIMEOUT`], the head is capped at
//! [`MAX_HEAD`] bytes and a body at [`MAX_BODY`]; every answer says
//! `Connection: close`. Idle, every thread sleeps: the accept thread in
//! `poll(2)` on the listener and its stop descriptor ([`StopFd`]), the
//! workers on the queue. A stop wakes the accept thread at once, shuts
//! down the connections being served, and the workers see the queue close.

use super::request::{Limits, Method, Request, RequestError, TimedRead, read_request};
use crate::stopfd::{StopFd, Woken};
use crate::threads::Restart;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Worker threads: requests are short (a page, a JSON, a scrape); two
/// serve one slow client and everyone else at once.
pub const WORKERS: usize = 2;
/// Connections accepted but not yet picked up by a worker.
pub const QUEUE: usize = 16;
/// How long a client has to send its whole request head (and a TLS
/// handshake before it).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write of the answer may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Request line and headers together.
pub const MAX_HEAD: usize = 8 * 1024;
/// No route reads a body; a small one is drained, a larger one refused.
pub const MAX_BODY: usize = 4 * 1024;
/// The accept thread's backstop wake-up (a stop wakes it at once anyway).
const ACCEPT_TICK: Duration = Duration::from_secs(3600);
/// After accept(2) itself failed (out of descriptors), rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a stop waits for the threads before it abandons them.
const STOP_DEADLINE: Duration = Duration::from_secs(2);
/// A worker's answer buffer is given back down to this after a larger
/// answer (a page, a scrape): an idle listener keeps little.
const KEPT_BUFFER: usize = 16 * 1024;

/// An answer's status line and headers; the body is the worker's buffer.
pub struct Head {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Head {
    pub fn new(status: u16, content_type: &'static str) -> Head {
        Head {
            status,
            content_type,
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Head {
        self.headers.push((name, value.into()));
        self
    }
}

/// What answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Writes the body into `body` (empty on entry) and returns the head.
    fn handle(&self, req: &Request, body: &mut String) -> Head;
}

/// Wraps an accepted connection (TLS), or passes it through.
pub trait Wrap: Send + Sync + 'static {
    fn wrap(&self, conn: TcpStream) -> io::Result<Box<dyn Conn>>;
}

/// A connection a worker reads a request from and writes an answer to.
pub trait Conn: Read + Write + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

struct Timed<'a>(&'a mut dyn Conn);

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl TimedRead for Timed<'_> {
    fn set_read_deadline(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.0
            .tcp()
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
    }
}

/// The running listener. Dropping it stops it.
pub struct Server {
    local: SocketAddr,
    stop: Arc<StopFd>,
    stopping: Arc<AtomicBool>,
    /// The connection each worker is serving, to shut down on stop.
    serving: Arc<Mutex<Vec<Option<TcpStream>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `listener` with `handler`; `wrap` makes each
    /// connection TLS when set.
    pub fn start(
        listener: TcpListener,
        handler: Arc<dyn Handler>,
        wrap: Option<Arc<dyn Wrap>>,
    ) -> io::Result<Server> {
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(StopFd::new()?);
        let stopping = Arc::new(AtomicBool::new(false));
        let serving = Arc::new(Mutex::new((0..WORKERS).map(|_| None).collect::<Vec<_>>()));
        let (tx, rx) = mpsc::sync_channel::<(TcpStream, Instant)>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let (rx, handler, wrap, serving, stopping) = (
                rx.clone(),
                handler.clone(),
                wrap.clone(),
                serving.clone(),
                stopping.clone(),
            );
            // A panic while answering (a bug in a page or a broker's
            // callback) costs that one request: the worker is restarted
            // after the crash backoff, with `alert=thread_crashed`.
            let stopped = stopping.clone();
            threads.push(crate::threads::spawn_isolated(
                &format!("http-{i}"),
                crate::threads::SMALL_STACK,
                Restart::WithBackoff {
                    stopping: Box::new(move || stopped.load(Ordering::SeqCst)),
                },
                move || {
                    worker(
                        i,
                        &rx,
                        handler.as_ref(),
                        wrap.as_deref(),
                        &serving,
                        &stopping,
                    )
                },
            )?);
        }
        let (stop_seen, stopping_seen) = (stop.clone(), stopping.clone());
        let plain = wrap.is_none();
        let stopped = stopping.clone();
        threads.push(crate::threads::spawn_isolated(
            "http-accept",
            crate::threads::SMALL_STACK,
            Restart::WithBackoff {
                stopping: Box::new(move || stopped.load(Ordering::SeqCst)),
            },
            // The queue's sender lives in this closure, so the workers see
            // the queue closed only once the accept thread has ended.
            move || accept_loop(&listener, &stop_seen, &stopping_seen, tx.clone(), plain),
        )?);
        Ok(Server {
            local,
            stop,
            stopping,
            serving,
            threads,
        })
    }

    /// The bound address (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, cuts the connections being served, and joins the
    /// threads (abandoning, with a warning, any still busy after
    /// [`STOP_DEADLINE`]: a worker in an outbound call bounded by its own
    /// timeout).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.wake();
        for c in self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
        {
            let _ = c.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        let mut threads = std::mem::take(&mut self.threads);
        while !threads.is_empty() && Instant::now() < deadline {
            threads.retain(|t| !t.is_finished());
            std::thread::sleep(Duration::from_millis(5));
        }
        if !threads.is_empty() {
            log::warn!(
                "http: {} thread(s) still busy after {}s; leaving them",
                threads.len(),
                STOP_DEADLINE.as_secs()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &StopFd,
    stopping: &AtomicBool,
    queue: SyncSender<(TcpStream, Instant)>,
    plain: bool,
) {
    loop {
        match stop.wait(listener, ACCEPT_TICK) {
            Ok(Woken::Stop) => return,
            Ok(Woken::Timeout) => continue,
            Ok(Woken::Ready) => {}
            Err(e) => {
                log::warn!("http: cannot wait for connections: {e}");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        }
        loop {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            match listener.accept() {
                Ok((conn, _)) => {
                    // Accepted sockets do not inherit O_NONBLOCK on Linux;
                    // set it off explicitly all the same.
                    let _ = conn.set_nonblocking(false);
                    // The deadline runs from now: time spent queued counts,
                    // so slow clients ahead in the queue cannot stretch it.
                    match queue.try_send((conn, Instant::now() + READ_TIMEOUT)) {
                        Ok(()) => {}
                        Err(TrySendError::Full((conn, _))) => busy(conn, plain),
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("http: accept failed: {e}");
                    std::thread::sleep(ACCEPT_RETRY);
                    break;
                }
            }
        }
    }
}

/// Every worker is busy and the queue is full: say so and close (over
/// TLS there is no quick plain answer, so only close).
fn busy(mut conn: TcpStream, plain: bool) {
    if plain {
        let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 37\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
              busy: every worker is serving; retry\n",
        );
    }
    let _ = conn.shutdown(Shutdown::Both);
}

fn worker(
    index: usize,
    queue: &Mutex<Receiver<(TcpStream, Instant)>>,
    handler: &dyn Handler,
    wrap: Option<&dyn Wrap>,
    serving: &Mutex<Vec<Option<TcpStream>>>,
    stopping: &AtomicBool,
) {
    // Allocated at the first connection: an idle listener holds no buffers.
    let mut head_buf: Vec<u8> = Vec::new();
    let mut body = String::new();
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((conn, deadline)) = next else {
            return;
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        serving.lock().unwrap_or_else(|p| p.into_inner())[index] = conn.try_clone().ok();
        // Cleared on the way out, a panic included: the copy kept for a
        // stop to cut must not hold a finished connection open.
        let _slot = ServingSlot { serving, index };
        if head_buf.is_empty() {
            head_buf.resize(MAX_HEAD, 0);
        }
        serve(conn, deadline, handler, wrap, &mut head_buf, &mut body);
        drop(_slot);
        if body.capacity() > KEPT_BUFFER {
            body = String::new();
        }
    }
}

/// A worker's entry in the list of connections being served, emptied when
/// dropped.
struct ServingSlot<'a> {
    serving: &'a Mutex<Vec<Option<TcpStream>>>,
    index: usize,
}

impl Drop for ServingSlot<'_> {
    fn drop(&mut self) {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())[self.index] = None;
    }
}

fn serve(
    conn: TcpStream,
    deadline: Instant,
    handler: &dyn Handler,
    wrap: Option<&dyn Wrap>,
    head_buf: &mut [u8],
    body: &mut String,
) {
    let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = conn.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    let _ = conn.set_nodelay(true);
    let mut conn: Box<dyn Conn> = match wrap {
        Some(w) => match w.wrap(conn) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("http: TLS handshake failed: {e}");
                return;
            }
        },
        None => Box::new(conn),
    };
    body.clear();
    let limits = Limits {
        max_head: MAX_HEAD,
        max_body: MAX_BODY,
    };
    let (head, is_head) = match read_request(&mut Timed(conn.as_mut()), head_buf, limits, deadline)
    {
        Ok(req) => {
            let h = handler.handle(&req, body);
            (h, req.method == Method::Head)
        }
        Err(e) => {
            let Some(status) = e.status() else {
                return;
            };
            body.push_str(&error_text(&e));
            (Head::new(status, "text/plain; charset=utf-8"), false)
        }
    };
    let _ = write_answer(conn.as_mut(), &head, body.as_bytes(), is_head);
    let _ = conn.flush();
    let _ = conn.tcp().shutdown(Shutdown::Write);
    // Let the client read the answer before the close: a close with
    // unread request bytes would reset the connection and lose it.
    let _ = conn
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 512];
    for _ in 0..8 {
        match conn.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

fn error_text(e: &RequestError) -> String {
    match e {
        RequestError::Gone => String::new(),
        RequestError::Timeout => format!(
            "request timeout: the request head must arrive within {}s\n",
            READ_TIMEOUT.as_secs()
        ),
        RequestError::HeadTooLarge => format!(
            "request header fields too large: the request line and headers may take {MAX_HEAD} bytes\n"
        ),
        RequestError::BodyTooLarge => {
            format!("payload too large: a body may take {MAX_BODY} bytes\n")
        }
        RequestError::Malformed(why) => format!("bad request: {why}\n"),
    }
}

/// The reason phrase of each status this listener answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_answer(conn: &mut dyn Conn, head: &Head, body: &[u8], is_head: bool) -> io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
        head.status,
        reason(head.status),
        head.content_type,
        body.len()
    );
    for (k, v) in &head.headers {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    conn.write_all(h.as_bytes())?;
    if !is_head {
        conn.write_all(body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `ok`, but panics on `/boom` (a bug in a page).
    struct Buggy;

    impl Handler for Buggy {
        fn handle(&self, req: &Request, body: &mut String) -> Head {
            if req.path == "/boom" {
                panic!("a bug in a page");
            }
            body.push_str("ok");
            Head::new(200, "text/plain")
        }
    }

    /// One request's whole answer, or what came before the connection
    /// ended (nothing, for a request whose worker panicked).
    fn get(at: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(at).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn a_panicking_request_costs_only_itself_and_its_worker_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::start(listener, Arc::new(Buggy), None).unwrap();
        let at = server.local_addr();
        // Every worker panics once; the connection ends without an answer
        // rather than hanging (the kept copy is dropped with the slot).
        for _ in 0..WORKERS {
            assert_eq!(get(at, "/boom"), "");
        }
        // Both workers crashed: only their restart can answer this one.
        let answer = get(at, "/");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.ends_with("ok"), "{answer:?}");
        server.stop();
    }
}
