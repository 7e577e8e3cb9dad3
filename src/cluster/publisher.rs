//! The publisher thread: pipelines deliveries, releases and the heartbeat to Redis.
//!
//! Everything queued while a round trip was in flight goes out in the next batch, so a burst
//! of N deliveries costs two round trips (look the recipients up, then one PUBLISH per target
//! server: see `send_batch`), not N. Looking up and publishing need not be atomic: a
//! recipient who moved in between is not found by the server that gets the copy, and that
//! server stores it (and asks the recipient's new server to hand it over). On a broken link the deliveries
//! of the batch are reported undeliverable (and stored): if Redis did run some of them before
//! the link broke, those recipients get the message twice rather than never.

use super::pending::Pending;
use super::wire::{self, alive_key, server_channel, token, user_key, BatchWriter, GROUPS_CHANNEL};
use super::{scripts, Origin, RedisBus, LIVENESS_TTL};
use crate::ids::{GroupId, UserId};
use bytes::Bytes;
use redis::Value;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) enum Op {
    Deliver {
        users: Vec<UserId>,
        frame: Bytes,
        origin: Option<Origin>,
    },
    Release {
        user: UserId,
        token: String,
    },
    GroupChanged(GroupId),
    Flush(UserId),
    /// Tell server `to` that its message `mid` reached its recipients here.
    Confirm {
        to: Arc<str>,
        mid: u64,
    },
}

const MAX_BATCH: usize = 1024;
/// Most ops kept for the next link while Redis is away (see `fail_batch`).
const MAX_KEPT: usize = 100_000;
const HEARTBEAT_EVERY: Duration = Duration::from_millis(LIVENESS_TTL.as_millis() as u64 / 3);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

struct Link {
    con: redis::Connection,
    /// When this link was made: right after Redis came back, other servers' liveness keys
    /// are not there yet (they are put back by each server's next heartbeat).
    since: Instant,
    owners_sha: String,
    release_sha: String,
    flush_sha: String,
}

pub(crate) fn run(cluster: &RedisBus, ops: Receiver<Op>) {
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
fn connect(cluster: &RedisBus) -> redis::RedisResult<Link> {
    let mut con = cluster.connect()?;
    let owners_sha = scripts::OWNERS.load(&mut con)?;
    let release_sha = scripts::RELEASE.load(&mut con)?;
    let flush_sha = scripts::FLUSH.load(&mut con)?;
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
        since: Instant::now(),
        owners_sha,
        release_sha,
        flush_sha,
    })
}

/// One publisher round of `batch`: the heartbeat, a lookup of where every recipient is, the
/// small ops (releases, group changes, flush requests, confirmations), then one PUBLISH per
/// target server carrying all its messages. Two round trips for the whole batch, whatever
/// its size; Redis's work per message is a memory copy, and per recipient a lookup.
fn send_batch(
    cluster: &RedisBus,
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
    let recipients = Recipients::of(batch);
    if !recipients.users.is_empty() {
        pipe.cmd("EVALSHA").arg(&link.owners_sha).arg(0);
        for user in &recipients.users {
            pipe.arg(*user);
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
                pipe.cmd("PUBLISH")
                    .arg(GROUPS_CHANNEL)
                    .arg(wire::group_changed(*group));
            }
            Op::Flush(user) => {
                // Published to the server that holds the user, found by its presence token.
                pipe.cmd("EVALSHA")
                    .arg(&link.flush_sha)
                    .arg(1)
                    .arg(user_key(*user))
                    .arg(wire::flush(*user));
            }
            Op::Confirm { to, mid } => confirms.entry(to.as_ref()).or_default().push(*mid),
        }
    }
    for (to, mids) in &confirms {
        pipe.cmd("PUBLISH")
            .arg(server_channel(to))
            .arg(wire::ack(&cluster.server_id, mids));
    }
    let results: Vec<Value> = match pipe.query(&mut link.con) {
        Ok(results) => results,
        Err(e) => {
            fail_batch(cluster, batch);
            return Err(e);
        }
    };
    if recipients.users.is_empty() {
        batch.clear();
        return Ok(());
    }
    let owners = match results.into_iter().nth(usize::from(heartbeat)) {
        Some(Value::Array(owners)) if owners.len() == recipients.users.len() => owners
            .iter()
            .map(|owner| text_of(owner).filter(|o| !o.is_empty()))
            .collect(),
        other => {
            // Nobody can be known to have a session: every recipient's copy is stored.
            log::warn!("redis: recipient lookup failed: {other:?}");
            vec![None; recipients.users.len()]
        }
    };
    publish_deliveries(cluster, link, batch, &recipients, &owners)
}

/// The distinct recipients of a batch's deliveries, each with its place in the lookup.
struct Recipients {
    users: Vec<UserId>,
    index: HashMap<UserId, usize>,
}

impl Recipients {
    fn of(batch: &[Op]) -> Recipients {
        let mut r = Recipients {
            users: Vec::new(),
            index: HashMap::new(),
        };
        for op in batch {
            if let Op::Deliver { users, .. } = op {
                for &user in users {
                    r.index.entry(user).or_insert_with(|| {
                        r.users.push(user);
                        r.users.len() - 1
                    });
                }
            }
        }
        r
    }
}

/// What one message of the batch became: recipients whose copy went to a server, and those
/// nobody took (to be stored).
struct Routed {
    mid: u64,
    unreached: Vec<UserId>,
    /// (target server's position in the batch's targets, its recipients of this message)
    sent: Vec<(usize, Vec<UserId>)>,
}

/// Second round trip: one PUBLISH per target server with every message for it; then the
/// copies a server took stay pending until it confirms them, and the rest are stored.
fn publish_deliveries(
    cluster: &RedisBus,
    link: &mut Link,
    batch: &mut Vec<Op>,
    recipients: &Recipients,
    owners: &[Option<String>],
) -> redis::RedisResult<()> {
    // Target servers, and the batch payload being written for each.
    let mut targets: Vec<&str> = Vec::new();
    let mut payloads: Vec<BatchWriter> = Vec::new();
    let mut routed = Vec::new();
    for op in batch.iter() {
        let Op::Deliver { users, frame, .. } = op else {
            continue;
        };
        let mut message = Routed {
            mid: cluster.next_mid(),
            unreached: Vec::new(),
            sent: Vec::new(),
        };
        for &user in users {
            let owner = recipients
                .index
                .get(&user)
                .and_then(|&i| owners[i].as_deref());
            let Some(owner) = owner else {
                message.unreached.push(user);
                continue;
            };
            let target = match targets.iter().position(|&server| server == owner) {
                Some(t) => t,
                None => {
                    targets.push(owner);
                    payloads.push(BatchWriter::new(&cluster.server_id));
                    targets.len() - 1
                }
            };
            match message.sent.iter_mut().find(|(t, _)| *t == target) {
                Some((_, to)) => to.push(user),
                None => message.sent.push((target, vec![user])),
            }
        }
        for (target, to) in &message.sent {
            payloads[*target].push(message.mid, to, frame);
        }
        routed.push(message);
    }
    let mut received = vec![0i64; targets.len()];
    if !targets.is_empty() {
        let mut pipe = redis::pipe();
        for (server, payload) in targets.iter().zip(payloads) {
            pipe.cmd("PUBLISH")
                .arg(server_channel(server))
                .arg(payload.finish());
        }
        match pipe.query::<Vec<i64>>(&mut link.con) {
            Ok(counts) if counts.len() == targets.len() => received = counts,
            Ok(counts) => log::warn!(
                "redis: {} answers to {} publishes",
                counts.len(),
                targets.len()
            ),
            Err(e) => {
                // Some publishes may have gone out: their recipients may get the message
                // twice (delivered and stored), never zero times.
                fail_batch(cluster, batch);
                return Err(e);
            }
        }
    }
    let events = cluster.events();
    let mut routed = routed.into_iter();
    for op in batch.drain(..) {
        let Op::Deliver { frame, origin, .. } = op else {
            continue;
        };
        let Some(mut message) = routed.next() else {
            break;
        };
        for (target, to) in message.sent {
            if received[target] == 0 {
                // The publish reached no subscriber: that server is gone or not listening.
                message.unreached.extend(to);
            } else {
                let pending = Pending {
                    users: to,
                    frame: frame.clone(),
                    sent: Instant::now(),
                };
                cluster
                    .pending
                    .insert(message.mid, targets[target], pending);
            }
        }
        if !message.unreached.is_empty() {
            if let Some(events) = &events {
                events.undeliverable(message.unreached, frame, origin);
            }
        }
    }
    Ok(())
}

/// Stores what servers did not confirm: everything pending for a dead server, and what an
/// alive one left unconfirmed past the timeout (see receipt.rs).
fn sweep_pending(cluster: &RedisBus, link: &mut Link) -> redis::RedisResult<()> {
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
    // A missing liveness key means a dead server only once every live server has had the
    // time to put its key back after a Redis restart.
    let settled = link.since.elapsed() >= 2 * LIVENESS_TTL;
    for (server, alive) in servers.iter().zip(alive) {
        let dead = alive == 0 && settled;
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

/// The link failed with `batch` (or none could be made): its deliveries are stored offline
/// at once; the other ops stay for the next link. A confirmation that never reaches its
/// sender makes the sender store a message that was delivered (a duplicate), and a lost
/// group change leaves another server's member cache stale; sending either twice is harmless.
fn fail_batch(cluster: &RedisBus, batch: &mut Vec<Op>) {
    let events = cluster.events();
    let mut kept = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Deliver {
                users,
                frame,
                origin,
            } => {
                if let Some(events) = &events {
                    events.undeliverable(users, frame, origin);
                }
            }
            // Presence is put back whole by RESYNC when the link returns.
            Op::Release { .. } => {}
            other => kept.push(other),
        }
    }
    if kept.len() > MAX_KEPT {
        log::warn!(
            "redis: {} confirmations and group changes waited for a link; the oldest are dropped",
            kept.len()
        );
        kept.drain(..kept.len() - MAX_KEPT);
    }
    *batch = kept;
}
