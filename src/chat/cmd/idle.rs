//! Connections that are not logged in: closed after `login_idle` without a complete frame
//! (registration and failed logins count as activity: a person at the seeds' client's menu
//! is not a bot), and, if `login_deadline` is set, that long after connecting or logging out
//! whatever they send. One sweep timer per loop over a heap of deadlines.

use crate::chat::conn_state::ChatConn;
use crate::chat::service::ChatService;
use crate::ids::ConnId;
use crate::net::EventLoop;
use crate::protocol::{reply, ErrorCode};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One loop's not-logged-in connections by deadline. A renewed deadline is not pushed again
/// at once: the sweep finds the entry due, sees the later deadline and pushes that instead,
/// so a chatty unauthenticated client costs one heap entry, not one per frame.
#[derive(Default)]
struct Deadlines(BinaryHeap<Reverse<(Instant, ConnId)>>);

/// On each loop, once at start: the sweep timer.
pub(crate) fn attach(svc: &Arc<ChatService>, lp: &mut EventLoop) {
    let shortest = match svc.config.login_deadline {
        Some(bound) => bound.min(svc.config.login_idle),
        None => svc.config.login_idle,
    };
    let every = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    lp.run_every(every, close_expired);
}

/// The connection is (again) not logged in: from now on it must send or log in in time.
pub(crate) fn arm(svc: &ChatService, lp: &mut EventLoop, conn: ConnId) {
    let now = Instant::now();
    let idle = now + svc.config.login_idle;
    let bound = svc.config.login_deadline.map(|d| now + d);
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.idle_deadline = Some(idle);
    c.login_deadline = bound;
    let first = bound.map_or(idle, |b| b.min(idle));
    lp.state::<Deadlines>().0.push(Reverse((first, conn)));
}

/// A complete frame arrived from a connection that is not logged in.
pub(crate) fn touch(svc: &ChatService, c: &mut ChatConn) {
    if c.idle_deadline.is_some() {
        c.idle_deadline = Some(Instant::now() + svc.config.login_idle);
    }
}

/// The sweep: closes connections whose deadline passed while they were still not logged in;
/// entries whose deadline moved later go back into the heap with it.
fn close_expired(lp: &mut EventLoop) {
    let now = Instant::now();
    loop {
        let heap = &mut lp.state::<Deadlines>().0;
        let due = match heap.peek() {
            Some(Reverse((deadline, _))) if *deadline <= now => heap.pop(),
            _ => None,
        };
        let Some(Reverse((_, conn))) = due else {
            return;
        };
        let watched = lp.context::<ChatConn>(conn).and_then(|c| {
            let idle = c.idle_deadline.filter(|_| c.user.is_none())?;
            let deadline = c.login_deadline.map_or(idle, |b| b.min(idle));
            Some((deadline, c.pending_login.is_some()))
        });
        match watched {
            None => {} // logged in, or gone
            // A login being checked is not idle; if it fails, the deadline still holds.
            Some((deadline, logging_in)) if deadline > now || logging_in => {
                let later = deadline.max(now + Duration::from_millis(100));
                lp.state::<Deadlines>().0.push(Reverse((later, conn)));
            }
            Some(_) => {
                // The last frame it gets: written at once, then the connection closes.
                let bye = reply::error(
                    ErrorCode::NotLoggedIn,
                    Some("closing an idle connection"),
                    None,
                );
                lp.send(conn, &bye);
                lp.close_after_flush(conn);
            }
        }
    }
}
