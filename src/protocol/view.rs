//! Plain data the server hands to the reply builders (users, friends, groups as shown to a client).

/// A friend as listed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FriendView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub online: bool,
}

/// A group member as listed to a client; `role` is "creator" or "normal" as in the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub online: bool,
    pub role: &'a str,
}

/// A group with its members as listed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub desc: &'a str,
    pub users: Vec<MemberView<'a>>,
}

/// The seeds' wording of presence.
pub(crate) fn state(online: bool) -> &'static str {
    if online {
        "online"
    } else {
        "offline"
    }
}
