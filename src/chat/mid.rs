//! Message ids: every accepted chat message gets one, unique across the cluster and increasing
//! in the order a server accepts messages, carried in the delivered frame as `"mid"`.
//!
//! Layout (Snowflake's): milliseconds since 2026-01-01 (41 bits, 69 years), this server's node
//! number (10 bits, from the bus), a sequence within the millisecond (12 bits, 4,096 per ms;
//! past that the clock is borrowed from the next millisecond, so ids never repeat or go back).
//! Two servers' ids order by time: a conversation's ids increase across servers as long as
//! their clocks agree to within the time between two of its messages.

use bytes::Bytes;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
const EPOCH_MS: u64 = 1_767_225_600_000;
const SEQ_BITS: u32 = 12;
const NODE_BITS: u32 = 10;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Node numbers are taken modulo this.
pub(crate) const NODES: u64 = 1 << NODE_BITS;

pub(crate) struct MidClock {
    node: u64,
    last: AtomicU64,
}

impl MidClock {
    pub(crate) fn new(node: u64) -> MidClock {
        MidClock {
            node: node % NODES,
            last: AtomicU64::new(0),
        }
    }

    fn now_ms() -> u64 {
        let since_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        since_unix.saturating_sub(EPOCH_MS)
    }

    /// The next id: larger than every id this clock gave before.
    pub(crate) fn next(&self) -> u64 {
        self.next_at(Self::now_ms())
    }

    fn next_at(&self, now_ms: u64) -> u64 {
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let (last_ms, last_seq) = (last >> (SEQ_BITS + NODE_BITS), last & SEQ_MASK);
            let (ms, seq) = if now_ms > last_ms {
                (now_ms, 0)
            } else if last_seq < SEQ_MASK {
                (last_ms, last_seq + 1)
            } else {
                (last_ms + 1, 0)
            };
            let id = (ms << (SEQ_BITS + NODE_BITS)) | (self.node << SEQ_BITS) | seq;
            match self
                .last
                .compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return id,
                Err(seen) => last = seen,
            }
        }
    }
}

/// The frame a recipient gets: the sender's frame with `"mid":N` added first, and the
/// newline that ends every server frame. `frame` is one JSON object as the framer cut it
/// (it starts with `{`); every other byte is kept as the sender wrote it.
pub(crate) fn with_mid(frame: &[u8], mid: u64) -> Bytes {
    let body = frame.strip_prefix(b"{").unwrap_or(frame);
    let mut out = Vec::with_capacity(frame.len() + 32);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"mid\":{mid}");
    // `{}` stays an object: no comma before the closing brace.
    if body.first() != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(body);
    out.push(b'\n');
    Bytes::from(out)
}

/// The id of a frame made by [`with_mid`] (it leads the frame), without parsing the rest.
pub(crate) fn mid_in(frame: &[u8]) -> Option<u64> {
    let digits = frame.strip_prefix(b"{\"mid\":")?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_is_read_back_from_the_frame() {
        assert_eq!(mid_in(&with_mid(br#"{"msgid":6,"msg":"x"}"#, 42)), Some(42));
        assert_eq!(mid_in(&with_mid(b"{}", u64::MAX)), Some(u64::MAX));
        assert_eq!(mid_in(br#"{"msgid":6,"mid":4}"#), None);
        assert_eq!(mid_in(br#"{"mid":}"#), None);
    }

    #[test]
    fn ids_increase_and_carry_the_node() {
        let clock = MidClock::new(5 + NODES);
        let mut last = 0;
        // Past 4,096 in one millisecond the next millisecond is borrowed.
        for _ in 0..10_000 {
            let id = clock.next_at(1000);
            assert!(id > last);
            assert_eq!((id >> SEQ_BITS) & (NODES - 1), 5);
            last = id;
        }
        // A clock going back changes nothing.
        assert!(clock.next_at(10) > last);
        let other = MidClock::new(6);
        assert_ne!(other.next_at(1000), MidClock::new(5).next_at(1000));
    }

    #[test]
    fn the_frame_keeps_its_bytes_after_the_mid() {
        let frame = br#"{"msgid":6,"id":1,"toid":2,"msg":"x \"y\""}"#;
        let out = with_mid(frame, 42);
        assert_eq!(
            &out[..],
            &br#"{"mid":42,"msgid":6,"id":1,"toid":2,"msg":"x \"y\""}
"#[..]
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["mid"], 42);
        assert_eq!(&with_mid(b"{}", 1)[..], b"{\"mid\":1}\n");
    }
}
