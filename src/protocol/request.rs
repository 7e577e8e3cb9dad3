//! `Request` and `parse_request`: one frame's bytes to a typed client request, or a `ParseError`.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::msgid;
use super::slot::{Slot, StrSeen};
use super::ErrorCode;

/// Longest user name, in characters (the seeds' `user.name` is VARCHAR(50)).
pub const MAX_NAME_CHARS: usize = 50;
/// Longest password, in bytes (it is hashed, but unbounded input is never a good idea).
pub const MAX_PASSWORD_BYTES: usize = 128;
/// Longest group name, in characters (the seeds' `allgroup.groupname` is VARCHAR(50)).
pub const MAX_GROUPNAME_CHARS: usize = 50;
/// Longest group description, in characters (the seeds' `allgroup.groupdesc` is VARCHAR(200)).
pub const MAX_GROUPDESC_CHARS: usize = 200;
/// Longest client message id (`cid`) of a chat message, in bytes.
pub const MAX_CID_BYTES: usize = 64;
/// Length of a resume token, in characters (hex).
pub const TOKEN_CHARS: usize = 64;

/// How a login proves who it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Secret<'a> {
    Password(Cow<'a, str>),
    /// A resume token from an earlier login's ack.
    Token(Cow<'a, str>),
}

impl Secret<'_> {
    pub fn into_owned(self) -> Secret<'static> {
        match self {
            Secret::Password(p) => Secret::Password(Cow::Owned(p.into_owned())),
            Secret::Token(t) => Secret::Token(Cow::Owned(t.into_owned())),
        }
    }
}

/// A client request, borrowing its strings from the frame when they hold no escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Request<'a> {
    Login {
        id: i64,
        secret: Secret<'a>,
        /// The client acknowledges what it receives (DELIVERY_ACK_MSG).
        acks: bool,
    },
    Logout {
        id: i64,
    },
    Register {
        name: Cow<'a, str>,
        password: Cow<'a, str>,
    },
    /// The frame itself is forwarded (with its server id added) by the server.
    OneChat {
        id: i64,
        toid: i64,
        /// The client's own id for the message, to deduplicate its retries.
        cid: Option<Cow<'a, str>>,
    },
    AddFriend {
        id: i64,
        friendid: i64,
    },
    CreateGroup {
        id: i64,
        groupname: Cow<'a, str>,
        groupdesc: Cow<'a, str>,
    },
    AddGroup {
        id: i64,
        groupid: i64,
    },
    /// The frame itself is forwarded (with its server id added) to the other members.
    GroupChat {
        id: i64,
        groupid: i64,
        cid: Option<Cow<'a, str>>,
    },
    FriendList {
        id: i64,
    },
    GroupList {
        id: i64,
    },
    LeaveGroup {
        id: i64,
        groupid: i64,
    },
    RemoveFriend {
        id: i64,
        friendid: i64,
    },
    Ping {
        seq: Option<Value>,
    },
    /// The client received `count` chat messages on this connection so far.
    DeliveryAck {
        count: i64,
    },
}

impl Request<'_> {
    /// The msgid this request arrived with.
    pub fn msgid(&self) -> i64 {
        match self {
            Request::Login { .. } => msgid::LOGIN_MSG,
            Request::Logout { .. } => msgid::LOGINOUT_MSG,
            Request::Register { .. } => msgid::REG_MSG,
            Request::OneChat { .. } => msgid::ONE_CHAT_MSG,
            Request::AddFriend { .. } => msgid::ADD_FRIEND_MSG,
            Request::CreateGroup { .. } => msgid::CREATE_GROUP_MSG,
            Request::AddGroup { .. } => msgid::ADD_GROUP_MSG,
            Request::GroupChat { .. } => msgid::GROUP_CHAT_MSG,
            Request::FriendList { .. } => msgid::FRIEND_LIST_MSG,
            Request::GroupList { .. } => msgid::GROUP_LIST_MSG,
            Request::LeaveGroup { .. } => msgid::LEAVE_GROUP_MSG,
            Request::RemoveFriend { .. } => msgid::REMOVE_FRIEND_MSG,
            Request::Ping { .. } => msgid::PING_MSG,
            Request::DeliveryAck { .. } => msgid::DELIVERY_ACK_MSG,
        }
    }

    /// The user the client claims to be (its `id` field), which the server must check against
    /// the session; `None` for the requests that carry no id (register, ping).
    pub fn claimed_id(&self) -> Option<i64> {
        match *self {
            Request::Login { id, .. }
            | Request::Logout { id }
            | Request::OneChat { id, .. }
            | Request::AddFriend { id, .. }
            | Request::CreateGroup { id, .. }
            | Request::AddGroup { id, .. }
            | Request::GroupChat { id, .. }
            | Request::FriendList { id }
            | Request::GroupList { id }
            | Request::LeaveGroup { id, .. }
            | Request::RemoveFriend { id, .. } => Some(id),
            Request::Register { .. } | Request::Ping { .. } | Request::DeliveryAck { .. } => None,
        }
    }
}

/// Why a frame is not a valid request; everything needed for an ERROR_MSG reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub code: ErrorCode,
    /// What exactly was wrong (a field name, the JSON parser's message); may be empty.
    pub detail: String,
    /// The request's msgid when it had a usable one (becomes `reqmsgid` in the reply).
    pub msgid: Option<i64>,
}

impl ParseError {
    fn new(code: ErrorCode, detail: impl Into<String>, msgid: Option<i64>) -> Self {
        ParseError {
            code,
            detail: detail.into(),
            msgid,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.message())?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Every field any request may carry, each recorded loosely, filled in one pass over the frame
/// (no `serde_json::Value` tree). Unknown fields are skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Fields<'a> {
    msgid: Slot<i64>,
    id: Slot<i64>,
    #[serde(borrow)]
    password: Slot<Cow<'a, str>>,
    #[serde(borrow)]
    name: Slot<Cow<'a, str>>,
    toid: Slot<i64>,
    msg: Slot<StrSeen>,
    time: Slot<StrSeen>,
    friendid: Slot<i64>,
    #[serde(borrow)]
    groupname: Slot<Cow<'a, str>>,
    #[serde(borrow)]
    groupdesc: Slot<Cow<'a, str>>,
    groupid: Slot<i64>,
    #[serde(deserialize_with = "present")]
    seq: Option<Value>,
    #[serde(borrow)]
    token: Slot<Cow<'a, str>>,
    acks: Slot<bool>,
    #[serde(borrow)]
    cid: Slot<Cow<'a, str>>,
    count: Slot<i64>,
}

/// Keeps `"seq": null` as `Some(Null)` so that a ping's seq is echoed exactly as sent.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Parses one frame (as cut by the [`Framer`](super::Framer)) into a typed request.
pub fn parse_request(frame: &[u8]) -> Result<Request<'_>, ParseError> {
    let first = frame
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        // serde's derived structs would also accept an array (fields by position): refuse it
        // here, and tell "valid JSON but not an object" from plain garbage.
        return Err(match serde_json::from_slice::<IgnoredAny>(frame) {
            Ok(_) => ParseError::new(ErrorCode::NotObject, "", None),
            Err(e) => ParseError::new(ErrorCode::BadJson, e.to_string(), None),
        });
    }
    let fields: Fields<'_> = serde_json::from_slice(frame)
        .map_err(|e| ParseError::new(ErrorCode::BadJson, e.to_string(), None))?;
    let id = match fields.msgid {
        Slot::Got(id) => id,
        Slot::Absent | Slot::Wrong => return Err(ParseError::new(ErrorCode::BadMsgId, "", None)),
    };
    build(id, fields)
}

/// Picks and checks the fields that msgid `m` needs.
fn build(m: i64, f: Fields<'_>) -> Result<Request<'_>, ParseError> {
    let req = match m {
        msgid::LOGIN_MSG => {
            let id = int(f.id, "id", m)?;
            let secret = match (f.password, f.token) {
                (Slot::Absent, Slot::Absent) => return Err(bad_field("password", m)),
                (password, Slot::Absent) => Secret::Password(text(password, "password", m)?),
                (Slot::Absent, token) => {
                    let token = text(token, "token", m)?;
                    if token.len() != TOKEN_CHARS {
                        return Err(ParseError::new(ErrorCode::BadValue, "token", Some(m)));
                    }
                    Secret::Token(token)
                }
                _ => {
                    return Err(ParseError::new(
                        ErrorCode::BadValue,
                        "password and token",
                        Some(m),
                    ))
                }
            };
            let acks = match f.acks {
                Slot::Absent => false,
                Slot::Got(acks) => acks,
                Slot::Wrong => return Err(bad_field("acks", m)),
            };
            Request::Login { id, secret, acks }
        }
        msgid::LOGINOUT_MSG => Request::Logout {
            id: int(f.id, "id", m)?,
        },
        msgid::REG_MSG => {
            let name = text(f.name, "name", m)?;
            let password = text(f.password, "password", m)?;
            check_chars(&name, MAX_NAME_CHARS, "name", m)?;
            if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
                return Err(ParseError::new(ErrorCode::BadValue, "password", Some(m)));
            }
            Request::Register { name, password }
        }
        msgid::ONE_CHAT_MSG => {
            let (id, toid) = (int(f.id, "id", m)?, int(f.toid, "toid", m)?);
            chat_text(f.name, f.msg, f.time, m)?;
            let cid = cid(f.cid, m)?;
            Request::OneChat { id, toid, cid }
        }
        msgid::ADD_FRIEND_MSG => Request::AddFriend {
            id: int(f.id, "id", m)?,
            friendid: int(f.friendid, "friendid", m)?,
        },
        msgid::CREATE_GROUP_MSG => {
            let id = int(f.id, "id", m)?;
            let groupname = text(f.groupname, "groupname", m)?;
            let groupdesc = match f.groupdesc {
                Slot::Absent => Cow::Borrowed(""),
                slot => text(slot, "groupdesc", m)?,
            };
            check_chars(&groupname, MAX_GROUPNAME_CHARS, "groupname", m)?;
            if groupdesc.chars().count() > MAX_GROUPDESC_CHARS {
                return Err(ParseError::new(ErrorCode::BadValue, "groupdesc", Some(m)));
            }
            Request::CreateGroup {
                id,
                groupname,
                groupdesc,
            }
        }
        msgid::ADD_GROUP_MSG => Request::AddGroup {
            id: int(f.id, "id", m)?,
            groupid: int(f.groupid, "groupid", m)?,
        },
        msgid::GROUP_CHAT_MSG => {
            let (id, groupid) = (int(f.id, "id", m)?, int(f.groupid, "groupid", m)?);
            chat_text(f.name, f.msg, f.time, m)?;
            let cid = cid(f.cid, m)?;
            Request::GroupChat { id, groupid, cid }
        }
        msgid::FRIEND_LIST_MSG => Request::FriendList {
            id: int(f.id, "id", m)?,
        },
        msgid::GROUP_LIST_MSG => Request::GroupList {
            id: int(f.id, "id", m)?,
        },
        msgid::LEAVE_GROUP_MSG => Request::LeaveGroup {
            id: int(f.id, "id", m)?,
            groupid: int(f.groupid, "groupid", m)?,
        },
        msgid::REMOVE_FRIEND_MSG => Request::RemoveFriend {
            id: int(f.id, "id", m)?,
            friendid: int(f.friendid, "friendid", m)?,
        },
        msgid::PING_MSG => Request::Ping { seq: f.seq },
        msgid::DELIVERY_ACK_MSG => {
            let count = int(f.count, "count", m)?;
            if count < 0 {
                return Err(ParseError::new(ErrorCode::BadValue, "count", Some(m)));
            }
            Request::DeliveryAck { count }
        }
        _ => return Err(ParseError::new(ErrorCode::UnknownMsgId, "", Some(m))),
    };
    Ok(req)
}

fn bad_field(field: &'static str, m: i64) -> ParseError {
    ParseError::new(ErrorCode::BadField, field, Some(m))
}

/// A required integer field.
fn int(slot: Slot<i64>, field: &'static str, m: i64) -> Result<i64, ParseError> {
    match slot {
        Slot::Got(v) => Ok(v),
        Slot::Absent | Slot::Wrong => Err(bad_field(field, m)),
    }
}

/// A required string field.
fn text<'a>(
    slot: Slot<Cow<'a, str>>,
    field: &'static str,
    m: i64,
) -> Result<Cow<'a, str>, ParseError> {
    match slot {
        Slot::Got(v) => Ok(v),
        Slot::Absent | Slot::Wrong => Err(bad_field(field, m)),
    }
}

/// Chat messages: `msg` must be a string; `name` and `time` may be missing but not mistyped.
/// The receiving client parses them, so a forwarded frame must not surprise it.
fn chat_text(
    name: Slot<Cow<'_, str>>,
    msg: Slot<StrSeen>,
    time: Slot<StrSeen>,
    m: i64,
) -> Result<(), ParseError> {
    if matches!(name, Slot::Wrong) {
        return Err(bad_field("name", m));
    }
    if !matches!(msg, Slot::Got(_)) {
        return Err(bad_field("msg", m));
    }
    if matches!(time, Slot::Wrong) {
        return Err(bad_field("time", m));
    }
    Ok(())
}

/// A chat message's optional client id: a string of 1 to MAX_CID_BYTES bytes.
fn cid<'a>(slot: Slot<Cow<'a, str>>, m: i64) -> Result<Option<Cow<'a, str>>, ParseError> {
    match slot {
        Slot::Absent => Ok(None),
        Slot::Got(cid) if !cid.is_empty() && cid.len() <= MAX_CID_BYTES => Ok(Some(cid)),
        Slot::Got(_) => Err(ParseError::new(ErrorCode::BadValue, "cid", Some(m))),
        Slot::Wrong => Err(bad_field("cid", m)),
    }
}

/// A name must be non-empty and at most `max` characters (not bytes: names may be Chinese).
fn check_chars(value: &str, max: usize, field: &'static str, m: i64) -> Result<(), ParseError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ParseError::new(ErrorCode::BadValue, field, Some(m)));
    }
    Ok(())
}
