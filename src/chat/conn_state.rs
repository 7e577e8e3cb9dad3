//! ChatConn: what the chat layer keeps per connection (the connection's context).

use super::delivery::Parcel;
use crate::ids::UserId;
use crate::protocol::Framer;
use std::time::Instant;

pub(crate) struct ChatConn {
    pub(crate) framer: Framer,
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
    /// When the connection is closed unless it has logged in by then.
    pub(crate) auth_deadline: Option<Instant>,
}

impl ChatConn {
    pub(crate) fn new(max_frame: usize) -> ChatConn {
        ChatConn {
            framer: Framer::new(max_frame),
            user: None,
            pending_login: None,
            held: Vec::new(),
            busy: false,
            closing: false,
            auth_deadline: None,
        }
    }
}
