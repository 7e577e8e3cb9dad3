//! `reg`: registrations per second, `--connections` connections with one REG_MSG in flight each.
//!
//! The same role registers the users of the other scenarios during their set-up
//! ([`register_users`]: a fixed number of users, kept, not measured).

use super::{timed, Scenario};
use crate::bench::driver::{send_with, Bench, Conn, Phase, Role, SendMode, Shared, User};
use crate::bench::stats::{LoopStats, Report};
use crate::bench::wire::Reply;
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Connections that register users during set-up.
const REGISTRARS: usize = 16;

pub struct Reg;

impl Scenario for Reg {
    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (n, target) = (b.sh.cfg.connections, b.sh.cfg.target);
        let registry = Arc::new(Registry::new(false, u64::MAX));
        for _ in 0..n {
            let role = Registrar(registry.clone());
            b.connect(target, Conn::new(role, User::default()))?;
        }
        b.wait_ready("connecting", n)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        let (_, mut r) = timed(b, "registrations", setup_s)?;
        r.set("connections", b.sh.cfg.connections);
        Ok(r)
    }
}

/// Registers `count` users over a few connections (not measured) and returns them.
pub fn register_users(b: &mut Bench, count: usize) -> Result<Vec<User>, String> {
    let registry = Arc::new(Registry::new(true, count as u64));
    b.sh.ready.store(0, Ordering::Release);
    let target = b.sh.cfg.target;
    for _ in 0..REGISTRARS.min(count) {
        let role = Registrar(registry.clone());
        b.connect(target, Conn::new(role, User::default()))?;
    }
    b.wait_ready("registering users", count)?;
    b.broadcast(|_, lp, conn| {
        if let Some(c) = lp.context_mut::<Conn>(conn) {
            if c.plays::<Registrar>() {
                c.closing = true;
                lp.force_close(conn);
            }
        }
    })?;
    b.sh.ready.store(0, Ordering::Release);
    let users = std::mem::take(&mut *registry.users.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(users)
}

/// What the registrars of one purpose share: the names handed out so far (a counter, so
/// names never collide across connections) and, in set-up, the users they made.
struct Registry {
    /// Set-up: keep the users, register `limit` of them whatever the phase, fail on refusal.
    setup: bool,
    next: AtomicU64,
    limit: u64,
    users: Mutex<Vec<User>>,
}

impl Registry {
    fn new(setup: bool, limit: u64) -> Registry {
        Registry {
            setup,
            next: AtomicU64::new(0),
            limit,
            users: Mutex::new(Vec::new()),
        }
    }
}

/// Registers users, one request in flight; set-up ones start at once, measured ones when the
/// timed part starts.
struct Registrar(Arc<Registry>);

impl fmt::Debug for Registrar {
    // The registry's users are no help in an error message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registrar")
            .field("setup", &self.0.setup)
            .finish()
    }
}

impl Role for Registrar {
    fn on_connection(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if self.0.setup {
            self.send_next(sh, lp, conn);
        } else {
            sh.ready.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn on_reply(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
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
        if self.0.setup {
            if !ok {
                return sh.fail(format!(
                    "registering {} failed: {}",
                    user.name,
                    reply.describe()
                ));
            }
            self.0
                .users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(user);
            sh.ready.fetch_add(1, Ordering::AcqRel);
        }
        sh.complete(lp, latency);
        self.send_next(sh, lp, conn);
    }

    fn on_start(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if !self.0.setup {
            self.send_next(sh, lp, conn);
        }
    }
}

impl Registrar {
    /// Sends the next registration, under a fresh name, unless the run or the quota is over.
    fn send_next(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if !self.0.setup && sh.phase() >= Phase::Drain {
            return;
        }
        let n = self.0.next.fetch_add(1, Ordering::AcqRel);
        if n >= self.0.limit {
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
}
