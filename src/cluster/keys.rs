//! Redis key and channel names, and the presence token format.

use crate::store::UserId;

/// `chat:user:<uid>` → presence token of the session: `<server id>|<connection>`.
pub fn user_key(user: UserId) -> String {
    format!("chat:user:{user}")
}

/// `chat:alive:<sid>` exists while server `sid` is alive (a short TTL, refreshed by a timer).
pub fn alive_key(server: &str) -> String {
    format!("chat:alive:{server}")
}

/// The one channel a server subscribes for deliveries to its users.
pub fn server_channel(server: &str) -> String {
    format!("chat:server:{server}")
}

/// Broadcast channel: group membership changed (the payload is the group id).
pub const GROUPS_CHANNEL: &str = "chat:groups";

/// A session's presence value: which server, and which connection there.
pub fn token(server: &str, conn: u64) -> String {
    format!("{server}|{conn}")
}
