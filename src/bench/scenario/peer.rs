//! The logged-in user of `chat`, `group` and `idle`: logs in, then sends or just receives.

use super::send_login;
use crate::bench::driver::{send_chat, Conn, Role, Route, SendMode, Shared, Step};
use crate::bench::stats::LoopStats;
use crate::bench::wire::Reply;
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Where a sender's messages go.
#[derive(Debug)]
pub enum To {
    User(i64),
    /// The group's id, known only once its creator's ack came: shared by all its members.
    Group(Arc<AtomicI64>),
}

/// A user that logs in when it connects; a sender (`sender`: its slot) keeps `--inflight`
/// messages in flight to `to` from the start of the timed part, paced by deliveries.
#[derive(Debug)]
pub struct Peer {
    pub sender: Option<usize>,
    pub to: To,
}

impl Peer {
    /// A user that only receives.
    pub fn receiver() -> Peer {
        Peer {
            sender: None,
            to: To::User(0),
        }
    }

    fn route(&self) -> Option<Route> {
        let sender = self.sender?;
        Some(match &self.to {
            To::User(id) => Route {
                sender,
                to: *id,
                group: false,
            },
            To::Group(id) => Route {
                sender,
                to: id.load(Ordering::Acquire),
                group: true,
            },
        })
    }
}

impl Role for Peer {
    fn on_connection(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if let Some(idx) = self.sender {
            let _ = sh.senders[idx].conn.set(conn);
        }
        send_login(sh, lp, conn, SendMode::Uncounted);
    }

    fn on_reply(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
        match reply.msgid {
            msgid::LOGIN_MSG_ACK if reply.errno == 0 => {
                if let Some(c) = lp.context_mut::<Conn>(conn) {
                    c.step = Step::LoggedIn;
                }
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::LOGIN_MSG_ACK => sh.fail(format!("login refused: {}", reply.describe())),
            msgid::CREATE_GROUP_ACK if reply.errno == 0 => {
                if let To::Group(id) = &self.to {
                    id.store(reply.groupid.unwrap_or_default(), Ordering::Release);
                }
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::ADD_GROUP_ACK if reply.errno == 0 => {
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::ERROR_MSG => {} // counted by the driver
            _ => {
                // An ack chat-bench does not wait for is harmless; anything else is odd.
                if reply.errno != 0 {
                    LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
                }
            }
        }
    }

    fn on_start(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if let Some(route) = self.route() {
            for _ in 0..sh.cfg.inflight {
                send_chat(sh, lp, conn, route);
            }
        }
    }

    fn on_delivered(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if let Some(route) = self.route() {
            send_chat(sh, lp, conn, route);
        }
    }
}
