//! Unconfirmed: the chat copies a connection was handed and that are not yet confirmed, so
//! that whatever the connection never delivered is stored when it ends (the no-loss rule).
//!
//! Confirmed means: for a client that does not acknowledge (the seeds' client, a modern one
//! without `acks`), written to the socket, which the loop tells by bytes (each copy is
//! recorded with the offset its last byte has in the connection's output stream); for an
//! acking client, acknowledged: DELIVERY_ACK_MSG's `count` is cumulative over the chat
//! messages of the connection, in the order they were sent (XEP-0198's `h`).

use super::delivery::Parcel;
use crate::ids::UserId;
use std::collections::VecDeque;

struct Copy {
    /// Offset in the output stream just past the copy's last byte.
    end: u64,
    user: UserId,
    parcel: Parcel,
}

/// A copy that was never written: its end is past any offset the stream reaches.
pub(crate) const NEVER_WRITTEN: u64 = u64::MAX;

#[derive(Default)]
pub(crate) struct Unconfirmed {
    copies: VecDeque<Copy>,
    /// Chat messages handed to the connection so far.
    counted: u64,
    /// Of those, confirmed (acknowledged, or written): the front of `copies` is number
    /// `confirmed + 1`.
    confirmed: u64,
    /// Bytes of the frames in `copies`.
    bytes: usize,
}

/// An acknowledgement that does not fit what was sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AckTooHigh {
    pub(crate) sent: u64,
}

impl Unconfirmed {
    /// A copy for `user` whose last byte is at `end` in the output stream.
    pub(crate) fn push(&mut self, end: u64, user: UserId, parcel: Parcel) {
        self.counted += 1;
        self.bytes += parcel.frame.len();
        self.copies.push_back(Copy { end, user, parcel });
    }

    /// Bytes held for copies not yet confirmed.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }

    /// A client that does not acknowledge: the stream is written up to `written`.
    pub(crate) fn written(&mut self, written: u64) {
        while self.copies.front().is_some_and(|c| c.end <= written) {
            self.pop();
        }
    }

    /// An acking client has received `count` chat messages of this connection in all. The
    /// copies it confirms are given to `confirmed` (their receipts settle now).
    pub(crate) fn acked(
        &mut self,
        count: u64,
        mut confirmed: impl FnMut(Parcel),
    ) -> Result<(), AckTooHigh> {
        if count > self.counted {
            return Err(AckTooHigh { sent: self.counted });
        }
        while self.confirmed < count {
            match self.pop() {
                Some(parcel) => confirmed(parcel),
                None => break,
            }
        }
        self.confirmed = self.confirmed.max(count);
        Ok(())
    }

    fn pop(&mut self) -> Option<Parcel> {
        let copy = self.copies.pop_front()?;
        self.bytes -= copy.parcel.frame.len();
        self.confirmed += 1;
        Some(copy.parcel)
    }

    /// The connection ended: every copy not confirmed, for its recipient, oldest first. For a
    /// client that does not acknowledge, the ones written up to `written` are confirmed first.
    pub(crate) fn take(&mut self, acking: bool, written: u64) -> Vec<(UserId, Parcel)> {
        if !acking {
            self.written(written);
        }
        self.bytes = 0;
        // Handed to the store: as far as counting goes, done with.
        self.confirmed = self.counted;
        self.copies.drain(..).map(|c| (c.user, c.parcel)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(text: &str) -> Bytes {
        Bytes::from(text.to_owned())
    }

    fn parcel(text: &str) -> Parcel {
        Parcel::local(frame(text))
    }

    fn frames(left: Vec<(UserId, Parcel)>) -> Vec<(UserId, Bytes)> {
        left.into_iter().map(|(u, p)| (u, p.frame)).collect()
    }

    #[test]
    fn written_copies_are_confirmed_by_offset() {
        let mut u = Unconfirmed::default();
        u.push(10, 1, parcel("0123456789"));
        u.push(15, 1, parcel("abcde"));
        u.push(20, 2, parcel("fghij"));
        assert_eq!(u.bytes(), 20);
        u.written(14); // the second is only partly written
        assert_eq!(u.bytes(), 10);
        let left = frames(u.take(false, 15));
        assert_eq!(left, vec![(2, frame("fghij"))]);
        assert!(u.is_empty() && u.bytes() == 0);
    }

    #[test]
    fn acks_are_cumulative_counts() {
        let mut u = Unconfirmed::default();
        for i in 0..5 {
            u.push(100, 7, parcel(&i.to_string()));
        }
        let mut settled = 0;
        assert_eq!(u.acked(2, |_| settled += 1), Ok(()));
        assert_eq!(
            u.acked(2, |_| settled += 1),
            Ok(()),
            "a repeated ack is harmless"
        );
        assert_eq!(settled, 2);
        assert_eq!(u.acked(6, |_| {}), Err(AckTooHigh { sent: 5 }));
        // Written is not acknowledged: an acking client's copies stay until acked.
        let left: Vec<Bytes> = frames(u.take(true, 1000))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(left, vec![frame("2"), frame("3"), frame("4")]);
        u.push(200, 7, parcel("5"));
        assert_eq!(u.acked(6, |_| {}), Ok(()), "counting goes on across takes");
        assert!(u.is_empty());
    }
}
