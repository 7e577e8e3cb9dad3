//! The msgid table: the seeds' numbers (1–10) and our extensions (11 and up).

/// Client → server: `id`, `password`. Answered by [`LOGIN_MSG_ACK`].
pub const LOGIN_MSG: i64 = 1;
/// Server → client: the seeds' login reply (errno 0, 1 or 2).
pub const LOGIN_MSG_ACK: i64 = 2;
/// Client → server: `id`. Answered by [`LOGINOUT_ACK`] (the seeds sent nothing).
pub const LOGINOUT_MSG: i64 = 3;
/// Client → server: `name`, `password`. Answered by [`REG_MSG_ACK`].
pub const REG_MSG: i64 = 4;
/// Server → client: the seeds' registration reply (errno 0 or 1).
pub const REG_MSG_ACK: i64 = 5;
/// Client → server → client: `id`, `name`, `toid`, `msg`, `time`; forwarded verbatim.
pub const ONE_CHAT_MSG: i64 = 6;
/// Client → server: `id`, `friendid`. Answered by [`ADD_FRIEND_ACK`].
pub const ADD_FRIEND_MSG: i64 = 7;
/// Client → server: `id`, `groupname`, `groupdesc`. Answered by [`CREATE_GROUP_ACK`].
pub const CREATE_GROUP_MSG: i64 = 8;
/// Client → server: `id`, `groupid`. Answered by [`ADD_GROUP_ACK`].
pub const ADD_GROUP_MSG: i64 = 9;
/// Client → server → members: `id`, `name`, `groupid`, `msg`, `time`; forwarded verbatim.
pub const GROUP_CHAT_MSG: i64 = 10;

/// Server → client: a request was refused; carries an [`ErrorCode`](super::ErrorCode).
pub const ERROR_MSG: i64 = 11;
/// Server → client: logout done.
pub const LOGINOUT_ACK: i64 = 12;
/// Server → client: friend added.
pub const ADD_FRIEND_ACK: i64 = 13;
/// Server → client: group created (the creator is its first member).
pub const CREATE_GROUP_ACK: i64 = 14;
/// Server → client: joined the group.
pub const ADD_GROUP_ACK: i64 = 15;
/// Client → server: `id`. Answered by [`FRIEND_LIST_ACK`].
pub const FRIEND_LIST_MSG: i64 = 16;
/// Server → client: the friend list as real JSON objects.
pub const FRIEND_LIST_ACK: i64 = 17;
/// Client → server: `id`. Answered by [`GROUP_LIST_ACK`].
pub const GROUP_LIST_MSG: i64 = 18;
/// Server → client: the groups and their members as real JSON objects.
pub const GROUP_LIST_ACK: i64 = 19;
/// Client → server: `id`, `groupid`. Answered by [`LEAVE_GROUP_ACK`].
pub const LEAVE_GROUP_MSG: i64 = 20;
/// Server → client: left the group.
pub const LEAVE_GROUP_ACK: i64 = 21;
/// Client → server: `id`, `friendid`. Answered by [`REMOVE_FRIEND_ACK`].
pub const REMOVE_FRIEND_MSG: i64 = 22;
/// Server → client: friend removed.
pub const REMOVE_FRIEND_ACK: i64 = 23;
/// Client → server: optional `seq` (any JSON value). Answered by [`PONG_MSG`].
pub const PING_MSG: i64 = 24;
/// Server → client: echoes the ping's `seq` when it had one.
pub const PONG_MSG: i64 = 25;
/// Client → server, after login: `count`, the chat frames received on this connection since
/// the login ack (an acking client's offline messages follow the ack as frames). Cumulative.
pub const DELIVERY_ACK_MSG: i64 = 26;
/// Server → client: are you there? A modern client answers with any frame (an acking one
/// with its DELIVERY_ACK_MSG); no answer within the heartbeat timeout closes the connection.
pub const HEARTBEAT_MSG: i64 = 27;
/// Server → client: the chat message the client tagged with `cid` was accepted as `mid`.
pub const SEND_ACK: i64 = 28;
/// Server → client: the server is stopping; log in again (through the balancer) shortly.
pub const SHUTDOWN_MSG: i64 = 29;
