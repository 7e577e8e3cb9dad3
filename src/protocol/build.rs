//! Request builders: the JSON text of every client request, for bin/client, chat-bench and the
//! tests. Each appends one JSON object to `out` (no terminator: the caller ends it with a
//! newline, or a NUL as the seeds' client does). Strings are escaped as JSON requires.
//!
//! ```
//! use chatserver::protocol::build;
//!
//! let mut out = Vec::new();
//! build::one_chat(&mut out, 13, "zhang san", 15, "hi \"you\"", "2024-01-01 10:00:00");
//! let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(v["msg"], "hi \"you\"");
//! assert_eq!(v["msgid"], 6);
//! ```

use super::msgid;
use crate::ids::{GroupId, UserId};
use std::io::Write;

/// Writes one JSON object field by field.
struct Object<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>, msgid: i64) -> Object<'a> {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{{\"msgid\":{msgid}");
        Object { out }
    }

    fn int(self, key: &str, value: i64) -> Object<'a> {
        let _ = write!(self.out, ",\"{key}\":{value}");
        self
    }

    fn text(self, key: &str, value: &str) -> Object<'a> {
        let _ = write!(self.out, ",\"{key}\":");
        // A &str always serializes; serde_json does the escaping.
        let _ = serde_json::to_writer(&mut *self.out, value);
        self
    }

    fn flag(self, key: &str, value: bool) -> Object<'a> {
        let _ = write!(self.out, ",\"{key}\":{value}");
        self
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

pub fn login(out: &mut Vec<u8>, id: UserId, password: &str) {
    Object::new(out, msgid::LOGIN_MSG)
        .int("id", id)
        .text("password", password)
        .end()
}

/// LOGIN_MSG with the extensions: a resume token instead of the password (`secret` is
/// `Err(token)`), and acknowledged delivery.
pub fn login_ext(out: &mut Vec<u8>, id: UserId, secret: Result<&str, &str>, acks: bool) {
    let login = Object::new(out, msgid::LOGIN_MSG).int("id", id);
    let login = match secret {
        Ok(password) => login.text("password", password),
        Err(token) => login.text("token", token),
    };
    let login = if acks {
        login.flag("acks", true)
    } else {
        login
    };
    login.end()
}

/// DELIVERY_ACK_MSG: `count` chat messages received on this connection so far.
pub fn delivery_ack(out: &mut Vec<u8>, count: u64) {
    Object::new(out, msgid::DELIVERY_ACK_MSG)
        .int("count", count as i64)
        .end()
}

pub fn logout(out: &mut Vec<u8>, id: UserId) {
    Object::new(out, msgid::LOGINOUT_MSG).int("id", id).end()
}

pub fn register(out: &mut Vec<u8>, name: &str, password: &str) {
    Object::new(out, msgid::REG_MSG)
        .text("name", name)
        .text("password", password)
        .end()
}

/// ONE_CHAT_MSG from user `id` (named `name`) to user `toid`.
pub fn one_chat(out: &mut Vec<u8>, id: UserId, name: &str, toid: UserId, msg: &str, time: &str) {
    chat(
        out,
        (msgid::ONE_CHAT_MSG, "toid", toid),
        id,
        name,
        msg,
        time,
    )
}

/// GROUP_CHAT_MSG from user `id` (named `name`) to the members of `groupid`.
pub fn group_chat(
    out: &mut Vec<u8>,
    id: UserId,
    name: &str,
    groupid: GroupId,
    msg: &str,
    time: &str,
) {
    chat(
        out,
        (msgid::GROUP_CHAT_MSG, "groupid", groupid),
        id,
        name,
        msg,
        time,
    )
}

/// A chat message; `to` is its msgid, the key that names its destination, and that id.
fn chat(out: &mut Vec<u8>, to: (i64, &str, i64), id: UserId, name: &str, msg: &str, time: &str) {
    chat_with_cid(out, to, id, name, msg, time, None)
}

/// ONE_CHAT_MSG with a client id, so the server recognises a retry of it.
pub fn one_chat_cid(
    out: &mut Vec<u8>,
    (id, name): (UserId, &str),
    toid: UserId,
    msg: &str,
    time: &str,
    cid: &str,
) {
    chat_with_cid(
        out,
        (msgid::ONE_CHAT_MSG, "toid", toid),
        id,
        name,
        msg,
        time,
        Some(cid),
    )
}

/// GROUP_CHAT_MSG with a client id, so the server recognises a retry of it.
pub fn group_chat_cid(
    out: &mut Vec<u8>,
    (id, name): (UserId, &str),
    groupid: GroupId,
    msg: &str,
    time: &str,
    cid: &str,
) {
    chat_with_cid(
        out,
        (msgid::GROUP_CHAT_MSG, "groupid", groupid),
        id,
        name,
        msg,
        time,
        Some(cid),
    )
}

fn chat_with_cid(
    out: &mut Vec<u8>,
    to: (i64, &str, i64),
    id: UserId,
    name: &str,
    msg: &str,
    time: &str,
    cid: Option<&str>,
) {
    let chat = Object::new(out, to.0)
        .int("id", id)
        .text("name", name)
        .int(to.1, to.2)
        .text("msg", msg)
        .text("time", time);
    match cid {
        Some(cid) => chat.text("cid", cid).end(),
        None => chat.end(),
    }
}

pub fn add_friend(out: &mut Vec<u8>, id: UserId, friendid: UserId) {
    Object::new(out, msgid::ADD_FRIEND_MSG)
        .int("id", id)
        .int("friendid", friendid)
        .end()
}

pub fn remove_friend(out: &mut Vec<u8>, id: UserId, friendid: UserId) {
    Object::new(out, msgid::REMOVE_FRIEND_MSG)
        .int("id", id)
        .int("friendid", friendid)
        .end()
}

pub fn friend_list(out: &mut Vec<u8>, id: UserId) {
    Object::new(out, msgid::FRIEND_LIST_MSG).int("id", id).end()
}

pub fn create_group(out: &mut Vec<u8>, id: UserId, groupname: &str, groupdesc: &str) {
    Object::new(out, msgid::CREATE_GROUP_MSG)
        .int("id", id)
        .text("groupname", groupname)
        .text("groupdesc", groupdesc)
        .end()
}

pub fn join_group(out: &mut Vec<u8>, id: UserId, groupid: GroupId) {
    Object::new(out, msgid::ADD_GROUP_MSG)
        .int("id", id)
        .int("groupid", groupid)
        .end()
}

pub fn leave_group(out: &mut Vec<u8>, id: UserId, groupid: GroupId) {
    Object::new(out, msgid::LEAVE_GROUP_MSG)
        .int("id", id)
        .int("groupid", groupid)
        .end()
}

pub fn group_list(out: &mut Vec<u8>, id: UserId) {
    Object::new(out, msgid::GROUP_LIST_MSG).int("id", id).end()
}

/// PING_MSG; the server echoes `seq` in its PONG_MSG.
pub fn ping(out: &mut Vec<u8>, seq: Option<u64>) {
    let ping = Object::new(out, msgid::PING_MSG);
    match seq {
        Some(seq) => ping.int("seq", seq as i64).end(),
        None => ping.end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_request, Request, Secret};

    fn built(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn every_request_parses_back() {
        let name = "li \"si\"\\\n\u{1F600}";
        let cases: Vec<(Vec<u8>, Request)> = vec![
            (
                built(|o| login(o, 7, name)),
                Request::Login {
                    id: 7,
                    secret: Secret::Password(name.into()),
                    acks: false,
                },
            ),
            (built(|o| logout(o, 7)), Request::Logout { id: 7 }),
            (
                built(|o| register(o, name, "pw")),
                Request::Register {
                    name: name.into(),
                    password: "pw".into(),
                },
            ),
            (
                built(|o| one_chat(o, 7, name, 9, name, "t")),
                Request::OneChat {
                    id: 7,
                    toid: 9,
                    cid: None,
                },
            ),
            (
                built(|o| group_chat(o, 7, name, 2, "m", "t")),
                Request::GroupChat {
                    id: 7,
                    groupid: 2,
                    cid: None,
                },
            ),
            (
                built(|o| add_friend(o, 7, 9)),
                Request::AddFriend { id: 7, friendid: 9 },
            ),
            (
                built(|o| remove_friend(o, 7, 9)),
                Request::RemoveFriend { id: 7, friendid: 9 },
            ),
            (built(|o| friend_list(o, 7)), Request::FriendList { id: 7 }),
            (
                built(|o| create_group(o, 7, "g", "d")),
                Request::CreateGroup {
                    id: 7,
                    groupname: "g".into(),
                    groupdesc: "d".into(),
                },
            ),
            (
                built(|o| join_group(o, 7, 2)),
                Request::AddGroup { id: 7, groupid: 2 },
            ),
            (
                built(|o| leave_group(o, 7, 2)),
                Request::LeaveGroup { id: 7, groupid: 2 },
            ),
            (built(|o| group_list(o, 7)), Request::GroupList { id: 7 }),
            (built(|o| ping(o, None)), Request::Ping { seq: None }),
            (
                built(|o| login_ext(o, 7, Err(&"a".repeat(64)), true)),
                Request::Login {
                    id: 7,
                    secret: Secret::Token("a".repeat(64).into()),
                    acks: true,
                },
            ),
            (
                built(|o| one_chat_cid(o, (7, "n"), 9, "m", "t", "c-1")),
                Request::OneChat {
                    id: 7,
                    toid: 9,
                    cid: Some("c-1".into()),
                },
            ),
            (
                built(|o| group_chat_cid(o, (7, "n"), 2, "m", "t", "c-2")),
                Request::GroupChat {
                    id: 7,
                    groupid: 2,
                    cid: Some("c-2".into()),
                },
            ),
            (
                built(|o| delivery_ack(o, 12)),
                Request::DeliveryAck { count: 12 },
            ),
            (
                built(|o| ping(o, Some(5))),
                Request::Ping {
                    seq: Some(serde_json::json!(5)),
                },
            ),
        ];
        for (bytes, want) in cases {
            let got = parse_request(&bytes).unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&bytes));
            });
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&bytes));
        }
    }
}
