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
use crate::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use crate::protocol::{parse_request, reply, ErrorCode, Frame, Request};
use std::ops::ControlFlow;
use std::sync::Arc;

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
        cmd::idle::arm(&self.svc, lp, conn);
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        let mut framer = match lp.context::<ChatConn>(conn) {
            Some(c) if c.closing => return input.retrieve_all(),
            // The rest waits for the pending request; see ChatService::run_busy.
            Some(c) if c.busy => return,
            Some(c) => c.framer.clone(),
            None => return input.retrieve_all(),
        };
        let drained = framer.drain(input, |frame| {
            self.handle_frame(lp, conn, frame);
            match lp.context::<ChatConn>(conn) {
                Some(c) if !c.busy && !c.closing => ControlFlow::Continue(()),
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
    }

    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        let unsent = c.pacer.take_unsent();
        if let Some(user) = c.user.take() {
            self.svc.release_session(user, conn);
        }
        for (user, parcel) in unsent {
            self.svc.delivery.store_offline(user, parcel, None);
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
            cmd::idle::touch(svc, c);
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
            Request::Login { id, password } => {
                cmd::account::login(svc, lp, conn, id, password.into_owned())
            }
            Request::Logout { .. } => cmd::account::logout(svc, lp, conn, user),
            Request::Ping { seq } => outbound::reply(lp, conn, &reply::pong(seq.as_ref())),
            Request::OneChat { toid, .. } => cmd::chat::one_chat(svc, lp, conn, toid, frame),
            Request::GroupChat { groupid, .. } => {
                cmd::chat::group_chat(svc, lp, conn, user, groupid, frame)
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
