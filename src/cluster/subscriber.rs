//! The subscriber thread: owns the pub/sub connection and hands what arrives to the chat layer.
//!
//! It blocks on Redis with a short read timeout so it notices a stop request, and reconnects
//! with backoff when the link breaks. While it is away, publishes to this server reach no
//! subscriber, so senders store those messages offline: nothing is lost, only delayed.

use super::wire::{self, server_channel, Incoming, GROUPS_CHANNEL};
use super::{Receipt, RedisBus, RemoteDelivery};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

const READ_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) fn run(cluster: &Arc<RedisBus>) {
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
fn listen(
    cluster: &Arc<RedisBus>,
    channel: &str,
    backoff: &mut Duration,
) -> redis::RedisResult<()> {
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
            if let Some(group) = wire::parse_group_changed(payload) {
                events.group_changed(group);
            }
            continue;
        }
        match wire::parse(payload) {
            Some(Incoming::Ack { sender, mids }) => {
                cluster.pending.confirm(sender, mids.into_iter());
            }
            Some(Incoming::Flush(user)) => events.flush_offline(user),
            Some(Incoming::Batch { sender, deliveries }) => {
                // The frames are slices of one copy of the payload; the receipts share one
                // sender name.
                let frames = Bytes::copy_from_slice(payload);
                let sender: Arc<str> = sender.into();
                let batch = deliveries
                    .into_iter()
                    .map(|d| RemoteDelivery {
                        receipt: Arc::new(Receipt::new(sender.clone(), d.mid, d.users.len())),
                        frame: frames.slice(d.frame),
                        users: d.users,
                    })
                    .collect();
                events.deliver_remote(batch);
            }
            None => log::warn!("redis: malformed payload on {channel}"),
        }
    }
}
