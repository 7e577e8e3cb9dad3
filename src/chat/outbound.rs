//! Outbound: every frame the chat layer writes to a client goes through here, so that a
//! connection that speaks like the seeds' client gets what that client can read.
//!
//! The seeds' client reads with `recv(fd, buf, 1024, 0)` and parses each read as exactly one
//! JSON object: two frames in one read kill it. So for a connection of that dialect every
//! frame leaves in a write of its own, never while part of the previous one is still queued,
//! and at least `gap` after the previous one (the kernel merges writes the reader has not
//! taken yet; the gap gives it the time to). Modern clients (newline framing, extensions)
//! frame the stream themselves: their copies join the turn's coalesced write (`send_later`).
//!
//! The dialect is learnt from the requests: a first request followed by a NUL, as the seeds'
//! client ends every request, marks the seeds' dialect; a newline, or any extension msgid
//! (11 and up) at any time, marks a modern client (docs/PROTOCOL.md, "Dialects").

use super::conn_state::ChatConn;
use super::delivery::{written_this_turn, Parcel};
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a connection frames what it reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Nothing told yet: served as modern.
    #[default]
    Unknown,
    /// Speaks like the seeds' client: one JSON object per read, at most 1,023 bytes each.
    Seeds,
    Modern,
}

impl Dialect {
    /// What one more request says: its msgid, and the byte after it if it has arrived.
    pub(crate) fn learn(self, msgid: Option<i64>, next: Option<u8>) -> Dialect {
        if msgid.is_some_and(|m| m > crate::protocol::msgid::GROUP_CHAT_MSG) {
            return Dialect::Modern;
        }
        match (self, next) {
            (Dialect::Unknown, Some(0)) => Dialect::Seeds,
            (Dialect::Unknown, Some(_)) => Dialect::Modern,
            (dialect, _) => dialect,
        }
    }
}

/// A frame waiting for its own write to a seeds' dialect connection.
enum Queued {
    Reply(Bytes),
    /// A chat copy for this user (the session may have logged out since).
    Chat(UserId, Parcel),
}

/// The queue of a seeds' dialect connection.
pub(crate) struct Pacer {
    gap: Duration,
    queue: VecDeque<Queued>,
    /// When the next frame may be written.
    not_before: Option<Instant>,
    timer_armed: bool,
}

impl Pacer {
    pub(crate) fn new(gap: Duration) -> Pacer {
        Pacer {
            gap,
            queue: VecDeque::new(),
            not_before: None,
            timer_armed: false,
        }
    }

    /// The chat copies never written (the connection closed first), with their recipients:
    /// the caller stores them.
    pub(crate) fn take_unsent(&mut self) -> Vec<(UserId, Parcel)> {
        self.queue
            .drain(..)
            .filter_map(|queued| match queued {
                Queued::Chat(user, parcel) => Some((user, parcel)),
                Queued::Reply(_) => None,
            })
            .collect()
    }
}

fn is_seeds(lp: &EventLoop, conn: ConnId) -> bool {
    lp.context::<ChatConn>(conn)
        .is_some_and(|c| c.dialect == Dialect::Seeds)
}

/// A reply (or a notice) for `conn`.
pub(crate) fn reply(lp: &mut EventLoop, conn: ConnId, frame: &[u8]) {
    if !is_seeds(lp, conn) {
        lp.send(conn, frame);
        return;
    }
    queue(lp, conn, Queued::Reply(Bytes::copy_from_slice(frame)));
}

/// A chat copy for `user`'s session on `conn` (the caller checked it is that session). Gives
/// the copy back if the connection takes no more output, for the caller to store.
pub(crate) fn chat(
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    parcel: Parcel,
) -> Result<(), Parcel> {
    if !lp.is_connected(conn) {
        return Err(parcel);
    }
    if is_seeds(lp, conn) {
        queue(lp, conn, Queued::Chat(user, parcel));
        return Ok(());
    }
    if !lp.send_later(conn, &parcel.frame) {
        return Err(parcel);
    }
    if let Some(receipt) = parcel.receipt {
        written_this_turn(lp, receipt);
    }
    Ok(())
}

fn queue(lp: &mut EventLoop, conn: ConnId, queued: Queued) {
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.pacer.queue.push_back(queued);
    }
    pump(lp, conn);
}

/// Writes the next queued frame if the pacer allows it now; otherwise makes sure something
/// will call again (the output draining, or a timer at the allowed time).
pub(crate) fn pump(lp: &mut EventLoop, conn: ConnId) {
    let now = Instant::now();
    let still_writing = lp.output_bytes(conn) > 0;
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    let pacer = &mut c.pacer;
    if pacer.queue.is_empty() {
        return;
    }
    if still_writing {
        // Part of the last frame waits for the socket: the next must not join it in a write.
        lp.notify_write_complete(conn, true);
        return;
    }
    if let Some(at) = pacer.not_before.filter(|&at| at > now) {
        if !pacer.timer_armed {
            pacer.timer_armed = true;
            lp.run_after(at - now, move |lp| {
                if let Some(c) = lp.context_mut::<ChatConn>(conn) {
                    c.pacer.timer_armed = false;
                }
                pump(lp, conn);
            });
        }
        return;
    }
    let Some(next) = pacer.queue.pop_front() else {
        return;
    };
    pacer.not_before = Some(now + pacer.gap);
    let frame = match &next {
        Queued::Reply(frame) => frame.clone(),
        Queued::Chat(_, parcel) => parcel.frame.clone(),
    };
    if !lp.send(conn, &frame) {
        // Closing: the close hands what is still queued to the store; keep it there.
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            c.pacer.queue.push_front(next);
        }
        return;
    }
    if let Queued::Chat(
        _,
        Parcel {
            receipt: Some(receipt),
            ..
        },
    ) = next
    {
        written_this_turn(lp, receipt);
    }
    // The rest, one by one, as the gap allows.
    pump(lp, conn);
}

#[cfg(test)]
mod tests {
    use super::Dialect::{self, *};
    use crate::protocol::msgid;

    #[test]
    fn the_first_request_tells_the_dialect_and_extensions_override_it() {
        assert_eq!(Unknown.learn(Some(msgid::LOGIN_MSG), Some(0)), Seeds);
        assert_eq!(Unknown.learn(Some(msgid::LOGIN_MSG), Some(b'\n')), Modern);
        assert_eq!(Unknown.learn(Some(msgid::LOGIN_MSG), None), Unknown);
        assert_eq!(Seeds.learn(Some(msgid::ONE_CHAT_MSG), Some(b'\n')), Seeds);
        assert_eq!(Seeds.learn(Some(msgid::PING_MSG), Some(0)), Modern);
        assert_eq!(Modern.learn(Some(msgid::LOGIN_MSG), Some(0)), Modern);
        assert_eq!(Unknown.learn(None, Some(0)), Seeds);
        let d: Dialect = Default::default();
        assert_eq!(d, Unknown);
    }
}
