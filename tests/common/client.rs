//! A blocking protocol-v1 client for the tests: frames with the crate's own Framer.
#![allow(dead_code)]

use chatserver::protocol::{build, Framer};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(10);
/// The `time` field of the chat messages the tests send.
pub const TIME: &str = "2026-01-01 00:00:00";

pub struct Client {
    pub stream: TcpStream,
    framer: Framer,
    buf: Vec<u8>,
    /// Frames received and not yet consumed: the parsed value and the frame's exact bytes.
    inbox: VecDeque<(Value, Vec<u8>)>,
    pub closed: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            framer: Framer::new(64 << 20),
            buf: Vec::new(),
            inbox: VecDeque::new(),
            closed: false,
        }
    }

    /// Sends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a JSON value ended by a newline, as a modern client does (the seeds' client ends
    /// its frames with a NUL: see `seeds_client.rs` for one that speaks like it).
    pub fn send(&mut self, value: &Value) {
        let mut bytes = serde_json::to_vec(value).expect("json");
        bytes.push(b'\n');
        self.raw(&bytes);
    }

    /// Sends a request made by one of `chatserver::protocol::build`'s builders.
    pub fn send_built(&mut self, build: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = Vec::new();
        build(&mut bytes);
        bytes.push(b'\n');
        self.raw(&bytes);
    }

    fn request_built(&mut self, build: impl FnOnce(&mut Vec<u8>), reply: i64) -> Value {
        self.send_built(build);
        self.recv_msgid(reply)
    }

    fn read_some(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline || self.closed {
            return false;
        }
        self.stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .expect("timeout");
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                let inbox = &mut self.inbox;
                self.framer
                    .drain(&mut self.buf, |frame| {
                        let value =
                            serde_json::from_slice(frame.bytes).expect("server sent bad JSON");
                        inbox.push_back((value, frame.bytes.to_vec()));
                        ControlFlow::Continue(())
                    })
                    .unwrap_or_else(|e| panic!("server output does not frame: {e}"));
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// The first frame (queued or arriving within `timeout`) that `pred` accepts.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_for_raw(timeout, pred).map(|(value, _)| value)
    }

    /// Like `wait_for`, with the frame's exact bytes (without the `\n` that ends it).
    pub fn wait_for_raw(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Value, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.inbox.iter().position(|(v, _)| pred(v)) {
                return self.inbox.remove(i);
            }
            if !self.read_some(deadline) && (self.closed || Instant::now() >= deadline) {
                return None;
            }
        }
    }

    pub fn recv_msgid(&mut self, msgid: i64) -> Value {
        self.wait_for(WAIT, |v| v["msgid"] == msgid)
            .unwrap_or_else(|| panic!("no msgid {msgid} within {WAIT:?}"))
    }

    /// Any next frame.
    pub fn recv(&mut self) -> Value {
        self.wait_for(WAIT, |_| true).expect("no frame")
    }

    /// Everything that arrives within `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let deadline = Instant::now() + quiet;
        while self.read_some(deadline) {}
        self.inbox.drain(..).map(|(value, _)| value).collect()
    }

    /// Asserts that nothing arrives within `quiet` (and nothing is queued).
    pub fn assert_quiet(&mut self, quiet: Duration, what: &str) {
        let got = self.drain(quiet);
        assert!(got.is_empty(), "{what}: expected no frame, got {got:?}");
    }

    /// Waits for the refusal of request `reqmsgid` (None: a frame with no usable msgid) and
    /// checks its errno: an ERROR_MSG (11) naming the request, or for LOGIN_MSG and REG_MSG
    /// their own ack (2, 5), the reply the seeds' client waits for.
    pub fn expect_error(&mut self, errno: i64, reqmsgid: Option<i64>) -> Value {
        let e = self.recv_msgid(refusal_msgid(reqmsgid));
        check_refusal(&e, errno, reqmsgid);
        e
    }

    /// Sends `value` and expects an ERROR_MSG with `errno` for it (reqmsgid: its msgid).
    pub fn request_error(&mut self, value: Value, errno: i64) -> Value {
        let reqmsgid = value["msgid"].as_i64();
        self.send(&value);
        self.expect_error(errno, reqmsgid)
    }

    /// Sends raw bytes and returns the next frame.
    pub fn raw_request(&mut self, bytes: &[u8]) -> Value {
        self.raw(bytes);
        self.recv()
    }

    /// True once the server closed the connection (reads until EOF or `timeout`).
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed && Instant::now() < deadline {
            self.read_some(deadline);
        }
        self.closed
    }

    pub fn request(&mut self, value: Value, reply: i64) -> Value {
        self.send(&value);
        self.recv_msgid(reply)
    }

    /// Registers `name`, returns the new id.
    pub fn register(&mut self, name: &str, password: &str) -> i64 {
        let r = self.request_built(|o| build::register(o, name, password), 5);
        assert_eq!(r["errno"], 0, "register {name}: {r}");
        r["id"].as_i64().expect("id")
    }

    pub fn login(&mut self, id: i64, password: &str) -> Value {
        self.request_built(|o| build::login(o, id, password), 2)
    }

    /// ONE_CHAT_MSGs from `from` to `to`, one per text, all in one write (a pipelining client).
    pub fn send_chats(&mut self, from: i64, to: i64, texts: impl IntoIterator<Item = String>) {
        let mut bytes = Vec::new();
        for text in texts {
            build::one_chat(&mut bytes, from, "s", to, &text, TIME);
            bytes.push(b'\n');
        }
        self.raw(&bytes);
    }

    pub fn chat(&mut self, from: i64, to: i64, msg: &str) {
        self.send_built(|o| build::one_chat(o, from, "n", to, msg, TIME));
    }

    /// The next ONE_CHAT_MSG (6) or GROUP_CHAT_MSG (10) whose `msg` is `msg`.
    pub fn recv_chat(&mut self, msg: &str) -> Value {
        self.wait_for(WAIT, |v| {
            (v["msgid"] == 6 || v["msgid"] == 10) && v["msg"] == msg
        })
        .unwrap_or_else(|| panic!("chat message {msg:?} not received within {WAIT:?}"))
    }

    /// ADD_FRIEND_MSG; returns the reply (ack 13 or error 11).
    pub fn add_friend(&mut self, id: i64, friend: i64) -> Value {
        self.send_built(|o| build::add_friend(o, id, friend));
        self.recv_any_of(&[13, 11])
    }

    /// CREATE_GROUP_MSG that must succeed; returns the group id.
    pub fn create_group(&mut self, id: i64, name: &str, desc: &str) -> i64 {
        let r = self.request_built(|o| build::create_group(o, id, name, desc), 14);
        assert_eq!(r["errno"], 0, "create group {name}: {r}");
        assert_eq!(r["groupname"], name, "create group ack: {r}");
        r["groupid"].as_i64().expect("groupid")
    }

    /// ADD_GROUP_MSG that must succeed.
    pub fn join_group(&mut self, id: i64, group: i64) {
        let r = self.request_built(|o| build::join_group(o, id, group), 15);
        assert_eq!(r, json!({"msgid": 15, "errno": 0, "groupid": group}));
    }

    pub fn group_chat(&mut self, from: i64, group: i64, msg: &str) {
        self.send_built(|o| build::group_chat(o, from, "n", group, msg, TIME));
    }

    /// The next frame whose msgid is one of `msgids`.
    pub fn recv_any_of(&mut self, msgids: &[i64]) -> Value {
        self.wait_for(WAIT, |v| msgids.iter().any(|m| v["msgid"] == *m))
            .unwrap_or_else(|| panic!("none of msgids {msgids:?} within {WAIT:?}"))
    }

    /// A ping round trip; returns how long it took.
    pub fn ping(&mut self, seq: i64) -> Duration {
        let start = Instant::now();
        self.send_built(|o| build::ping(o, Some(seq as u64)));
        self.wait_for(WAIT, |v| v["msgid"] == 25 && v["seq"] == seq)
            .unwrap_or_else(|| panic!("no pong {seq} within {WAIT:?}"));
        start.elapsed()
    }
}

/// The msgid of the refusal of request `reqmsgid`: the ack for LOGIN_MSG and REG_MSG,
/// ERROR_MSG for the rest.
pub fn refusal_msgid(reqmsgid: Option<i64>) -> i64 {
    match reqmsgid {
        Some(1) => 2,
        Some(4) => 5,
        _ => 11,
    }
}

/// Checks a refusal's errno and errmsg, and that an ERROR_MSG names its request.
pub fn check_refusal(e: &Value, errno: i64, reqmsgid: Option<i64>) {
    assert_eq!(e["msgid"], refusal_msgid(reqmsgid), "refusal: {e}");
    assert_eq!(e["errno"], errno, "refusal: {e}");
    match reqmsgid {
        Some(m) if e["msgid"] == 11 => assert_eq!(e["reqmsgid"], m, "refusal: {e}"),
        _ => assert!(e.get("reqmsgid").is_none(), "refusal: {e}"),
    }
    assert!(e["errmsg"].is_string(), "refusal without errmsg: {e}");
}

/// Checks that two logged-in clients still exchange a message both ways.
pub fn assert_chatting(a: &mut Client, ida: i64, b: &mut Client, idb: i64, tag: &str) {
    let there = format!("{tag} a->b");
    a.chat(ida, idb, &there);
    let got = b.recv_chat(&there);
    assert_eq!(got["id"], ida);
    let back = format!("{tag} b->a");
    b.chat(idb, ida, &back);
    let got = a.recv_chat(&back);
    assert_eq!(got["id"], idb);
}

/// A unique name for this test run.
/// A delivered chat frame without the server's message id the server put first
/// (`{"mid":N,...` → `{...`): the rest is the sender's frame byte for byte.
pub fn strip_mid(raw: &str) -> String {
    let rest = raw
        .strip_prefix("{\"mid\":")
        .unwrap_or_else(|| panic!("no mid first in {raw}"));
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    assert!(digits > 0, "mid is a number: {raw}");
    match &rest[digits..] {
        "}" => "{}".to_owned(),
        more => format!(
            "{{{}",
            more.strip_prefix(',').expect("a comma after the mid")
        ),
    }
}

/// A login ack's offline messages, each without its server message id.
pub fn offline_without_mids(ack: &Value) -> Vec<String> {
    ack["offlinemsg"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| strip_mid(m.as_str().expect("offline messages are strings")))
                .collect()
        })
        .unwrap_or_default()
}

/// The server's message id of a delivered chat frame.
pub fn mid_of(v: &Value) -> u64 {
    v["mid"].as_u64().unwrap_or_else(|| panic!("no mid in {v}"))
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        rand::random::<u32>() % 1_000_000
    )
}

/// Registers a fresh user and logs in on a new connection: (client, id).
pub fn logged_in(addr: SocketAddr, prefix: &str) -> (Client, i64) {
    let mut c = Client::connect(addr);
    let id = c.register(&unique(prefix), "pw");
    let r = c.login(id, "pw");
    assert_eq!(r["errno"], 0, "login: {r}");
    (c, id)
}

/// Logs `id` in on a new connection to `addr`, retrying for up to `limit` while an earlier
/// session of it is still being released (errno 2: a closed session, or a dead server's claim,
/// is freed asynchronously).
pub fn login_when_free(addr: SocketAddr, id: i64, limit: Duration) -> (Client, Value) {
    login_until_free(addr, id, false, limit)
}

/// [`login_when_free`] with acknowledged delivery (`"acks":true`).
pub fn login_acking_when_free(addr: SocketAddr, id: i64, limit: Duration) -> (Client, Value) {
    login_until_free(addr, id, true, limit)
}

fn login_until_free(addr: SocketAddr, id: i64, acks: bool, limit: Duration) -> (Client, Value) {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = Client::connect(addr);
        c.send_built(|o| build::login_ext(o, id, Ok("pw"), acks));
        let r = c.recv_msgid(2);
        if r["errno"] == 0 {
            return (c, r);
        }
        assert_eq!(r["errno"], 2, "login of {id}: {r}");
        assert!(
            Instant::now() < deadline,
            "session of {id} never released: {r}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A login ack's string-encoded arrays, decoded.
pub fn decoded(ack: &Value, key: &str) -> Vec<Value> {
    ack[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| serde_json::from_str(s.as_str().expect("string")).expect("json text"))
                .collect()
        })
        .unwrap_or_default()
}
