//! Throughput of the network core against a tokio baseline: muduo's pingpong and connection churn.
//!
//! Pingpong (muduo's `examples/pingpong`): every client connection sends one block; the server
//! echoes; the client echoes back whatever it receives, so `connections × block` bytes keep
//! circulating. Throughput is the bytes the client receives per second. Rows: 1, 10, 100 and
//! 1,000 connections × 16 B, 1 KiB and 16 KiB blocks, each measured against OUR echo server and,
//! right after, against a tokio echo server under the same workload.
//!
//! Churn: connect, one 16-byte round trip, close, with 16 such flows in flight; connections
//! per second.
//!
//! Threads (the machine this was written for has 2 cores):
//! - ours: a base loop thread that only accepts, plus ONE I/O loop thread that serves every
//!   connection (muduo's shape with `setThreadNum(1)`);
//! - tokio: a multi-thread runtime with ONE worker thread (it accepts and serves);
//! - the client: ONE thread, the same for both servers — an `EventLoop` of this crate driven
//!   with `run_until` on the bench thread itself (epoll, level-triggered, one read and one write
//!   per message; no per-message allocation beyond the `Buffer`'s).
//!
//! So each side gets one busy core: the server's one serving thread and the client's one
//! thread. More server threads would only steal the client's core on two cores.
//!
//! Each server has its own client loop (same code, same bench thread), so while one is driven
//! the other sits still. After criterion has measured a row for both servers, a paired pass
//! alternates them in 150 ms windows, 10 times each: on a machine shared with other work the
//! load drifts over seconds, and alternating makes both servers see the same drift. The summary
//! table is built from the medians of those paired windows, plus the CPU time the server's
//! threads used in them (from /proc/self/task/*/schedstat): bytes per server CPU-second is the
//! server's efficiency, and it stays meaningful when the machine is oversubscribed and the
//! rates measure the scheduler as much as the server.
//!
//! Run: `cargo bench --bench throughput` (about 3 minutes). Criterion prints each row; the
//! summary table (ours, tokio, ratio) goes to stderr at the end.

use chatserver::net::{
    connect_nonblocking, Buffer, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool,
    LoopHandle, ServerOptions, TcpServer,
};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CONNECTIONS: [usize; 4] = [1, 10, 100, 1000];
const BLOCKS: [usize; 3] = [16, 1024, 16 * 1024];
const CHURN_FLOWS: usize = 16;
const SAMPLES: usize = 10;

// ------------------------------------------------------------------------------ the servers

/// Our echo handler, as in `examples/echo.rs`.
struct Echo;

impl ConnectionHandler for Echo {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        lp.send(conn, input.peek());
        input.retrieve_all();
    }
}

/// Our server: base loop (accepting) on one thread, `io_threads` I/O loops.
struct OurServer {
    addr: SocketAddr,
    base: LoopHandle,
    thread: Option<JoinHandle<()>>,
}

impl OurServer {
    /// Threads are named `{name}-base` and `{name}-io-N` (the paired pass finds them by name).
    fn start(io_threads: usize, name: &'static str) -> OurServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-base"))
            .spawn(move || {
                let mut base = EventLoop::new(0).expect("base loop");
                let pool =
                    EventLoopThreadPool::start(io_threads, &format!("{name}-io")).expect("pool");
                let server = TcpServer::start(
                    &mut base,
                    "127.0.0.1:0".parse().unwrap(),
                    ServerOptions::default(),
                    Arc::new(Echo),
                    pool.handles(),
                )
                .expect("listen");
                tx.send((server.local_addr(), base.handle())).unwrap();
                base.run();
                drop(server);
                pool.stop();
            })
            .unwrap();
        let (addr, base) = rx.recv().unwrap();
        OurServer {
            addr,
            base,
            thread: Some(thread),
        }
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.base.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The tokio baseline: the canonical read / write_all echo, 64 KiB buffer per connection
/// (our loop reads into a buffer plus a 64 KiB spill area), TCP_NODELAY like ours.
struct TokioServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TokioServer {
    fn start(workers: usize) -> TokioServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("tokio-echo")
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TokioServer {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for TokioServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

// ------------------------------------------------------------------------------ the client

/// Pingpong client side: send one block on connect, echo back everything received.
struct PingPong {
    block: Vec<u8>,
    received: AtomicU64,
}

impl ConnectionHandler for PingPong {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        lp.send(conn, &self.block);
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        self.received
            .fetch_add(input.readable_bytes() as u64, Ordering::Relaxed);
        lp.send(conn, input.peek());
        input.retrieve_all();
    }
}

/// Churn client side: 16 bytes out on connect; when they are back, close.
struct Churn {
    completed: AtomicU64,
}

const CHURN_MSG: &[u8; 16] = b"0123456789abcdef";

impl ConnectionHandler for Churn {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        lp.send(conn, CHURN_MSG);
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        if input.readable_bytes() >= CHURN_MSG.len() {
            input.retrieve_all();
            self.completed.fetch_add(1, Ordering::Relaxed);
            lp.force_close(conn);
        }
    }
}

fn close_all(lp: &mut EventLoop) {
    for id in lp.connection_ids() {
        lp.force_close(id);
    }
    assert!(lp.run_until(Duration::from_secs(10), |lp| lp.connection_count() == 0));
}

/// Connects `n` clients, retrying a connect that the kernel refuses for a moment.
fn connect_all(
    lp: &mut EventLoop,
    addr: SocketAddr,
    n: usize,
    handler: Arc<dyn ConnectionHandler>,
) {
    for _ in 0..n {
        let stream = retry_connect(addr);
        lp.adopt(stream, handler.clone()).expect("adopt");
    }
}

fn retry_connect(addr: SocketAddr) -> std::net::TcpStream {
    let mut tries = 0;
    loop {
        match connect_nonblocking(addr, Duration::from_secs(5)) {
            Ok(s) => return s,
            Err(e) if tries < 100 => {
                tries += 1;
                if tries == 1 {
                    eprintln!("connect to {addr} failed ({e}); retrying");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect to {addr}: {e}"),
        }
    }
}

// ------------------------------------------------------------------------------ bookkeeping

/// One server under test and the client loop that drives it. Each server has its own client
/// loop (same code, same thread), so one side can be paused while the other is measured.
struct Side {
    name: &'static str,
    addr: SocketAddr,
    /// Name prefix of the server's threads, to read their CPU time.
    threads: &'static str,
    client: EventLoop,
}

/// CPU time (ns) the threads of this process whose name starts with `prefix` have run, from
/// /proc/self/task/*/schedstat (nanosecond resolution, unlike /proc/*/stat's ticks).
fn threads_cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Paired measurements: per row, `PAIRS` rounds of `WINDOW` on each side in turn.
const PAIRS: usize = 10;
const WINDOW: Duration = Duration::from_millis(150);

/// What the paired pass measured for one side of one row.
#[derive(Clone, Default)]
struct Paired {
    /// Units (bytes or connections) per second, one per window.
    rates: Vec<f64>,
    units: u64,
    /// CPU time of the server's threads over all windows.
    server_cpu_ns: u64,
}

thread_local! {
    static PAIRED: RefCell<BTreeMap<String, Vec<Paired>>> = const { RefCell::new(BTreeMap::new()) };
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The paired pass: the sides alternate in short windows, so a change in the machine's load
/// (other processes) hits them alike. Besides the rate, it records the CPU time the server's
/// threads used, which stays meaningful when the machine is oversubscribed.
fn paired_pass(
    row: &str,
    sides: &mut [Side],
    counters: &[&AtomicU64],
    drive: &mut dyn FnMut(usize, &mut EventLoop) -> bool,
) {
    let mut out = vec![Paired::default(); sides.len()];
    for _ in 0..PAIRS {
        for (i, side) in sides.iter_mut().enumerate() {
            let before = counters[i].load(Ordering::Relaxed);
            let cpu_before = threads_cpu_ns(side.threads);
            let started = Instant::now();
            side.client.run_until(WINDOW, |lp| drive(i, lp));
            let elapsed = started.elapsed().as_secs_f64();
            let units = counters[i].load(Ordering::Relaxed) - before;
            out[i].rates.push(units as f64 / elapsed);
            out[i].units += units;
            out[i].server_cpu_ns += threads_cpu_ns(side.threads) - cpu_before;
        }
    }
    PAIRED.with(|p| p.borrow_mut().insert(row.to_string(), out));
}

/// Per side: (median rate per second, units per server CPU-second).
fn paired_results(row: &str) -> Option<Vec<(f64, f64)>> {
    PAIRED.with(|p| {
        p.borrow().get(row).map(|sides| {
            sides
                .iter()
                .map(|s| {
                    let per_cpu_s = s.units as f64 / (s.server_cpu_ns.max(1) as f64 / 1e9);
                    (median(s.rates.clone()), per_cpu_s)
                })
                .collect()
        })
    })
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
}

// ------------------------------------------------------------------------------ benches

fn pingpong_row(c: &mut Criterion, sides: &mut [Side], conns: usize, block: usize) {
    let row = format!("pingpong/{conns}conn/{block}B");
    let mut group = c.benchmark_group(format!("pingpong/{conns}conn"));
    configure(&mut group);
    // One iteration: every connection's block came back once more.
    let per_iter = (conns * block) as u64;
    group.throughput(Throughput::Bytes(per_iter));
    let handlers: Vec<Arc<PingPong>> = sides
        .iter_mut()
        .map(|side| {
            let handler = Arc::new(PingPong {
                block: vec![b'p'; block],
                received: AtomicU64::new(0),
            });
            connect_all(&mut side.client, side.addr, conns, handler.clone());
            handler
        })
        .collect();
    for (side, handler) in sides.iter_mut().zip(&handlers) {
        let mut goal = handler.received.load(Ordering::Relaxed);
        let client = &mut side.client;
        group.bench_function(BenchmarkId::new(format!("{block}B"), side.name), |b| {
            b.iter_custom(|iters| {
                goal += iters * per_iter;
                let started = Instant::now();
                let done = client.run_until(Duration::from_secs(120), |_| {
                    handler.received.load(Ordering::Relaxed) >= goal
                });
                assert!(done, "{row}: pingpong stalled");
                started.elapsed()
            })
        });
    }
    group.finish();
    let counters: Vec<&AtomicU64> = handlers.iter().map(|h| &h.received).collect();
    paired_pass(&row, sides, &counters, &mut |_, _| false);
    for side in sides.iter_mut() {
        close_all(&mut side.client);
    }
}

fn churn(c: &mut Criterion, sides: &mut [Side]) {
    let mut group = c.benchmark_group("churn");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    let handlers: Vec<Arc<Churn>> = sides
        .iter()
        .map(|_| {
            Arc::new(Churn {
                completed: AtomicU64::new(0),
            })
        })
        .collect();
    // Keep CHURN_FLOWS connections in flight: refill what closed, once per loop turn.
    let addrs: Vec<SocketAddr> = sides.iter().map(|s| s.addr).collect();
    let refill = |i: usize, lp: &mut EventLoop| {
        let handler: Arc<dyn ConnectionHandler> = handlers[i].clone();
        while lp.connection_count() < CHURN_FLOWS {
            let stream = retry_connect(addrs[i]);
            lp.adopt(stream, handler.clone()).expect("adopt");
        }
    };
    for (i, side) in sides.iter_mut().enumerate() {
        let mut goal = handlers[i].completed.load(Ordering::Relaxed);
        let client = &mut side.client;
        let handler = &handlers[i];
        group.bench_function(BenchmarkId::new("connect-16B-close", side.name), |b| {
            b.iter_custom(|iters| {
                goal += iters;
                let started = Instant::now();
                let done = client.run_until(Duration::from_secs(120), |lp| {
                    refill(i, lp);
                    handler.completed.load(Ordering::Relaxed) >= goal
                });
                assert!(done, "churn/{}: stalled", i);
                started.elapsed()
            })
        });
    }
    group.finish();
    let counters: Vec<&AtomicU64> = handlers.iter().map(|h| &h.completed).collect();
    paired_pass("churn", sides, &counters, &mut |i, lp| {
        refill(i, lp);
        false
    });
    for side in sides.iter_mut() {
        close_all(&mut side.client);
    }
}

fn block_label(block: usize) -> String {
    if block >= 1024 {
        format!("{} KiB", block / 1024)
    } else {
        format!("{block} B")
    }
}

fn print_summary(names: &[&str]) {
    let mib = (1u64 << 20) as f64;
    eprintln!();
    eprintln!(
        "## pingpong: client-received MiB/s (median of {PAIRS} paired {}-ms windows per side) and MiB per CPU-second of the server's threads",
        WINDOW.as_millis()
    );
    eprintln!();
    eprintln!(
        "| connections | block | {a} MiB/s | {b} MiB/s | {a} / {b} | {a} MiB per server CPU-s | {b} MiB per server CPU-s | {a} / {b} |",
        a = names[0],
        b = names[1]
    );
    eprintln!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for conns in CONNECTIONS {
        for block in BLOCKS {
            if let Some(r) = paired_results(&format!("pingpong/{conns}conn/{block}B")) {
                eprintln!(
                    "| {conns} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.0} | {:.2} |",
                    block_label(block),
                    r[0].0 / mib,
                    r[1].0 / mib,
                    r[0].0 / r[1].0,
                    r[0].1 / mib,
                    r[1].1 / mib,
                    r[0].1 / r[1].1
                );
            }
        }
    }
    if let Some(r) = paired_results("churn") {
        eprintln!();
        eprintln!(
            "## churn: connections/s ({CHURN_FLOWS} flows of connect, 16 B round trip, close; median of {PAIRS} paired windows) and connections per server CPU-second"
        );
        eprintln!();
        let theirs = names[names.len() - 1];
        eprintln!("| server | conn/s | vs {theirs} | conn per server CPU-s | vs {theirs} |");
        eprintln!("|---|---:|---:|---:|---:|");
        let last = r[r.len() - 1];
        for (name, (rate, per_cpu)) in names_for_churn(names).iter().zip(&r) {
            eprintln!(
                "| {name} | {rate:.0} | {:.2} | {per_cpu:.0} | {:.2} |",
                rate / last.0,
                per_cpu / last.1
            );
        }
    }
}

fn names_for_churn<'a>(names: &[&'a str]) -> Vec<&'a str> {
    vec![names[0], "ours-base-only", names[1]]
}

/// User + system CPU seconds of this whole process (all threads: clients, servers).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in USER_HZ (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let wall = Instant::now();
    let load_before = loadavg();
    let ours = OurServer::start(1, "ours");
    let tokio = TokioServer::start(1);
    // Churn also against our server with no I/O loop (the base loop accepts and serves, as
    // tokio's single worker does), to separate the cost of the base -> I/O loop handoff.
    let ours_base_only = OurServer::start(0, "ours0");
    let side = |name, addr, threads| Side {
        name,
        addr,
        threads,
        client: EventLoop::new(0).expect("client loop"),
    };
    let mut sides = [
        side("ours", ours.addr, "ours-"),
        side("tokio", tokio.addr, "tokio-echo"),
    ];
    for conns in CONNECTIONS {
        for block in BLOCKS {
            pingpong_row(&mut c, &mut sides, conns, block);
        }
    }
    let [ours_side, tokio_side] = sides;
    let mut churn_sides = [
        ours_side,
        side("ours-base-only", ours_base_only.addr, "ours0-"),
        tokio_side,
    ];
    churn(&mut c, &mut churn_sides);
    c.final_summary();
    print_summary(&["ours", "tokio"]);
    let wall = wall.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds();
    eprintln!();
    eprintln!(
        "bench process: {cpu:.1} CPU s in {wall:.1} s wall ({:.2} cores of {}); load average {load_before} before, {} after",
        cpu / wall,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    drop(churn_sides);
    drop(ours);
    drop(ours_base_only);
    drop(tokio);
}
