//! Cluster: presence and cross-server delivery, behind the [`Bus`] trait the chat layer uses;
//! [`LocalBus`] for one server alone, [`RedisBus`] for servers behind one load balancer.
//!
//! Shape (DESIGN.md "Cluster and presence"; names and payloads in wire.rs): each server
//! subscribes one channel of its own; a logged-in user's presence is one key naming its
//! server and connection; each server keeps a liveness key alive with a short TTL. A batch of
//! deliveries costs two round trips: one Lua call looks every recipient's live server up,
//! then one PUBLISH per target server carries all its messages; recipients nobody took are
//! handed back to be stored offline.
//!
//! Threads: a subscriber thread owns the pub/sub connection and hands what arrives to the
//! chat layer (which queues it onto the owning I/O loop); a publisher thread owns another
//! connection and pipelines every delivery, release, confirmation and heartbeat queued to
//! it, so no I/O loop ever waits on Redis. Store workers use a small pool of connections for
//! the calls whose answer they need (login claims, online states). When Redis goes away,
//! deliveries are stored offline, both threads reconnect with backoff, and the publisher puts
//! this server's presence back (`RESYNC`) as soon as it is connected again.

mod bus;
mod pending;
mod publisher;
mod scripts;
mod subscriber;
pub mod wire;

pub use bus::{Bus, BusError, BusEvents, LocalBus, Origin, Receipt, RemoteDelivery};

use crate::ids::{ConnId, GroupId, UserId};
use bytes::Bytes;
use publisher::Op;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;
use wire::{alive_key, token, user_key};

/// How long a server counts as alive after its last heartbeat.
pub const LIVENESS_TTL: Duration = Duration::from_secs(3);
/// Connecting to Redis gives up after this long (then the caller backs off and retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A synchronous call (claim, online states) gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster over Redis publish/subscribe.
pub struct RedisBus {
    server_id: String,
    client: redis::Client,
    ops: Mutex<Option<Sender<Op>>>,
    pool: Mutex<Vec<redis::Connection>>,
    events: OnceLock<Weak<dyn BusEvents>>,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Deliveries published to other servers and not yet confirmed by them.
    pending: pending::PendingDeliveries,
    next_mid: AtomicU64,
    /// Set by `start`: the threads need an owning handle.
    me: OnceLock<Weak<RedisBus>>,
}

impl RedisBus {
    /// Connects the cluster layer to `redis_url` as server `server_id`; threads start with
    /// `Bus::start`.
    pub fn new(redis_url: &str, server_id: &str) -> Result<Arc<RedisBus>, BusError> {
        if !wire::valid_server_id(server_id) {
            return Err(BusError(format!(
                "invalid server id '{server_id}' (no '|', ',', spaces, no leading '!')"
            )));
        }
        let client = redis::Client::open(redis_url)?;
        let bus = Arc::new(RedisBus {
            server_id: server_id.to_owned(),
            client,
            ops: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            events: OnceLock::new(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            pending: pending::PendingDeliveries::default(),
            next_mid: AtomicU64::new(1),
            me: OnceLock::new(),
        });
        let _ = bus.me.set(Arc::downgrade(&bus));
        Ok(bus)
    }

    fn events(&self) -> Option<Arc<dyn BusEvents>> {
        self.events.get().and_then(Weak::upgrade)
    }

    fn next_mid(&self) -> u64 {
        self.next_mid.fetch_add(1, Ordering::Relaxed)
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
            origin,
        }) = sent
        {
            // Publisher gone (stopping): whatever was to be delivered gets stored.
            if let Some(events) = self.events() {
                events.undeliverable(users, frame, origin);
            }
        }
    }

    /// Runs a synchronous call on a pooled connection (store workers only: it blocks).
    ///
    /// Pooled connections outlive a Redis restart as dead sockets; the first call on one
    /// fails before anything ran, so on a broken link the pool is emptied and the call
    /// retried once on a fresh connection.
    fn call<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, BusError> {
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
}

impl Bus for RedisBus {
    fn node_number(&self) -> u64 {
        let counted = self.call(|con| redis::cmd("INCR").arg(wire::NODE_SEQ_KEY).query::<i64>(con));
        match counted {
            Ok(n) => n as u64,
            Err(e) => {
                // Without Redis now, the process id keeps servers on one host apart.
                log::warn!("node number from Redis: {e}; using the process id");
                u64::from(std::process::id())
            }
        }
    }

    fn start(&self, events: Weak<dyn BusEvents>) -> std::io::Result<()> {
        let _ = self.events.set(events);
        let Some(me) = self.me.get().and_then(Weak::upgrade) else {
            return Err(std::io::Error::other("the bus is being dropped"));
        };
        let (tx, rx) = mpsc::channel();
        *self.ops.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let publisher = {
            let bus = me.clone();
            std::thread::Builder::new()
                .name("redis-pub".into())
                .spawn(move || publisher::run(&bus, rx))?
        };
        let subscriber = std::thread::Builder::new()
            .name("redis-sub".into())
            .spawn(move || subscriber::run(&me))?;
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([publisher, subscriber]);
        Ok(())
    }

    /// Stops both threads (after the publisher has sent what is queued) and removes this
    /// server's liveness key, so its users can log in elsewhere at once.
    fn stop(&self) {
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

    fn claim(&self, user: UserId, conn: ConnId) -> Result<bool, BusError> {
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

    fn release(&self, user: UserId, conn: ConnId) {
        self.send(Op::Release {
            user,
            token: token(&self.server_id, conn.as_u64()),
        });
    }

    fn online_elsewhere(&self, users: &[UserId]) -> Result<Vec<bool>, BusError> {
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

    fn deliver(&self, users: Vec<UserId>, frame: Bytes, origin: Option<Origin>) {
        self.send(Op::Deliver {
            users,
            frame,
            origin,
        });
    }

    fn settle(&self, receipt: &Receipt) {
        if receipt.settle_one() {
            self.send(Op::Confirm {
                to: receipt.sender.clone(),
                mid: receipt.mid,
            });
        }
    }

    fn group_changed(&self, group: GroupId) {
        self.send(Op::GroupChanged(group));
    }

    fn request_flush(&self, user: UserId) {
        self.send(Op::Flush(user));
    }
}
