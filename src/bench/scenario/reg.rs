//! `reg`: registrations per second, `--connections` connections with one REG_MSG in flight each.
//!
//! The same role registers the users of the other scenarios during their set-up (`setup`:
//! a fixed number of users, kept, not measured).

use super::timed_report;
use crate::bench::driver::{describe, send_with, Bench, Conn, Phase, Role, SendMode, Shared, User};
use crate::bench::stats::{LoopStats, Report};
use crate::bench::BenchConfig;
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Sends the next registration, under a fresh name, unless the run or the quota is over.
pub fn send_next(sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
    let setup = matches!(
        lp.context::<Conn>(conn).map(|c| &c.role),
        Some(Role::Registrar { setup: true })
    );
    if !setup && sh.phase() >= Phase::Drain {
        return;
    }
    let n = sh.reg_next.fetch_add(1, Ordering::AcqRel);
    if n >= sh.reg_limit.load(Ordering::Acquire) {
        return;
    }
    let name = format!("{}{n}", sh.tag);
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    c.sent_at = Instant::now();
    c.user.name = name.clone();
    send_with(sh, lp, conn, SendMode::Now, |b| {
        sh.wire.register(b, &name, &sh.password)
    });
}

pub fn on_reply(
    sh: &Shared,
    lp: &mut EventLoop,
    conn: ConnId,
    setup: bool,
    reply: &crate::bench::wire::Reply,
) {
    if reply.msgid != msgid::REG_MSG_ACK && reply.msgid != msgid::ERROR_MSG {
        return;
    }
    let Some(c) = lp.context::<Conn>(conn) else {
        return;
    };
    let latency = c.sent_at.elapsed().as_nanos() as u64;
    let user = User {
        id: reply.id.unwrap_or_default(),
        name: c.user.name.clone(),
    };
    let ok = reply.msgid == msgid::REG_MSG_ACK && reply.errno == 0;
    if !ok && reply.msgid == msgid::REG_MSG_ACK {
        LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
    }
    if setup {
        if !ok {
            return sh.fail(format!(
                "registering {} failed: {}",
                user.name,
                describe(reply)
            ));
        }
        sh.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user);
        sh.ready.fetch_add(1, Ordering::AcqRel);
    }
    sh.complete(lp, latency);
    send_next(sh, lp, conn);
}

pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    let n = cfg.connections;
    let target = cfg.target;
    let mut b = Bench::start(cfg, 0, 1)?;
    for _ in 0..n {
        b.connect(
            target,
            Conn::new(Role::Registrar { setup: false }, User::default()),
        )?;
    }
    b.wait_ready("connecting", n)?;
    let setup_s = b.age();
    let w = b.timed("registrations", 1, |b| {
        b.broadcast(|sh, lp, conn| {
            if matches!(
                lp.context::<Conn>(conn).map(|c| &c.role),
                Some(Role::Registrar { setup: false })
            ) {
                send_next(sh, lp, conn);
            }
        })
    })?;
    let mut r = timed_report(&b, &w, "registrations", setup_s);
    r.set("connections", n);
    Ok(r)
}
