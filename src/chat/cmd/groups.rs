//! Groups: create, join, leave, list. Every membership change drops the group's cached members.

use crate::chat::cmd::account::group_views;
use crate::chat::outcome::Outcome;
use crate::chat::service::ChatService;
use crate::ids::{ConnId, GroupId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{ADD_GROUP_MSG, CREATE_GROUP_MSG, GROUP_LIST_MSG, LEAVE_GROUP_MSG};
use crate::protocol::{reply, ErrorCode};
use crate::store::{GroupJoin, GroupLeave};
use std::sync::Arc;

pub(crate) fn create_group(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    name: &str,
    desc: &str,
) {
    let (name, desc) = (name.to_owned(), desc.to_owned());
    svc.run_busy(lp, conn, user, CREATE_GROUP_MSG, move |svc, store| {
        let group = store
            .create_group(user, &name, &desc)?
            .ok_or(ErrorCode::GroupNameTaken)?;
        svc.group_changed(group);
        Ok(Outcome::Reply(reply::create_group_ack(group, &name)))
    });
}

pub(crate) fn join_group(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    group: GroupId,
) {
    svc.run_busy(lp, conn, user, ADD_GROUP_MSG, move |svc, store| match store
        .join_group(user, group)?
    {
        GroupJoin::Joined => {
            svc.group_changed(group);
            Ok(Outcome::Reply(reply::add_group_ack(group)))
        }
        GroupJoin::AlreadyMember => Err(ErrorCode::AlreadyMember.into()),
        GroupJoin::NoSuchGroup => Err(ErrorCode::NoSuchGroup.into()),
    });
}

pub(crate) fn leave_group(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    group: GroupId,
) {
    svc.run_busy(lp, conn, user, LEAVE_GROUP_MSG, move |svc, store| {
        match store.leave_group(user, group)? {
            GroupLeave::Left => {
                svc.group_changed(group);
                Ok(Outcome::Reply(reply::leave_group_ack(group)))
            }
            // The store does not tell a group it never had from one the user is not in; the
            // protocol does (10 no such group, 8 not a member).
            GroupLeave::NotMember => match store.group_member_ids(group)? {
                Some(_) => Err(ErrorCode::NotMember.into()),
                None => Err(ErrorCode::NoSuchGroup.into()),
            },
        }
    });
}

pub(crate) fn group_list(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.run_busy(lp, conn, user, GROUP_LIST_MSG, move |svc, store| {
        let groups = store.groups_of(user)?;
        Ok(Outcome::Reply(reply::group_list_ack(&group_views(
            svc, &groups,
        ))))
    });
}
