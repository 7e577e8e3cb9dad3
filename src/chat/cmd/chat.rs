//! One-to-one and group chat: each accepted message gets a server id (`mid`, chat/mid.rs),
//! added to the frame the recipients get; otherwise it is forwarded as the sender wrote it. A
//! message with a client id (`cid`) is answered with SEND_ACK, and a retry of it (same `cid`)
//! gets the first acceptance's `mid` again instead of a second delivery.

use crate::chat::group_cache::is_member;
use crate::chat::handler::error;
use crate::chat::mid::with_mid;
use crate::chat::outbound;
use crate::chat::outcome::Outcome;
use crate::chat::service::ChatService;
use crate::cluster::Origin;
use crate::ids::{ConnId, GroupId, UserId};
use crate::net::EventLoop;
use crate::protocol::msgid::{GROUP_CHAT_MSG, ONE_CHAT_MSG};
use crate::protocol::{reply, ErrorCode};
use bytes::Bytes;
use std::sync::Arc;

/// Gives the message its id; None if it is a retry already accepted (then answered here).
fn accept(
    svc: &ChatService,
    lp: &mut EventLoop,
    conn: ConnId,
    user: UserId,
    cid: Option<&str>,
) -> Option<u64> {
    let mid = svc.mids.next();
    let Some(cid) = cid else {
        return Some(mid);
    };
    match svc.recent_cids.first_or_record(user, cid, mid) {
        Some(first) => {
            outbound::reply(lp, conn, &reply::send_ack(cid, first));
            None
        }
        None => Some(mid),
    }
}

/// The sender's confirmation, for a message that carried a client id.
fn confirm(lp: &mut EventLoop, conn: ConnId, cid: Option<&str>, mid: u64) {
    if let Some(cid) = cid {
        outbound::reply(lp, conn, &reply::send_ack(cid, mid));
    }
}

pub(crate) fn one_chat(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    (user, to): (UserId, UserId),
    frame: &[u8],
    cid: Option<&str>,
) {
    let Some(mid) = accept(svc, lp, conn, user, cid) else {
        return;
    };
    let origin = Origin {
        conn,
        msgid: ONE_CHAT_MSG,
    };
    svc.delivery
        .deliver(lp, &[to], with_mid(frame, mid), Some(origin));
    confirm(lp, conn, cid, mid);
}

pub(crate) fn group_chat(
    svc: &Arc<ChatService>,
    lp: &mut EventLoop,
    conn: ConnId,
    (user, group): (UserId, GroupId),
    frame: &[u8],
    cid: Option<&str>,
) {
    let Some(mid) = accept(svc, lp, conn, user, cid) else {
        return;
    };
    let frame = with_mid(frame, mid);
    let cid: Option<Box<str>> = cid.map(Into::into);
    if let Some(members) = svc.groups.get(group) {
        return fan_out(svc, lp, conn, user, &members, frame, (cid.as_deref(), mid));
    }
    // A cache miss: load the members on a worker, keeping this sender's messages in order.
    svc.run_busy(lp, conn, group, GROUP_CHAT_MSG, move |svc, store| {
        let epoch = svc.groups.epoch();
        let ids = store
            .group_member_ids(group)?
            .ok_or(ErrorCode::NoSuchGroup)?;
        let members = svc.groups.install(group, ids, epoch);
        Ok(Outcome::then(move |svc, lp, conn| {
            fan_out(svc, lp, conn, user, &members, frame, (cid.as_deref(), mid))
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
    (cid, mid): (Option<&str>, u64),
) {
    if !is_member(members, user) {
        return error(lp, conn, ErrorCode::NotMember, GROUP_CHAT_MSG);
    }
    let others: Vec<UserId> = members.iter().copied().filter(|&m| m != user).collect();
    svc.delivery.deliver(lp, &others, frame, None);
    confirm(lp, conn, cid, mid);
}
