//! The login deadline: connections that have not logged in within the configured time are
//! closed, by one sweep timer per loop over that loop's queue of deadlines.

use crate::chat::conn_state::ChatConn;
use crate::chat::service::ChatService;
use crate::ids::ConnId;
use crate::net::EventLoop;
use crate::protocol::{reply, ErrorCode};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One loop's unauthenticated connections, in deadline order: the timeout is the same for all,
/// so appending keeps the queue sorted, and one sweep serves them all (a timer per connection
/// would cost every idle user a timer-map slot).
#[derive(Default)]
struct Deadlines(VecDeque<(Instant, ConnId)>);

/// On each loop, once at start: the sweep timer.
pub(crate) fn attach(svc: &Arc<ChatService>, lp: &mut EventLoop) {
    let every = svc
        .config
        .auth_timeout
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    lp.run_every(every, close_expired);
}

/// Closes `conn` unless it has logged in within the configured time from now.
pub(crate) fn arm(svc: &ChatService, lp: &mut EventLoop, conn: ConnId) {
    let deadline = Instant::now() + svc.config.auth_timeout;
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.auth_deadline = Some(deadline);
    lp.state::<Deadlines>().0.push_back((deadline, conn));
}

/// The sweep: closes connections whose login deadline passed while they were still not
/// logged in (and whose deadline was not renewed since, by a logout).
fn close_expired(lp: &mut EventLoop) {
    let now = Instant::now();
    loop {
        let queue = &mut lp.state::<Deadlines>().0;
        let due = match queue.front() {
            Some(&(deadline, _)) if deadline <= now => queue.pop_front(),
            _ => None,
        };
        let Some((deadline, conn)) = due else { return };
        let idle = lp.context::<ChatConn>(conn).is_some_and(|c| {
            c.user.is_none() && c.pending_login.is_none() && c.auth_deadline == Some(deadline)
        });
        if idle {
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
