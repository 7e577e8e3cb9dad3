//! The connection driver: client loops, per-connection state, the shared counters, and the
//! main thread's side of a run (connect, broadcast, wait, time the measured window).
//!
//! Client connections live on an [`EventLoopThreadPool`] of the crate's own event loops. The
//! main thread connects each socket (a blocking connect on loopback is quick), hands it to a
//! loop with `queue_in_loop`, and the loop `adopt`s it with a [`Conn`] as its context. From
//! then on everything about the connection happens on its loop: the [`BenchHandler`] frames
//! the input, reads each reply, and the scenario decides what to send next. The main thread
//! only steers phases (set-up steps, warm-up, measure, drain) and prints progress.
//!
//! A chat message names its sender in its text; whichever loop receives it credits the
//! sender (directly when the sender lives on the same loop, else by a task on the sender's
//! loop), and every `per_msg` deliveries let the sender send one more: `--inflight N` keeps
//! N messages in flight per sender, for one recipient (chat) or a whole group.

use super::config::BenchConfig;
use super::scenario::{login, reg};
use super::stats::{LoopStats, Stats, Totals};
use super::wire::{read_frame, Incoming, Reply, Stamp, Wire};
use crate::net::{
    connect_nonblocking, Buffer, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool,
    LoopHandle,
};
use crate::protocol::{msgid, Framer};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Largest reply the client accepts (a login ack lists every group with its members).
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// How long to wait for messages still in flight when the measured window ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);
/// Connections that register users during set-up.
const REGISTRARS: usize = 16;

/// Where the run is; every loop reads it before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Warmup = 1,
    Measure = 2,
    /// No new requests; waiting for the ones in flight.
    Drain = 3,
    Stop = 4,
}

/// A user the tool registered.
#[derive(Clone, Debug, Default)]
pub struct User {
    pub id: i64,
    pub name: String,
}

/// A sender's connection (known once it is adopted) and the deliveries of its messages so far.
#[derive(Default)]
pub struct SenderSlot {
    pub conn: OnceLock<ConnId>,
    pub delivered: AtomicU64,
}

/// What every loop and the main thread share.
pub struct Shared {
    pub cfg: BenchConfig,
    pub wire: Wire,
    pub password: String,
    /// Prefix of this run's user and group names: `--prefix`, a random tag, `_`.
    pub tag: String,
    phase: AtomicU8,
    pub stats: Stats,
    pub handles: Vec<LoopHandle>,
    pub senders: Vec<SenderSlot>,
    /// Deliveries that make one message complete (1 for chat, members − 1 for a group).
    pub per_msg: u64,
    /// Connections done with the current set-up step.
    pub ready: AtomicUsize,
    /// Users registered by set-up registrars.
    pub users: Mutex<Vec<User>>,
    pub reg_next: AtomicU64,
    pub reg_limit: AtomicU64,
    pub group: AtomicI64,
    failure: Mutex<Option<String>>,
    clock: Instant,
    /// The handler, for connections a loop opens itself (legacy login).
    handler: OnceLock<std::sync::Weak<BenchHandler>>,
}

impl Shared {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Setup,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            3 => Phase::Drain,
            _ => Phase::Stop,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Nanoseconds on the run's monotonic clock (the same in every thread).
    pub fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Remembers the first thing that went wrong; the main thread stops on it.
    pub fn fail(&self, why: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(why);
        }
    }

    /// The handler every connection uses (None only while the run is ending).
    pub fn handler(&self) -> Option<Arc<dyn ConnectionHandler>> {
        let handler = self.handler.get()?.upgrade()?;
        Some(handler)
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts a completed request: always in `done`, in `measured` (with its latency) only
    /// inside the measured window.
    pub fn complete(&self, lp: &EventLoop, latency_ns: u64) {
        let st = self.stats.of(lp.index());
        LoopStats::add(&st.done, 1);
        if self.phase() == Phase::Measure {
            LoopStats::add(&st.measured, 1);
            st.record(latency_ns);
        }
    }
}

/// What a connection does.
#[derive(Clone, Debug)]
pub enum Role {
    /// Registers users, one request in flight; `setup` ones keep the users and start at once.
    Registrar { setup: bool },
    /// Logs in and out (legacy: reconnects) over and over; `next` is its next user's index.
    Cycler { next: usize },
    /// A logged-in user: sends chat messages when `sender` is set, receives them anyway.
    /// `to` is the recipient (chat) or the group (group chat).
    Peer {
        sender: Option<usize>,
        to: i64,
        group: bool,
    },
    /// Connected to an echo server: sends chat frames to itself; no login.
    Echo { sender: usize },
}

/// Where a connection is in its own conversation with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Idle,
    Waiting,
    LoggedIn,
    LoggingOut,
}

/// The context of each client connection.
pub struct Conn {
    pub framer: Framer,
    pub role: Role,
    pub user: User,
    pub step: Step,
    /// When the request in flight was sent (one-at-a-time roles).
    pub sent_at: Instant,
    pub seq: u64,
    /// Closed on purpose: not an error.
    pub closing: bool,
}

impl Conn {
    pub fn new(role: Role, user: User) -> Conn {
        Conn {
            framer: Framer::new(MAX_REPLY),
            role,
            user,
            step: Step::Idle,
            sent_at: Instant::now(),
            seq: 0,
            closing: false,
        }
    }
}

thread_local! {
    /// Each loop builds its requests here, so sending allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// How [`send_with`] sends and whether the request counts as `sent` (a measured request,
/// due a completion) or is part of the set-up (a login, a group join, a logout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// Written at once; counted.
    Now,
    /// Written at the end of the loop turn with everything else queued for the connection
    /// (a burst of messages leaves in one write); counted.
    Later,
    /// Written at once; not counted.
    Uncounted,
}

/// Builds a request with `build` and sends it on `conn` as `how` says.
pub fn send_with(
    sh: &Shared,
    lp: &mut EventLoop,
    conn: ConnId,
    how: SendMode,
    build: impl FnOnce(&mut Vec<u8>),
) {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        build(&mut buf);
        let sent = if how == SendMode::Later {
            lp.send_later(conn, &buf)
        } else {
            lp.send(conn, &buf)
        };
        if sent && how != SendMode::Uncounted {
            LoopStats::add(&sh.stats.of(lp.index()).sent, 1);
        }
    });
}

/// Sends a LOGIN_MSG for the connection's user and notes the time.
pub fn send_login(sh: &Shared, lp: &mut EventLoop, conn: ConnId, how: SendMode) {
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    c.step = Step::Waiting;
    c.sent_at = Instant::now();
    let id = c.user.id;
    send_with(sh, lp, conn, how, |b| sh.wire.login(b, id, &sh.password));
}

/// The one handler of every client connection.
pub struct BenchHandler {
    sh: Arc<Shared>,
}

impl ConnectionHandler for BenchHandler {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        let sh = &self.sh;
        let role = match lp.context::<Conn>(conn) {
            Some(c) => c.role.clone(),
            None => return,
        };
        match role {
            Role::Registrar { setup: true } => reg::send_next(sh, lp, conn),
            Role::Registrar { setup: false } => {
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            Role::Cycler { .. } => login::on_connection(sh, lp, conn),
            Role::Peer { sender, .. } => {
                if let Some(idx) = sender {
                    let _ = sh.senders[idx].conn.set(conn);
                }
                send_login(sh, lp, conn, SendMode::Uncounted);
            }
            Role::Echo { sender } => {
                let _ = sh.senders[sender].conn.set(conn);
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        let Some(mut framer) = lp.context::<Conn>(conn).map(|c| c.framer.clone()) else {
            return input.retrieve_all();
        };
        let drained = framer.drain(input, |frame| {
            self.on_frame(lp, conn, frame.bytes);
            ControlFlow::Continue(())
        });
        if let Some(c) = lp.context_mut::<Conn>(conn) {
            c.framer = framer;
        }
        if let Err(e) = drained {
            self.sh
                .fail(format!("server sent an unframeable stream: {e}"));
            input.retrieve_all();
            lp.force_close(conn);
        }
    }

    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        let sh = &self.sh;
        let Some(c) = lp.context::<Conn>(conn) else {
            return;
        };
        if c.closing || sh.phase() >= Phase::Stop {
            return;
        }
        LoopStats::add(&sh.stats.of(lp.index()).closed, 1);
        let who = if c.user.name.is_empty() {
            "a registrar".to_owned()
        } else {
            format!("user {}", c.user.id)
        };
        sh.fail(format!(
            "the server closed the connection of {who} ({:?}, step {:?})",
            c.role, c.step
        ));
    }
}

impl BenchHandler {
    fn on_frame(&self, lp: &mut EventLoop, conn: ConnId, frame: &[u8]) {
        let sh = &self.sh;
        let reply = match read_frame(frame) {
            Incoming::Bench(stamp) => return self.on_delivery(lp, stamp),
            Incoming::Reply(reply) => reply,
            Incoming::Unreadable => {
                LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
                let text = String::from_utf8_lossy(&frame[..frame.len().min(200)]).into_owned();
                sh.fail(format!("unreadable frame from the server: {text}"));
                return;
            }
        };
        if reply.msgid == msgid::ERROR_MSG {
            LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
            if sh.phase() == Phase::Setup {
                sh.fail(format!("server error during set-up: {}", describe(&reply)));
            }
        }
        let role = match lp.context::<Conn>(conn) {
            Some(c) => c.role.clone(),
            None => return,
        };
        match role {
            Role::Registrar { setup } => reg::on_reply(sh, lp, conn, setup, &reply),
            Role::Cycler { .. } => login::on_reply(sh, lp, conn, &reply),
            Role::Peer { .. } => self.on_peer_reply(lp, conn, &reply),
            Role::Echo { .. } => sh.fail(format!("the echo server sent {}", describe(&reply))),
        }
    }

    fn on_peer_reply(&self, lp: &mut EventLoop, conn: ConnId, reply: &Reply) {
        let sh = &self.sh;
        match reply.msgid {
            msgid::LOGIN_MSG_ACK if reply.errno == 0 => {
                if let Some(c) = lp.context_mut::<Conn>(conn) {
                    c.step = Step::LoggedIn;
                }
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::LOGIN_MSG_ACK => sh.fail(format!("login refused: {}", describe(reply))),
            msgid::CREATE_GROUP_ACK if reply.errno == 0 => {
                sh.group
                    .store(reply.groupid.unwrap_or_default(), Ordering::Release);
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::ADD_GROUP_ACK if reply.errno == 0 => {
                sh.ready.fetch_add(1, Ordering::AcqRel);
            }
            msgid::ERROR_MSG => {} // counted above
            _ => {
                // An ack chat-bench does not wait for is harmless; anything else is odd.
                if reply.errno != 0 {
                    LoopStats::add(&sh.stats.of(lp.index()).errors, 1);
                }
            }
        }
    }

    /// A bench message arrived: count it, and let its sender send another when it completes.
    fn on_delivery(&self, lp: &mut EventLoop, stamp: Stamp) {
        let sh = &self.sh;
        sh.complete(lp, sh.now_ns().saturating_sub(stamp.t_ns));
        let Some(slot) = sh.senders.get(stamp.sender) else {
            return;
        };
        let delivered = slot.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if delivered % sh.per_msg != 0 || sh.phase() >= Phase::Drain {
            return;
        }
        let Some(&sender) = slot.conn.get() else {
            return;
        };
        if sender.loop_index() == lp.index() {
            send_chat(sh, lp, sender);
        } else {
            let sh2 = sh.clone();
            sh.handles[sender.loop_index() - 1]
                .queue_in_loop(move |lp| send_chat(&sh2, lp, sender));
        }
    }
}

/// Sends the next chat message of a sender (nothing once the measured window has ended).
pub fn send_chat(sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
    if sh.phase() >= Phase::Drain {
        return;
    }
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    let (idx, to, group) = match c.role {
        Role::Peer {
            sender: Some(idx),
            to,
            group,
        } => (idx, to, group),
        Role::Echo { sender } => (sender, c.user.id, false),
        _ => return,
    };
    let seq = c.seq;
    c.seq += 1;
    let user = std::mem::take(&mut c.user);
    let now = sh.now_ns();
    send_with(sh, lp, conn, SendMode::Later, |b| {
        sh.wire.chat(
            b,
            group,
            (user.id, &user.name),
            to,
            idx,
            seq,
            now,
            sh.cfg.size,
        )
    });
    if let Some(c) = lp.context_mut::<Conn>(conn) {
        c.user = user;
    }
}

/// A reply in one line, for error messages.
pub fn describe(reply: &Reply) -> String {
    format!(
        "msgid {} errno {}{}",
        reply.msgid,
        reply.errno,
        reply
            .errmsg
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )
}

/// What the measured window saw.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub elapsed: Duration,
    pub measured: u64,
    /// Requests sent and completions seen from the start to the end of the drain.
    pub sent: u64,
    pub done: u64,
    pub errors: u64,
    pub closed: u64,
    /// Completions that never came (expected − done after the drain).
    pub lost: u64,
}

/// The main thread's side of a run.
pub struct Bench {
    pub sh: Arc<Shared>,
    handler: Arc<BenchHandler>,
    pool: Option<EventLoopThreadPool>,
    next_loop: usize,
    started: Instant,
}

impl Bench {
    /// Starts the client loops. `senders`: sender slots; `per_msg`: deliveries per message.
    pub fn start(cfg: BenchConfig, senders: usize, per_msg: u64) -> Result<Bench, String> {
        let pool = EventLoopThreadPool::start(cfg.threads, "bench")
            .map_err(|e| format!("cannot start client loops: {e}"))?;
        let tag = format!("{}_{:08x}_", cfg.prefix, rand::random::<u32>());
        let sh = Arc::new(Shared {
            wire: Wire { legacy: cfg.legacy },
            password: "bench-pw".to_owned(),
            tag,
            phase: AtomicU8::new(Phase::Setup as u8),
            stats: Stats::new(cfg.threads),
            handles: pool.handles(),
            senders: (0..senders).map(|_| SenderSlot::default()).collect(),
            per_msg: per_msg.max(1),
            ready: AtomicUsize::new(0),
            users: Mutex::new(Vec::new()),
            reg_next: AtomicU64::new(0),
            reg_limit: AtomicU64::new(u64::MAX),
            group: AtomicI64::new(0),
            failure: Mutex::new(None),
            clock: Instant::now(),
            handler: OnceLock::new(),
            cfg,
        });
        let handler = Arc::new(BenchHandler { sh: sh.clone() });
        let _ = sh.handler.set(Arc::downgrade(&handler));
        Ok(Bench {
            handler,
            sh,
            pool: Some(pool),
            next_loop: 0,
            started: Instant::now(),
        })
    }

    pub fn handler(&self) -> Arc<dyn ConnectionHandler> {
        self.handler.clone()
    }

    /// Seconds since the run started (set-up included).
    pub fn age(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Connects each `(address, context)` and adopts them all on one loop (the next one in
    /// turn), so connections that talk to each other need no cross-thread hop.
    pub fn connect_together(&mut self, items: Vec<(SocketAddr, Conn)>) -> Result<(), String> {
        let mut streams = Vec::with_capacity(items.len());
        for (addr, conn) in items {
            let stream = connect_nonblocking(addr, Duration::from_secs(5))
                .map_err(|e| format!("connect to {addr} failed: {e}"))?;
            streams.push((stream, conn));
        }
        let index = self.next_loop % self.sh.handles.len();
        self.next_loop += 1;
        let handler = self.handler();
        let sh = self.sh.clone();
        self.sh.handles[index].queue_in_loop(move |lp| {
            for (stream, conn) in streams {
                match lp.adopt(stream, handler.clone()) {
                    Ok(id) => lp.set_context(id, Box::new(conn)),
                    Err(e) => sh.fail(format!("adopt failed: {e}")),
                }
            }
        });
        Ok(())
    }

    pub fn connect(&mut self, addr: SocketAddr, conn: Conn) -> Result<(), String> {
        self.connect_together(vec![(addr, conn)])
    }

    /// Runs `f` for every connection of every loop, on its loop, and waits until all did
    /// (and the closes it asked for are done).
    pub fn broadcast(
        &self,
        f: impl Fn(&Shared, &mut EventLoop, ConnId) + Send + Sync + 'static,
    ) -> Result<(), String> {
        let f = Arc::new(f);
        let (tx, rx) = mpsc::channel();
        for handle in &self.sh.handles {
            let (f, tx, sh) = (f.clone(), tx.clone(), self.sh.clone());
            handle.queue_in_loop(move |lp| {
                for conn in lp.connection_ids() {
                    f(&sh, lp, conn);
                }
                // A local task runs after the closes `f` may have asked for: "done" means done.
                lp.defer(move |_| {
                    let _ = tx.send(());
                });
            });
        }
        for _ in &self.sh.handles {
            rx.recv_timeout(Duration::from_secs(30))
                .map_err(|_| "a client loop did not answer".to_owned())?;
        }
        Ok(())
    }

    /// Waits until `ready` reaches `count`, printing progress under `label` every second.
    pub fn wait_ready(&self, label: &str, count: usize) -> Result<(), String> {
        let sh = &self.sh;
        let deadline = Instant::now() + sh.cfg.setup_timeout;
        let mut next_print = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(why) = sh.failure() {
                return Err(format!("{label}: {why}"));
            }
            let ready = sh.ready.load(Ordering::Acquire);
            if ready >= count {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{label}: only {ready} of {count} after {:?} (--setup-timeout)",
                    sh.cfg.setup_timeout
                ));
            }
            if now >= next_print {
                self.progress(format_args!("set-up, {label}: {ready}/{count}"));
                next_print += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn progress(&self, line: std::fmt::Arguments<'_>) {
        if !self.sh.cfg.quiet {
            eprintln!("[{:6.1}s] {line}", self.age());
        }
    }

    /// Registers `count` users over a few connections (not measured) and returns them.
    pub fn register_users(&mut self, count: usize) -> Result<Vec<User>, String> {
        let sh = self.sh.clone();
        sh.users.lock().unwrap_or_else(|e| e.into_inner()).clear();
        sh.reg_limit.store(count as u64, Ordering::Release);
        sh.ready.store(0, Ordering::Release);
        for _ in 0..REGISTRARS.min(count) {
            self.connect(
                sh.cfg.target,
                Conn::new(Role::Registrar { setup: true }, User::default()),
            )?;
        }
        self.wait_ready("registering users", count)?;
        self.broadcast(|_, lp, conn| {
            if let Some(c) = lp.context_mut::<Conn>(conn) {
                if matches!(c.role, Role::Registrar { .. }) {
                    c.closing = true;
                    lp.force_close(conn);
                }
            }
        })?;
        sh.reg_limit.store(u64::MAX, Ordering::Release);
        sh.ready.store(0, Ordering::Release);
        let users = std::mem::take(&mut *sh.users.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(users)
    }

    /// Snapshots the counters, runs `start` (which sets the senders going), then the warm-up,
    /// the measured window, and a drain until every completion due came (or a few seconds
    /// passed): each request sent from here on is due `per_msg` completions. `unit` names
    /// what the rate counts.
    pub fn timed(
        &self,
        unit: &str,
        per_msg: u64,
        start: impl FnOnce(&Bench) -> Result<(), String>,
    ) -> Result<Window, String> {
        let sh = &self.sh;
        let cfg = &sh.cfg;
        let base = sh.stats.totals();
        let expected = |t: &Totals| base.done + (t.sent - base.sent) * per_msg;
        sh.set_phase(Phase::Warmup);
        start(self)?;
        let warm_end = Instant::now() + cfg.warmup;
        while Instant::now() < warm_end {
            self.check()?;
            std::thread::sleep((warm_end - Instant::now()).min(Duration::from_secs(1)));
            let t = sh.stats.totals();
            self.progress(format_args!(
                "warm-up: {} {unit} so far",
                t.done - base.done
            ));
        }
        sh.set_phase(Phase::Measure);
        let t0 = Instant::now();
        let end = t0 + cfg.duration;
        while Instant::now() < end {
            self.check()?;
            std::thread::sleep((end - Instant::now()).min(Duration::from_secs(1)));
            let t = sh.stats.totals();
            let secs = t0.elapsed().as_secs_f64();
            self.progress(format_args!(
                "{secs:5.1}s measured: {:.0} {unit}/s ({} {unit}, {} errors)",
                t.measured as f64 / secs,
                t.measured,
                t.errors
            ));
        }
        sh.set_phase(Phase::Drain);
        let elapsed = t0.elapsed();
        let measured = sh.stats.totals().measured;
        let drain_end = Instant::now() + DRAIN_LIMIT;
        let mut t = sh.stats.totals();
        while t.done < expected(&t) && Instant::now() < drain_end {
            std::thread::sleep(Duration::from_millis(5));
            t = sh.stats.totals();
        }
        Ok(Window {
            elapsed,
            measured,
            sent: t.sent - base.sent,
            done: t.done - base.done,
            errors: t.errors,
            closed: t.closed,
            lost: expected(&t).saturating_sub(t.done),
        })
    }

    /// The first failure, as an error.
    pub fn check(&self) -> Result<(), String> {
        match self.sh.failure() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Stops the loops (closing every connection).
    pub fn stop(&mut self) {
        self.sh.set_phase(Phase::Stop);
        if let Some(pool) = self.pool.take() {
            pool.stop();
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop();
    }
}
