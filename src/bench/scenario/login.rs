//! `login`: logins per second over `--connections` connections, one login in flight each.
//!
//! Protocol v1: each connection logs in, logs out (LOGINOUT_ACK), logs in again: the
//! connection is kept, so a login costs what the server does for it (the password check
//! above all), not a TCP handshake. `--legacy`: the seeds' server does not answer a logout,
//! so each login gets a fresh connection, closed after the ack; users rotate over a pool
//! twice the size of the connection count so a user's previous close is processed first.

use super::timed_report;
use crate::bench::driver::{
    send_login, send_with, Bench, Conn, Phase, Role, SendMode, Shared, Step,
};
use crate::bench::stats::{LoopStats, Report};
use crate::bench::wire::Reply;
use crate::bench::BenchConfig;
use crate::net::{connect_nonblocking, ConnId, EventLoop};
use crate::protocol::msgid;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn on_connection(sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
    if sh.phase() == Phase::Setup {
        sh.ready.fetch_add(1, Ordering::AcqRel);
    } else {
        send_login(sh, lp, conn, SendMode::Now);
    }
}

pub fn on_reply(sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
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
                reconnect(sh, lp, conn);
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

/// Legacy: closes this connection and logs the next user of its rotation in on a new one.
fn reconnect(sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    c.closing = true;
    let Role::Cycler { next } = c.role else {
        return;
    };
    lp.force_close(conn);
    if sh.phase() >= Phase::Drain {
        return;
    }
    let user = {
        let users = sh.users.lock().unwrap_or_else(|e| e.into_inner());
        users[next % users.len()].clone()
    };
    let Some(handler) = sh.handler() else {
        return;
    };
    let stream = match connect_nonblocking(sh.cfg.target, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(e) => return sh.fail(format!("reconnect failed: {e}")),
    };
    match lp.adopt(stream, handler) {
        Ok(id) => {
            let role = Role::Cycler {
                next: next + sh.cfg.connections,
            };
            lp.set_context(id, Box::new(Conn::new(role, user)));
        }
        Err(e) => sh.fail(format!("adopt failed: {e}")),
    }
}

pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    let n = cfg.connections;
    let (target, legacy) = (cfg.target, cfg.legacy);
    let mut b = Bench::start(cfg, 0, 1)?;
    let users = b.register_users(if legacy { 2 * n } else { n })?;
    if legacy {
        *b.sh.users.lock().unwrap_or_else(|e| e.into_inner()) = users.clone();
    }
    for (i, user) in users.iter().take(n).enumerate() {
        b.connect(
            target,
            Conn::new(Role::Cycler { next: i + n }, user.clone()),
        )?;
    }
    b.wait_ready("connecting", n)?;
    let setup_s = b.age();
    let w = b.timed("logins", 1, |b| {
        b.broadcast(|sh, lp, conn| {
            if matches!(
                lp.context::<Conn>(conn).map(|c| &c.role),
                Some(Role::Cycler { .. })
            ) {
                send_login(sh, lp, conn, SendMode::Now);
            }
        })
    })?;
    let mut r = timed_report(&b, &w, "logins", setup_s);
    r.set("connections", n);
    r.set(
        "mode",
        if legacy {
            "reconnect per login"
        } else {
            "login/logout on a kept connection"
        },
    );
    Ok(r)
}
