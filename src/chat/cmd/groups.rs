//! Groups: create, join, leave, list. Every membership change drops the group's cached members.

use crate::chat::cmd::account::group_views;
use crate::chat::cmd::contacts::internal;
use crate::chat::service::{ChatService, Done};
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid::{ADD_GROUP_MSG, CREATE_GROUP_MSG, GROUP_LIST_MSG, LEAVE_GROUP_MSG};
use crate::protocol::{reply, ErrorCode};
use crate::store::{GroupId, GroupJoin, GroupLeave, UserId};
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
    svc.run_busy(
        lp,
        conn,
        user,
        CREATE_GROUP_MSG,
        move |svc, store| match store.create_group(user, &name, &desc) {
            Ok(Some(group)) => {
                svc.group_changed(group);
                Done::Reply(reply::create_group_ack(group, &name))
            }
            Ok(None) => Done::Reply(reply::error(
                ErrorCode::GroupNameTaken,
                None,
                Some(CREATE_GROUP_MSG),
            )),
            Err(e) => internal(CREATE_GROUP_MSG, e),
        },
    );
}

pub(crate) fn join_group(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    group: GroupId,
) {
    svc.run_busy(lp, conn, user, ADD_GROUP_MSG, move |svc, store| match store
        .join_group(user, group)
    {
        Ok(GroupJoin::Joined) => {
            svc.group_changed(group);
            Done::Reply(reply::add_group_ack(group))
        }
        Ok(GroupJoin::AlreadyMember) => Done::Reply(reply::error(
            ErrorCode::AlreadyMember,
            None,
            Some(ADD_GROUP_MSG),
        )),
        Ok(GroupJoin::NoSuchGroup) => Done::Reply(reply::error(
            ErrorCode::NoSuchGroup,
            None,
            Some(ADD_GROUP_MSG),
        )),
        Err(e) => internal(ADD_GROUP_MSG, e),
    });
}

pub(crate) fn leave_group(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    group: GroupId,
) {
    svc.run_busy(
        lp,
        conn,
        user,
        LEAVE_GROUP_MSG,
        move |svc, store| match store.leave_group(user, group) {
            Ok(GroupLeave::Left) => {
                svc.group_changed(group);
                Done::Reply(reply::leave_group_ack(group))
            }
            // The store does not tell a group it never had from one the user is not in;
            // the protocol does (10 no such group, 8 not a member).
            Ok(GroupLeave::NotMember) => match store.group_member_ids(group) {
                Ok(Some(_)) => Done::Reply(reply::error(
                    ErrorCode::NotMember,
                    None,
                    Some(LEAVE_GROUP_MSG),
                )),
                Ok(None) => Done::Reply(reply::error(
                    ErrorCode::NoSuchGroup,
                    None,
                    Some(LEAVE_GROUP_MSG),
                )),
                Err(e) => internal(LEAVE_GROUP_MSG, e),
            },
            Err(e) => internal(LEAVE_GROUP_MSG, e),
        },
    );
}

pub(crate) fn group_list(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId, user: UserId) {
    svc.run_busy(
        lp,
        conn,
        user,
        GROUP_LIST_MSG,
        move |svc, store| match store.groups_of(user) {
            Ok(groups) => Done::Reply(reply::group_list_ack(&group_views(svc, &groups))),
            Err(e) => internal(GROUP_LIST_MSG, e),
        },
    );
}
