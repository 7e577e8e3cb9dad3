//! A test client that reads like the seeds' own C++ client (wk755/ChatServer,
//! src/client/main.cpp): its receive thread does `recv(fd, buf, 1024, 0)` into a zeroed
//! 1,024-byte buffer and parses each read, up to the first NUL, as exactly one JSON object.
//! Anything else (two objects in one read, half an object, 1,024 bytes with no NUL after them)
//! makes that client abort; here it is recorded as a violation, and the test fails on it.
//! It writes like that client too: each request is its JSON text and a NUL, in one `send`.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The seeds' client's receive buffer.
pub const RECV_SIZE: usize = 1024;

#[derive(Default)]
struct Inbox {
    /// Frames received, each from one read (or, for a frame too long for one read, from the
    /// reads it took; see `long_frames`).
    frames: Vec<Value>,
    /// Reads the seeds' client could not have parsed.
    violations: Vec<String>,
    /// Frames of more than 1,023 bytes, which that client cannot take in one read: they are
    /// put together here (to check they arrived whole) and counted apart.
    long_frames: usize,
    closed: bool,
}

pub struct SeedsClient {
    stream: TcpStream,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
}

impl SeedsClient {
    pub fn connect(addr: SocketAddr) -> SeedsClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let reader = stream.try_clone().expect("clone");
        let shared = inbox.clone();
        std::thread::spawn(move || read_loop(reader, &shared));
        SeedsClient { stream, inbox }
    }

    /// Sends `value` as that client does: its JSON text and a NUL, in one write.
    pub fn send(&self, value: &Value) {
        let mut bytes = serde_json::to_vec(value).expect("json");
        bytes.push(0);
        self.send_raw(&bytes);
    }

    /// Sends bytes as they are (several requests in one write, say).
    pub fn send_raw(&self, bytes: &[u8]) {
        (&self.stream).write_all(bytes).expect("write");
    }

    /// Waits for the first frame that `pred` accepts (and removes it).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let (lock, ready) = &*self.inbox;
        let deadline = Instant::now() + timeout;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(i) = inbox.frames.iter().position(&pred) {
                return Some(inbox.frames.remove(i));
            }
            let now = Instant::now();
            if now >= deadline || inbox.closed {
                return None;
            }
            inbox = ready.wait_timeout(inbox, deadline - now).unwrap().0;
        }
    }

    pub fn recv_msgid(&self, msgid: i64) -> Value {
        self.wait_for(Duration::from_secs(10), |v| v["msgid"] == msgid)
            .unwrap_or_else(|| panic!("no msgid {msgid} within 10 s: {:?}", self.state()))
    }

    /// Registers `name` and returns its id (the reply it waits for: REG_MSG_ACK).
    pub fn register(&self, name: &str, password: &str) -> i64 {
        self.send(&serde_json::json!({"msgid": 4, "name": name, "password": password}));
        let r = self.recv_msgid(5);
        assert_eq!(r["errno"], 0, "register {name}: {r}");
        r["id"].as_i64().expect("id")
    }

    /// Logs in and returns the LOGIN_MSG_ACK.
    pub fn login(&self, id: i64, password: &str) -> Value {
        self.send(&serde_json::json!({"msgid": 1, "id": id, "password": password}));
        self.recv_msgid(2)
    }

    /// Everything received so far and not taken, after waiting `quiet` for more.
    pub fn drain(&self, quiet: Duration) -> Vec<Value> {
        std::thread::sleep(quiet);
        std::mem::take(&mut self.inbox.0.lock().unwrap().frames)
    }

    /// Reads that client could not have parsed (must stay empty).
    pub fn violations(&self) -> Vec<String> {
        self.inbox.0.lock().unwrap().violations.clone()
    }

    /// Frames too long for one read of that client.
    pub fn long_frames(&self) -> usize {
        self.inbox.0.lock().unwrap().long_frames
    }

    pub fn is_closed(&self) -> bool {
        self.inbox.0.lock().unwrap().closed
    }

    /// Panics if a read so far was one the seeds' client could not have parsed.
    pub fn assert_no_violation(&self, what: &str) {
        let violations = self.violations();
        assert!(violations.is_empty(), "{what}: {violations:?}");
    }

    fn state(&self) -> String {
        let inbox = self.inbox.0.lock().unwrap();
        format!(
            "{} frames queued, violations {:?}, closed {}",
            inbox.frames.len(),
            inbox.violations,
            inbox.closed
        )
    }
}

/// Logs `id` in, retrying for a few seconds while an earlier session of it is still being
/// released (errno 2).
pub fn login_when_free(c: &SeedsClient, id: i64, password: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ack = c.login(id, password);
        if ack["errno"] != 2 || Instant::now() >= deadline {
            return ack;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_loop(mut stream: TcpStream, shared: &(Mutex<Inbox>, Condvar)) {
    let (lock, ready) = shared;
    // A frame longer than one read, being put together (the seeds' client would have died).
    let mut long: Vec<u8> = Vec::new();
    loop {
        let mut buf = [0u8; RECV_SIZE];
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut inbox = lock.lock().unwrap();
        if !long.is_empty() || n == RECV_SIZE {
            // The first reads of a long frame fill the buffer; a full read that is a whole
            // frame would have no NUL after it, which that client cannot parse either.
            long.extend_from_slice(&buf[..n]);
            match serde_json::from_slice::<Value>(&long) {
                Ok(value) if long.len() >= RECV_SIZE => {
                    inbox.long_frames += 1;
                    inbox.frames.push(value);
                    long.clear();
                }
                Ok(_) => {
                    inbox.violations.push(format!(
                        "{n} bytes ending a frame that started in another read"
                    ));
                    long.clear();
                }
                Err(e) if e.is_eof() => {}
                Err(e) => {
                    inbox.violations.push(format!("not one JSON object: {e}"));
                    long.clear();
                }
            }
        } else {
            // As that client does: parse up to the first NUL (the buffer was zeroed).
            let text = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
            match serde_json::from_slice::<Value>(text) {
                Ok(value) if value.is_object() => inbox.frames.push(value),
                Ok(value) => inbox.violations.push(format!("not an object: {value}")),
                Err(e) => inbox.violations.push(format!(
                    "a read of {n} bytes is not one JSON object ({e}): {}",
                    String::from_utf8_lossy(&buf[..n.min(300)])
                )),
            }
        }
        ready.notify_all();
    }
    lock.lock().unwrap().closed = true;
    ready.notify_all();
}
