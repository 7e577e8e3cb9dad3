//! Delivery batches: the payload one server publishes to another's channel, carrying every
//! message of one publisher round trip that has recipients there.
//!
//! `<sender server id>\n`, then per message `<mid> <frame length> <uid>,<uid>,...\n<frame>`,
//! in the order the sender accepted them (so each pair's order holds). Frames are cut by
//! length, so they may hold anything; ids are decimal.

use crate::store::UserId;
use std::io::Write;

/// Builds one batch payload.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(sender: &str) -> Writer {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(sender.as_bytes());
        buf.push(b'\n');
        Writer { buf }
    }

    /// Appends message `mid` for `users` (not empty).
    pub(crate) fn push(&mut self, mid: u64, users: &[UserId], frame: &[u8]) {
        // Writing into a Vec cannot fail.
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

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// One message of a delivery batch: its id, recipients, and where its frame is.
#[derive(Debug, PartialEq)]
pub(crate) struct Delivery {
    pub(crate) mid: u64,
    pub(crate) users: Vec<UserId>,
    pub(crate) frame: std::ops::Range<usize>,
}

/// Splits a batch into its sender server and messages; None if any part is malformed (the
/// publisher is our own code, so that means a version mismatch: nothing is half-delivered).
pub(crate) fn parse(payload: &[u8]) -> Option<(String, Vec<Delivery>)> {
    let line_end = |from: usize| {
        payload[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
    };
    let sender_end = line_end(0)?;
    let sender = std::str::from_utf8(&payload[..sender_end]).ok()?.to_owned();
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
    use super::{parse, Delivery, Writer};
    use crate::store::UserId;

    #[test]
    fn written_batches_parse_back() {
        let mut w = Writer::new("node-a");
        w.push(7, &[1, 22, 333], b"{\"msg\":\"x y\n\"}\n");
        w.push(8, &[4], b"");
        w.push(u64::MAX, &[i64::MAX], b"{}");
        let payload = w.finish();
        let (sender, deliveries) = parse(&payload).unwrap();
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
    fn delivery_batch_round_trip() {
        // Frames may hold newlines and spaces: they are cut by length, not by separator.
        let payload = b"127.0.0.1:6000\n42 8 7,9\n{\"a\":\n1}43 2 5\n{}";
        let (sender, deliveries) = parse(payload).unwrap();
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
        assert_eq!(&payload[24..32], b"{\"a\":\n1}");
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        for bad in [
            &b"garbage"[..],
            b"s\n",
            b"s\n1 5 7\n{}",
            b"s\n1 2 \n{}",
            b"s\nx 2 7\n{}",
            b"s\n1 2 7,y\n{}",
            b"\n1 2 7\n{}",
            b"s\n1 99999999999999999999 7\n{}",
        ] {
            assert!(parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
