//! Register, login, logout.

use crate::chat::cmd::contacts::friend_views;
use crate::chat::conn_state::ChatConn;
use crate::chat::delivery::stored_copies;
use crate::chat::outbound::{self, Dialect};
use crate::chat::outcome::{JobResult, Outcome, Refusal};
use crate::chat::resume_token::{self, new_token, unix_now, TokenDigest};
use crate::chat::service::ChatService;
use crate::chat::unconfirmed::AckTooHigh;
use crate::chat::watchdog;
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{DELIVERY_ACK_MSG, LOGIN_MSG, REG_MSG};
use crate::protocol::reply::{LoginExtras, SEEDS_MAX_FRAME};
use crate::protocol::{reply, ErrorCode, GroupView, MemberView, Secret};
use crate::store::{Group, OfflineBatch, Store};
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
    secret: Secret<'static>,
    acks: bool,
) {
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    let how = AckForm::of(c.dialect, acks);
    // The seeds' client has no use for a token, and its ack has no room to spare.
    let tokens = c.dialect != Dialect::Seeds && !svc.config.token_ttl.is_zero();
    c.pending_login = Some(user);
    // Keyed by the user: stores for this user that were queued earlier land before the take.
    svc.run_busy(lp, conn, user, LOGIN_MSG, move |svc, store| {
        let proof = match prove(svc, store, user, &secret, tokens)? {
            Some(proof) => proof,
            None => return Ok(Outcome::Reply(reply::login_invalid())),
        };
        login_job(svc, store, conn, user, proof, how)
    });
}

/// A login's credentials, checked: the resume token its session holds (issued now for a
/// password login, or the one it came with), if any.
struct Proof {
    token: Option<(String, TokenDigest)>,
    /// The token is new: the store keeps it once the session is claimed.
    fresh: bool,
}

/// Checks the password or the resume token. `None` when they do not match: the same answer
/// for an unknown user, a wrong password, and an unknown or expired token.
fn prove(
    svc: &ChatService,
    store: &dyn Store,
    user: UserId,
    secret: &Secret<'_>,
    tokens: bool,
) -> Result<Option<Proof>, Refusal> {
    let now = unix_now();
    match secret {
        Secret::Password(password) => {
            let Some(record) = store.user(user)? else {
                return Ok(None);
            };
            if !svc.hasher.verify(password, &record.password_hash) {
                return Ok(None);
            }
            Ok(Some(Proof {
                token: tokens.then(new_token),
                fresh: true,
            }))
        }
        Secret::Token(token) => {
            // A token login needs no hash: a reconnect storm costs one indexed read each.
            let digest = resume_token::digest(token);
            if !tokens || store.token_user(&digest, now)? != Some(user) {
                return Ok(None);
            }
            Ok(Some(Proof {
                token: Some((token.to_string(), digest)),
                fresh: false,
            }))
        }
    }
}

/// What the login ack carries, by the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckForm {
    /// The seeds' client: the ack fits in one read of it, the offline messages that do not
    /// fit follow as frames of their own.
    Fitted,
    /// Every offline message of the batch inside the ack.
    Whole,
    /// An acking client: no offline messages inside; they follow as frames, each counted.
    Acking,
}

impl AckForm {
    fn of(dialect: Dialect, acks: bool) -> AckForm {
        match (dialect, acks) {
            (_, true) => AckForm::Acking,
            (Dialect::Seeds, false) => AckForm::Fitted,
            _ => AckForm::Whole,
        }
    }
}

/// Checks the login and claims the session.
fn login_job(
    svc: &ChatService,
    store: &dyn Store,
    conn: ConnId,
    user: UserId,
    proof: Proof,
    how: AckForm,
) -> JobResult {
    let Some(name) = store.user_name(user)? else {
        return Ok(Outcome::Reply(reply::login_invalid()));
    };
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
        if let (Some((_, digest)), true) = (&proof.token, proof.fresh) {
            let now = unix_now();
            let expires = now.saturating_add(svc.config.token_ttl.as_secs() as i64);
            store.put_token(user, digest, expires, now)?;
        }
        let offline = store.take_offline(user, svc.delivery.batch_bytes())?;
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
    let name = &name;
    let token = proof.token.as_ref().map(|(text, _)| text.as_str());
    let messages = &offline.messages;
    let (ack, in_ack) = match how {
        AckForm::Fitted => {
            let limit = SEEDS_MAX_FRAME;
            reply::login_ok_fitted(user, name, messages, &friend_views, &group_views, limit)
        }
        AckForm::Whole => {
            let extras = LoginExtras { acks: false, token };
            let ack = reply::login_ok(user, name, extras, messages, &friend_views, &group_views);
            (ack, messages.len())
        }
        AckForm::Acking => {
            let extras = LoginExtras { acks: true, token };
            let none: &[&str] = &[];
            let ack = reply::login_ok(user, name, extras, none, &friend_views, &group_views);
            (ack, 0)
        }
    };
    let session = Session {
        user,
        acks: how == AckForm::Acking,
        token: proof.token.map(|(_, digest)| digest),
    };
    Ok(Outcome::then(move |svc, lp, conn| {
        finish_login(svc, lp, conn, session, ack, (offline, in_ack))
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

/// What a session starts with.
struct Session {
    user: UserId,
    acks: bool,
    /// Digest of its resume token, revoked at logout.
    token: Option<TokenDigest>,
}

/// On the connection's loop, once the login job succeeded: the session begins, its ack goes
/// out (carrying the first `in_ack` of the offline messages it took), then the rest of them
/// as frames of their own, then the copies held while the login was being checked. If the
/// store holds more than the batch, the session starts with a backlog (delivery.rs).
fn finish_login(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    session: Session,
    ack: Vec<u8>,
    (offline, in_ack): (OfflineBatch, usize),
) {
    let Session { user, acks, token } = session;
    let mut copies = stored_copies(user, &offline.messages);
    let held = match lp.context_mut::<ChatConn>(conn) {
        Some(c) if c.pending_login == Some(user) => {
            c.pending_login = None;
            c.user = Some(user);
            c.acks = acks;
            c.token = token;
            c.backlog.active = offline.more;
            std::mem::take(&mut c.held)
        }
        _ => {
            // The connection left while the login was being checked: undo the claim and put
            // the messages it took back in the store, where they were.
            svc.release_session(user, conn);
            svc.delivery.store_front(copies);
            return;
        }
    };
    watchdog::logged_in(svc, lp, conn);
    let after_ack = copies.split_off(in_ack.min(copies.len()));
    outbound::reply_carrying(lp, conn, &ack, copies);
    for (user, parcel) in after_ack {
        // The oldest messages there are: straight to the connection, like a backlog batch.
        if let Err(parcel) = outbound::chat(lp, conn, user, parcel) {
            outbound::never_written(lp, conn, user, parcel);
        }
    }
    for parcel in held {
        svc.delivery.deliver_on_loop(lp, conn, user, parcel);
    }
    svc.delivery.resume(lp, conn);
}

pub(crate) fn logout(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.release_session(user, conn);
    let written = lp.bytes_written(conn);
    if let Some(c) = lp.context_mut::<ChatConn>(conn) {
        c.user = None;
        // An acking client's copies it did not confirm are stored again; a plain client's
        // are in the output and still go out.
        let undelivered = if c.acks {
            c.unconfirmed.take(true, written)
        } else {
            Vec::new()
        };
        c.unconfirmed = Default::default();
        c.acks = false;
        c.backlog = Default::default();
        if let Some(digest) = c.token.take() {
            // Keyed by the user, so a login with this token queued after it finds it gone.
            svc.workers.submit(user, move |store| {
                if let Err(e) = store.drop_token(&digest) {
                    log::warn!("revoking a resume token of {user}: {e}");
                }
            });
        }
        if !undelivered.is_empty() {
            svc.delivery.store_front(undelivered);
        }
    }
    outbound::reply(lp, conn, &reply::logout_ack(user));
    watchdog::not_logged_in(svc, lp, conn);
}

/// DELIVERY_ACK_MSG: the acking client received `count` chat messages since its login.
pub(crate) fn delivery_ack(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, count: i64) {
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return;
    };
    if !c.acks {
        let detail = Some("acks are off: log in with \"acks\":true");
        let refusal = reply::error(ErrorCode::BadValue, detail, Some(DELIVERY_ACK_MSG));
        return outbound::reply(lp, conn, &refusal);
    }
    let mut settled = Vec::new();
    let count = u64::try_from(count).unwrap_or(u64::MAX);
    match c
        .unconfirmed
        .acked(count, |parcel| settled.extend(parcel.receipt))
    {
        Ok(()) => {}
        Err(AckTooHigh { sent }) => {
            let detail = format!("count is past the {sent} messages sent");
            let refusal = reply::error(ErrorCode::BadValue, Some(&detail), Some(DELIVERY_ACK_MSG));
            return outbound::reply(lp, conn, &refusal);
        }
    }
    for receipt in settled {
        svc.bus.settle(&receipt);
    }
    svc.delivery.resume(lp, conn);
}
