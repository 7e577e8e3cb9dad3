//! The watchdog: one sweep timer per loop over a heap of per-connection check times, and the
//! rules it applies ([`verdict`], pure). It closes
//! - a connection that is not logged in after `login_idle` without a complete frame
//!   (registering and failed logins count: a person at the seeds' client's menu is not a
//!   bot), or `login_deadline` after connecting or logging out, if that bound is set;
//! - a logged-in modern client that stays silent `heartbeat_timeout` after a HEARTBEAT_MSG,
//!   which it is sent after `heartbeat_interval` of silence (a half-open connection: a phone
//!   that lost its network, a frozen process). The seeds' client never answers one: it gets
//!   TCP keepalive only, which finds a dead peer host or network, not a frozen process;
//! - a slow reader still far behind `slow_reader_deadline` after it fell behind
//!   (delivery.rs, "Backlog").
//!
//! A close stores whatever the connection had not delivered (handler.rs, `on_close`).

use crate::chat::conn_state::ChatConn;
use crate::chat::outbound::Dialect;
use crate::chat::service::{ChatConfig, ChatService};
use crate::ids::ConnId;
use crate::net::EventLoop;
use crate::protocol::{reply, ErrorCode};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the watchdog knows of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Watch {
    /// Not logged in: closed at this time unless a frame arrives first.
    pub(crate) idle_deadline: Option<Instant>,
    /// Not logged in: closed at this time whatever it sends.
    pub(crate) login_deadline: Option<Instant>,
    /// When the connection last sent anything.
    pub(crate) last_heard: Option<Instant>,
    /// When the last HEARTBEAT_MSG went out.
    pub(crate) ping_sent: Option<Instant>,
    /// Far behind since then (see delivery.rs).
    pub(crate) stalled_since: Option<Instant>,
    /// The earliest check already in the heap for this connection.
    pub(crate) queued_at: Option<Instant>,
}

/// The rules' settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clocks {
    pub(crate) heartbeat: Option<(Duration, Duration)>,
    pub(crate) slow_reader_deadline: Duration,
}

impl Clocks {
    pub(crate) fn of(config: &ChatConfig) -> Clocks {
        Clocks {
            heartbeat: config.heartbeat,
            slow_reader_deadline: config.slow_reader_deadline,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Close(ErrorCode, &'static str),
    /// Send a HEARTBEAT_MSG now.
    Ping,
    /// Nothing to do before this time.
    Later(Instant),
    /// Nothing to watch for.
    Unwatched,
}

/// Where a connection stands, for the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    Anonymous,
    Authenticating,
    Session { heartbeats: bool },
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// The rules (see the module doc).
pub(crate) fn verdict(w: &Watch, standing: Standing, clocks: &Clocks, now: Instant) -> Verdict {
    match standing {
        // A login being checked is not idle; if it fails, the deadlines still hold.
        Standing::Authenticating => Verdict::Later(now + Duration::from_millis(100)),
        Standing::Anonymous => {
            let due = match (w.idle_deadline, w.login_deadline) {
                (Some(idle), Some(bound)) => idle.min(bound),
                (Some(due), None) | (None, Some(due)) => due,
                (None, None) => return Verdict::Unwatched,
            };
            if due <= now {
                Verdict::Close(ErrorCode::NotLoggedIn, "closing an idle connection")
            } else {
                Verdict::Later(due)
            }
        }
        Standing::Session { heartbeats } => {
            let mut next = None;
            if let Some(since) = w.stalled_since {
                let due = since + clocks.slow_reader_deadline;
                if due <= now {
                    return Verdict::Close(
                        ErrorCode::SlowReader,
                        "closing a connection that does not read",
                    );
                }
                next = earliest(next, due);
            }
            if let (true, Some((interval, timeout))) = (heartbeats, clocks.heartbeat) {
                let heard = w.last_heard.unwrap_or(now);
                match w.ping_sent {
                    Some(at) if heard < at => {
                        let due = at + timeout;
                        if due <= now {
                            return Verdict::Close(
                                ErrorCode::TimedOut,
                                "no answer to the heartbeat",
                            );
                        }
                        next = earliest(next, due);
                    }
                    _ => {
                        let due = heard + interval;
                        if due <= now {
                            return Verdict::Ping;
                        }
                        next = earliest(next, due);
                    }
                }
            }
            next.map_or(Verdict::Unwatched, Verdict::Later)
        }
    }
}

/// One loop's connections by check time (one live entry per connection; entries made stale by
/// a later `watch` are skipped when they come due).
#[derive(Default)]
struct Checks(BinaryHeap<Reverse<(Instant, ConnId)>>);

/// On each loop, once at start: the sweep timer.
pub(crate) fn attach(svc: &Arc<ChatService>, lp: &mut EventLoop) {
    let config = &svc.config;
    let mut shortest = config.login_idle.min(config.slow_reader_deadline);
    if let Some(bound) = config.login_deadline {
        shortest = shortest.min(bound);
    }
    if let Some((interval, timeout)) = config.heartbeat {
        shortest = shortest.min(interval).min(timeout);
    }
    let every = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let clocks = Clocks::of(config);
    lp.run_every(every, move |lp| sweep(lp, &clocks));
}

/// Makes sure `conn` is looked at by `at`.
pub(crate) fn watch(lp: &mut EventLoop, conn: ConnId, at: Instant) {
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    if c.watch.queued_at.is_some_and(|queued| queued <= at) {
        return;
    }
    c.watch.queued_at = Some(at);
    lp.state::<Checks>().0.push(Reverse((at, conn)));
}

/// The connection is (again) not logged in: from now on it must send or log in in time.
pub(crate) fn not_logged_in(svc: &ChatService, lp: &mut EventLoop, conn: ConnId) {
    let now = Instant::now();
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.watch.idle_deadline = Some(now + svc.config.login_idle);
    c.watch.login_deadline = svc.config.login_deadline.map(|d| now + d);
    c.watch.stalled_since = None;
    let first = match c.watch.login_deadline {
        Some(bound) => bound.min(now + svc.config.login_idle),
        None => now + svc.config.login_idle,
    };
    watch(lp, conn, first);
}

/// The connection logged in: no login clocks any more; heartbeats from now on.
pub(crate) fn logged_in(svc: &ChatService, lp: &mut EventLoop, conn: ConnId) {
    let now = Instant::now();
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.watch.idle_deadline = None;
    c.watch.login_deadline = None;
    c.watch.last_heard = Some(now);
    c.watch.ping_sent = None;
    if let Some((interval, _)) = svc.config.heartbeat {
        watch(lp, conn, now + interval);
    }
}

/// A complete frame arrived from a connection that is not logged in.
pub(crate) fn frame_before_login(svc: &ChatService, c: &mut ChatConn) {
    if c.watch.idle_deadline.is_some() {
        c.watch.idle_deadline = Some(Instant::now() + svc.config.login_idle);
    }
}

fn standing(c: &ChatConn) -> Standing {
    match (c.user, c.pending_login) {
        (Some(_), _) => Standing::Session {
            heartbeats: c.dialect != Dialect::Seeds,
        },
        (None, Some(_)) => Standing::Authenticating,
        (None, None) => Standing::Anonymous,
    }
}

fn sweep(lp: &mut EventLoop, clocks: &Clocks) {
    let now = Instant::now();
    loop {
        let heap = &mut lp.state::<Checks>().0;
        let due = match heap.peek() {
            Some(Reverse((at, _))) if *at <= now => heap.pop(),
            _ => None,
        };
        let Some(Reverse((at, conn))) = due else {
            return;
        };
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            continue; // gone
        };
        if c.watch.queued_at != Some(at) {
            continue; // a later check replaced this one
        }
        c.watch.queued_at = None;
        match verdict(&c.watch, standing(c), clocks, now) {
            Verdict::Unwatched => {}
            Verdict::Later(at) => watch(lp, conn, at),
            Verdict::Ping => {
                c.watch.ping_sent = Some(now);
                lp.send(conn, &reply::heartbeat());
                if let Some((_, timeout)) = clocks.heartbeat {
                    watch(lp, conn, now + timeout);
                }
            }
            Verdict::Close(code, why) => {
                log::info!("{conn:?}: {why}");
                // The last frame it gets: written at once, then the connection closes
                // (what it had not delivered is stored by the close).
                lp.send(conn, &reply::error(code, Some(why), None));
                lp.close_after_flush(conn);
                // A peer that does not read never lets the output drain: the frame gets a
                // moment to leave, then the connection goes anyway.
                lp.run_after(CLOSE_GRACE, move |lp| lp.force_close(conn));
            }
        }
    }
}

/// How long a closing connection's last frame may wait for a reader before the close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn clocks() -> Clocks {
        Clocks {
            heartbeat: Some((25 * S, 8 * S)),
            slow_reader_deadline: 60 * S,
        }
    }

    #[test]
    fn before_login_idle_and_bound() {
        let t = Instant::now();
        let w = Watch {
            idle_deadline: Some(t + 10 * S),
            login_deadline: Some(t + 5 * S),
            ..Watch::default()
        };
        let c = clocks();
        assert_eq!(
            verdict(&w, Standing::Anonymous, &c, t),
            Verdict::Later(t + 5 * S)
        );
        assert!(matches!(
            verdict(&w, Standing::Anonymous, &c, t + 5 * S),
            Verdict::Close(..)
        ));
        assert!(matches!(
            verdict(&w, Standing::Authenticating, &c, t + 20 * S),
            Verdict::Later(_)
        ));
    }

    #[test]
    fn heartbeat_then_close_unless_answered() {
        let t = Instant::now();
        let c = clocks();
        let on = Standing::Session { heartbeats: true };
        let mut w = Watch {
            last_heard: Some(t),
            ..Watch::default()
        };
        assert_eq!(verdict(&w, on, &c, t + S), Verdict::Later(t + 25 * S));
        assert_eq!(verdict(&w, on, &c, t + 25 * S), Verdict::Ping);
        w.ping_sent = Some(t + 25 * S);
        assert_eq!(verdict(&w, on, &c, t + 26 * S), Verdict::Later(t + 33 * S));
        assert!(matches!(
            verdict(&w, on, &c, t + 33 * S),
            Verdict::Close(..)
        ));
        // An answer after the ping starts the interval again.
        w.last_heard = Some(t + 30 * S);
        assert_eq!(verdict(&w, on, &c, t + 33 * S), Verdict::Later(t + 55 * S));
        // The seeds' client gets none.
        let seeds = Standing::Session { heartbeats: false };
        assert_eq!(verdict(&w, seeds, &c, t + 100 * S), Verdict::Unwatched);
    }

    #[test]
    fn a_stalled_reader_is_closed_after_the_deadline() {
        let t = Instant::now();
        let w = Watch {
            stalled_since: Some(t),
            ..Watch::default()
        };
        let seeds = Standing::Session { heartbeats: false };
        assert_eq!(verdict(&w, seeds, &clocks(), t), Verdict::Later(t + 60 * S));
        assert!(matches!(
            verdict(&w, seeds, &clocks(), t + 60 * S),
            Verdict::Close(..)
        ));
    }
}
