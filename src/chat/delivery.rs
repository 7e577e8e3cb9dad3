//! Delivery: the path of a chat frame to its recipients, and the no-loss rule.
//!
//! A frame the server accepted ends in exactly one place: written to the recipient's
//! connection, or stored for the recipient. Whoever finds the recipient gone stores it: the
//! sender's loop when the recipient has no session anywhere (through the bus), the
//! recipient's loop when the connection closed (or changed user) before the frame got there,
//! the login path when a held frame's login fails. A frame stored while its recipient was
//! logging in may miss that login's offline batch; the worker that stored it then sees the
//! session and hands it over.
//!
//! A session holds at most `high_water` bytes of chat copies not yet confirmed (written, or
//! acknowledged by an acking client). Past that it has a backlog: what follows is stored
//! instead, in order, and taken back in batches as the reader catches up (`resume`). Copies
//! a connection held unconfirmed when it ended are older than anything stored for its user
//! meanwhile, so they are stored ahead of it (`store_front`).
//!
//! Per loop, deliveries for sessions on other loops are gathered during a turn and cross over
//! at its end as one task per target loop; copies that came from another server are settled
//! with the bus once the turn's output is written (two hooks of the loop, see `attach`).

pub(crate) use super::backlog::Backlog;
use super::conn_state::ChatConn;
use super::loops::Loops;
use super::mid::mid_in;
use super::outbound;
use super::sessions::Sessions;
use super::workers::{OfflineJob, StoreWorkers};
use crate::cluster::{Bus, Origin, Receipt};
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use crate::protocol::{reply, ErrorCode};
use crate::store::StoreResult;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Messages taken from the store for `user`, as copies to hand to the session, in order.
pub(crate) fn stored_copies(user: UserId, messages: &[String]) -> Vec<(UserId, Parcel)> {
    messages
        .iter()
        .map(|text| (user, Parcel::local(outgoing(text.as_bytes()))))
        .collect()
}

/// One recipient's copy of a frame; a copy from another server carries the receipt that
/// settles it with its sender once written or stored.
pub(crate) struct Parcel {
    pub(crate) frame: Bytes,
    pub(crate) receipt: Option<Arc<Receipt>>,
}

impl Parcel {
    pub(crate) fn local(frame: Bytes) -> Parcel {
        Parcel {
            frame,
            receipt: None,
        }
    }
}

/// A copy bound for the session `conn` of `user` on some loop.
type SessionCopy = (ConnId, UserId, Parcel);

/// One loop's delivery state, owned by the loop (`EventLoop::state`).
#[derive(Default)]
struct LoopDeliveries {
    /// Copies for sessions on other loops, by target loop index, gathered during the turn.
    outbox: Vec<Vec<SessionCopy>>,
    /// Receipts of copies queued with `send_later` this turn, settled once it is written.
    written: Vec<Arc<Receipt>>,
}

/// A cross-server copy was handed to the socket (or its output buffer) in this turn: it is
/// settled with its sender once the turn's output is written.
pub(crate) fn written_this_turn(lp: &mut EventLoop, receipt: Arc<Receipt>) {
    lp.state::<LoopDeliveries>().written.push(receipt);
}

/// Copies grouped by the loop that holds each session.
#[derive(Default)]
pub(crate) struct PerLoop(Vec<Vec<SessionCopy>>);

impl PerLoop {
    pub(crate) fn push(&mut self, copy: SessionCopy) {
        push_for_loop(&mut self.0, copy);
    }
}

fn push_for_loop(by_loop: &mut Vec<Vec<SessionCopy>>, copy: SessionCopy) {
    let index = copy.0.loop_index();
    if by_loop.len() <= index {
        by_loop.resize_with(index + 1, Vec::new);
    }
    by_loop[index].push(copy);
}

/// Counts a task's copies in `Delivery::crossing` until the task ran or was dropped (a loop
/// gone at shutdown), so the count cannot leak.
struct Crossing(Arc<AtomicUsize>, usize);

impl Crossing {
    fn new(count: Arc<AtomicUsize>, bytes: usize) -> Crossing {
        count.fetch_add(bytes, Ordering::AcqRel);
        Crossing(count, bytes)
    }
}

impl Drop for Crossing {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

pub(crate) struct Delivery {
    pub(super) sessions: Arc<Sessions>,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) workers: Arc<StoreWorkers>,
    pub(super) loops: Arc<Loops>,
    stopping: AtomicBool,
    /// Frame bytes of copies handed to another loop's task queue and not yet delivered there:
    /// in RAM like the store's queue, and as unbounded if that loop falls behind.
    crossing: Arc<AtomicUsize>,
    pub(super) high_water: usize,
    pub(super) slow_reader_deadline: Duration,
}

impl Delivery {
    pub(crate) fn new(
        sessions: Arc<Sessions>,
        bus: Arc<dyn Bus>,
        workers: Arc<StoreWorkers>,
        loops: Arc<Loops>,
        (high_water, slow_reader_deadline): (usize, Duration),
    ) -> Delivery {
        Delivery {
            sessions,
            bus,
            workers,
            loops,
            stopping: AtomicBool::new(false),
            crossing: Arc::default(),
            high_water: high_water.max(1),
            slow_reader_deadline,
        }
    }

    /// Bytes of stored messages one take brings back to a session (and a login's batch).
    pub(crate) fn batch_bytes(&self) -> usize {
        (self.high_water / 2).max(1)
    }

    /// On each loop, once at start: the end-of-turn hook that sends the turn's outbox and the
    /// after-flush hook that settles what the turn wrote.
    pub(crate) fn attach(self: &Arc<Self>, lp: &mut EventLoop) {
        let delivery = self.clone();
        lp.add_end_of_turn_hook(move |lp| {
            let state = lp.state::<LoopDeliveries>();
            if state.outbox.iter().any(|copies| !copies.is_empty()) {
                let outbox = std::mem::take(&mut state.outbox);
                delivery.post_per_loop(PerLoop(outbox));
            }
        });
        let delivery = self.clone();
        lp.add_after_flush_hook(move |lp| {
            let state = lp.state::<LoopDeliveries>();
            if !state.written.is_empty() {
                for receipt in std::mem::take(&mut state.written) {
                    delivery.bus.settle(&receipt);
                }
            }
        });
    }

    /// No more offline batches leave the store (their loop may be gone before they arrive).
    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Sends `frame` to each recipient, from the loop `lp`: directly to sessions on this loop,
    /// through the turn's outbox to sessions on other loops, through the bus to the rest.
    /// `origin` hears about a recipient that does not exist.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        recipients: &[UserId],
        frame: Bytes,
        origin: Option<Origin>,
    ) {
        let here = lp.index();
        let mut elsewhere = Vec::new();
        // Out of the loop's state for the fan-out, so a big group costs one state lookup.
        let mut outbox = std::mem::take(&mut lp.state::<LoopDeliveries>().outbox);
        for &user in recipients {
            match self.sessions.lookup(user) {
                Some(conn) if conn.loop_index() == here => {
                    self.deliver_on_loop(lp, conn, user, Parcel::local(frame.clone()))
                }
                Some(conn) => {
                    push_for_loop(&mut outbox, (conn, user, Parcel::local(frame.clone())))
                }
                None => elsewhere.push(user),
            }
        }
        lp.state::<LoopDeliveries>().outbox = outbox;
        if !elsewhere.is_empty() {
            self.bus.deliver(elsewhere, frame, origin);
        }
    }

    /// Frame bytes of copies on their way to another loop (see `crossing`).
    pub(crate) fn crossing_bytes(&self) -> usize {
        self.crossing.load(Ordering::Acquire)
    }

    /// Hands each loop its copies as one task, delivered there in order.
    pub(crate) fn post_per_loop(self: &Arc<Self>, batches: PerLoop) {
        for (index, copies) in batches.0.into_iter().enumerate() {
            if copies.is_empty() {
                continue;
            }
            let delivery = self.clone();
            let bytes = copies.iter().map(|(_, _, p)| p.frame.len()).sum();
            let crossing = Crossing::new(self.crossing.clone(), bytes);
            self.loops.run(index, move |lp| {
                for (conn, user, parcel) in copies {
                    delivery.deliver_on_loop(lp, conn, user, parcel);
                }
                drop(crossing);
            });
        }
    }

    /// Copies that arrived from another server, for sessions of this server (or, for a user
    /// who left since the sender looked it up, for the store).
    pub(crate) fn deliver_remote(self: &Arc<Self>, batch: Vec<crate::cluster::RemoteDelivery>) {
        let mut per_loop = PerLoop::default();
        for delivery in batch {
            for user in delivery.users {
                let parcel = Parcel {
                    frame: delivery.frame.clone(),
                    receipt: Some(delivery.receipt.clone()),
                };
                match self.sessions.lookup(user) {
                    Some(conn) => per_loop.push((conn, user, parcel)),
                    None => self.store_offline(user, parcel, None),
                }
            }
        }
        self.post_per_loop(per_loop);
    }

    /// On the recipient's loop: write to the session if it is still `user`'s, hold it if that
    /// login is completing, else store it.
    pub(crate) fn deliver_on_loop(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        parcel: Parcel,
    ) {
        let written = lp.bytes_written(conn);
        let divert = match lp.context_mut::<ChatConn>(conn) {
            Some(c) if c.user == Some(user) => {
                if !c.acks {
                    c.unconfirmed.written(written);
                }
                let full = c.outstanding() + parcel.frame.len() > self.high_water;
                if full || c.backlog.active {
                    c.backlog.active = true;
                    c.backlog.stored_since_take |= c.backlog.taking;
                }
                c.backlog.active
            }
            Some(c) if c.pending_login == Some(user) => {
                c.held.push(parcel);
                return;
            }
            _ => return self.store_offline(user, parcel, None),
        };
        if divert {
            self.stall(lp, conn);
            return self.store_offline(user, parcel, None);
        }
        // Refused once the connection is closing: then the copy is stored.
        if let Err(parcel) = outbound::chat(lp, conn, user, parcel) {
            self.store_offline(user, parcel, None);
        }
    }

    /// Stores one copy for `user`. If `user` does not exist, `origin` gets an error; if the
    /// store refused it until the retry line gave up, `origin` is told which message was lost.
    pub(crate) fn store_offline(
        self: &Arc<Self>,
        user: UserId,
        parcel: Parcel,
        origin: Option<Origin>,
    ) {
        let delivery = self.clone();
        let receipt = parcel.receipt;
        let mid = origin.and_then(|_| mid_in(&parcel.frame));
        let done = move |result: StoreResult<bool>| {
            if let Some(receipt) = &receipt {
                delivery.bus.settle(receipt);
            }
            let error = match result {
                Ok(true) => return delivery.after_store(user),
                Ok(false) => origin.map(|origin| {
                    let detail = user.to_string();
                    reply::error(ErrorCode::NoSuchUser, Some(&detail), Some(origin.msgid))
                }),
                Err(e) => {
                    log::error!("LOST: a message for user {user} could not be stored: {e}");
                    origin.map(|origin| match mid {
                        Some(mid) => reply::not_stored(mid, origin.msgid),
                        None => reply::error(ErrorCode::Internal, None, Some(origin.msgid)),
                    })
                }
            };
            if let (Some(origin), Some(error)) = (origin, error) {
                delivery.loops.run(origin.conn.loop_index(), move |lp| {
                    lp.send(origin.conn, &error);
                });
            }
        };
        let job = OfflineJob {
            user,
            text: stored_text(&parcel.frame),
            done: Box::new(done),
        };
        if !self.workers.submit_offline(job) {
            log::error!("store workers stopped: a message for user {user} could not be stored");
        }
    }

    /// Stores one frame for several users (group members); the workers batch them.
    pub(crate) fn store_offline_many(
        self: &Arc<Self>,
        users: Vec<UserId>,
        frame: Bytes,
        origin: Option<Origin>,
    ) {
        for user in users {
            self.store_offline(user, Parcel::local(frame.clone()), origin);
        }
    }

    /// Stores copies held for a connection that went away before they could be written.
    pub(crate) fn store_held(self: &Arc<Self>, user: UserId, held: Vec<Parcel>) {
        for parcel in held {
            self.store_offline(user, parcel, None);
        }
    }

    /// On a store worker, right after storing for `user`: if `user` logged in meanwhile, the
    /// login may have taken its offline batch before this message landed; hand it over now.
    pub(super) fn after_store(self: &Arc<Self>, user: UserId) {
        if self.sessions.is_online(user) {
            self.flush_offline(user);
        } else {
            // Pipelined, and a no-op unless the user has a session on another server.
            self.bus.request_flush(user);
        }
    }
}
