//! Delivery: the path of a chat frame to its recipients, and the no-loss rule.
//!
//! A frame the server accepted ends in exactly one place: written to the recipient's
//! connection, or stored for the recipient. Whoever finds the recipient gone stores it: the
//! sender's loop when the recipient has no session, the recipient's loop when the connection
//! closed (or changed user) before the frame got there, the login path when a held frame's
//! login fails. A frame stored while its recipient was logging in may miss that login's
//! offline batch; the worker that stored it then sees the session and hands it over.

use super::conn_state::ChatConn;
use super::service::ChatService;
use super::workers::OfflineJob;
use crate::cluster::Receipt;
use crate::net::{ConnId, EventLoop};
use crate::protocol::{reply, ErrorCode};
use crate::store::{StoreResult, UserId};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// The JSON text of a frame as stored offline: the frame without its trailing newline.
pub(crate) fn stored_text(frame: &Bytes) -> String {
    let text = frame.strip_suffix(b"\n").unwrap_or(frame);
    String::from_utf8_lossy(text).into_owned()
}

/// Appends the newline that ends every server frame.
pub(crate) fn outgoing(frame: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(frame.len() + 1);
    out.extend_from_slice(frame);
    out.push(b'\n');
    Bytes::from(out)
}

/// One copy of a frame for a session on some loop; a copy from another server carries the
/// receipt that confirms it to its sender.
pub(crate) type SessionCopy = (ConnId, UserId, Bytes, Option<Arc<Receipt>>);

/// Copies bound for sessions, gathered by the index of the loop that holds each session, so
/// that they cross over as one task per loop (`ChatService::post_per_loop`).
#[derive(Default)]
pub(crate) struct PerLoop(Vec<Vec<SessionCopy>>);

impl PerLoop {
    const fn new() -> PerLoop {
        PerLoop(Vec::new())
    }

    pub(crate) fn push(&mut self, copy: SessionCopy) {
        let index = copy.0.loop_index();
        if self.0.len() <= index {
            self.0.resize_with(index + 1, Vec::new);
        }
        self.0[index].push(copy);
    }
}

thread_local! {
    /// Deliveries for other loops gathered during one dispatch. Each I/O thread runs one
    /// loop, so a thread-local is that loop's.
    static OUTBOX: RefCell<PerLoop> = const { RefCell::new(PerLoop::new()) };
    static OUTBOX_SCHEDULED: Cell<bool> = const { Cell::new(false) };
    /// Receipts of frames queued with `send_later` in this loop turn (see `release_after_flush`).
    static UNFLUSHED_RECEIPTS: RefCell<Vec<Arc<Receipt>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `receipt` until the loop has written this turn's output, then drops it (which
/// confirms the frame to its sender). One `after_flush` task per turn, not one per frame.
fn release_after_flush(lp: &mut EventLoop, receipt: Arc<Receipt>) {
    let first = UNFLUSHED_RECEIPTS.with(|held| {
        let mut held = held.borrow_mut();
        held.push(receipt);
        held.len() == 1
    });
    if first {
        lp.after_flush(|_| {
            let written = UNFLUSHED_RECEIPTS.with(|held| std::mem::take(&mut *held.borrow_mut()));
            drop(written);
        });
    }
}

impl ChatService {
    /// Sends `frame` to each recipient, from the loop `lp`: directly to sessions on this loop,
    /// one task per other loop for the sessions there, one store job for those offline.
    /// `sender` (with the request's msgid) hears about a recipient that does not exist.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        recipients: &[UserId],
        frame: Bytes,
        sender: Option<(ConnId, i64)>,
    ) {
        let here = lp.index();
        let mut offline = Vec::new();
        for &user in recipients {
            match self.sessions.lookup(user) {
                Some(conn) if conn.loop_index() == here => {
                    self.deliver_on_loop(lp, conn, user, &frame, None)
                }
                Some(conn) => self.post_to_loop(lp, conn, user, frame.clone()),
                None => offline.push(user),
            }
        }
        if offline.is_empty() {
            return;
        }
        match &self.cluster {
            // Maybe on another server: one round trip finds out, and reports who must be stored.
            Some(cluster) => cluster.deliver(offline, frame, sender),
            None if offline.len() == 1 => self.store_offline(offline[0], frame, sender, None),
            None => self.store_offline_many(offline, frame),
        }
    }

    /// Queues a delivery for a session on another loop. Deliveries are gathered per target
    /// loop until the end of the current dispatch (a read full of pipelined messages, a group
    /// fan-out) and cross over as one task per loop: one wakeup and one lock per batch.
    fn post_to_loop(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        frame: Bytes,
    ) {
        OUTBOX.with(|outbox| outbox.borrow_mut().push((conn, user, frame, None)));
        let already_scheduled = OUTBOX_SCHEDULED.with(|scheduled| scheduled.replace(true));
        if !already_scheduled {
            let svc = self.clone();
            lp.defer(move |_| svc.flush_outbox());
        }
    }

    /// Sends every gathered batch to its loop (see `post_to_loop`).
    fn flush_outbox(self: &Arc<Self>) {
        OUTBOX_SCHEDULED.with(|s| s.set(false));
        let batches = OUTBOX.with(|outbox| std::mem::take(&mut *outbox.borrow_mut()));
        self.post_per_loop(batches);
    }

    /// Hands each loop its copies as one task, delivered there in order.
    pub(crate) fn post_per_loop(self: &Arc<Self>, batches: PerLoop) {
        for (index, copies) in batches.0.into_iter().enumerate() {
            if copies.is_empty() {
                continue;
            }
            let svc = self.clone();
            self.on_loop(index, move |lp| {
                for (conn, user, frame, receipt) in copies {
                    svc.deliver_on_loop(lp, conn, user, &frame, receipt);
                }
            });
        }
    }

    /// On the recipient's loop: write to the session if it is still `user`'s, hold it if that
    /// login is completing, else store it.
    pub(crate) fn deliver_on_loop(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        frame: &Bytes,
        receipt: Option<Arc<Receipt>>,
    ) {
        let logged_in = match lp.context_mut::<ChatConn>(conn) {
            Some(c) if c.user == Some(user) => true,
            Some(c) if c.pending_login == Some(user) => {
                c.held.push(frame.clone());
                return;
            }
            _ => false,
        };
        // Every frame joins the turn's batch for its connection (refused once the connection
        // is closing: then the frame is stored). A receipt from another server confirms the
        // frame to its sender, so it is dropped only after the batch is written.
        if !(logged_in && lp.send_later(conn, frame)) {
            self.store_offline(user, frame.clone(), None, receipt);
        } else if let Some(receipt) = receipt {
            release_after_flush(lp, receipt);
        }
    }

    /// Stores one frame for `user`. If `user` does not exist, `sender` gets an error. A
    /// `receipt` (from another server) is released once the frame is stored.
    pub(crate) fn store_offline(
        self: &Arc<Self>,
        user: UserId,
        frame: Bytes,
        sender: Option<(ConnId, i64)>,
        receipt: Option<Arc<Receipt>>,
    ) {
        let svc = self.clone();
        let done = move |result: StoreResult<bool>| {
            let _receipt = receipt;
            match result {
                Ok(true) => svc.after_store(user),
                Ok(false) => {
                    if let Some((conn, msgid)) = sender {
                        let detail = user.to_string();
                        let error = reply::error(ErrorCode::NoSuchUser, Some(&detail), Some(msgid));
                        svc.reply_from_worker(conn, error);
                    }
                }
                Err(e) => {
                    log::error!("storing an offline message for user {user} failed: {e}");
                    if let Some((conn, msgid)) = sender {
                        let error = reply::error(ErrorCode::Internal, None, Some(msgid));
                        svc.reply_from_worker(conn, error);
                    }
                }
            }
        };
        let job = OfflineJob {
            user,
            text: stored_text(&frame),
            done: Box::new(done),
        };
        if !self.workers.submit_offline(job) {
            log::error!("store workers stopped: a message for user {user} could not be stored");
        }
    }

    /// Stores one frame for several users (group members); the workers batch them.
    pub(crate) fn store_offline_many(self: &Arc<Self>, users: Vec<UserId>, frame: Bytes) {
        for user in users {
            self.store_offline(user, frame.clone(), None, None);
        }
    }

    /// Stores frames held for a connection that went away before they could be written.
    pub(crate) fn store_held(self: &Arc<Self>, user: UserId, held: Vec<Bytes>) {
        for frame in held {
            self.store_offline(user, frame, None, None);
        }
    }

    /// On a store worker, right after storing for `user`: if `user` logged in meanwhile, the
    /// login may have taken its offline batch before this message landed; hand it over now.
    fn after_store(self: &Arc<Self>, user: UserId) {
        if self.sessions.is_online(user) {
            self.flush_offline(user);
        } else if let Some(cluster) = &self.cluster {
            // Pipelined, and a no-op in Redis unless the user has a session somewhere.
            cluster.request_flush(user);
        }
    }

    /// Takes `user`'s stored messages and writes them to the user's session.
    pub(crate) fn flush_offline(self: &Arc<Self>, user: UserId) {
        if self.is_stopping() {
            return;
        }
        let svc = self.clone();
        self.workers.submit(user, move |store| {
            let Some(conn) = svc.sessions.lookup(user) else {
                return;
            };
            let messages = match store.take_offline(user) {
                Ok(messages) if !messages.is_empty() => messages,
                Ok(_) => return,
                Err(e) => {
                    log::error!("taking offline messages of user {user} failed: {e}");
                    return;
                }
            };
            let again = svc.clone();
            svc.on_loop(conn.loop_index(), move |lp| {
                for text in messages {
                    again.deliver_on_loop(lp, conn, user, &outgoing(text.as_bytes()), None);
                }
            });
        });
    }
}
