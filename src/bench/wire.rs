//! The requests chat-bench sends and what it reads back, in protocol v1 (or the seeds' NUL form).
//!
//! Chat messages carry their own bookkeeping in the `msg` text: `b:<sender>:<seq>:<t_ns>:` and
//! padding up to `--size` bytes, `t_ns` being nanoseconds on this process's monotonic clock,
//! so whichever loop receives a message knows who sent it and how long it took.

use crate::protocol::build;
use serde::Deserialize;
use std::cell::RefCell;
use std::fmt::Write;

/// How frames end: a newline (v1, readable) or a NUL (the seeds' client does that).
#[derive(Clone, Copy, Debug)]
pub struct Wire {
    pub legacy: bool,
}

/// The text that starts every bench message's `msg`.
const MARK: &[u8] = b"\"msg\":\"b:";
/// The `time` of every bench message.
const TIME: &str = "2024-01-01 00:00:00";

thread_local! {
    /// Each client loop writes its messages' text here, so sending allocates nothing.
    static TEXT: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl Wire {
    fn end(self, out: &mut Vec<u8>) {
        out.push(if self.legacy { 0 } else { b'\n' });
    }

    pub fn register(self, out: &mut Vec<u8>, name: &str, password: &str) {
        build::register(out, name, password);
        self.end(out);
    }

    pub fn login(self, out: &mut Vec<u8>, id: i64, password: &str) {
        build::login(out, id, password);
        self.end(out);
    }

    /// LOGIN_MSG with the extensions: a password (`Ok`) or a resume token (`Err`), and acks.
    pub fn login_ext(self, out: &mut Vec<u8>, id: i64, secret: Result<&str, &str>, acks: bool) {
        build::login_ext(out, id, secret, acks);
        self.end(out);
    }

    /// DELIVERY_ACK_MSG: `count` chat messages received since the login.
    pub fn delivery_ack(self, out: &mut Vec<u8>, count: u64) {
        build::delivery_ack(out, count);
        self.end(out);
    }

    /// PING_MSG without a seq (the answer to a heartbeat).
    pub fn ping(self, out: &mut Vec<u8>) {
        build::ping(out, None);
        self.end(out);
    }

    pub fn logout(self, out: &mut Vec<u8>, id: i64) {
        build::logout(out, id);
        self.end(out);
    }

    pub fn create_group(self, out: &mut Vec<u8>, id: i64, name: &str) {
        build::create_group(out, id, name, "chat-bench");
        self.end(out);
    }

    pub fn join_group(self, out: &mut Vec<u8>, id: i64, group: i64) {
        build::join_group(out, id, group);
        self.end(out);
    }

    /// A ONE_CHAT_MSG (`group` false, `to` a user) or GROUP_CHAT_MSG (`to` a group) whose
    /// text is the stamp `b:<sender>:<seq>:<t_ns>:` padded with `x` to `size` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn chat(
        self,
        out: &mut Vec<u8>,
        group: bool,
        from: (i64, &str),
        to: i64,
        sender: usize,
        seq: u64,
        t_ns: u64,
        size: usize,
    ) {
        TEXT.with(|text| {
            let mut text = text.borrow_mut();
            text.clear();
            let _ = write!(text, "b:{sender}:{seq}:{t_ns}:");
            let pad = size.saturating_sub(text.len());
            text.extend(std::iter::repeat_n('x', pad));
            if group {
                build::group_chat(out, from.0, from.1, to, &text, TIME);
            } else {
                build::one_chat(out, from.0, from.1, to, &text, TIME);
            }
        });
        self.end(out);
    }
}

/// A bench message as its receiver reads it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub sender: usize,
    pub seq: u64,
    pub t_ns: u64,
}

/// One reply (any frame that is not a bench message), with the fields chat-bench looks at.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Reply {
    #[serde(default)]
    pub msgid: i64,
    #[serde(default)]
    pub errno: i64,
    pub id: Option<i64>,
    pub groupid: Option<i64>,
    pub errmsg: Option<String>,
    /// A login ack's resume token.
    pub token: Option<String>,
}

impl Reply {
    /// The reply in one line, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "msgid {} errno {}{}",
            self.msgid,
            self.errno,
            self.errmsg
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )
    }
}

/// What a received frame is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Bench(Stamp),
    Reply(Reply),
    /// Not JSON chat-bench understands (reported as an error).
    Unreadable,
}

/// Reads a frame: the bench stamp by a quick scan when it is a chat message (no JSON parse on
/// the hot path), any other frame with serde.
pub fn read_frame(frame: &[u8]) -> Incoming {
    let body = after_mid(frame);
    let chat = body.starts_with(b"\"msgid\":6,") || body.starts_with(b"\"msgid\":10,");
    if chat {
        if let Some(stamp) = find(frame, MARK).and_then(|at| stamp(&frame[at + MARK.len()..])) {
            return Incoming::Bench(stamp);
        }
    }
    match serde_json::from_slice::<Reply>(frame) {
        Ok(reply) => Incoming::Reply(reply),
        Err(_) => Incoming::Unreadable,
    }
}

/// What follows the opening brace and the server's message id (`{"mid":N,`) that chat
/// messages start with.
fn after_mid(frame: &[u8]) -> &[u8] {
    let Some(rest) = frame.strip_prefix(b"{") else {
        return frame;
    };
    match rest.strip_prefix(b"\"mid\":") {
        Some(id) => id
            .iter()
            .position(|&b| b == b',')
            .map_or(rest, |comma| &id[comma + 1..]),
        None => rest,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses `<sender>:<seq>:<t_ns>:`.
fn stamp(text: &[u8]) -> Option<Stamp> {
    let mut fields = text.splitn(4, |&b| b == b':');
    let mut number = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    let sender = number()? as usize;
    let seq = number()?;
    let t_ns = number()?;
    Some(Stamp { sender, seq, t_ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_message_round_trips_and_has_the_asked_size() {
        let mut out = Vec::new();
        Wire { legacy: false }.chat(&mut out, false, (7, "b_1"), 9, 3, 42, 123456, 64);
        assert_eq!(out.last(), Some(&b'\n'));
        let frame = &out[..out.len() - 1];
        let v: serde_json::Value = serde_json::from_slice(frame).unwrap();
        assert_eq!(v["msg"].as_str().unwrap().len(), 64);
        assert_eq!(v["toid"], 9);
        assert_eq!(
            read_frame(frame),
            Incoming::Bench(Stamp {
                sender: 3,
                seq: 42,
                t_ns: 123456
            })
        );
    }

    #[test]
    fn group_message_in_legacy_form_ends_with_nul() {
        let mut out = Vec::new();
        Wire { legacy: true }.chat(&mut out, true, (7, "b_1"), 2, 0, 1, 5, 0);
        assert_eq!(out.last(), Some(&0));
        let v: serde_json::Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        assert_eq!(v["msgid"], 10);
        assert_eq!(v["groupid"], 2);
    }

    #[test]
    fn replies_are_read_with_their_fields() {
        let Incoming::Reply(r) = read_frame(br#"{"msgid":5,"errno":0,"id":13}"#) else {
            panic!()
        };
        assert_eq!((r.msgid, r.errno, r.id), (5, 0, Some(13)));
        assert_eq!(read_frame(b"{oops"), Incoming::Unreadable);
    }
}
