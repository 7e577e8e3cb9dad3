//! The one [`ConnectionHandler`] of every client connection: framing, counting, dispatch.

use super::conn::{send_with, Conn, SendMode};
use super::shared::{Phase, Shared};
use crate::bench::stats::LoopStats;
use crate::bench::wire::{read_frame, Incoming, Stamp};
use crate::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use crate::protocol::msgid;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Holds no per-connection state: that is the [`Conn`] context, so one handler serves all.
pub struct BenchHandler {
    pub(super) sh: Arc<Shared>,
}

impl ConnectionHandler for BenchHandler {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        if let Some(role) = Conn::role_of(lp, conn) {
            role.on_connection(&self.sh, lp, conn);
        }
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        let Some(mut framer) = lp.context::<Conn>(conn).map(|c| c.framer.clone()) else {
            return input.retrieve_all();
        };
        let drained = framer.drain(input, |frame| {
            self.on_frame(lp, conn, frame.bytes);
            ControlFlow::Continue(())
        });
        let mut ack = None;
        if let Some(c) = lp.context_mut::<Conn>(conn) {
            c.framer = framer;
            if c.received > c.acked {
                c.acked = c.received;
                ack = Some(c.acked);
            }
        }
        if let Some(count) = ack {
            // Once per read, cumulative: what an acking client is expected to do.
            let sh = &self.sh;
            send_with(sh, lp, conn, SendMode::Uncounted, |b| {
                sh.wire.delivery_ack(b, count)
            });
        }
        if let Err(e) = drained {
            self.sh
                .fail(format!("server sent an unframeable stream: {e}"));
            input.retrieve_all();
            lp.force_close(conn);
        }
    }

    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        let sh = &self.sh;
        let Some(c) = lp.context::<Conn>(conn) else {
            return;
        };
        if c.closing || sh.phase() >= Phase::Stop {
            return;
        }
        LoopStats::add(&sh.stats.of(lp.index()).closed, 1);
        let who = if c.user.name.is_empty() {
            "a registrar".to_owned()
        } else {
            format!("user {}", c.user.id)
        };
        sh.fail(format!(
            "the server closed the connection of {who} ({:?}, step {:?})",
            c.role, c.step
        ));
    }
}

impl BenchHandler {
    fn on_frame(&self, lp: &mut EventLoop, conn: ConnId, frame: &[u8]) {
        let sh = &self.sh;
        let reply = match read_frame(frame) {
            Incoming::Bench(stamp) => {
                if sh.cfg.acks {
                    if let Some(c) = lp.context_mut::<Conn>(conn) {
                        c.received += 1;
                    }
                }
                return on_delivery(sh, lp, stamp);
            }
            Incoming::Reply(reply) => reply,
            Incoming::Unreadable => {
                LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
                let text = String::from_utf8_lossy(&frame[..frame.len().min(200)]).into_owned();
                sh.fail(format!("unreadable frame from the server: {text}"));
                return;
            }
        };
        if reply.msgid == msgid::HEARTBEAT_MSG {
            // A quiet connection (a receiver without acks, an idle user) must answer.
            return send_with(sh, lp, conn, SendMode::Uncounted, |b| sh.wire.ping(b));
        }
        if reply.msgid == msgid::ERROR_MSG {
            LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
            if sh.phase() == Phase::Setup {
                sh.fail(format!("server error during set-up: {}", reply.describe()));
            }
        }
        if let Some(role) = Conn::role_of(lp, conn) {
            role.on_reply(sh, lp, conn, &reply);
        }
    }
}

/// A bench message arrived: count it, and tell its sender when the message is complete.
fn on_delivery(sh: &Arc<Shared>, lp: &mut EventLoop, stamp: Stamp) {
    sh.complete(lp, sh.now_ns().saturating_sub(stamp.t_ns));
    let Some(slot) = sh.senders.get(stamp.sender) else {
        return;
    };
    let delivered = slot.delivered.fetch_add(1, Ordering::AcqRel) + 1;
    if delivered % sh.per_msg != 0 || sh.phase() >= Phase::Drain {
        return;
    }
    let Some(&sender) = slot.conn.get() else {
        return;
    };
    if sender.loop_index() == lp.index() {
        delivered_to(sh, lp, sender);
    } else {
        // The sender's context lives on its own loop: only that loop may touch it.
        let sh2 = sh.clone();
        sh.handles[sender.loop_index() - 1].queue_in_loop(move |lp| delivered_to(&sh2, lp, sender));
    }
}

fn delivered_to(sh: &Shared, lp: &mut EventLoop, sender: ConnId) {
    if let Some(role) = Conn::role_of(lp, sender) {
        role.on_delivered(sh, lp, sender);
    }
}
