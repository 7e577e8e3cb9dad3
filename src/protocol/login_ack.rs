//! LOGIN_MSG_ACK errno 0 in the seeds' shape, whole or fitted into one read of the seeds'
//! client.
//!
//! The seeds' shape: `offlinemsg` holds each stored message's JSON text as is, and `friends`
//! and `groups` hold JSON *texts* rather than objects (the seeds' client parses each string
//! again). Each of the three arrays is omitted when empty, as the seeds' server did.
//!
//! The seeds' client reads a reply with one `recv` into a 1,024-byte buffer and parses it up
//! to the first NUL, so a reply must be at most [`SEEDS_MAX_FRAME`] bytes for it. The fitted
//! ack takes friends first, then groups (both: every one that fits), then offline messages in
//! order, stopping at the first that does not fit; the caller pushes the rest right after.

use super::msgid;
use super::reply::{friend_wire, group_wire, member_wire, to_frame, INTERNAL_ERROR_FRAME};
use super::view::{FriendView, GroupView};
use serde::Serialize;

/// The longest frame (its final newline included) the seeds' client takes in one read: its
/// buffer has 1,024 bytes and must keep a NUL after the frame.
pub const SEEDS_MAX_FRAME: usize = 1023;

#[derive(Serialize)]
struct LoginOk<'a> {
    msgid: i64,
    errno: i64,
    id: i64,
    name: &'a str,
    /// Extensions, for modern clients: acknowledged delivery is on; the resume token.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    acks: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    offlinemsg: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    friends: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    groups: &'a [&'a str],
}

/// The JSON texts the ack's `friends` and `groups` arrays carry.
fn texts(
    friends: &[FriendView<'_>],
    groups: &[GroupView<'_>],
) -> Result<(Vec<String>, Vec<String>), serde_json::Error> {
    let friends = friends
        .iter()
        .map(|f| serde_json::to_string(&friend_wire(f)))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = groups
        .iter()
        .map(|g| {
            let users = g
                .users
                .iter()
                .map(|m| serde_json::to_string(&member_wire(m)))
                .collect::<Result<Vec<_>, _>>()?;
            serde_json::to_string(&group_wire(g, users))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((friends, groups))
}

/// The extension fields of a modern client's login ack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginExtras<'a> {
    pub acks: bool,
    pub token: Option<&'a str>,
}

fn render(
    id: i64,
    name: &str,
    extras: LoginExtras<'_>,
    offline: &[&str],
    friends: &[&str],
    groups: &[&str],
) -> Result<Vec<u8>, serde_json::Error> {
    to_frame(&LoginOk {
        msgid: msgid::LOGIN_MSG_ACK,
        errno: 0,
        id,
        name,
        acks: extras.acks,
        token: extras.token,
        offlinemsg: offline,
        friends,
        groups,
    })
}

/// The whole ack: every offline message, friend and group, and the extension fields.
pub fn login_ok<S: AsRef<str>>(
    id: i64,
    name: &str,
    extras: LoginExtras<'_>,
    offlinemsg: &[S],
    friends: &[FriendView<'_>],
    groups: &[GroupView<'_>],
) -> Vec<u8> {
    let build = || {
        let (friends, groups) = texts(friends, groups)?;
        let offline: Vec<&str> = offlinemsg.iter().map(AsRef::as_ref).collect();
        let friends: Vec<&str> = friends.iter().map(String::as_str).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        render(id, name, extras, &offline, &friends, &groups)
    };
    build().unwrap_or_else(|_| INTERNAL_ERROR_FRAME.to_vec())
}

/// An array being filled up to a byte budget: the bytes each element adds are its JSON
/// string's length, plus a comma after the first, plus `,"key":[]` for the first.
struct Fill<'a> {
    key_bytes: usize,
    chosen: Vec<&'a str>,
}

impl<'a> Fill<'a> {
    fn new(key: &str) -> Fill<'a> {
        Fill {
            key_bytes: key.len() + 6,
            chosen: Vec::new(),
        }
    }

    /// Adds `text` if it fits in `budget`, which it then shrinks.
    fn try_add(&mut self, text: &'a str, budget: &mut usize) -> bool {
        let quoted = serde_json::to_string(text).map_or(usize::MAX, |q| q.len());
        let cost = quoted.saturating_add(if self.chosen.is_empty() {
            self.key_bytes
        } else {
            1
        });
        if cost > *budget {
            return false;
        }
        *budget -= cost;
        self.chosen.push(text);
        true
    }
}

/// The ack fitted into `limit` bytes (see the module doc). Returns the frame and how many of
/// `offlinemsg` (a prefix) it carries.
pub fn login_ok_fitted<S: AsRef<str>>(
    id: i64,
    name: &str,
    offlinemsg: &[S],
    friends: &[FriendView<'_>],
    groups: &[GroupView<'_>],
    limit: usize,
) -> (Vec<u8>, usize) {
    let build = || -> Result<(Vec<u8>, usize), serde_json::Error> {
        let (friend_texts, group_texts) = texts(friends, groups)?;
        let plain = LoginExtras::default();
        let empty = render(id, name, plain, &[], &[], &[])?;
        let mut budget = limit.saturating_sub(empty.len());
        let mut friends = Fill::new("friends");
        for text in &friend_texts {
            friends.try_add(text, &mut budget);
        }
        let mut groups = Fill::new("groups");
        for text in &group_texts {
            groups.try_add(text, &mut budget);
        }
        let mut offline = Fill::new("offlinemsg");
        for text in offlinemsg {
            if !offline.try_add(text.as_ref(), &mut budget) {
                break;
            }
        }
        let mut taken = offline.chosen.len();
        let mut frame = render(
            id,
            name,
            plain,
            &offline.chosen,
            &friends.chosen,
            &groups.chosen,
        )?;
        // The budget is exact; should it ever not be, fewer offline messages still fit.
        while frame.len() > limit && taken > 0 {
            taken -= 1;
            frame = render(
                id,
                name,
                plain,
                &offline.chosen[..taken],
                &friends.chosen,
                &groups.chosen,
            )?;
        }
        Ok((frame, taken))
    };
    build().unwrap_or_else(|_| (INTERNAL_ERROR_FRAME.to_vec(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MemberView;
    use serde_json::Value;

    fn friend(id: i64, name: &str) -> FriendView<'_> {
        FriendView {
            id,
            name,
            online: id % 2 == 0,
        }
    }

    #[test]
    fn whole_ack_has_every_list() {
        let ack = login_ok(
            7,
            "me",
            LoginExtras::default(),
            &["{\"msgid\":6}"],
            &[friend(1, "a")],
            &[],
        );
        let v: Value = serde_json::from_slice(&ack).unwrap();
        assert_eq!(v["offlinemsg"][0], "{\"msgid\":6}");
        assert_eq!(
            v["friends"][0],
            "{\"id\":1,\"name\":\"a\",\"state\":\"offline\"}"
        );
        assert!(v.get("groups").is_none());
    }

    #[test]
    fn fitted_ack_fills_its_budget_exactly_and_keeps_the_order() {
        let names: Vec<String> = (0..40).map(|i| format!("friend \"{i}\" 好")).collect();
        let friends: Vec<FriendView> = names
            .iter()
            .enumerate()
            .map(|(i, n)| friend(i as i64, n))
            .collect();
        let members = vec![MemberView {
            id: 1,
            name: "m",
            online: true,
            role: "creator",
        }];
        let groups = vec![GroupView {
            id: 3,
            name: "g",
            desc: "d",
            users: members,
        }];
        let offline: Vec<String> = (0..30)
            .map(|i| format!("{{\"msgid\":6,\"msg\":\"message number {i}\"}}"))
            .collect();
        for limit in [60, 200, 500, SEEDS_MAX_FRAME, 5000] {
            let (ack, taken) = login_ok_fitted(7, "me", &offline, &friends, &groups, limit);
            assert!(ack.len() <= limit.max(60), "{} > {limit}", ack.len());
            let v: Value = serde_json::from_slice(&ack).unwrap();
            let got: Vec<&str> = v["offlinemsg"]
                .as_array()
                .map(|a| a.iter().map(|m| m.as_str().unwrap()).collect())
                .unwrap_or_default();
            let want: Vec<&str> = offline[..taken].iter().map(String::as_str).collect();
            assert_eq!(got, want, "limit {limit}");
            // Budget exact: one more offline message would not have fitted.
            if taken < offline.len() {
                let (_, more) =
                    login_ok_fitted(7, "me", &offline[..taken + 1], &friends, &groups, limit);
                assert_eq!(more, taken, "limit {limit}");
                let whole = login_ok(
                    7,
                    "me",
                    LoginExtras::default(),
                    &offline[..taken + 1],
                    &friends,
                    &groups,
                );
                let fitted_friends = v["friends"].as_array().map_or(0, Vec::len);
                if fitted_friends == friends.len() && v.get("groups").is_some() {
                    assert!(whole.len() > limit, "limit {limit}");
                }
            }
        }
        let (_, all) = login_ok_fitted(7, "me", &offline, &friends, &groups, 1 << 20);
        assert_eq!(all, offline.len());
    }

    #[test]
    fn a_message_too_long_for_the_client_stays_out_of_the_ack() {
        let long = format!("{{\"msgid\":6,\"msg\":\"{}\"}}", "x".repeat(3000));
        let short = "{\"msgid\":6,\"msg\":\"hi\"}".to_owned();
        let offline = vec![long, short];
        let (ack, taken) = login_ok_fitted(7, "me", &offline, &[], &[], SEEDS_MAX_FRAME);
        assert_eq!(
            taken, 0,
            "order is kept: the short one waits behind the long one"
        );
        assert!(ack.len() <= SEEDS_MAX_FRAME);
    }
}
