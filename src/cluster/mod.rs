//! Cluster: presence and cross-server delivery over Redis, for servers behind one load balancer.
//!
//! Shape (DESIGN.md "Cluster and presence"): each server subscribes one channel of its own
//! (`chat:server:<sid>`); a logged-in user's presence is `chat:user:<uid>` → `<sid>|<conn>`;
//! each server keeps `chat:alive:<sid>` alive with a short TTL. A delivery is one round trip:
//! a Lua script looks up each recipient's server, checks it is alive, publishes once per
//! server, and returns the recipients nobody received, which the caller stores offline.
//!
//! Threads: a subscriber thread owns the pub/sub connection and hands what arrives to the
//! chat layer (which queues it onto the owning I/O loop); a publisher thread owns another
//! connection and pipelines every delivery, release and heartbeat queued to it, so no I/O
//! loop ever waits on Redis. Store workers use a small pool of connections for the calls
//! whose answer they need (login claims, online states). When Redis goes away, deliveries
//! are stored offline, both threads reconnect with backoff, and the publisher puts this
//! server's presence back (`RESYNC`) as soon as it is connected again.

mod batch;
mod keys;
mod publisher;
mod receipt;
mod scripts;
mod subscriber;

pub use receipt::Receipt;

pub use keys::{alive_key, server_channel, token, user_key, GROUPS_CHANNEL};

use crate::net::ConnId;
use crate::store::{GroupId, UserId};
use bytes::Bytes;
use publisher::Op;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a server counts as alive after its last heartbeat.
pub const LIVENESS_TTL: Duration = Duration::from_secs(3);
/// Connecting to Redis gives up after this long (then the caller backs off and retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A synchronous call (claim, online states) gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What the cluster hands up to the chat layer. Called on the cluster's own threads.
pub trait ClusterEvents: Send + Sync {
    /// Frames for users of this server arrived from another server, in the order it sent
    /// them. Drop each `receipt` (all clones of it) once every copy of its frame is written
    /// to its socket or stored.
    fn deliver_remote(&self, batch: Vec<RemoteDelivery>);
    /// Nobody received the frame for these users (offline, dead server, Redis down): store it.
    fn undeliverable(&self, users: Vec<UserId>, frame: Bytes, sender: Option<(ConnId, i64)>);
    /// Another server changed a group's membership.
    fn group_changed(&self, group: GroupId);
    /// Another server stored messages for this user of ours after its login: hand them over.
    fn flush_offline(&self, user: UserId);
    /// This server's live sessions, to put presence back after Redis lost it.
    fn local_sessions(&self) -> Vec<(UserId, ConnId)>;
}

/// One message from another server for some of this server's users.
pub struct RemoteDelivery {
    pub users: Vec<UserId>,
    pub frame: Bytes,
    pub receipt: Receipt,
}

/// Errors of the synchronous calls.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis: {}", self.0)
    }
}

impl std::error::Error for ClusterError {}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError(e.to_string())
    }
}

pub struct Cluster {
    server_id: String,
    client: redis::Client,
    ops: Mutex<Option<Sender<Op>>>,
    pool: Mutex<Vec<redis::Connection>>,
    events: OnceLock<Weak<dyn ClusterEvents>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Deliveries published to other servers and not yet confirmed by them.
    pending: receipt::PendingDeliveries,
    next_mid: AtomicU64,
}

impl Cluster {
    /// Connects the cluster layer; threads start with `start`.
    pub fn new(redis_url: &str, server_id: &str) -> Result<Arc<Cluster>, ClusterError> {
        if server_id.is_empty()
            || server_id.starts_with('!')
            || server_id.contains(['|', ',', '\n', ' '])
        {
            return Err(ClusterError(format!(
                "invalid server id '{server_id}' (no '|', ',', spaces, no leading '!')"
            )));
        }
        let client = redis::Client::open(redis_url)?;
        Ok(Arc::new(Cluster {
            server_id: server_id.to_owned(),
            client,
            ops: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            events: OnceLock::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
            pending: receipt::PendingDeliveries::default(),
            next_mid: AtomicU64::new(1),
        }))
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Starts the publisher and subscriber threads, reporting to `events`.
    pub fn start(self: &Arc<Self>, events: Weak<dyn ClusterEvents>) -> std::io::Result<()> {
        let _ = self.events.set(events);
        let (tx, rx) = mpsc::channel();
        *self.ops.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let publisher = {
            let cluster = self.clone();
            std::thread::Builder::new()
                .name("redis-pub".into())
                .spawn(move || publisher::run(&cluster, rx))?
        };
        let subscriber = {
            let cluster = self.clone();
            std::thread::Builder::new()
                .name("redis-sub".into())
                .spawn(move || subscriber::run(&cluster))?
        };
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([publisher, subscriber]);
        Ok(())
    }

    /// Stops both threads (after the publisher has sent what is queued) and removes this
    /// server's liveness key, so its users can log in elsewhere at once.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
        let _ = self.call(|con| {
            redis::cmd("DEL")
                .arg(alive_key(&self.server_id))
                .query::<i64>(con)
        });
    }

    fn events(&self) -> Option<Arc<dyn ClusterEvents>> {
        self.events.get().and_then(Weak::upgrade)
    }

    fn next_mid(&self) -> u64 {
        self.next_mid.fetch_add(1, Ordering::Relaxed)
    }

    /// Cross-server deliveries still waiting for their receiver's confirmation.
    pub fn pending_deliveries(&self) -> usize {
        self.pending.len()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(CALL_TIMEOUT))?;
        con.set_write_timeout(Some(CALL_TIMEOUT))?;
        Ok(con)
    }

    fn send(&self, op: Op) {
        let sent = match &*self.ops.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(op).map_err(|e| e.0),
            None => Err(op),
        };
        if let Err(Op::Deliver {
            users,
            frame,
            sender,
        }) = sent
        {
            // Publisher gone (stopping): whatever was to be delivered gets stored.
            if let Some(events) = self.events() {
                events.undeliverable(users, frame, sender);
            }
        }
    }

    /// Delivers `frame` to users that have no session on this server (never blocks).
    pub fn deliver(&self, users: Vec<UserId>, frame: Bytes, sender: Option<(ConnId, i64)>) {
        self.send(Op::Deliver {
            users,
            frame,
            sender,
        });
    }

    /// Removes `user`'s presence if it is still the session `conn` (never blocks).
    pub fn release(&self, user: UserId, conn: ConnId) {
        self.send(Op::Release {
            user,
            token: token(&self.server_id, conn.as_u64()),
        });
    }

    /// Tells every server that `group`'s membership changed (never blocks).
    pub fn group_changed(&self, group: GroupId) {
        self.send(Op::GroupChanged(group));
    }

    /// Asks the server holding `user` to hand over the user's stored messages (never blocks).
    pub fn request_flush(&self, user: UserId) {
        self.send(Op::Flush(user));
    }

    /// Runs a synchronous call on a pooled connection (store workers only: it blocks).
    ///
    /// Pooled connections outlive a Redis restart as dead sockets; the first call on one
    /// fails before anything ran, so on a broken link the pool is emptied and the call
    /// retried once on a fresh connection.
    fn call<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ClusterError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let fresh = pooled.is_none();
        let mut con = match pooled {
            Some(con) => con,
            None => self.connect()?,
        };
        let result = match f(&mut con) {
            Err(e) if !fresh && (e.is_io_error() || e.is_connection_dropped()) => {
                self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                con = self.connect()?;
                f(&mut con)
            }
            other => other,
        };
        match result {
            Ok(value) => {
                self.pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(con);
                Ok(value)
            }
            // The connection may be broken: drop it, the next call reconnects.
            Err(e) => Err(e.into()),
        }
    }

    /// Claims `user` for session `conn` of this server, unless a live server holds it.
    pub fn claim(&self, user: UserId, conn: ConnId) -> Result<bool, ClusterError> {
        let token = token(&self.server_id, conn.as_u64());
        let claimed: i64 = self.call(|con| {
            scripts::CLAIM
                .key(user_key(user))
                .arg(&token)
                .arg(&self.server_id)
                .invoke(con)
        })?;
        Ok(claimed == 1)
    }

    /// Whether each user has a session on a live server.
    pub fn online(&self, users: &[UserId]) -> Result<Vec<bool>, ClusterError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let owners: Vec<String> = self.call(|con| {
            let mut invocation = scripts::OWNERS.prepare_invoke();
            for user in users {
                invocation.arg(*user);
            }
            invocation.invoke(con)
        })?;
        Ok(owners.iter().map(|owner| !owner.is_empty()).collect())
    }
}
