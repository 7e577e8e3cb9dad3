//! Friends: add, remove, list (one-directional, as in the seeds: A's list of contacts).

use crate::chat::handler::error;
use crate::chat::service::{ChatService, Done};
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid::{ADD_FRIEND_MSG, FRIEND_LIST_MSG, REMOVE_FRIEND_MSG};
use crate::protocol::{reply, ErrorCode, FriendView};
use crate::store::{FriendAdd, StoreError, UserId};
use std::sync::Arc;

/// The reply for a store failure while serving `msgid`.
pub(crate) fn internal(msgid: i64, e: StoreError) -> Done {
    log::error!("request {msgid} failed in the store: {e}");
    Done::Reply(reply::error(ErrorCode::Internal, None, Some(msgid)))
}

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
        .add_friend(user, friend)
    {
        Ok(FriendAdd::Added { name }) => Done::Reply(reply::add_friend_ack(friend, &name)),
        Ok(FriendAdd::AlreadyFriends) => Done::Reply(reply::error(
            ErrorCode::AlreadyFriends,
            None,
            Some(ADD_FRIEND_MSG),
        )),
        Ok(FriendAdd::NoSuchUser) => Done::Reply(reply::error(
            ErrorCode::NoSuchUser,
            None,
            Some(ADD_FRIEND_MSG),
        )),
        Err(e) => internal(ADD_FRIEND_MSG, e),
    });
}

pub(crate) fn remove_friend(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    friend: UserId,
) {
    svc.run_busy(
        lp,
        conn,
        user,
        REMOVE_FRIEND_MSG,
        move |_, store| match store.remove_friend(user, friend) {
            Ok(true) => Done::Reply(reply::remove_friend_ack(friend)),
            Ok(false) => Done::Reply(reply::error(
                ErrorCode::NotFriends,
                None,
                Some(REMOVE_FRIEND_MSG),
            )),
            Err(e) => internal(REMOVE_FRIEND_MSG, e),
        },
    );
}

pub(crate) fn friend_list(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.run_busy(
        lp,
        conn,
        user,
        FRIEND_LIST_MSG,
        move |svc, store| match store.friends(user) {
            Ok(friends) => {
                let ids: Vec<UserId> = friends.iter().map(|f| f.id).collect();
                let views: Vec<FriendView> = friends
                    .iter()
                    .zip(svc.online_states(&ids))
                    .map(|(f, online)| FriendView {
                        id: f.id,
                        name: &f.name,
                        online,
                    })
                    .collect();
                Done::Reply(reply::friend_list_ack(&views))
            }
            Err(e) => internal(FRIEND_LIST_MSG, e),
        },
    );
}
