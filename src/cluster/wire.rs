//! The cluster's wire: Redis key and channel names, the presence token, and the payloads one
//! server publishes to another (delivery batches, confirmations, flush requests). Everything
//! that another server (or a Lua script) must read the same way is written and read here.
//!
//! Keys: `chat:user:<uid>` → presence token `<server id>|<connection>`; `chat:alive:<sid>`
//! exists while server `sid` lives (short TTL, refreshed by its publisher). Channels: each
//! server subscribes `chat:server:<sid>`; `chat:groups` broadcasts membership changes.
//!
//! Payloads on a server's channel, told apart by their first bytes:
//! - a delivery batch: `<sender sid>\n`, then per message `<mid> <frame length> <uid>,<uid>,...\n<frame>`,
//!   in the order the sender accepted them; frames are cut by length, so they may hold anything;
//! - `!ack <sender sid> <mid>,<mid>,...`: the receiver confirms those deliveries;
//! - `!flush <uid>`: hand that user the messages stored for it.

use crate::ids::{GroupId, UserId};
use std::io::Write;

/// Prefix of presence keys: `chat:user:<uid>`.
pub const USER_PREFIX: &str = "chat:user:";
/// Prefix of liveness keys: `chat:alive:<sid>`.
pub const ALIVE_PREFIX: &str = "chat:alive:";
/// Prefix of the server channels: `chat:server:<sid>`.
pub const SERVER_PREFIX: &str = "chat:server:";
/// Broadcast channel: group membership changed (the payload is the group id).
pub const GROUPS_CHANNEL: &str = "chat:groups";
/// A counter each server increments once at start: its node number for message ids.
pub const NODE_SEQ_KEY: &str = "chat:node-seq";

const ACK: &[u8] = b"!ack ";
const FLUSH: &[u8] = b"!flush ";

pub fn user_key(user: UserId) -> String {
    format!("{USER_PREFIX}{user}")
}

pub fn alive_key(server: &str) -> String {
    format!("{ALIVE_PREFIX}{server}")
}

pub fn server_channel(server: &str) -> String {
    format!("{SERVER_PREFIX}{server}")
}

/// A session's presence value: which server, and which connection there.
pub fn token(server: &str, conn: u64) -> String {
    format!("{server}|{conn}")
}

/// Whether a server id can stand in keys, tokens and payloads without ambiguity.
pub fn valid_server_id(server: &str) -> bool {
    !server.is_empty() && !server.starts_with('!') && !server.contains(['|', ',', '\n', ' '])
}

/// `!ack <sender> <mid>,<mid>,...`
pub fn ack(sender: &str, mids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + sender.len() + mids.len() * 8);
    out.extend_from_slice(ACK);
    out.extend_from_slice(sender.as_bytes());
    for (i, mid) in mids.iter().enumerate() {
        out.push(if i == 0 { b' ' } else { b',' });
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{mid}");
    }
    out
}

/// `!flush <uid>`
pub fn flush(user: UserId) -> String {
    format!("!flush {user}")
}

/// A group membership change, as published on [`GROUPS_CHANNEL`].
pub fn group_changed(group: GroupId) -> String {
    group.to_string()
}

/// What arrived on a server's channel.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    /// Deliveries from `sender`.
    Batch {
        sender: &'a str,
        deliveries: Vec<Delivery>,
    },
    /// `sender` confirms these deliveries of ours.
    Ack { sender: &'a str, mids: Vec<u64> },
    /// Hand this user its stored messages.
    Flush(UserId),
}

/// Reads one payload of a server channel; None if it is malformed (the publisher is our own
/// code, so that means a version mismatch: nothing of it is half-used).
pub fn parse(payload: &[u8]) -> Option<Incoming<'_>> {
    if let Some(rest) = payload.strip_prefix(ACK) {
        let (sender, mids) = std::str::from_utf8(rest).ok()?.split_once(' ')?;
        let mids = mids
            .split(',')
            .map(|m| m.parse().ok())
            .collect::<Option<_>>()?;
        return Some(Incoming::Ack { sender, mids });
    }
    if let Some(user) = payload.strip_prefix(FLUSH) {
        return Some(Incoming::Flush(
            std::str::from_utf8(user).ok()?.parse().ok()?,
        ));
    }
    let (sender, deliveries) = parse_batch(payload)?;
    Some(Incoming::Batch { sender, deliveries })
}

/// Reads a payload of [`GROUPS_CHANNEL`].
pub fn parse_group_changed(payload: &[u8]) -> Option<GroupId> {
    std::str::from_utf8(payload).ok()?.parse().ok()
}

/// Builds one delivery batch payload.
pub struct BatchWriter {
    buf: Vec<u8>,
}

impl BatchWriter {
    pub fn new(sender: &str) -> BatchWriter {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(sender.as_bytes());
        buf.push(b'\n');
        BatchWriter { buf }
    }

    /// Appends message `mid` for `users` (not empty).
    pub fn push(&mut self, mid: u64, users: &[UserId], frame: &[u8]) {
        let _ = write!(self.buf, "{mid} {} ", frame.len());
        for (i, user) in users.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let _ = write!(self.buf, "{user}");
        }
        self.buf.push(b'\n');
        self.buf.extend_from_slice(frame);
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// One message of a delivery batch: its id, recipients, and where its frame is.
#[derive(Debug, PartialEq)]
pub struct Delivery {
    pub mid: u64,
    pub users: Vec<UserId>,
    pub frame: std::ops::Range<usize>,
}

fn parse_batch(payload: &[u8]) -> Option<(&str, Vec<Delivery>)> {
    let line_end = |from: usize| {
        payload[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
    };
    let sender_end = line_end(0)?;
    let sender = std::str::from_utf8(&payload[..sender_end]).ok()?;
    if sender.is_empty() {
        return None;
    }
    let mut deliveries = Vec::new();
    let mut at = sender_end + 1;
    while at < payload.len() {
        let end = line_end(at)?;
        let header = std::str::from_utf8(&payload[at..end]).ok()?;
        let mut fields = header.splitn(3, ' ');
        let mid = fields.next()?.parse().ok()?;
        let len: usize = fields.next()?.parse().ok()?;
        let users: Vec<UserId> = fields
            .next()?
            .split(',')
            .map(|u| u.parse().ok())
            .collect::<Option<_>>()?;
        let start = end + 1;
        let stop = start.checked_add(len).filter(|&s| s <= payload.len())?;
        if users.is_empty() {
            return None;
        }
        deliveries.push(Delivery {
            mid,
            users,
            frame: start..stop,
        });
        at = stop;
    }
    (!deliveries.is_empty()).then_some((sender, deliveries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_batches_parse_back() {
        let mut w = BatchWriter::new("node-a");
        w.push(7, &[1, 22, 333], b"{\"msg\":\"x y\n\"}\n");
        w.push(8, &[4], b"");
        w.push(u64::MAX, &[i64::MAX], b"{}");
        let payload = w.finish();
        let Some(Incoming::Batch { sender, deliveries }) = parse(&payload) else {
            panic!("not a batch")
        };
        assert_eq!(sender, "node-a");
        let got: Vec<(u64, Vec<UserId>, &[u8])> = deliveries
            .into_iter()
            .map(|d| (d.mid, d.users, &payload[d.frame]))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, vec![1, 22, 333], &b"{\"msg\":\"x y\n\"}\n"[..]),
                (8, vec![4], &b""[..]),
                (u64::MAX, vec![i64::MAX], &b"{}"[..]),
            ]
        );
    }

    #[test]
    fn frames_are_cut_by_length_not_by_separator() {
        let payload = b"127.0.0.1:6000\n42 8 7,9\n{\"a\":\n1}43 2 5\n{}";
        let Some(Incoming::Batch { sender, deliveries }) = parse(payload) else {
            panic!("not a batch")
        };
        assert_eq!(sender, "127.0.0.1:6000");
        assert_eq!(
            deliveries,
            vec![
                Delivery {
                    mid: 42,
                    users: vec![7, 9],
                    frame: 24..32
                },
                Delivery {
                    mid: 43,
                    users: vec![5],
                    frame: 39..41
                },
            ]
        );
    }

    #[test]
    fn control_messages_round_trip() {
        assert_eq!(
            parse(&ack("node-b", &[3, 4, 5])),
            Some(Incoming::Ack {
                sender: "node-b",
                mids: vec![3, 4, 5]
            })
        );
        assert_eq!(parse(flush(17).as_bytes()), Some(Incoming::Flush(17)));
        assert_eq!(parse_group_changed(group_changed(9).as_bytes()), Some(9));
        assert!(valid_server_id("127.0.0.1:6000"));
        for bad in ["", "!x", "a|b", "a,b", "a b", "a\nb"] {
            assert!(!valid_server_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn malformed_payloads_are_refused_whole() {
        for bad in [
            &b"garbage"[..],
            b"s\n",
            b"s\n1 5 7\n{}",
            b"s\n1 2 \n{}",
            b"s\nx 2 7\n{}",
            b"s\n1 2 7,y\n{}",
            b"\n1 2 7\n{}",
            b"s\n1 99999999999999999999 7\n{}",
            b"!ack s",
            b"!ack s 1,x",
            b"!flush x",
        ] {
            assert!(parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
