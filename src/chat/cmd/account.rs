//! Register, login, logout.

use crate::chat::cmd::contacts::friend_views;
use crate::chat::cmd::idle;
use crate::chat::conn_state::ChatConn;
use crate::chat::delivery::{outgoing, Parcel};
use crate::chat::outbound::{self, Dialect};
use crate::chat::outcome::{JobResult, Outcome, Refusal};
use crate::chat::service::ChatService;
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{LOGIN_MSG, REG_MSG};
use crate::protocol::reply::SEEDS_MAX_FRAME;
use crate::protocol::{reply, ErrorCode, GroupView, MemberView};
use crate::store::{Group, Store};
use std::sync::Arc;

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
            let hash = svc.hasher.hash(&password).map_err(|e| {
                log::error!("password hashing failed: {e}");
                Refusal::from(ErrorCode::Internal)
            })?;
            Ok(Outcome::Reply(match store.create_user(&name, &hash)? {
                Some(id) => reply::reg_ok(id),
                None => reply::reg_name_taken(),
            }))
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
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    c.pending_login = Some(user);
    let fit = c.dialect == Dialect::Seeds;
    // Keyed by the user: stores for this user that were queued earlier land before the take.
    svc.run_busy(lp, conn, user, LOGIN_MSG, move |svc, store| {
        login_job(svc, store, conn, user, &password, fit)
    });
}

/// Checks the login and claims the session; `fit`: the ack must fit in one read of the
/// seeds' client (the offline messages that do not fit follow it as frames of their own).
fn login_job(
    svc: &ChatService,
    store: &dyn Store,
    conn: ConnId,
    user: UserId,
    password: &str,
    fit: bool,
) -> JobResult {
    let Some(record) = store.user(user)? else {
        return Ok(Outcome::Reply(reply::login_invalid()));
    };
    if !svc.hasher.verify(password, &record.password_hash) {
        return Ok(Outcome::Reply(reply::login_invalid()));
    }
    if svc.is_stopping() {
        return Err(Refusal::Code(
            ErrorCode::Internal,
            Some("server is stopping"),
        ));
    }
    if !svc.sessions.claim(user, conn) {
        return Ok(Outcome::Reply(reply::login_in_use()));
    }
    match svc.bus.claim(user, conn) {
        Ok(true) => {}
        Ok(false) => {
            svc.sessions.release(user, conn);
            return Ok(Outcome::Reply(reply::login_in_use()));
        }
        Err(e) => {
            // Without the bus, exclusivity across servers cannot be checked: refuse for now.
            svc.sessions.release(user, conn);
            log::warn!("login of {user}: {e}");
            let detail = Some("cluster unavailable, retry");
            return Err(Refusal::Code(ErrorCode::Internal, detail));
        }
    }
    // From here deliveries to `user` reach `conn` (held there until the ack is out). The
    // offline messages are taken last, so nothing fails after they left the store.
    let loaded = store.friends(user).and_then(|friends| {
        let groups = store.groups_of(user)?;
        let offline = store.take_offline(user)?;
        Ok((friends, groups, offline))
    });
    let (friends, groups, offline) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            svc.release_session(user, conn);
            return Err(e.into());
        }
    };
    let friend_views = friend_views(svc, &friends);
    let group_views = group_views(svc, &groups);
    let (ack, in_ack) = if fit {
        let (name, limit) = (&record.name, SEEDS_MAX_FRAME);
        reply::login_ok_fitted(user, name, &offline, &friend_views, &group_views, limit)
    } else {
        let ack = reply::login_ok(user, &record.name, &offline, &friend_views, &group_views);
        (ack, offline.len())
    };
    Ok(Outcome::then(move |svc, lp, conn| {
        finish_login(svc, lp, conn, user, ack, (offline, in_ack))
    }))
}

/// Groups as the protocol shows them, with each member's online state.
pub(crate) fn group_views<'a>(svc: &ChatService, groups: &'a [Group]) -> Vec<GroupView<'a>> {
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

/// On the connection's loop, once the login job succeeded: the session begins, its ack goes
/// out, then the offline messages that did not fit in it (`offline` holds all it took from
/// the store, of which the ack carries the first `in_ack`), then the copies held while the
/// login was being checked.
fn finish_login(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    ack: Vec<u8>,
    (offline, in_ack): (Vec<String>, usize),
) {
    let held = match lp.context_mut::<ChatConn>(conn) {
        Some(c) if c.pending_login == Some(user) => {
            c.pending_login = None;
            c.user = Some(user);
            c.idle_deadline = None;
            c.login_deadline = None;
            std::mem::take(&mut c.held)
        }
        _ => {
            // The connection left while the login was being checked: undo the claim and put
            // the messages it took back in the store.
            svc.release_session(user, conn);
            let taken = offline
                .iter()
                .map(|m| Parcel::local(outgoing(m.as_bytes())))
                .collect();
            svc.delivery.store_held(user, taken);
            return;
        }
    };
    outbound::reply(lp, conn, &ack);
    let after_ack = offline.iter().skip(in_ack);
    let pushed = after_ack.map(|text| Parcel::local(outgoing(text.as_bytes())));
    for parcel in pushed.chain(held) {
        svc.delivery.deliver_on_loop(lp, conn, user, parcel);
    }
}

pub(crate) fn logout(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.release_session(user, conn);
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.user = None;
    }
    outbound::reply(lp, conn, &reply::logout_ack(user));
    idle::arm(svc, lp, conn);
}
