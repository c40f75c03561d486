//! A tiny loopback HTTP receiver for webhook and heartbeat tests: it
//! records every request (method, path, body, arrival time) and answers
//! each with the next scripted reply (default 200 "ok"): a 429 with a
//! `Retry-After`, another status, or a hang (the connection held open,
//! never answered). Every connection has its own thread, so a hanging one
//! holds up nothing else. Stops on drop.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    Status(u16),
    TooMany { retry_after: String },
    Hang,
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub body: String,
    pub at: Instant,
    pub wall: SystemTime,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Receiver {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// The reply once the script is used up.
    default: Arc<Mutex<Reply>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::with_default(Reply::Ok)
    }

    pub fn with_default(default: Reply) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let r = Receiver {
            port,
            hits: Default::default(),
            script: Default::default(),
            default: Arc::new(Mutex::new(default)),
            stop: Default::default(),
        };
        let (hits, script, default, stop) = (
            r.hits.clone(),
            r.script.clone(),
            r.default.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (hits, script, default, stop) =
                            (hits.clone(), script.clone(), default.clone(), stop.clone());
                        std::thread::spawn(move || serve(s, &hits, &script, &default, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn script(&self, replies: Vec<Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        *self.default.lock().unwrap() = reply;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn hits_on(&self, prefix: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut s: TcpStream,
    hits: &Mutex<Vec<Hit>>,
    script: &Mutex<VecDeque<Reply>>,
    default: &Mutex<Reply>,
    stop: &AtomicBool,
) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Keep-alive: several requests may come on one connection.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(end) = (loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(i + 4);
            }
            if stop.load(Ordering::Relaxed) {
                break None;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break None,
            }
        }) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default().to_string();
        let len: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let body = String::from_utf8_lossy(&buf[end..end + len]).to_string();
        buf.drain(..end + len);
        let mut parts = first.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        hits.lock().unwrap().push(Hit {
            method,
            path,
            body,
            at: Instant::now(),
            wall: SystemTime::now(),
        });
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| default.lock().unwrap().clone());
        let out = match reply {
            Reply::Ok => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
            Reply::Status(c) => format!("HTTP/1.1 {c} Nope\r\nContent-Length: 4\r\n\r\nnope"),
            Reply::TooMany { retry_after } => format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\nContent-Length: 4\r\n\r\nslow"
            ),
            Reply::Hang => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        };
        if s.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
