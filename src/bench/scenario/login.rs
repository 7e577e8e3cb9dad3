//! `login`: logins per second over `--connections` connections, one login in flight each.
//!
//! Protocol v1: each connection logs in, logs out (LOGINOUT_ACK), logs in again: the
//! connection is kept, so a login costs what the server does for it (the password check
//! above all), not a TCP handshake. `--legacy`: the seeds' server does not answer a logout,
//! so each login gets a fresh connection, closed after the ack; users rotate over a pool
//! twice the size of the connection count so a user's previous close is processed first.

use super::reg::register_users;
use super::{send_login, timed, Scenario};
use crate::bench::driver::{send_with, Bench, Conn, Phase, Role, SendMode, Shared, Step, User};
use crate::bench::stats::{LoopStats, Report};
use crate::bench::wire::Reply;
use crate::net::{connect_nonblocking, ConnId, EventLoop};
use crate::protocol::msgid;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct Login;

impl Scenario for Login {
    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (n, target, legacy) = (b.sh.cfg.connections, b.sh.cfg.target, b.sh.cfg.legacy);
        let users: Arc<[User]> = register_users(b, if legacy { 2 * n } else { n })?.into();
        for (i, user) in users.iter().take(n).enumerate() {
            let role = Cycler {
                next: i + n,
                pool: users.clone(),
            };
            b.connect(target, Conn::new(role, user.clone()))?;
        }
        b.wait_ready("connecting", n)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        let (_, mut r) = timed(b, "logins", setup_s)?;
        r.set("connections", b.sh.cfg.connections);
        r.set(
            "mode",
            if b.sh.cfg.legacy {
                "reconnect per login"
            } else {
                "login/logout on a kept connection"
            },
        );
        Ok(r)
    }
}

/// Logs in and out (legacy: reconnects) over and over; `next` is the index in `pool` of the
/// user its next connection logs in (legacy only).
struct Cycler {
    next: usize,
    pool: Arc<[User]>,
}

impl fmt::Debug for Cycler {
    // The pool is every user of the run: no help in an error message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cycler").field("next", &self.next).finish()
    }
}

impl Role for Cycler {
    fn on_connection(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if sh.phase() == Phase::Setup {
            sh.ready.fetch_add(1, Ordering::AcqRel);
        } else {
            send_login(sh, lp, conn, SendMode::Now);
        }
    }

    fn on_reply(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
        let Some(c) = lp.context::<Conn>(conn) else {
            return;
        };
        let (step, user, latency) = (c.step, c.user.id, c.sent_at.elapsed().as_nanos() as u64);
        let running = sh.phase() < Phase::Drain;
        match (reply.msgid, step) {
            (msgid::LOGIN_MSG_ACK | msgid::ERROR_MSG, Step::Waiting) => {
                if reply.errno != 0 && reply.msgid == msgid::LOGIN_MSG_ACK {
                    LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
                }
                sh.complete(lp, latency);
                if sh.cfg.legacy {
                    self.reconnect(sh, lp, conn);
                } else if reply.errno != 0 {
                    if running {
                        send_login(sh, lp, conn, SendMode::Now);
                    }
                } else if running {
                    if let Some(c) = lp.context_mut::<Conn>(conn) {
                        c.step = Step::LoggingOut;
                    }
                    send_with(sh, lp, conn, SendMode::Uncounted, |b| {
                        sh.wire.logout(b, user)
                    });
                }
            }
            (msgid::LOGINOUT_ACK, Step::LoggingOut) if running => {
                send_login(sh, lp, conn, SendMode::Now)
            }
            _ => {}
        }
    }

    fn on_start(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        send_login(sh, lp, conn, SendMode::Now);
    }
}

impl Cycler {
    /// Legacy: closes this connection and logs the next user of its rotation in on a new one.
    fn reconnect(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        let Some(c) = lp.context_mut::<Conn>(conn) else {
            return;
        };
        c.closing = true;
        lp.force_close(conn);
        if sh.phase() >= Phase::Drain {
            return;
        }
        let user = self.pool[self.next % self.pool.len()].clone();
        let Some(handler) = sh.handler() else {
            return;
        };
        let stream = match connect_nonblocking(sh.cfg.target, Duration::from_secs(5)) {
            Ok(stream) => stream,
            Err(e) => return sh.fail(format!("reconnect failed: {e}")),
        };
        match lp.adopt(stream, handler) {
            Ok(id) => {
                let role = Cycler {
                    next: self.next + sh.cfg.connections,
                    pool: self.pool.clone(),
                };
                lp.set_context(id, Box::new(Conn::new(role, user)));
            }
            Err(e) => sh.fail(format!("adopt failed: {e}")),
        }
    }
}
