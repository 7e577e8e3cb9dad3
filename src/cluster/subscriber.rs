//! The subscriber thread: owns the pub/sub connection and hands what arrives to the chat layer.
//!
//! It blocks on Redis with a short read timeout so it notices a stop request, and reconnects
//! with backoff when the link breaks. While it is away, publishes to this server reach no
//! subscriber, so senders store those messages offline: nothing is lost, only delayed.

use super::keys::{server_channel, GROUPS_CHANNEL};
use super::receipt::Receipt;
use super::Cluster;
use crate::store::UserId;
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
        let Some((sender, deliveries)) = parse_batch(&payload) else {
            log::warn!("redis: malformed delivery batch on {channel}");
            continue;
        };
        for delivery in deliveries {
            let receipt = Receipt::new(cluster.clone(), sender.clone(), delivery.mid);
            let frame = payload.slice(delivery.frame);
            events.deliver_remote(delivery.users, frame, Some(receipt));
        }
    }
}

/// One message of a delivery batch: its id, recipients, and where its frame is.
#[derive(Debug, PartialEq)]
struct Delivery {
    mid: u64,
    users: Vec<UserId>,
    frame: std::ops::Range<usize>,
}

/// Splits a batch into its sender server and messages; None if any part is malformed (the
/// publisher is our own code, so that means a version mismatch: nothing is half-delivered).
fn parse_batch(payload: &[u8]) -> Option<(String, Vec<Delivery>)> {
    let line_end = |from: usize| {
        payload[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
    };
    let sender_end = line_end(0)?;
    let sender = std::str::from_utf8(&payload[..sender_end]).ok()?.to_owned();
    if sender.is_empty() {
        return None;
    }
    let mut deliveries = Vec::new();
    let mut at = sender_end + 1;
    while at < payload.len() {
        let end = line_end(at)?;
        let header = std::str::from_utf8(&payload[at..end]).ok()?;
        let mut fields = header.splitn(3, ' ');
        let mid = fields.next()?.parse().ok()?;
        let len: usize = fields.next()?.parse().ok()?;
        let users: Vec<UserId> = fields
            .next()?
            .split(',')
            .map(|u| u.parse().ok())
            .collect::<Option<_>>()?;
        let start = end + 1;
        let stop = start.checked_add(len).filter(|&s| s <= payload.len())?;
        if users.is_empty() {
            return None;
        }
        deliveries.push(Delivery {
            mid,
            users,
            frame: start..stop,
        });
        at = stop;
    }
    (!deliveries.is_empty()).then_some((sender, deliveries))
}

#[cfg(test)]
mod tests {
    use super::{parse_batch, Delivery};

    #[test]
    fn delivery_batch_round_trip() {
        // Frames may hold newlines and spaces: they are cut by length, not by separator.
        let payload = b"127.0.0.1:6000\n42 8 7,9\n{\"a\":\n1}43 2 5\n{}";
        let (sender, deliveries) = parse_batch(payload).unwrap();
        assert_eq!(sender, "127.0.0.1:6000");
        assert_eq!(
            deliveries,
            vec![
                Delivery {
                    mid: 42,
                    users: vec![7, 9],
                    frame: 24..32
                },
                Delivery {
                    mid: 43,
                    users: vec![5],
                    frame: 39..41
                },
            ]
        );
        assert_eq!(&payload[24..32], b"{\"a\":\n1}");
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        for bad in [
            &b"garbage"[..],
            b"s\n",
            b"s\n1 5 7\n{}",
            b"s\n1 2 \n{}",
            b"s\nx 2 7\n{}",
            b"s\n1 2 7,y\n{}",
            b"\n1 2 7\n{}",
            b"s\n1 99999999999999999999 7\n{}",
        ] {
            assert!(
                parse_batch(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
