//! Friends: add, remove, list (one-directional, as in the seeds: A's list of contacts).

use crate::chat::handler::error;
use crate::chat::outcome::Outcome;
use crate::chat::service::ChatService;
use crate::ids::{ConnId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{ADD_FRIEND_MSG, FRIEND_LIST_MSG, REMOVE_FRIEND_MSG};
use crate::protocol::{reply, ErrorCode, FriendView};
use crate::store::{Contact, FriendAdd};
use std::sync::Arc;

pub(crate) fn add_friend(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    friend: UserId,
) {
    if friend == user {
        return error(lp, conn, ErrorCode::SelfFriend, ADD_FRIEND_MSG);
    }
    svc.run_busy(lp, conn, user, ADD_FRIEND_MSG, move |_, store| match store
        .add_friend(user, friend)?
    {
        FriendAdd::Added { name } => Ok(Outcome::Reply(reply::add_friend_ack(friend, &name))),
        FriendAdd::AlreadyFriends => Err(ErrorCode::AlreadyFriends.into()),
        FriendAdd::NoSuchUser => Err(ErrorCode::NoSuchUser.into()),
    });
}

pub(crate) fn remove_friend(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    friend: UserId,
) {
    svc.run_busy(lp, conn, user, REMOVE_FRIEND_MSG, move |_, store| {
        if store.remove_friend(user, friend)? {
            Ok(Outcome::Reply(reply::remove_friend_ack(friend)))
        } else {
            Err(ErrorCode::NotFriends.into())
        }
    });
}

pub(crate) fn friend_list(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.run_busy(lp, conn, user, FRIEND_LIST_MSG, move |svc, store| {
        let friends = store.friends(user)?;
        Ok(Outcome::Reply(reply::friend_list_ack(&friend_views(
            svc, &friends,
        ))))
    });
}

/// Friends as the protocol shows them, with each one's online state.
pub(crate) fn friend_views<'a>(svc: &ChatService, friends: &'a [Contact]) -> Vec<FriendView<'a>> {
    let ids: Vec<UserId> = friends.iter().map(|f| f.id).collect();
    friends
        .iter()
        .zip(svc.online_states(&ids))
        .map(|(f, online)| FriendView {
            id: f.id,
            name: &f.name,
            online,
        })
        .collect()
}
