//! Register, login, logout, and the timer that closes connections that never log in.

use crate::chat::conn_state::ChatConn;
use crate::chat::service::{ChatService, Done};
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid::{LOGIN_MSG, REG_MSG};
use crate::protocol::{reply, ErrorCode, FriendView, GroupView, MemberView};
use crate::store::{Store, UserId};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// This loop's unauthenticated connections, in deadline order: the timeout is the same for
    /// all, so appending keeps the queue sorted and one sweep timer per loop serves them all
    /// (a timer per connection would cost every idle user a timer-map slot).
    static AUTH_DEADLINES: RefCell<VecDeque<(Instant, ConnId)>> = const { RefCell::new(VecDeque::new()) };
    static SWEEP_ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Closes `conn` if it has not logged in within the configured time.
pub(crate) fn arm_auth_timer(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId) {
    let deadline = Instant::now() + svc.config.auth_timeout;
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.auth_deadline = Some(deadline);
    AUTH_DEADLINES.with(|q| q.borrow_mut().push_back((deadline, conn)));
    if !SWEEP_ARMED.with(|armed| armed.replace(true)) {
        let every = svc
            .config
            .auth_timeout
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        lp.run_every(every, close_expired);
    }
}

/// The sweep: closes connections whose login deadline passed while they were still not
/// logged in (and whose deadline was not renewed since, by a logout).
fn close_expired(lp: &mut EventLoop) {
    let now = Instant::now();
    loop {
        let due = AUTH_DEADLINES.with(|q| {
            let mut q = q.borrow_mut();
            match q.front() {
                Some(&(deadline, _)) if deadline <= now => q.pop_front(),
                _ => None,
            }
        });
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

pub(crate) fn register(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    name: &str,
    password: &str,
) {
    let (name, password) = (name.to_owned(), password.to_owned());
    // Hashing is deliberately slow: it runs on a store worker, never on the loop.
    svc.run_busy(
        lp,
        conn,
        conn.as_u64() as i64,
        REG_MSG,
        move |svc, store| {
            let hash = match svc.hasher.hash(&password) {
                Ok(hash) => hash,
                Err(e) => {
                    log::error!("password hashing failed: {e}");
                    return Done::Reply(reply::error(ErrorCode::Internal, None, Some(REG_MSG)));
                }
            };
            match store.create_user(&name, &hash) {
                Ok(Some(id)) => Done::Reply(reply::reg_ok(id)),
                Ok(None) => Done::Reply(reply::reg_name_taken()),
                Err(e) => {
                    log::error!("register failed: {e}");
                    Done::Reply(reply::error(ErrorCode::Internal, None, Some(REG_MSG)))
                }
            }
        },
    );
}

pub(crate) fn login(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    password: String,
) {
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.pending_login = Some(user);
    }
    // Keyed by the user: stores for this user that were queued earlier land before the take.
    svc.run_busy(lp, conn, user, LOGIN_MSG, move |svc, store| {
        login_job(svc, store, conn, user, &password)
    });
}

fn login_job(
    svc: &ChatService,
    store: &dyn Store,
    conn: ConnId,
    user: UserId,
    password: &str,
) -> Done {
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        log::error!("login of {user}: {what} failed: {e}");
        Done::Reply(reply::error(ErrorCode::Internal, None, Some(LOGIN_MSG)))
    };
    let record = match store.user(user) {
        Ok(Some(record)) => record,
        Ok(None) => return Done::Reply(reply::login_invalid()),
        Err(e) => return internal("lookup", &e),
    };
    if !svc.hasher.verify(password, &record.password_hash) {
        return Done::Reply(reply::login_invalid());
    }
    if svc.is_stopping() {
        return Done::Reply(reply::error(
            ErrorCode::Internal,
            Some("server is stopping"),
            Some(LOGIN_MSG),
        ));
    }
    if !svc.sessions.claim(user, conn) {
        return Done::Reply(reply::login_in_use());
    }
    if let Some(cluster) = &svc.cluster {
        match cluster.claim(user, conn) {
            Ok(true) => {}
            Ok(false) => {
                svc.sessions.release(user, conn);
                return Done::Reply(reply::login_in_use());
            }
            Err(e) => {
                // Without Redis, exclusivity across servers cannot be checked: refuse for now.
                svc.sessions.release(user, conn);
                log::warn!("login of {user}: {e}");
                let detail = Some("cluster unavailable, retry");
                return Done::Reply(reply::error(ErrorCode::Internal, detail, Some(LOGIN_MSG)));
            }
        }
    }
    // From here deliveries to `user` reach `conn` (held there until the ack is out). The
    // offline messages are taken last, so nothing fails after they left the store.
    let friends = match store.friends(user) {
        Ok(friends) => friends,
        Err(e) => {
            svc.release_session(user, conn);
            return internal("friends", &e);
        }
    };
    let groups = match store.groups_of(user) {
        Ok(groups) => groups,
        Err(e) => {
            svc.release_session(user, conn);
            return internal("groups", &e);
        }
    };
    let offline = match store.take_offline(user) {
        Ok(offline) => offline,
        Err(e) => {
            svc.release_session(user, conn);
            return internal("offline messages", &e);
        }
    };
    let friend_ids: Vec<UserId> = friends.iter().map(|f| f.id).collect();
    let friend_views: Vec<FriendView> = friends
        .iter()
        .zip(svc.online_states(&friend_ids))
        .map(|(f, online)| FriendView {
            id: f.id,
            name: &f.name,
            online,
        })
        .collect();
    let group_views = group_views(svc, &groups);
    let ack = reply::login_ok(user, &record.name, &offline, &friend_views, &group_views);
    Done::Login { user, ack, offline }
}

/// Groups as the protocol shows them, with each member's online state.
pub(crate) fn group_views<'a>(
    svc: &ChatService,
    groups: &'a [crate::store::Group],
) -> Vec<GroupView<'a>> {
    let ids: Vec<UserId> = groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.id))
        .collect();
    let mut online = svc.online_states(&ids).into_iter();
    groups
        .iter()
        .map(|g| GroupView {
            id: g.id,
            name: &g.name,
            desc: &g.desc,
            users: g
                .members
                .iter()
                .map(|m| MemberView {
                    id: m.id,
                    name: &m.name,
                    online: online.next().unwrap_or(false),
                    role: m.role.as_str(),
                })
                .collect(),
        })
        .collect()
}

impl ChatService {
    /// On the connection's loop, once the login job succeeded.
    pub(crate) fn finish_login(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        ack: Vec<u8>,
        offline: Vec<String>,
    ) {
        let held = match lp.context_mut::<ChatConn>(conn) {
            Some(c) if c.pending_login == Some(user) => {
                c.pending_login = None;
                c.user = Some(user);
                c.auth_deadline = None;
                std::mem::take(&mut c.held)
            }
            _ => {
                // The connection left while the login was being checked: undo the claim and
                // put the messages it took back in the store.
                self.release_session(user, conn);
                let frames = offline
                    .iter()
                    .map(|m| crate::chat::delivery::outgoing(m.as_bytes()))
                    .collect();
                self.store_held(user, frames);
                return;
            }
        };
        lp.send(conn, &ack);
        for frame in held {
            self.deliver_on_loop(lp, conn, user, &frame, None);
        }
    }
}

pub(crate) fn logout(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.release_session(user, conn);
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.user = None;
    }
    lp.send(conn, &reply::logout_ack(user));
    arm_auth_timer(svc, lp, conn);
}
