//! Reply builders: each returns one complete server frame (JSON text plus a final `\n`).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::msgid;
use super::view::{state, FriendView, GroupView, MemberView};

pub use super::login_ack::{login_ok, login_ok_fitted, LoginExtras, SEEDS_MAX_FRAME};
use super::{ErrorCode, FrameError, ParseError};

/// Sent instead when a reply cannot be serialized. Writing plain structs into a `Vec` does not
/// fail in practice, but a builder must never panic, so the impossible case still has an answer.
pub(super) const INTERNAL_ERROR_FRAME: &[u8] =
    b"{\"msgid\":11,\"errno\":19,\"errmsg\":\"server error, try again\"}\n";

/// The seeds' text for LOGIN_MSG_ACK errno 1.
pub const LOGIN_INVALID_MSG: &str = "id or password is invalid!";
/// The seeds' text for LOGIN_MSG_ACK errno 2.
pub const LOGIN_IN_USE_MSG: &str = "this account is using, input another!";
/// The seeds' text for REG_MSG_ACK errno 1.
pub const NAME_TAKEN_MSG: &str = "name is already taken!";

#[derive(Serialize)]
struct Refused<'a> {
    msgid: i64,
    errno: i64,
    errmsg: &'a str,
}

#[derive(Serialize)]
struct Error<'a> {
    msgid: i64,
    errno: i64,
    errmsg: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reqmsgid: Option<i64>,
}

#[derive(Serialize)]
struct IdAck {
    msgid: i64,
    errno: i64,
    id: i64,
}

#[derive(Serialize)]
struct FriendAck<'a> {
    msgid: i64,
    errno: i64,
    friendid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct GroupAck<'a> {
    msgid: i64,
    errno: i64,
    groupid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    groupname: Option<&'a str>,
}

#[derive(Serialize)]
struct FriendListAck<'a> {
    msgid: i64,
    errno: i64,
    friends: Vec<FriendWire<'a>>,
}

#[derive(Serialize)]
struct GroupListAck<'a> {
    msgid: i64,
    errno: i64,
    groups: Vec<GroupWire<'a, MemberWire<'a>>>,
}

#[derive(Serialize)]
struct Pong<'a> {
    msgid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<&'a Value>,
}

#[derive(Serialize)]
pub(super) struct FriendWire<'a> {
    id: i64,
    name: &'a str,
    state: &'static str,
}

#[derive(Serialize)]
pub(super) struct MemberWire<'a> {
    id: i64,
    name: &'a str,
    state: &'static str,
    role: &'a str,
}

/// A group on the wire; `U` is a member object (group list) or a member's JSON text (login).
#[derive(Serialize)]
pub(super) struct GroupWire<'a, U> {
    id: i64,
    groupname: &'a str,
    groupdesc: &'a str,
    users: Vec<U>,
}

pub(super) fn friend_wire<'a>(f: &FriendView<'a>) -> FriendWire<'a> {
    FriendWire {
        id: f.id,
        name: f.name,
        state: state(f.online),
    }
}

pub(super) fn member_wire<'a>(m: &MemberView<'a>) -> MemberWire<'a> {
    MemberWire {
        id: m.id,
        name: m.name,
        state: state(m.online),
        role: m.role,
    }
}

pub(super) fn group_wire<'a, U>(g: &GroupView<'a>, users: Vec<U>) -> GroupWire<'a, U> {
    GroupWire {
        id: g.id,
        groupname: g.name,
        groupdesc: g.desc,
        users,
    }
}

pub(super) fn to_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(96);
    serde_json::to_writer(&mut out, value)?;
    out.push(b'\n');
    Ok(out)
}

fn or_internal(frame: Result<Vec<u8>, serde_json::Error>) -> Vec<u8> {
    frame.unwrap_or_else(|_| INTERNAL_ERROR_FRAME.to_vec())
}

fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    or_internal(to_frame(value))
}

/// LOGIN_MSG_ACK errno 1: unknown id or wrong password (deliberately not saying which).
pub fn login_invalid() -> Vec<u8> {
    frame(&Refused {
        msgid: msgid::LOGIN_MSG_ACK,
        errno: 1,
        errmsg: LOGIN_INVALID_MSG,
    })
}

/// LOGIN_MSG_ACK errno 2: the account is logged in elsewhere.
pub fn login_in_use() -> Vec<u8> {
    frame(&Refused {
        msgid: msgid::LOGIN_MSG_ACK,
        errno: 2,
        errmsg: LOGIN_IN_USE_MSG,
    })
}

/// REG_MSG_ACK errno 0 with the new user's id.
pub fn reg_ok(id: i64) -> Vec<u8> {
    frame(&IdAck {
        msgid: msgid::REG_MSG_ACK,
        errno: 0,
        id,
    })
}

/// REG_MSG_ACK errno 1: the name belongs to someone else.
pub fn reg_name_taken() -> Vec<u8> {
    frame(&Refused {
        msgid: msgid::REG_MSG_ACK,
        errno: 1,
        errmsg: NAME_TAKEN_MSG,
    })
}

/// ERROR_MSG: `errmsg` is the code's message, then `": detail"` when a detail is given;
/// `reqmsgid` is the refused request's msgid, omitted when it had none usable.
pub fn error(code: ErrorCode, detail: Option<&str>, reqmsgid: Option<i64>) -> Vec<u8> {
    let errmsg = match detail {
        Some(detail) if !detail.is_empty() => Cow::Owned(format!("{}: {detail}", code.message())),
        _ => Cow::Borrowed(code.message()),
    };
    frame(&Error {
        msgid: msgid::ERROR_MSG,
        errno: code.code(),
        errmsg,
        reqmsgid,
    })
}

/// The answer to a refused request. LOGIN_MSG and REG_MSG get the ack the seeds' client waits
/// for (LOGIN_MSG_ACK, REG_MSG_ACK), whose `errno` is then the error code and `errmsg` its
/// message: a client that waits for msgid 2 or 5 is never left hanging. Every other request
/// gets an ERROR_MSG naming it in `reqmsgid`.
pub fn refusal(code: ErrorCode, detail: Option<&str>, reqmsgid: Option<i64>) -> Vec<u8> {
    let ack = match reqmsgid {
        Some(msgid::LOGIN_MSG) => msgid::LOGIN_MSG_ACK,
        Some(msgid::REG_MSG) => msgid::REG_MSG_ACK,
        _ => return error(code, detail, reqmsgid),
    };
    let errmsg = match detail {
        Some(detail) if !detail.is_empty() => format!("{}: {detail}", code.message()),
        _ => code.message().to_owned(),
    };
    frame(&Refused {
        msgid: ack,
        errno: code.code(),
        errmsg: &errmsg,
    })
}

/// The refusal of a frame that [`parse_request`](super::parse_request) refused.
pub fn parse_error(err: &ParseError) -> Vec<u8> {
    refusal(err.code, Some(&err.detail), err.msgid)
}

/// ERROR_MSG for a stream the [`Framer`](super::Framer) gave up on (sent before closing).
pub fn frame_error(err: FrameError) -> Vec<u8> {
    error(ErrorCode::from(err), None, None)
}

/// LOGINOUT_ACK for user `id`.
pub fn logout_ack(id: i64) -> Vec<u8> {
    frame(&IdAck {
        msgid: msgid::LOGINOUT_ACK,
        errno: 0,
        id,
    })
}

/// ADD_FRIEND_ACK: `friendid` (called `name`) is now in the user's contact list.
pub fn add_friend_ack(friendid: i64, name: &str) -> Vec<u8> {
    frame(&FriendAck {
        msgid: msgid::ADD_FRIEND_ACK,
        errno: 0,
        friendid,
        name: Some(name),
    })
}

/// CREATE_GROUP_ACK with the new group's id.
pub fn create_group_ack(groupid: i64, groupname: &str) -> Vec<u8> {
    frame(&GroupAck {
        msgid: msgid::CREATE_GROUP_ACK,
        errno: 0,
        groupid,
        groupname: Some(groupname),
    })
}

/// ADD_GROUP_ACK: the user joined `groupid`.
pub fn add_group_ack(groupid: i64) -> Vec<u8> {
    frame(&GroupAck {
        msgid: msgid::ADD_GROUP_ACK,
        errno: 0,
        groupid,
        groupname: None,
    })
}

/// FRIEND_LIST_ACK: real JSON objects `{"id","name","state"}`, unlike the login reply.
pub fn friend_list_ack(friends: &[FriendView<'_>]) -> Vec<u8> {
    frame(&FriendListAck {
        msgid: msgid::FRIEND_LIST_ACK,
        errno: 0,
        friends: friends.iter().map(friend_wire).collect(),
    })
}

/// GROUP_LIST_ACK: real JSON objects, members included.
pub fn group_list_ack(groups: &[GroupView<'_>]) -> Vec<u8> {
    frame(&GroupListAck {
        msgid: msgid::GROUP_LIST_ACK,
        errno: 0,
        groups: groups
            .iter()
            .map(|g| group_wire(g, g.users.iter().map(member_wire).collect()))
            .collect(),
    })
}

/// LEAVE_GROUP_ACK: the user left `groupid`.
pub fn leave_group_ack(groupid: i64) -> Vec<u8> {
    frame(&GroupAck {
        msgid: msgid::LEAVE_GROUP_ACK,
        errno: 0,
        groupid,
        groupname: None,
    })
}

/// REMOVE_FRIEND_ACK: `friendid` left the user's contact list.
pub fn remove_friend_ack(friendid: i64) -> Vec<u8> {
    frame(&FriendAck {
        msgid: msgid::REMOVE_FRIEND_ACK,
        errno: 0,
        friendid,
        name: None,
    })
}

/// PONG_MSG, echoing the ping's `seq` when it had one.
pub fn pong(seq: Option<&Value>) -> Vec<u8> {
    frame(&Pong {
        msgid: msgid::PONG_MSG,
        seq,
    })
}

#[derive(Serialize)]
struct SendAck<'a> {
    msgid: i64,
    cid: &'a str,
    mid: u64,
}

/// SEND_ACK: the chat message the client tagged `cid` was accepted as `mid` (also for a retry
/// the server recognised: the first acceptance's `mid`).
pub fn send_ack(cid: &str, mid: u64) -> Vec<u8> {
    frame(&SendAck {
        msgid: msgid::SEND_ACK,
        cid,
        mid,
    })
}

/// HEARTBEAT_MSG: the server asks a quiet client to say something.
pub fn heartbeat() -> Vec<u8> {
    b"{\"msgid\":27}\n".to_vec()
}

/// SHUTDOWN_MSG: the server is stopping.
pub fn shutdown_notice() -> Vec<u8> {
    b"{\"msgid\":29,\"errmsg\":\"server is shutting down, log in again\"}\n".to_vec()
}

#[derive(Serialize)]
struct NotStored<'a> {
    msgid: i64,
    errno: i64,
    errmsg: &'a str,
    reqmsgid: i64,
    mid: u64,
}

/// ERROR_MSG 19 for an accepted chat message (`mid`, request `reqmsgid`) that could not be
/// stored for an offline recipient, after retries: it is lost, and the sender is told.
pub fn not_stored(mid: u64, reqmsgid: i64) -> Vec<u8> {
    frame(&NotStored {
        msgid: msgid::ERROR_MSG,
        errno: ErrorCode::Internal.code(),
        errmsg: "server error, try again: the message could not be stored for an offline recipient",
        reqmsgid,
        mid,
    })
}
