//! ChatHandler: framing of each connection's input and the handler table (msgid → handler).
//!
//! A request's way in: the loop hands the input buffer to `on_message`; the connection's
//! `Framer` cuts one JSON frame at a time; `parse_request` types it; the rules every request
//! shares are checked here (only register, login and ping before login; a message's `id` must
//! be the session's user); then the table below sends it to its handler in `cmd/`.

use super::cmd;
use super::conn_state::ChatConn;
use super::outbound;
use super::service::ChatService;
use super::store_pressure;
use super::watchdog;
use crate::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use crate::protocol::{parse_request, reply, ErrorCode, Frame, Request};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TCP keepalive: a peer whose host or network vanished is found within about a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// The chat server's connection handler, shared by every loop.
pub struct ChatHandler {
    svc: Arc<ChatService>,
}

impl ChatHandler {
    pub fn new(svc: Arc<ChatService>) -> ChatHandler {
        ChatHandler { svc }
    }
}

impl ConnectionHandler for ChatHandler {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        lp.set_context(conn, Box::new(ChatConn::new(&self.svc.config)));
        watchdog::not_logged_in(&self.svc, lp, conn);
        // The one check on a seeds' client's peer (it answers no heartbeat): the kernel's.
        lp.set_keepalive(conn, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES);
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        let mut framer = match lp.context_mut::<ChatConn>(conn) {
            Some(c) if c.closing => return input.retrieve_all(),
            Some(c) => {
                // Heard from: whatever it sent answers a heartbeat.
                c.watch.last_heard = Some(Instant::now());
                if c.busy || c.store_paused {
                    // The rest waits for the pending request (ChatService::run_busy) or for
                    // the store's queue to drain (store_pressure.rs); each resumes the input.
                    return;
                }
                c.framer.clone()
            }
            None => return input.retrieve_all(),
        };
        let drained = framer.drain(input, |frame| {
            self.handle_frame(lp, conn, frame);
            match lp.context::<ChatConn>(conn) {
                Some(c) if !c.busy && !c.closing && !c.store_paused => ControlFlow::Continue(()),
                _ => ControlFlow::Break(()),
            }
        });
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return input.retrieve_all();
        };
        c.framer = framer;
        if let Err(e) = drained {
            // Garbage or an oversize frame: answer once, then close; the bytes are not worth
            // reading further.
            c.closing = true;
            input.retrieve_all();
            // The last frame it gets, so written at once, even for the seeds' dialect.
            lp.send(conn, &reply::frame_error(e));
            lp.close_after_flush(conn);
        }
    }

    fn on_write_complete(&self, lp: &mut EventLoop, conn: ConnId) {
        outbound::pump(lp, conn);
        self.svc.delivery.resume(lp, conn);
    }

    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        let written = lp.bytes_written(conn);
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        // What it never delivered, oldest first: handed over and not confirmed, then never
        // written. Older than anything stored for its user meanwhile, so stored ahead of it.
        let mut undelivered = c.unconfirmed.take(c.acks, written);
        undelivered.extend(c.pacer.take_unsent());
        if let Some(user) = c.user.take() {
            self.svc.release_session(user, conn);
        }
        if !undelivered.is_empty() {
            self.svc.delivery.store_front(undelivered);
        }
        if let Some(user) = c.pending_login {
            // The login's completion finds the connection gone and releases the claim.
            let held = std::mem::take(&mut c.held);
            self.svc.delivery.store_held(user, held);
        }
    }
}

impl ChatHandler {
    fn handle_frame(&self, lp: &mut EventLoop, conn: ConnId, frame: Frame<'_>) {
        let parsed = parse_request(frame.bytes);
        let svc = &self.svc;
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        let msgid = match &parsed {
            Ok(request) => Some(request.msgid()),
            Err(e) => e.msgid,
        };
        c.dialect = c.dialect.learn(msgid, frame.next);
        let user = c.user;
        if user.is_none() {
            watchdog::frame_before_login(svc, c);
        }
        let request = match parsed {
            Ok(request) => request,
            Err(e) => return outbound::reply(lp, conn, &reply::parse_error(&e)),
        };
        let msgid = request.msgid();
        let frame = frame.bytes;
        // Before login only these; after it, every request speaks for the session's user.
        match (&request, user) {
            (Request::Register { .. } | Request::Ping { .. }, _)
            | (Request::Login { .. }, None) => {}
            (Request::Login { .. }, Some(_)) => {
                return error(lp, conn, ErrorCode::AlreadyLoggedIn, msgid)
            }
            (Request::DeliveryAck { .. }, Some(_)) => {}
            (_, None) => return error(lp, conn, ErrorCode::NotLoggedIn, msgid),
            (_, Some(user)) => {
                if request.claimed_id() != Some(user) {
                    return error(lp, conn, ErrorCode::IdMismatch, msgid);
                }
            }
        }
        let user = user.unwrap_or_default();
        match request {
            Request::Register { name, password } => {
                cmd::account::register(svc, lp, conn, &name, &password)
            }
            Request::Login { id, secret, acks } => {
                cmd::account::login(svc, lp, conn, id, secret.into_owned(), acks)
            }
            Request::DeliveryAck { count } => cmd::account::delivery_ack(svc, lp, conn, count),
            Request::Logout { .. } => cmd::account::logout(svc, lp, conn, user),
            Request::Ping { seq } => outbound::reply(lp, conn, &reply::pong(seq.as_ref())),
            Request::OneChat { toid, cid, .. } => {
                cmd::chat::one_chat(svc, lp, conn, (user, toid), frame, cid.as_deref());
                store_pressure::after_chat(svc, lp, conn);
            }
            Request::GroupChat { groupid, cid, .. } => {
                cmd::chat::group_chat(svc, lp, conn, (user, groupid), frame, cid.as_deref());
                store_pressure::after_chat(svc, lp, conn);
            }
            Request::AddFriend { friendid, .. } => {
                cmd::contacts::add_friend(svc, lp, conn, user, friendid)
            }
            Request::RemoveFriend { friendid, .. } => {
                cmd::contacts::remove_friend(svc, lp, conn, user, friendid)
            }
            Request::FriendList { .. } => cmd::contacts::friend_list(svc, lp, conn, user),
            Request::CreateGroup {
                groupname,
                groupdesc,
                ..
            } => cmd::groups::create_group(svc, lp, conn, user, &groupname, &groupdesc),
            Request::AddGroup { groupid, .. } => {
                cmd::groups::join_group(svc, lp, conn, user, groupid)
            }
            Request::LeaveGroup { groupid, .. } => {
                cmd::groups::leave_group(svc, lp, conn, user, groupid)
            }
            Request::GroupList { .. } => cmd::groups::group_list(svc, lp, conn, user),
        }
    }
}

/// Refuses request `msgid` with `code`.
pub(crate) fn error(lp: &mut EventLoop, conn: ConnId, code: ErrorCode, msgid: i64) {
    outbound::reply(lp, conn, &reply::refusal(code, None, Some(msgid)));
}
