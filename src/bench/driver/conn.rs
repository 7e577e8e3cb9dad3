//! A client connection's context ([`Conn`]), the [`Role`] a scenario gives it, and sending.

use super::shared::{Phase, Shared, User};
use crate::bench::stats::LoopStats;
use crate::bench::wire::Reply;
use crate::net::{ConnId, EventLoop};
use crate::protocol::Framer;
use std::any::Any;
use std::cell::RefCell;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

/// Largest reply the client accepts (a login ack lists every group with its members).
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// What a connection does, decided by the scenario that opened it; every call runs on the
/// connection's loop. The driver only frames input, counts and paces: the rest is here.
pub trait Role: Any + Debug + Send + Sync {
    /// The connection is adopted and has its [`Conn`].
    fn on_connection(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId);

    /// A frame that is not a bench message arrived (error replies are already counted).
    fn on_reply(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply);

    /// The timed part of the run begins (warm-up first): start sending.
    fn on_start(&self, _sh: &Shared, _lp: &mut EventLoop, _conn: ConnId) {}

    /// One of this connection's bench messages got all its deliveries: room for another.
    fn on_delivered(&self, _sh: &Shared, _lp: &mut EventLoop, _conn: ConnId) {}
}

/// Where a connection is in its own conversation with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Idle,
    Waiting,
    LoggedIn,
    LoggingOut,
}

/// The context of each client connection.
pub struct Conn {
    pub framer: Framer,
    /// Shared, so a loop can call it while it lends the loop (and this context) out.
    pub role: Arc<dyn Role>,
    pub user: User,
    pub step: Step,
    /// When the request in flight was sent (one-at-a-time roles).
    pub sent_at: Instant,
    pub seq: u64,
    /// Closed on purpose: not an error.
    pub closing: bool,
    /// Chat messages received since the login, and the count last acknowledged (`--acks`).
    pub received: u64,
    pub acked: u64,
}

impl Conn {
    pub fn new(role: impl Role, user: User) -> Conn {
        Conn {
            framer: Framer::new(MAX_REPLY),
            role: Arc::new(role),
            user,
            step: Step::Idle,
            sent_at: Instant::now(),
            seq: 0,
            closing: false,
            received: 0,
            acked: 0,
        }
    }

    /// Whether this connection plays a role of type `R`.
    pub fn plays<R: Role>(&self) -> bool {
        let role: &dyn Any = &*self.role;
        role.is::<R>()
    }

    /// The role of `conn`, if it is still there.
    pub fn role_of(lp: &EventLoop, conn: ConnId) -> Option<Arc<dyn Role>> {
        lp.context::<Conn>(conn).map(|c| c.role.clone())
    }
}

thread_local! {
    /// Each loop builds its requests here, so sending allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// How [`send_with`] sends and whether the request counts as `sent` (a measured request,
/// due a completion) or is part of the set-up (a login, a group join, a logout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// Written at once; counted.
    Now,
    /// Written at the end of the loop turn with everything else queued for the connection
    /// (a burst of messages leaves in one write); counted.
    Later,
    /// Written at once; not counted.
    Uncounted,
}

/// Builds a request with `build` and sends it on `conn` as `how` says.
pub fn send_with(
    sh: &Shared,
    lp: &mut EventLoop,
    conn: ConnId,
    how: SendMode,
    build: impl FnOnce(&mut Vec<u8>),
) {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        build(&mut buf);
        let sent = if how == SendMode::Later {
            lp.send_later(conn, &buf)
        } else {
            lp.send(conn, &buf)
        };
        if sent && how != SendMode::Uncounted {
            LoopStats::add(&sh.stats.of(lp.index()).sent, 1);
        }
    });
}

/// Where a sender's bench messages go: `sender` is its slot in [`Shared::senders`], `to` a
/// user or (`group`) a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub sender: usize,
    pub to: i64,
    pub group: bool,
}

/// Sends the next bench message of a sender (nothing once the measured window has ended).
pub fn send_chat(sh: &Shared, lp: &mut EventLoop, conn: ConnId, route: Route) {
    if sh.phase() >= Phase::Drain {
        return;
    }
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    let seq = c.seq;
    c.seq += 1;
    // Moved out rather than cloned: sending needs the loop, which this borrow holds.
    let user = std::mem::take(&mut c.user);
    let now = sh.now_ns();
    send_with(sh, lp, conn, SendMode::Later, |b| {
        sh.wire.chat(
            b,
            route.group,
            (user.id, &user.name),
            route.to,
            route.sender,
            seq,
            now,
            sh.cfg.size,
        )
    });
    if let Some(c) = lp.context_mut::<Conn>(conn) {
        c.user = user;
    }
}
