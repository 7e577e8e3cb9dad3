//! One-to-one and group chat: frames are forwarded exactly as the sender wrote them.

use crate::chat::delivery::outgoing;
use crate::chat::group_cache::is_member;
use crate::chat::handler::error;
use crate::chat::service::{ChatService, Done};
use crate::net::{ConnId, EventLoop};
use crate::protocol::msgid::{GROUP_CHAT_MSG, ONE_CHAT_MSG};
use crate::protocol::{reply, ErrorCode};
use crate::store::{GroupId, UserId};
use bytes::Bytes;
use std::sync::Arc;

pub(crate) fn one_chat(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    to: UserId,
    frame: &[u8],
) {
    svc.deliver(lp, &[to], outgoing(frame), Some((conn, ONE_CHAT_MSG)));
}

pub(crate) fn group_chat(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    group: GroupId,
    frame: &[u8],
) {
    let frame = outgoing(frame);
    if let Some(members) = svc.groups.get(group) {
        svc.fan_out_group(lp, conn, user, group, &members, frame);
        return;
    }
    // A cache miss: load the members on a worker, keeping this sender's messages in order.
    svc.run_busy(lp, conn, group, GROUP_CHAT_MSG, move |svc, store| {
        let epoch = svc.groups.epoch();
        match store.group_member_ids(group) {
            Ok(Some(ids)) => Done::GroupChat {
                user,
                group,
                members: svc.groups.install(group, ids, epoch),
                frame,
            },
            Ok(None) => Done::Reply(reply::error(
                ErrorCode::NoSuchGroup,
                None,
                Some(GROUP_CHAT_MSG),
            )),
            Err(e) => {
                log::error!("loading members of group {group} failed: {e}");
                Done::Reply(reply::error(
                    ErrorCode::Internal,
                    None,
                    Some(GROUP_CHAT_MSG),
                ))
            }
        }
    });
}

impl ChatService {
    /// Sends a group frame to every member but the sender, if the sender is a member.
    pub(crate) fn fan_out_group(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        user: UserId,
        _group: GroupId,
        members: &[UserId],
        frame: Bytes,
    ) {
        if !is_member(members, user) {
            return error(lp, conn, ErrorCode::NotMember, GROUP_CHAT_MSG);
        }
        let others: Vec<UserId> = members.iter().copied().filter(|&m| m != user).collect();
        self.deliver(lp, &others, frame, None);
    }
}
