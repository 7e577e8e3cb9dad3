//! `login`: logins per second over `--connections` connections, one login in flight each.
//!
//! Protocol v1: each connection logs in, logs out (LOGINOUT_ACK), logs in again: the
//! connection is kept, so a login costs what the server does for it (the password check
//! above all), not a TCP handshake. `--legacy`: the seeds' server does not answer a logout,
//! so each login gets a fresh connection, closed after the ack; users rotate over a pool
//! twice the size of the connection count so a user's previous close is processed first.
//!
//! `--token`: resume-token logins. In the set-up each user of the pool (four times the
//! connection count) logs in once with its password and keeps the ack's token, then its connection is
//! closed (not logged out: a logout revokes the token). Measured: as `--legacy`, a fresh
//! connection per login, closed after the ack, but the login carries the token.

use super::reg::register_users;
use super::{send_login, send_token_login, timed, Scenario};
use crate::bench::driver::{send_with, Bench, Conn, Phase, Role, SendMode, Shared, Step, User};
use crate::bench::stats::{LoopStats, Report};
use crate::bench::wire::Reply;
use crate::net::{connect_nonblocking, ConnId, EventLoop};
use crate::protocol::msgid;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Login;

impl Scenario for Login {
    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (n, target) = (b.sh.cfg.connections, b.sh.cfg.target);
        // A user logs in again only after the server processed its previous close: token
        // logins come faster than the seeds' password logins, so their pool is larger.
        let pool = match (b.sh.cfg.token, b.sh.cfg.legacy) {
            (true, _) => 4 * n,
            (false, true) => 2 * n,
            (false, false) => n,
        };
        let users: Arc<[User]> = register_users(b, pool)?.into();
        let tokens = Tokens::default();
        if b.sh.cfg.token {
            b.sh.ready.store(0, Ordering::Release);
            for user in users.iter() {
                b.connect(
                    target,
                    Conn::new(TokenFetcher(tokens.clone()), user.clone()),
                )?;
            }
            b.wait_ready("getting resume tokens", users.len())?;
            b.sh.ready.store(0, Ordering::Release);
        }
        for (i, user) in users.iter().take(n).enumerate() {
            let role = Cycler {
                next: i + n,
                pool: users.clone(),
                tokens: tokens.clone(),
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
            if b.sh.cfg.token {
                "resume token, reconnect per login"
            } else if b.sh.cfg.legacy {
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
    tokens: Tokens,
}

/// Each user's resume token (`--token`), from its set-up login or its latest ack.
type Tokens = Arc<Mutex<HashMap<i64, String>>>;

fn token_of(tokens: &Tokens, user: i64) -> Option<String> {
    tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&user)
        .cloned()
}

fn keep_token(tokens: &Tokens, user: i64, reply: &Reply) {
    if let Some(token) = &reply.token {
        tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, token.clone());
    }
}

/// `--token` set-up: logs in with the password, keeps the ack's token, closes.
#[derive(Debug)]
struct TokenFetcher(Tokens);

impl Role for TokenFetcher {
    fn on_connection(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        send_login(sh, lp, conn, SendMode::Uncounted);
    }

    fn on_reply(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
        if reply.msgid != msgid::LOGIN_MSG_ACK {
            return;
        }
        let Some(c) = lp.context_mut::<Conn>(conn) else {
            return;
        };
        let user = c.user.id;
        if reply.errno != 0 {
            return sh.fail(format!("login of {user} refused: {}", reply.describe()));
        }
        if reply.token.is_none() {
            return sh.fail(
                "the server issued no resume token (a server without resume tokens?)".into(),
            );
        }
        keep_token(&self.0, user, reply);
        c.closing = true;
        lp.force_close(conn);
        sh.ready.fetch_add(1, Ordering::AcqRel);
    }
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
            self.login(sh, lp, conn);
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
                if sh.cfg.token {
                    keep_token(&self.tokens, user, reply);
                }
                if sh.cfg.legacy || sh.cfg.token {
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
        self.login(sh, lp, conn);
    }
}

impl Cycler {
    /// The measured login: with the user's token (`--token`), else with the password.
    fn login(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        if !sh.cfg.token {
            return send_login(sh, lp, conn, SendMode::Now);
        }
        let Some(user) = lp.context::<Conn>(conn).map(|c| c.user.id) else {
            return;
        };
        match token_of(&self.tokens, user) {
            Some(token) => send_token_login(sh, lp, conn, &token),
            None => sh.fail(format!("no resume token for user {user}")),
        }
    }

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
                    tokens: self.tokens.clone(),
                };
                lp.set_context(id, Box::new(Conn::new(role, user)));
            }
            Err(e) => sh.fail(format!("adopt failed: {e}")),
        }
    }
}
