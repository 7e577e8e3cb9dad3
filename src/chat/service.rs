//! ChatService: the state every loop and store worker shares, and how a request that needs
//! the database is served off the loop (`run_busy`) and completed back on it.

use super::conn_state::ChatConn;
use super::delivery::{Delivery, Parcel};
use super::group_cache::GroupCache;
use super::loops::Loops;
use super::mid::MidClock;
use super::outbound;
use super::outcome::{JobResult, Outcome, Refusal};
use super::recent_cids::RecentCids;
use super::sessions::Sessions;
use super::workers::StoreWorkers;
use crate::cluster::{Bus, BusEvents, Origin, RemoteDelivery};
use crate::ids::{ConnId, GroupId, UserId};
use crate::net::{EventLoop, LoopHandle};
use crate::protocol::{reply, ErrorCode};
use crate::store::{PasswordHasher, Store};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the chat layer.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Largest frame a client may send.
    pub max_frame: usize,
    /// A connection that is not logged in and sends no complete frame for this long is closed.
    pub login_idle: Duration,
    /// A connection that has not logged in this long after connecting (or logging out) is
    /// closed, whatever it sends. None: no such bound.
    pub login_deadline: Option<Duration>,
    /// Least time between two frames written to a client of the seeds' dialect.
    pub seeds_frame_gap: Duration,
    /// Threads running database calls and password hashing.
    pub store_workers: usize,
    /// Bytes of chat messages a connection may hold undelivered (queued, or written and not
    /// yet acknowledged) before what follows goes to the store instead (a slow reader).
    pub output_high_water: usize,
    /// A slow reader still behind after this long is disconnected.
    pub slow_reader_deadline: Duration,
    /// A modern client silent for the first is sent a heartbeat, and disconnected if still
    /// silent the second later. None: no heartbeats.
    pub heartbeat: Option<(Duration, Duration)>,
    /// How long a resume token stays good.
    pub token_ttl: Duration,
    /// How long an offline message the store refuses is retried before the sender is told.
    pub store_retry: Duration,
    /// Bytes of chat messages waiting for the store workers (or for another loop) past which
    /// chat senders stop being read until half of it is left (store_pressure.rs).
    pub store_queue_high: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            login_idle: DEFAULT_LOGIN_IDLE,
            login_deadline: None,
            seeds_frame_gap: DEFAULT_SEEDS_FRAME_GAP,
            store_workers: 2,
            output_high_water: DEFAULT_OUTPUT_HIGH_WATER,
            slow_reader_deadline: DEFAULT_SLOW_READER_DEADLINE,
            heartbeat: Some(DEFAULT_HEARTBEAT),
            token_ttl: DEFAULT_TOKEN_TTL,
            store_retry: DEFAULT_STORE_RETRY,
            store_queue_high: DEFAULT_STORE_QUEUE_HIGH,
        }
    }
}

/// A few hundred KiB per connection: a thousand stalled readers cost a quarter of a GiB.
pub const DEFAULT_OUTPUT_HIGH_WATER: usize = 256 * 1024;
pub const DEFAULT_SLOW_READER_DEADLINE: Duration = Duration::from_secs(60);
/// Centrifugo's defaults: a ping after 25 s of silence, 8 s to answer it.
pub const DEFAULT_HEARTBEAT: (Duration, Duration) =
    (Duration::from_secs(25), Duration::from_secs(8));
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Long enough to ride out a database restart or a failover.
pub const DEFAULT_STORE_RETRY: Duration = Duration::from_secs(30);
/// Enough for a few full store batches in flight; small next to a server's RAM.
pub const DEFAULT_STORE_QUEUE_HIGH: usize = 4 * 1024 * 1024;

/// Silence allowed before login: a person at the seeds' client's menu is not a bot.
pub const DEFAULT_LOGIN_IDLE: Duration = Duration::from_secs(600);
/// Time the seeds' client gets to take one frame before the next is written (outbound.rs).
/// Measured with that client (built from the seeds) on this 2-core machine under load 4–8:
/// with 10 ms between frames it still died on 4 of 30 bursts of 8, with 20 ms on none.
pub const DEFAULT_SEEDS_FRAME_GAP: Duration = Duration::from_millis(20);

pub struct ChatService {
    pub(crate) config: ChatConfig,
    /// Who is logged in on this server, on which connection.
    pub(crate) sessions: Arc<Sessions>,
    /// Presence and delivery beyond this server.
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) delivery: Arc<Delivery>,
    pub(crate) workers: Arc<StoreWorkers>,
    pub(crate) groups: GroupCache,
    pub(crate) hasher: PasswordHasher,
    loops: Arc<Loops>,
    /// Ids of accepted chat messages.
    pub(crate) mids: MidClock,
    /// Client ids of recently accepted chat messages, to recognise retries.
    pub(crate) recent_cids: RecentCids,
}

impl ChatService {
    /// The service, its store workers, and the bus's threads reporting to it.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        bus: Arc<dyn Bus>,
    ) -> std::io::Result<Arc<ChatService>> {
        let workers = Arc::new(StoreWorkers::start(
            store,
            config.store_workers,
            config.store_retry,
        )?);
        let sessions = Arc::new(Sessions::new());
        let loops = Arc::new(Loops::default());
        let delivery = Arc::new(Delivery::new(
            sessions.clone(),
            bus.clone(),
            workers.clone(),
            loops.clone(),
            (config.output_high_water, config.slow_reader_deadline),
        ));
        let mids = MidClock::new(bus.node_number());
        let svc = Arc::new(ChatService {
            config,
            sessions,
            bus,
            delivery,
            workers,
            groups: GroupCache::default(),
            hasher,
            loops,
            mids,
            recent_cids: RecentCids::default(),
        });
        let events: Arc<dyn BusEvents> = svc.clone();
        svc.bus.start(Arc::downgrade(&events))?;
        Ok(svc)
    }

    /// Tells the service every loop, indexed by loop index (0: the base loop), and sets each
    /// up (its delivery hooks, its idle sweep). Once, before any connection is adopted.
    pub fn set_loops(self: &Arc<Self>, loops: Vec<LoopHandle>) {
        self.loops.set(loops);
        for handle in self.loops.all() {
            let svc = self.clone();
            handle.queue_in_loop(move |lp| {
                svc.delivery.attach(lp);
                super::watchdog::attach(&svc, lp);
            });
        }
    }

    /// Start of a graceful stop: no more offline batches leave the store.
    ///
    /// Every connection is told (SHUTDOWN_MSG) so that clients reconnect, through the
    /// balancer, to a server that stays; the notice is queued on each loop ahead of whatever
    /// the caller queues there next (the drain).
    pub fn begin_stop(&self) {
        self.delivery.begin_stop();
        let notice = reply::shutdown_notice();
        for handle in self.loops.all() {
            let notice = notice.clone();
            handle.queue_in_loop(move |lp| {
                for conn in lp.connection_ids() {
                    if lp.context_mut::<ChatConn>(conn).is_some() {
                        outbound::reply(lp, conn, &notice);
                    }
                }
            });
        }
    }

    /// End of a graceful stop, after the loops ended: finish queued store jobs.
    pub fn finish_stop(&self) {
        self.bus.stop();
        self.workers.stop();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.delivery.is_stopping()
    }

    /// Ends `user`'s session on `conn`, here and in the cluster's presence.
    pub(crate) fn release_session(&self, user: UserId, conn: ConnId) {
        if self.sessions.release(user, conn) {
            self.bus.release(user, conn);
        }
    }

    /// Whether each user is online, here or on any live server. Blocks on the bus: store
    /// workers only.
    pub(crate) fn online_states(&self, users: &[UserId]) -> Vec<bool> {
        let mut states: Vec<bool> = users.iter().map(|&u| self.sessions.is_online(u)).collect();
        let away: Vec<UserId> = users
            .iter()
            .zip(&states)
            .filter(|(_, &on)| !on)
            .map(|(&u, _)| u)
            .collect();
        match self.bus.online_elsewhere(&away) {
            Ok(flags) => {
                let mut flags = flags.into_iter();
                for state in states.iter_mut().filter(|s| !**s) {
                    *state = flags.next().unwrap_or(false);
                }
            }
            Err(e) => log::warn!("online states from the cluster: {e}"),
        }
        states
    }

    /// Tells this server's cache, and every other server's, that `group` changed.
    pub(crate) fn group_changed(&self, group: GroupId) {
        self.groups.invalidate(group);
        self.bus.group_changed(group);
    }

    /// Serves a request on a store worker: the connection's later input waits until `job`'s
    /// result has been applied on the connection's loop, so replies keep request order.
    /// `key` picks the worker (jobs with one key run in order); `msgid` is the request's.
    pub(crate) fn run_busy(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        key: i64,
        msgid: i64,
        job: impl FnOnce(&ChatService, &dyn Store) -> JobResult + Send + 'static,
    ) {
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            c.busy = true;
        }
        lp.set_reading(conn, false);
        let svc = self.clone();
        let submitted = self.workers.submit(key, move |store| {
            let result = job(&svc, store);
            let again = svc.clone();
            svc.loops.run(conn.loop_index(), move |lp| {
                again.complete(lp, conn, msgid, result)
            });
        });
        if !submitted {
            self.complete(lp, conn, msgid, Err(ErrorCode::Internal.into()));
        }
    }

    /// On the connection's loop: applies a store job's result and resumes the connection.
    fn complete(self: &Arc<Self>, lp: &mut EventLoop, conn: ConnId, msgid: i64, result: JobResult) {
        match result {
            Ok(Outcome::Reply(bytes)) => outbound::reply(lp, conn, &bytes),
            Ok(Outcome::Then(next)) => next(self, lp, conn),
            Err(refusal) => outbound::reply(lp, conn, &Refusal::reply(&refusal, msgid)),
        }
        let Some(c) = lp.context_mut::<ChatConn>(conn) else {
            return;
        };
        // A login that did not finish: copies held for it go to the store.
        if let Some(user) = c.pending_login.take() {
            let held = std::mem::take(&mut c.held);
            self.delivery.store_held(user, held);
        }
        c.busy = false;
        if c.store_paused {
            // Paused for the store meanwhile: store_pressure.rs resumes it, input and all.
            return;
        }
        lp.set_reading(conn, true);
        lp.process_input(conn);
    }
}

impl BusEvents for ChatService {
    fn deliver_remote(&self, batch: Vec<RemoteDelivery>) {
        self.delivery.deliver_remote(batch);
    }

    fn undeliverable(&self, users: Vec<UserId>, frame: Bytes, origin: Option<Origin>) {
        match users.len() {
            0 => {}
            1 => self
                .delivery
                .store_offline(users[0], Parcel::local(frame), origin),
            _ => self.delivery.store_offline_many(users, frame, origin),
        }
    }

    fn group_changed(&self, group: GroupId) {
        self.groups.invalidate(group);
    }

    fn flush_offline(&self, user: UserId) {
        self.delivery.flush_offline(user);
    }

    fn local_sessions(&self) -> Vec<(UserId, ConnId)> {
        self.sessions.all()
    }
}
