//! The `Bus`: what the chat layer asks of the world beyond this server's own sessions
//! (exclusive logins, who is online, delivery to users who are not here), with a single-node
//! implementation, [`LocalBus`], so that the chat layer never asks "is there a cluster?".
//! The Redis implementation is [`RedisBus`](super::RedisBus).

use crate::ids::{ConnId, GroupId, UserId};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// The request a delivery answers, so that its sender hears of a recipient who does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub conn: ConnId,
    pub msgid: i64,
}

/// Why a synchronous call to the bus failed (it could not be answered, not "no").
#[derive(Debug)]
pub struct BusError(pub String);

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster: {}", self.0)
    }
}

impl std::error::Error for BusError {}

impl From<redis::RedisError> for BusError {
    fn from(e: redis::RedisError) -> Self {
        BusError(e.to_string())
    }
}

/// A message that another server handed us for some of our users. Each copy (one per
/// recipient) ends written to its recipient's socket or stored; each of those paths calls
/// [`Bus::settle`] once for its copy, and when the last copy is settled the sending server is
/// told, so it stops holding the message. A copy never settled (a bug, a lost task) is
/// stored by the sender after its confirm timeout: a duplicate at worst, never a loss.
pub struct Receipt {
    pub(crate) sender: Arc<str>,
    pub(crate) mid: u64,
    copies: AtomicUsize,
}

impl Receipt {
    pub(crate) fn new(sender: Arc<str>, mid: u64, copies: usize) -> Receipt {
        Receipt {
            sender,
            mid,
            copies: AtomicUsize::new(copies),
        }
    }

    /// Counts one copy settled; true for the last one.
    pub(crate) fn settle_one(&self) -> bool {
        self.copies.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// One message from another server for some of this server's users.
pub struct RemoteDelivery {
    pub users: Vec<UserId>,
    pub frame: Bytes,
    pub receipt: Arc<Receipt>,
}

/// What the bus hands up to the chat layer (on the bus's own threads, or the caller's).
pub trait BusEvents: Send + Sync {
    /// Frames for users of this server arrived from another server, in the order it sent them.
    fn deliver_remote(&self, batch: Vec<RemoteDelivery>);
    /// Nobody received the frame for these users (offline, dead server, Redis down): store it.
    fn undeliverable(&self, users: Vec<UserId>, frame: Bytes, origin: Option<Origin>);
    /// Another server changed a group's membership.
    fn group_changed(&self, group: GroupId);
    /// Another server stored messages for this user of ours after its login: hand them over.
    fn flush_offline(&self, user: UserId);
    /// This server's live sessions, to put presence back after the bus lost it.
    fn local_sessions(&self) -> Vec<(UserId, ConnId)>;
}

/// Presence and delivery beyond this server. Calls that return a value block (store workers
/// only); the others never block.
pub trait Bus: Send + Sync {
    /// Starts the bus's threads, if any, reporting to `events`.
    fn start(&self, events: Weak<dyn BusEvents>) -> std::io::Result<()>;
    /// Sends what is queued, stops the threads and withdraws this server from presence.
    fn stop(&self);
    /// Claims `user` for session `conn`, unless another live server holds it.
    fn claim(&self, user: UserId, conn: ConnId) -> Result<bool, BusError>;
    /// Ends `user`'s presence if it is still session `conn`.
    fn release(&self, user: UserId, conn: ConnId);
    /// Whether each of these users (none of them online here) is online elsewhere.
    fn online_elsewhere(&self, users: &[UserId]) -> Result<Vec<bool>, BusError>;
    /// Delivers `frame` to users who have no session here; those nobody takes come back
    /// through [`BusEvents::undeliverable`].
    fn deliver(&self, users: Vec<UserId>, frame: Bytes, origin: Option<Origin>);
    /// One copy of a remote delivery was written or stored (see [`Receipt`]).
    fn settle(&self, receipt: &Receipt);
    /// Tells the other servers that `group`'s membership changed.
    fn group_changed(&self, group: GroupId);
    /// Asks the server holding `user`, if any, to hand over the user's stored messages.
    fn request_flush(&self, user: UserId);
    /// This server's number among the cluster's, for message ids (chat/mid.rs); servers
    /// running at once get different numbers (modulo 1,024).
    fn node_number(&self) -> u64 {
        0
    }
}

/// One server on its own: every claim succeeds, nobody is online elsewhere, and a user with
/// no session here is offline, so a delivery to one is stored at once.
#[derive(Default)]
pub struct LocalBus {
    events: OnceLock<Weak<dyn BusEvents>>,
}

impl Bus for LocalBus {
    fn start(&self, events: Weak<dyn BusEvents>) -> std::io::Result<()> {
        let _ = self.events.set(events);
        Ok(())
    }

    fn stop(&self) {}

    fn claim(&self, _user: UserId, _conn: ConnId) -> Result<bool, BusError> {
        Ok(true)
    }

    fn release(&self, _user: UserId, _conn: ConnId) {}

    fn online_elsewhere(&self, users: &[UserId]) -> Result<Vec<bool>, BusError> {
        Ok(vec![false; users.len()])
    }

    fn deliver(&self, users: Vec<UserId>, frame: Bytes, origin: Option<Origin>) {
        if let Some(events) = self.events.get().and_then(Weak::upgrade) {
            events.undeliverable(users, frame, origin);
        }
    }

    fn settle(&self, _receipt: &Receipt) {}

    fn group_changed(&self, _group: GroupId) {}

    fn request_flush(&self, _user: UserId) {}
}
