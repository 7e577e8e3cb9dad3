//! The subscriber thread: owns the pub/sub connection and hands what arrives to the chat layer.
//!
//! It blocks on Redis with a short read timeout so it notices a stop request, and reconnects
//! with backoff when the link breaks. While it is away, publishes to this server reach no
//! subscriber, so senders store those messages offline: nothing is lost, only delayed.

use super::batch;
use super::keys::{server_channel, GROUPS_CHANNEL};
use super::receipt::Receipt;
use super::{Cluster, RemoteDelivery};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

const READ_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) fn run(cluster: &Arc<Cluster>) {
    let channel = server_channel(&cluster.server_id);
    let mut backoff = Duration::from_millis(50);
    while !cluster.stopping() {
        match listen(cluster, &channel, &mut backoff) {
            Ok(()) => return,
            Err(e) => {
                if cluster.stopping() {
                    return;
                }
                log::warn!("redis: subscriber link lost or refused ({e}); retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Subscribes and dispatches until the link breaks (Err) or the cluster stops (Ok).
fn listen(cluster: &Arc<Cluster>, channel: &str, backoff: &mut Duration) -> redis::RedisResult<()> {
    let mut con = cluster
        .client
        .get_connection_with_timeout(super::CONNECT_TIMEOUT)?;
    let mut pubsub = con.as_pubsub();
    pubsub.subscribe(channel)?;
    pubsub.subscribe(GROUPS_CHANNEL)?;
    pubsub.set_read_timeout(Some(READ_TIMEOUT))?;
    log::info!("redis: subscribed to {channel}");
    *backoff = Duration::from_millis(50);
    loop {
        if cluster.stopping() {
            return Ok(());
        }
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e),
        };
        let Some(events) = cluster.events() else {
            continue;
        };
        let payload = msg.get_payload_bytes();
        if msg.get_channel_name() == GROUPS_CHANNEL {
            if let Some(group) = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                events.group_changed(group);
            }
            continue;
        }
        if let Some(rest) = payload.strip_prefix(b"!ack ") {
            // `!ack <server> mid,mid,...`: that server confirms our deliveries.
            if let Some((server, mids)) = std::str::from_utf8(rest)
                .ok()
                .and_then(|r| r.split_once(' '))
            {
                cluster
                    .pending
                    .confirm(server, mids.split(',').filter_map(|m| m.parse().ok()));
            }
            continue;
        }
        if let Some(user) = payload.strip_prefix(b"!flush ") {
            if let Some(user) = std::str::from_utf8(user).ok().and_then(|s| s.parse().ok()) {
                events.flush_offline(user);
            }
            continue;
        }
        // `<sender server>\n` then `<mid> <frame length> <uid>,<uid>,...\n<frame>` per message.
        let payload = Bytes::copy_from_slice(payload);
        let Some((sender, deliveries)) = batch::parse(&payload) else {
            log::warn!("redis: malformed delivery batch on {channel}");
            continue;
        };
        // Shared by the batch's receipts: one allocation, not one per message.
        let sender: Arc<str> = sender.into();
        let batch = deliveries
            .into_iter()
            .map(|delivery| RemoteDelivery {
                receipt: Receipt::new(cluster.clone(), sender.clone(), delivery.mid),
                frame: payload.slice(delivery.frame),
                users: delivery.users,
            })
            .collect();
        events.deliver_remote(batch);
    }
}
