//! One-to-one and group chat: frames are forwarded exactly as the sender wrote them.

use crate::chat::delivery::outgoing;
use crate::chat::group_cache::is_member;
use crate::chat::handler::error;
use crate::chat::outcome::Outcome;
use crate::chat::service::ChatService;
use crate::cluster::Origin;
use crate::ids::{ConnId, GroupId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{GROUP_CHAT_MSG, ONE_CHAT_MSG};
use crate::protocol::ErrorCode;
use bytes::Bytes;
use std::sync::Arc;

pub(crate) fn one_chat(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    to: UserId,
    frame: &[u8],
) {
    let origin = Origin {
        conn,
        msgid: ONE_CHAT_MSG,
    };
    svc.delivery
        .deliver(lp, &[to], outgoing(frame), Some(origin));
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
        return fan_out(svc, lp, conn, user, &members, frame);
    }
    // A cache miss: load the members on a worker, keeping this sender's messages in order.
    svc.run_busy(lp, conn, group, GROUP_CHAT_MSG, move |svc, store| {
        let epoch = svc.groups.epoch();
        let ids = store
            .group_member_ids(group)?
            .ok_or(ErrorCode::NoSuchGroup)?;
        let members = svc.groups.install(group, ids, epoch);
        Ok(Outcome::then(move |svc, lp, conn| {
            fan_out(svc, lp, conn, user, &members, frame)
        }))
    });
}

/// Sends a group frame to every member but the sender, if the sender is a member.
fn fan_out(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    members: &[UserId],
    frame: Bytes,
) {
    if !is_member(members, user) {
        return error(lp, conn, ErrorCode::NotMember, GROUP_CHAT_MSG);
    }
    let others: Vec<UserId> = members.iter().copied().filter(|&m| m != user).collect();
    svc.delivery.deliver(lp, &others, frame, None);
}
