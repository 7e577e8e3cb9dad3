//! ChatConn: what the chat layer keeps per connection (the connection's context).

use super::delivery::{Backlog, Parcel};
use super::outbound::{Dialect, Pacer};
use super::resume_token::TokenDigest;
use super::service::ChatConfig;
use super::unconfirmed::Unconfirmed;
use super::watchdog::Watch;
use crate::ids::UserId;
use crate::protocol::Framer;

pub(crate) struct ChatConn {
    pub(crate) framer: Framer,
    /// How the client frames what it reads (outbound.rs).
    pub(crate) dialect: Dialect,
    /// Frames waiting for their own write, for a client of the seeds' dialect.
    pub(crate) pacer: Pacer,
    /// The logged-in user.
    pub(crate) user: Option<UserId>,
    /// The client acknowledges the chat messages it receives (logged in with `acks`).
    pub(crate) acks: bool,
    /// Chat copies handed to the connection and not yet written (or, for an acking client,
    /// acknowledged): what its end must store.
    pub(crate) unconfirmed: Unconfirmed,
    /// Digest of the session's resume token, revoked at logout (kept when the connection
    /// just drops: that is when the client needs it).
    pub(crate) token: Option<TokenDigest>,
    /// Older messages for this session wait in the store (delivery.rs).
    pub(crate) backlog: Backlog,
    /// A login is being checked on a store worker for this user; the session is (or is about
    /// to be) claimed, so deliveries are held here until the login ack has gone out.
    pub(crate) pending_login: Option<UserId>,
    /// Chat frames that arrived for `pending_login` before its ack.
    pub(crate) held: Vec<Parcel>,
    /// A request of this connection is being served by a store worker: later frames wait in
    /// the input buffer, so every connection's requests are answered in order.
    pub(crate) busy: bool,
    /// Not read while the offline store's queue is deep (store_pressure.rs, which resumes
    /// it): kept apart from `busy` so that neither's resume undoes the other's pause.
    pub(crate) store_paused: bool,
    /// A framing error was answered; the connection closes once that reply is written.
    pub(crate) closing: bool,
    /// The watchdog's view (watchdog.rs).
    pub(crate) watch: Watch,
}

impl ChatConn {
    pub(crate) fn new(config: &ChatConfig) -> ChatConn {
        ChatConn {
            framer: Framer::new(config.max_frame),
            dialect: Dialect::Unknown,
            pacer: Pacer::new(config.seeds_frame_gap),
            user: None,
            acks: false,
            unconfirmed: Unconfirmed::default(),
            token: None,
            backlog: Backlog::default(),
            pending_login: None,
            held: Vec::new(),
            busy: false,
            store_paused: false,
            closing: false,
            watch: Watch::default(),
        }
    }

    /// Bytes of chat messages this connection holds undelivered (the slow-reader measure).
    pub(crate) fn outstanding(&self) -> usize {
        self.unconfirmed.bytes() + self.pacer.bytes()
    }
}
