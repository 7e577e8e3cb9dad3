//! ChatService: the state every loop and store worker shares, and the plumbing between them.

use super::conn_state::ChatConn;
use super::delivery::PerLoop;
use super::group_cache::GroupCache;
use super::sessions::Sessions;
use super::workers::StoreWorkers;
use crate::cluster::{Cluster, RemoteDelivery};
use crate::net::{ConnId, EventLoop, LoopHandle};
use crate::protocol::{reply, ErrorCode};
use crate::store::{PasswordHasher, Store, UserId};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Settings of the chat layer.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Largest frame a client may send.
    pub max_frame: usize,
    /// A connection that has not logged in by then is closed.
    pub auth_timeout: Duration,
    /// Threads running database calls and password hashing.
    pub store_workers: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            auth_timeout: Duration::from_secs(30),
            store_workers: 2,
        }
    }
}

/// What a store job hands back to the connection's loop.
pub(crate) enum Done {
    /// Send this reply; the request is complete.
    Reply(Vec<u8>),
    /// The login succeeded and the session is claimed: send `ack`, then what was held.
    Login {
        user: UserId,
        ack: Vec<u8>,
        offline: Vec<String>,
    },
    /// A group's members were loaded for a group message: fan it out now.
    GroupChat {
        user: UserId,
        group: i64,
        members: Arc<Vec<UserId>>,
        frame: Bytes,
    },
}

pub struct ChatService {
    pub(crate) config: ChatConfig,
    pub(crate) sessions: Sessions,
    pub(crate) workers: StoreWorkers,
    pub(crate) groups: GroupCache,
    pub(crate) hasher: PasswordHasher,
    /// Presence and delivery across servers; `None` for a single node.
    pub(crate) cluster: Option<Arc<Cluster>>,
    loops: OnceLock<Vec<LoopHandle>>,
    me: OnceLock<std::sync::Weak<ChatService>>,
    stopping: AtomicBool,
}

impl ChatService {
    /// The service; with a `cluster`, its threads start here and report to the service.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        cluster: Option<Arc<Cluster>>,
    ) -> std::io::Result<Arc<ChatService>> {
        let workers = StoreWorkers::start(store, config.store_workers)?;
        let svc = Arc::new(ChatService {
            config,
            sessions: Sessions::new(),
            workers,
            groups: GroupCache::default(),
            hasher,
            cluster,
            loops: OnceLock::new(),
            me: OnceLock::new(),
            stopping: AtomicBool::new(false),
        });
        let _ = svc.me.set(Arc::downgrade(&svc));
        if let Some(cluster) = &svc.cluster {
            let events: Arc<dyn crate::cluster::ClusterEvents> = svc.clone();
            cluster.start(Arc::downgrade(&events))?;
        }
        Ok(svc)
    }

    /// Tells the service every loop, indexed by loop index (0: the base loop). Once, at start.
    pub fn set_loops(&self, loops: Vec<LoopHandle>) {
        let _ = self.loops.set(loops);
    }

    /// Users with a session on this server.
    pub fn online_count(&self) -> usize {
        self.sessions.len()
    }

    /// Start of a graceful stop: no more offline batches leave the store (their loop may be
    /// gone before they arrive).
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// End of a graceful stop, after the loops ended: finish queued store jobs.
    pub fn finish_stop(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.stop();
        }
        self.workers.stop();
    }

    /// Ends `user`'s session on `conn`, here and in the cluster's presence.
    pub(crate) fn release_session(&self, user: UserId, conn: ConnId) {
        if self.sessions.release(user, conn) {
            if let Some(cluster) = &self.cluster {
                cluster.release(user, conn);
            }
        }
    }

    /// Whether each user is online, here or (with a cluster) on any live server. Blocks on
    /// Redis: store workers only.
    pub(crate) fn online_states(&self, users: &[UserId]) -> Vec<bool> {
        let mut states: Vec<bool> = users.iter().map(|&u| self.sessions.is_online(u)).collect();
        if let Some(cluster) = &self.cluster {
            let remote: Vec<UserId> = users
                .iter()
                .zip(&states)
                .filter(|(_, &on)| !on)
                .map(|(&u, _)| u)
                .collect();
            match cluster.online(&remote) {
                Ok(flags) => {
                    let mut flags = flags.into_iter();
                    for state in states.iter_mut().filter(|s| !**s) {
                        *state = flags.next().unwrap_or(false);
                    }
                }
                Err(e) => log::warn!("online states from the cluster: {e}"),
            }
        }
        states
    }

    /// Tells this server's cache, and every other server's, that `group` changed.
    pub(crate) fn group_changed(&self, group: i64) {
        self.groups.invalidate(group);
        if let Some(cluster) = &self.cluster {
            cluster.group_changed(group);
        }
    }

    /// An owning handle on the service, for callbacks that only get `&self`.
    fn myself(&self) -> Option<Arc<ChatService>> {
        self.me.get().and_then(std::sync::Weak::upgrade)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Runs `task` on loop `index`.
    pub(crate) fn on_loop(&self, index: usize, task: impl FnOnce(&mut EventLoop) + Send + 'static) {
        match self.loops.get().and_then(|loops| loops.get(index)) {
            Some(handle) => handle.queue_in_loop(task),
            None => log::error!("no event loop {index}: a task was dropped"),
        }
    }

    /// From a store worker: send `bytes` to `conn` (if it is still there).
    pub(crate) fn reply_from_worker(&self, conn: ConnId, bytes: Vec<u8>) {
        self.on_loop(conn.loop_index(), move |lp| {
            lp.send(conn, &bytes);
        });
    }

    /// Serves a request on a store worker: the connection's later input waits until `job`'s
    /// result has been applied on the connection's loop, so replies keep request order.
    pub(crate) fn run_busy(
        self: &Arc<Self>,
        lp: &mut EventLoop,
        conn: ConnId,
        key: i64,
        msgid: i64,
        job: impl FnOnce(&ChatService, &dyn Store) -> Done + Send + 'static,
    ) {
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            c.busy = true;
        }
        lp.set_reading(conn, false);
        let svc = self.clone();
        let submitted = self.workers.submit(key, move |store| {
            let done = job(&svc, store);
            let again = svc.clone();
            svc.on_loop(conn.loop_index(), move |lp| again.complete(lp, conn, done));
        });
        if !submitted {
            self.complete(
                lp,
                conn,
                Done::Reply(reply::error(ErrorCode::Internal, None, Some(msgid))),
            );
        }
    }

    /// On the connection's loop: applies a store job's result and resumes the connection.
    fn complete(self: &Arc<Self>, lp: &mut EventLoop, conn: ConnId, done: Done) {
        match done {
            Done::Reply(bytes) => {
                lp.send(conn, &bytes);
                self.end_pending_login(lp, conn);
            }
            Done::Login { user, ack, offline } => self.finish_login(lp, conn, user, ack, offline),
            Done::GroupChat {
                user,
                group,
                members,
                frame,
            } => {
                self.fan_out_group(lp, conn, user, group, &members, frame);
            }
        }
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            c.busy = false;
            lp.set_reading(conn, true);
            lp.process_input(conn);
        }
    }

    /// A failed login: frames held for it (there should be none) are stored.
    fn end_pending_login(self: &Arc<Self>, lp: &mut EventLoop, conn: ConnId) {
        if let Some(c) = lp.context_mut::<ChatConn>(conn) {
            if let Some(user) = c.pending_login.take() {
                let held = std::mem::take(&mut c.held);
                self.store_held(user, held);
            }
        }
    }
}

impl crate::cluster::ClusterEvents for ChatService {
    fn deliver_remote(&self, batch: Vec<RemoteDelivery>) {
        // Each user's copy goes to the loop that holds the session, one task per loop for the
        // whole batch, in batch order; a user who left since the sender's lookup is stored,
        // there or here. Every path holds the receipt until its copy is written or stored.
        let Some(svc) = self.myself() else { return };
        let mut per_loop = PerLoop::default();
        for RemoteDelivery {
            users,
            frame,
            receipt,
        } in batch
        {
            let receipt = Arc::new(receipt);
            for user in users {
                match self.sessions.lookup(user) {
                    Some(conn) => {
                        per_loop.push((conn, user, frame.clone(), Some(receipt.clone())));
                    }
                    None => svc.store_offline(user, frame.clone(), None, Some(receipt.clone())),
                }
            }
        }
        svc.post_per_loop(per_loop);
    }

    fn undeliverable(&self, users: Vec<UserId>, frame: Bytes, sender: Option<(ConnId, i64)>) {
        let Some(svc) = self.myself() else { return };
        match users.len() {
            0 => {}
            1 => svc.store_offline(users[0], frame, sender, None),
            _ => svc.store_offline_many(users, frame),
        }
    }

    fn group_changed(&self, group: i64) {
        self.groups.invalidate(group);
    }

    fn flush_offline(&self, user: UserId) {
        if let Some(svc) = self.myself() {
            svc.flush_offline(user);
        }
    }

    fn local_sessions(&self) -> Vec<(UserId, ConnId)> {
        self.sessions.all()
    }
}
