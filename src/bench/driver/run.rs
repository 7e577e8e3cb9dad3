//! The main thread's side of a run ([`Bench`]): connect, broadcast, wait, the timed window.

use super::conn::Conn;
use super::handler::BenchHandler;
use super::shared::{Phase, SenderSlot, Shared};
use crate::bench::config::BenchConfig;
use crate::bench::cpu::CpuSnapshot;
use crate::bench::stats::{Stats, Totals};
use crate::bench::wire::Wire;
use crate::net::{connect_nonblocking, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long to wait for messages still in flight when the measured window ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);

/// What the measured window saw.
#[derive(Clone, Debug)]
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
    /// CPU time spent in the measured window by: this process, the server, each `--cpu-pid`.
    pub cpu: Vec<(String, Option<Duration>)>,
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
            failure: Mutex::new(None),
            clock: Instant::now(),
            handler: OnceLock::new(),
            cfg,
        });
        let handler = Arc::new(BenchHandler { sh: sh.clone() });
        let weak = Arc::downgrade(&handler);
        let _ = sh.handler.set(weak);
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

    /// Snapshots the counters, tells every connection's [`Role`](super::Role) to start, then
    /// runs the warm-up, the measured window, and a drain until every completion due came (or
    /// a few seconds passed): each request sent from here on is due `per_msg` completions.
    /// `unit` names what the rate counts.
    pub fn timed(&self, unit: &str) -> Result<Window, String> {
        let sh = &self.sh;
        let cfg = &sh.cfg;
        let per_msg = sh.per_msg;
        let base = sh.stats.totals();
        let expected = |t: &Totals| base.done + (t.sent - base.sent) * per_msg;
        sh.set_phase(Phase::Warmup);
        self.broadcast(|sh, lp, conn| {
            if let Some(role) = Conn::role_of(lp, conn) {
                role.on_start(sh, lp, conn);
            }
        })?;
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
        let cpu_pids = self.cpu_pids();
        let cpu_start = CpuSnapshot::take(&cpu_pids);
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
        let cpu = CpuSnapshot::take(&cpu_pids).since(&cpu_start);
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
            cpu,
        })
    }

    /// The processes whose CPU time the measured window records: this one, the server, and
    /// any `--cpu-pid`, in that order.
    fn cpu_pids(&self) -> Vec<String> {
        let cfg = &self.sh.cfg;
        let mut pids = vec!["self".to_owned()];
        pids.extend(cfg.server_pid.map(|p| p.to_string()));
        pids.extend(cfg.cpu_pids.iter().map(u32::to_string));
        pids
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
