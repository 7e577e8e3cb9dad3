//! ChatConn: what the chat layer keeps per connection (the connection's context).

use super::delivery::Parcel;
use super::outbound::{Dialect, Pacer};
use super::service::ChatConfig;
use crate::ids::UserId;
use crate::protocol::Framer;
use std::time::Instant;

pub(crate) struct ChatConn {
    pub(crate) framer: Framer,
    /// How the client frames what it reads (outbound.rs).
    pub(crate) dialect: Dialect,
    /// Frames waiting for their own write, for a client of the seeds' dialect.
    pub(crate) pacer: Pacer,
    /// The logged-in user.
    pub(crate) user: Option<UserId>,
    /// A login is being checked on a store worker for this user; the session is (or is about
    /// to be) claimed, so deliveries are held here until the login ack has gone out.
    pub(crate) pending_login: Option<UserId>,
    /// Chat frames that arrived for `pending_login` before its ack.
    pub(crate) held: Vec<Parcel>,
    /// A request of this connection is being served by a store worker: later frames wait in
    /// the input buffer, so every connection's requests are answered in order.
    pub(crate) busy: bool,
    /// A framing error was answered; the connection closes once that reply is written.
    pub(crate) closing: bool,
    /// Not logged in: closed at this time unless a frame arrives first (cmd/idle.rs).
    pub(crate) idle_deadline: Option<Instant>,
    /// Not logged in: closed at this time whatever it sends (`--login-deadline-secs`).
    pub(crate) login_deadline: Option<Instant>,
}

impl ChatConn {
    pub(crate) fn new(config: &ChatConfig) -> ChatConn {
        ChatConn {
            framer: Framer::new(config.max_frame),
            dialect: Dialect::Unknown,
            pacer: Pacer::new(config.seeds_frame_gap),
            user: None,
            pending_login: None,
            held: Vec::new(),
            busy: false,
            closing: false,
            idle_deadline: None,
            login_deadline: None,
        }
    }
}
