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
use super::unconfirmed::NEVER_WRITTEN;
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

/// Chat copies for `user` that travel inside a reply (the offline messages in a login ack):
/// confirmed, like any copy, when that reply is written.
pub(crate) type Riders = Vec<(UserId, Parcel)>;

/// A frame waiting for its own write to a seeds' dialect connection.
enum Queued {
    Reply(Bytes, Riders),
    /// A chat copy for this user (the session may have logged out since).
    Chat(UserId, Parcel),
}

/// The queue of a seeds' dialect connection.
pub(crate) struct Pacer {
    gap: Duration,
    queue: VecDeque<Queued>,
    /// Bytes of the chat copies in `queue`.
    chat_bytes: usize,
    /// When the next frame may be written.
    not_before: Option<Instant>,
    timer_armed: bool,
}

impl Pacer {
    pub(crate) fn new(gap: Duration) -> Pacer {
        Pacer {
            gap,
            queue: VecDeque::new(),
            chat_bytes: 0,
            not_before: None,
            timer_armed: false,
        }
    }

    /// The chat copies never written (the connection closed first), with their recipients:
    /// the caller stores them.
    pub(crate) fn take_unsent(&mut self) -> Vec<(UserId, Parcel)> {
        self.chat_bytes = 0;
        let mut unsent = Vec::new();
        for queued in self.queue.drain(..) {
            match queued {
                Queued::Chat(user, parcel) => unsent.push((user, parcel)),
                Queued::Reply(_, riders) => unsent.extend(riders),
            }
        }
        unsent
    }

    /// Bytes of chat copies waiting here.
    pub(crate) fn bytes(&self) -> usize {
        self.chat_bytes
    }

    fn push(&mut self, queued: Queued) {
        if let Queued::Chat(_, parcel) = &queued {
            self.chat_bytes += parcel.frame.len();
        }
        self.queue.push_back(queued);
    }

    fn pop(&mut self) -> Option<Queued> {
        let queued = self.queue.pop_front()?;
        if let Queued::Chat(_, parcel) = &queued {
            self.chat_bytes -= parcel.frame.len();
        }
        Some(queued)
    }

    fn put_back(&mut self, queued: Queued) {
        if let Queued::Chat(_, parcel) = &queued {
            self.chat_bytes += parcel.frame.len();
        }
        self.queue.push_front(queued);
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
    queue(
        lp,
        conn,
        Queued::Reply(Bytes::copy_from_slice(frame), Vec::new()),
    );
}

/// A reply that carries chat copies (`riders`): they count as handed to the connection, and
/// are stored at its end unless confirmed (written, or acknowledged) by then.
pub(crate) fn reply_carrying(lp: &mut EventLoop, conn: ConnId, frame: &[u8], riders: Riders) {
    if is_seeds(lp, conn) {
        let frame = Bytes::copy_from_slice(frame);
        return queue(lp, conn, Queued::Reply(frame, riders));
    }
    let sent = lp.send(conn, frame);
    handed_over(lp, conn, sent, riders);
}

/// Records copies that went out (`sent`: in the output stream up to its current end) or
/// could not (kept as never written, for the connection's end to store).
fn handed_over(lp: &mut EventLoop, conn: ConnId, sent: bool, copies: Riders) {
    let end = if sent {
        lp.output_end(conn)
    } else {
        NEVER_WRITTEN
    };
    let written = lp.bytes_written(conn);
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    if !c.acks {
        // What the socket took since is confirmed: the record stays as short as the output.
        c.unconfirmed.written(written);
    }
    let mut settle_now = Vec::new();
    for (user, mut parcel) in copies {
        // A receipt settles once its copy is safe: written for a client that does not
        // acknowledge, acknowledged for one that does.
        if sent && !c.acks {
            settle_now.extend(parcel.receipt.take());
        }
        c.unconfirmed.push(end, user, parcel);
    }
    for receipt in settle_now {
        written_this_turn(lp, receipt);
    }
}

/// A copy that was meant for `conn` but could not be written (it is closing): kept with the
/// connection's unconfirmed copies, which its end stores in order.
pub(crate) fn never_written(lp: &mut EventLoop, conn: ConnId, user: UserId, parcel: Parcel) {
    handed_over(lp, conn, false, vec![(user, parcel)]);
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
    handed_over(lp, conn, true, vec![(user, parcel)]);
    Ok(())
}

fn queue(lp: &mut EventLoop, conn: ConnId, queued: Queued) {
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.pacer.push(queued);
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
    let Some(next) = pacer.pop() else {
        return;
    };
    pacer.not_before = Some(now + pacer.gap);
    let frame = match &next {
        Queued::Reply(frame, _) => frame.clone(),
        Queued::Chat(_, parcel) => parcel.frame.clone(),
    };
    if !lp.send(conn, &frame) {
        // Closing: the close hands what is still queued to the store; keep it there.
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            c.pacer.put_back(next);
        }
        return;
    }
    let copies = match next {
        Queued::Reply(_, riders) => riders,
        Queued::Chat(user, parcel) => vec![(user, parcel)],
    };
    handed_over(lp, conn, true, copies);
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
