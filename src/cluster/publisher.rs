//! The publisher thread: pipelines deliveries, releases and the heartbeat to Redis.
//!
//! Everything queued while a round trip was in flight goes out in the next pipeline, so a
//! burst of N deliveries costs about one round trip, not N. On a broken link the deliveries
//! of the batch are reported undeliverable (and stored): if Redis did run some of them before
//! the link broke, those recipients get the message twice rather than never.

use super::keys::{alive_key, server_channel, token, user_key, GROUPS_CHANNEL};
use super::receipt::Pending;
use super::{scripts, Cluster, LIVENESS_TTL};
use crate::net::ConnId;
use crate::store::{GroupId, UserId};
use bytes::Bytes;
use redis::Value;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub(crate) enum Op {
    Deliver {
        users: Vec<UserId>,
        frame: Bytes,
        sender: Option<(ConnId, i64)>,
    },
    Release {
        user: UserId,
        token: String,
    },
    GroupChanged(GroupId),
    Flush(UserId),
    /// Tell server `to` that its message `mid` reached its recipients here.
    Confirm {
        to: String,
        mid: u64,
    },
}

const MAX_BATCH: usize = 1024;
const HEARTBEAT_EVERY: Duration = Duration::from_millis(LIVENESS_TTL.as_millis() as u64 / 3);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

struct Link {
    con: redis::Connection,
    deliver_sha: String,
    release_sha: String,
}

pub(crate) fn run(cluster: &Cluster, ops: Receiver<Op>) {
    let mut link: Option<Link> = None;
    let mut backoff = Duration::from_millis(50);
    let mut next_heartbeat = Instant::now();
    let mut batch = Vec::new();
    loop {
        let wait = next_heartbeat.saturating_duration_since(Instant::now());
        match ops.recv_timeout(wait) {
            Ok(op) => batch.push(op),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if link.is_none() {
            match connect(cluster) {
                Ok(l) => {
                    log::info!("redis: publisher connected; presence of this server restored");
                    link = Some(l);
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    log::warn!("redis: publisher cannot connect ({e}); retrying in {backoff:?}");
                    fail_batch(cluster, &mut batch);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let heartbeat = Instant::now() >= next_heartbeat;
        if heartbeat {
            next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
        }
        if batch.is_empty() && !heartbeat {
            continue;
        }
        if let Some(l) = link.as_mut() {
            let mut result = send_batch(cluster, l, &mut batch, heartbeat);
            if heartbeat && result.is_ok() {
                result = sweep_pending(cluster, l);
            }
            if let Err(e) = result {
                log::warn!("redis: publisher link lost: {e}");
                link = None;
                next_heartbeat = Instant::now();
            }
        }
    }
    // Stopping: whatever is left still gets delivered or stored.
    if let Some(l) = link.as_mut() {
        if send_batch(cluster, l, &mut batch, false).is_ok() {
            return;
        }
    }
    fail_batch(cluster, &mut batch);
}

/// Connects, loads the scripts, and puts this server's presence back.
fn connect(cluster: &Cluster) -> redis::RedisResult<Link> {
    let mut con = cluster.connect()?;
    let deliver_sha = scripts::DELIVER.load(&mut con)?;
    let release_sha = scripts::RELEASE.load(&mut con)?;
    redis::cmd("SET")
        .arg(alive_key(&cluster.server_id))
        .arg(1)
        .arg("PX")
        .arg(LIVENESS_TTL.as_millis() as u64)
        .query::<()>(&mut con)?;
    if let Some(events) = cluster.events() {
        let sessions = events.local_sessions();
        let tokens: Vec<String> = sessions
            .iter()
            .map(|(_, conn)| token(&cluster.server_id, conn.as_u64()))
            .collect();
        let mut resync = scripts::RESYNC.prepare_invoke();
        resync.arg(&cluster.server_id).arg(tokens.join(","));
        for (user, _) in &sessions {
            resync.arg(*user);
        }
        let removed: i64 = resync.invoke(&mut con)?;
        log::info!(
            "redis: presence resynced: {} sessions, {removed} stale entries removed",
            sessions.len()
        );
    }
    Ok(Link {
        con,
        deliver_sha,
        release_sha,
    })
}

fn send_batch(
    cluster: &Cluster,
    link: &mut Link,
    batch: &mut Vec<Op>,
    heartbeat: bool,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    if heartbeat {
        pipe.cmd("SET")
            .arg(alive_key(&cluster.server_id))
            .arg(1)
            .arg("PX")
            .arg(LIVENESS_TTL.as_millis() as u64);
    }
    // Every delivery of the batch in one script call, which publishes once per target
    // server: Redis's work per message is a presence lookup, not a command and a publish.
    let mut mids = Vec::new();
    let mut recipients = String::new();
    for op in batch.iter() {
        if let Op::Deliver { users, frame, .. } = op {
            if mids.is_empty() {
                pipe.cmd("EVALSHA")
                    .arg(&link.deliver_sha)
                    .arg(0)
                    .arg(&cluster.server_id);
            }
            let mid = cluster.next_mid();
            mids.push(mid);
            recipients.clear();
            for (i, user) in users.iter().enumerate() {
                if i > 0 {
                    recipients.push(',');
                }
                recipients.push_str(&user.to_string());
            }
            pipe.arg(mid).arg(frame.as_ref()).arg(recipients.as_str());
        }
    }
    // Confirmations are batched per server: one PUBLISH each, after the other commands.
    let mut confirms: HashMap<&str, Vec<u64>> = HashMap::new();
    for op in batch.iter() {
        match op {
            Op::Deliver { .. } => {}
            Op::Release { user, token } => {
                pipe.cmd("EVALSHA")
                    .arg(&link.release_sha)
                    .arg(1)
                    .arg(user_key(*user))
                    .arg(token);
            }
            Op::GroupChanged(group) => {
                pipe.cmd("PUBLISH").arg(GROUPS_CHANNEL).arg(*group);
            }
            Op::Flush(user) => {
                // Published to the server that holds the user, found by its presence token.
                pipe.cmd("EVAL")
                    .arg(FLUSH_SCRIPT)
                    .arg(1)
                    .arg(user_key(*user))
                    .arg(format!("!flush {user}"));
            }
            Op::Confirm { to, mid } => confirms.entry(to.as_str()).or_default().push(*mid),
        }
    }
    for (to, list) in &confirms {
        let list: Vec<String> = list.iter().map(u64::to_string).collect();
        pipe.cmd("PUBLISH").arg(server_channel(to)).arg(format!(
            "!ack {} {}",
            cluster.server_id,
            list.join(",")
        ));
    }
    let results: Vec<Value> = match pipe.query(&mut link.con) {
        Ok(results) => results,
        Err(e) => {
            fail_batch(cluster, batch);
            return Err(e);
        }
    };
    if mids.is_empty() {
        batch.clear();
        return Ok(());
    }
    // The delivery script's answer: one entry per message, in batch order.
    let outcome = results.into_iter().nth(usize::from(heartbeat));
    let mut per_message = match outcome {
        Some(Value::Array(entries)) if entries.len() == mids.len() => {
            entries.into_iter().map(Some).collect()
        }
        other => {
            log::warn!("redis: delivery script failed: {other:?}");
            vec![None; mids.len()]
        }
    }
    .into_iter();
    let events = cluster.events();
    let mut mids = mids.into_iter();
    for op in batch.drain(..) {
        let Op::Deliver {
            users,
            frame,
            sender,
        } = op
        else {
            continue;
        };
        let mid = mids.next().unwrap_or_default();
        let unreached = match per_message.next().flatten() {
            Some(Value::Array(parts)) if !parts.is_empty() => {
                for pair in parts[1..].chunks(2) {
                    let server = text_of(&pair[0]);
                    let list = pair.get(1).and_then(text_of);
                    if let (Some(server), Some(list)) = (server, list) {
                        let pending = Pending {
                            users: user_list(&list),
                            frame: frame.clone(),
                            sent: Instant::now(),
                        };
                        cluster.pending.insert(mid, server, pending);
                    }
                }
                text_of(&parts[0]).map_or(users, |list| user_list(&list))
            }
            // No answer for this message: nobody can be known to have it; store it.
            _ => users,
        };
        if !unreached.is_empty() {
            if let Some(events) = &events {
                events.undeliverable(unreached, frame, sender);
            }
        }
    }
    Ok(())
}

fn user_list(csv: &str) -> Vec<UserId> {
    csv.split(',').filter_map(|u| u.parse().ok()).collect()
}

/// KEYS[1] a user's presence key, ARGV[1] a control message: published to that user's server.
const FLUSH_SCRIPT: &str = "local c = redis.call('GET', KEYS[1]) \
    if c then return redis.call('PUBLISH', 'chat:server:' .. (string.match(c, '^(.*)|') or c), ARGV[1]) end \
    return 0";

/// Stores what servers did not confirm: everything pending for a dead server, and what an
/// alive one left unconfirmed past the timeout (see receipt.rs).
fn sweep_pending(cluster: &Cluster, link: &mut Link) -> redis::RedisResult<()> {
    let servers = cluster.pending.overdue_servers();
    if servers.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for server in &servers {
        pipe.cmd("EXISTS").arg(alive_key(server));
    }
    let alive: Vec<i64> = pipe.query(&mut link.con)?;
    let Some(events) = cluster.events() else {
        return Ok(());
    };
    for (server, alive) in servers.iter().zip(alive) {
        let dead = alive == 0;
        let overdue = cluster.pending.take(server, dead);
        if !overdue.is_empty() {
            log::warn!(
                "redis: {} deliveries to {server} unconfirmed ({}): storing them offline",
                overdue.len(),
                if dead {
                    "server dead"
                } else {
                    "confirm timeout"
                }
            );
        }
        for pending in overdue {
            events.undeliverable(pending.users, pending.frame, None);
        }
    }
    Ok(())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn fail_batch(cluster: &Cluster, batch: &mut Vec<Op>) {
    let events = cluster.events();
    for op in batch.drain(..) {
        if let (
            Op::Deliver {
                users,
                frame,
                sender,
            },
            Some(events),
        ) = (op, &events)
        {
            events.undeliverable(users, frame, sender);
        }
    }
}
