//! Backlog: a session whose newer messages wait in the store, taken back in batches as its
//! reader catches up; and the copies a connection never delivered, stored ahead of it.

use super::conn_state::ChatConn;
use super::delivery::{stored_copies, stored_text, Delivery, Parcel};
use super::outbound;
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use crate::store::{OfflineBatch, StoreResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A take that failed is tried again after this long.
const RETAKE_AFTER: Duration = Duration::from_secs(1);

/// A session whose newer messages wait in the store (a slow reader, or a login that found more
/// stored than one batch).
#[derive(Default, Debug)]
pub(crate) struct Backlog {
    /// New messages for the session join the stored ones, so that order holds.
    pub(crate) active: bool,
    /// A take is on its way back from the store.
    pub(crate) taking: bool,
    /// Something was stored after the take in flight was queued: that take may not have it.
    pub(crate) stored_since_take: bool,
}

impl Delivery {
    /// `conn` has a backlog: watch that it makes progress, and hear when its output drains.
    pub(super) fn stall(&self, lp: &mut EventLoop, conn: ConnId) {
        let now = Instant::now();
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        if c.watch.stalled_since.is_none() {
            c.watch.stalled_since = Some(now);
            let check = now + self.slow_reader_deadline;
            lp.notify_write_complete(conn, true);
            super::watchdog::watch(lp, conn, check);
        }
    }

    /// On the session's loop, whenever `conn` may have caught up (its output drained, an
    /// ack, a message stored for it): takes the next batch of its backlog if there is room.
    pub(crate) fn resume(self: &Arc<Self>, lp: &mut EventLoop, conn: ConnId) {
        let written = lp.bytes_written(conn);
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        let Some(user) = c.user else { return };
        if !c.acks {
            c.unconfirmed.written(written);
        }
        if !c.backlog.active || c.backlog.taking {
            return;
        }
        if c.outstanding() > self.high_water / 2 {
            // No room yet: hear when the output drains (a login that found more than one
            // batch gets here without having stalled before).
            return self.stall(lp, conn);
        }
        if self.is_stopping() {
            return;
        }
        c.backlog.taking = true;
        c.backlog.stored_since_take = false;
        // Progress: the slow-reader clock starts again if it falls behind again.
        c.watch.stalled_since = None;
        let budget = self.batch_bytes();
        let delivery = self.clone();
        let submitted = self.workers.submit(user, move |store| {
            let taken = store.take_offline(user, budget);
            let again = delivery.clone();
            delivery.loops.run(conn.loop_index(), move |lp| {
                again.took(lp, conn, user, taken)
            });
        });
        if !submitted {
            if let Some(c) = lp.context_mut::<ChatConn>(conn) {
                c.backlog.taking = false;
            }
        }
    }

    /// On the session's loop: a batch of `user`'s backlog came back from the store.
    fn took(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        taken: StoreResult<OfflineBatch>,
    ) {
        let batch = match taken {
            Ok(batch) => batch,
            Err(e) => {
                log::error!("taking offline messages of user {user} failed: {e}");
                if let Some(c) = lp.context_mut::<ChatConn>(conn) {
                    c.backlog.taking = false;
                }
                // The store may be back in a moment; the backlog waits there meanwhile.
                let delivery = self.clone();
                lp.run_after(RETAKE_AFTER, move |lp| delivery.resume(lp, conn));
                return;
            }
        };
        let copies = stored_copies(user, &batch.messages);
        let still_session = match lp.context_mut::<ChatConn>(conn) {
            Some(c) if c.user == Some(user) => {
                c.backlog.taking = false;
                if !batch.more && !c.backlog.stored_since_take {
                    c.backlog.active = false;
                    c.watch.stalled_since = None;
                }
                true
            }
            _ => false,
        };
        if !still_session {
            // The session ended while the batch was out: it goes back where it was, first.
            return self.store_front(copies);
        }
        for (user, parcel) in copies {
            // The oldest of the backlog: straight to the connection, past the high-water check.
            if let Err(parcel) = outbound::chat(lp, conn, user, parcel) {
                outbound::never_written(lp, conn, user, parcel);
            }
        }
        self.resume(lp, conn);
    }

    /// Stores copies that are older than anything stored for their users meanwhile (held by
    /// a connection that ended, or taken by a login that did not finish): ahead of it.
    pub(crate) fn store_front(self: &Arc<Self>, copies: Vec<(UserId, Parcel)>) {
        let mut by_user: Vec<(UserId, Vec<Parcel>)> = Vec::new();
        for (user, parcel) in copies {
            match by_user.iter_mut().find(|(u, _)| *u == user) {
                Some((_, parcels)) => parcels.push(parcel),
                None => by_user.push((user, vec![parcel])),
            }
        }
        for (user, parcels) in by_user {
            let delivery = self.clone();
            let submitted = self.workers.submit(user, move |store| {
                let texts: Vec<String> = parcels.iter().map(|p| stored_text(&p.frame)).collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                match store.store_offline_front(user, &refs) {
                    Ok(_) => {}
                    Err(e) => log::error!(
                        "storing {} undelivered messages for user {user} failed: {e}",
                        refs.len()
                    ),
                }
                for receipt in parcels.iter().filter_map(|p| p.receipt.as_ref()) {
                    delivery.bus.settle(receipt);
                }
                delivery.after_store(user);
            });
            if !submitted {
                log::error!("store workers stopped: messages for user {user} could not be stored");
            }
        }
    }

    /// Something was stored for `user`, who has a session here: its backlog now includes it,
    /// and comes over as the connection has room.
    pub(crate) fn flush_offline(self: &Arc<Self>, user: UserId) {
        if self.is_stopping() {
            return;
        }
        let Some(conn) = self.sessions.lookup(user) else {
            return;
        };
        let delivery = self.clone();
        self.loops.run(conn.loop_index(), move |lp| {
            match lp.context_mut::<ChatConn>(conn) {
                Some(c) if c.user == Some(user) => {
                    c.backlog.active = true;
                    c.backlog.stored_since_take |= c.backlog.taking;
                }
                _ => return,
            }
            delivery.resume(lp, conn);
        });
    }
}
