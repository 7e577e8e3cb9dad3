//! Test-only helpers for the `net_*` integration tests: a server on its own thread, an echo
//! handler, deterministic payloads, a child-process echo server, and bounded waits.
//!
//! Included with `#[path = "common/net_util.rs"] mod net_util;` so each test crate takes only
//! this file; not every test uses every helper.
#![allow(dead_code)]

use chatserver::net::{
    Buffer, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool, LoopHandle, ServerOptions,
    TcpServer,
};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Echoes every byte back at once.
pub struct Echo;

impl ConnectionHandler for Echo {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        lp.send(conn, input.peek());
        input.retrieve_all();
    }
}

/// A `TcpServer` on 127.0.0.1:0 whose base loop runs on its own thread (built inside it), with
/// `io_threads` I/O loops (0: connections stay on the base loop).
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: LoopHandle,
    /// The I/O loops' handles (empty with 0 I/O threads).
    pub io: Vec<LoopHandle>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(handler: Arc<dyn ConnectionHandler>, io_threads: usize) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("test-base".into())
            .spawn(move || {
                let mut base = EventLoop::new(0).expect("base loop");
                let pool = if io_threads > 0 {
                    Some(EventLoopThreadPool::start(io_threads, "test-io").expect("pool"))
                } else {
                    None
                };
                let handles = pool.as_ref().map(|p| p.handles()).unwrap_or_default();
                let server = TcpServer::start(
                    &mut base,
                    "127.0.0.1:0".parse().unwrap(),
                    ServerOptions::default(),
                    handler,
                    handles.clone(),
                )
                .expect("server start");
                tx.send((server.local_addr(), base.handle(), handles))
                    .unwrap();
                base.run();
                drop(server);
                if let Some(pool) = pool {
                    // The pool ignores its threads' panics; a dead I/O loop still fails a
                    // test, since `call` on it times out.
                    pool.stop();
                }
            })
            .expect("spawn base thread");
        let (addr, base, io) = rx.recv().expect("server thread died at start");
        TestServer {
            addr,
            base,
            io,
            thread: Some(thread),
        }
    }

    /// The loop that serves connections (the first I/O loop, or the base loop).
    pub fn conn_loop(&self) -> &LoopHandle {
        self.io.first().unwrap_or(&self.base)
    }

    /// Runs `f` on `handle`'s loop and waits for its result.
    pub fn call<R: Send + 'static>(
        handle: &LoopHandle,
        f: impl FnOnce(&mut EventLoop) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        handle.queue_in_loop(move |lp| {
            let _ = tx.send(f(lp));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("loop did not run the task")
    }

    /// Quits the base loop (which stops the pool) and joins; panics if the base loop panicked.
    pub fn stop(mut self) {
        self.base.quit();
        let thread = self.thread.take().unwrap();
        thread.join().expect("server base thread panicked");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.base.quit();
            let _ = thread.join();
        }
    }
}

/// xorshift64*: a tiny deterministic generator, so tests need no RNG crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// `len` pseudo-random bytes from `seed`: no period short enough to hide a lost or repeated chunk.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads up to `want` bytes, or what arrives within 200 ms, without blocking: called from a
/// server loop's callback, this tells what the loop had written before the call.
pub fn what_is_there(mut stream: &TcpStream, want: usize) -> Vec<u8> {
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut buf = [0u8; 64];
    while got.len() < want && Instant::now() < deadline {
        match stream.read(&mut buf[..(want - got.len()).min(64)]) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("reading the client's socket: {e}"),
        }
    }
    got
}

/// Reads from a blocking stream until EOF (or `limit` passes, which fails the test).
pub fn read_to_eof(stream: &mut TcpStream, expected_len: usize, limit: Duration) -> Vec<u8> {
    let end = Instant::now() + limit;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = Vec::with_capacity(expected_len);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        assert!(
            Instant::now() < end,
            "no EOF within {limit:?} ({} bytes read)",
            out.len()
        );
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `(loop, slot, generation)` of a `ConnId`, read from its Debug form `conn#L.S.G`.
pub fn conn_parts(id: ConnId) -> (u32, u32, u32) {
    let text = format!("{id:?}");
    let parts: Vec<u32> = text
        .trim_start_matches("conn#")
        .split('.')
        .map(|p| p.parse().expect("ConnId Debug form is conn#L.S.G"))
        .collect();
    assert_eq!(parts.len(), 3, "unexpected ConnId Debug form {text}");
    (parts[0], parts[1], parts[2])
}

// ---------------------------------------------------------------- child-process echo server

/// Path of the `echo` example binary of this build, building it first (a no-op when fresh).
///
/// Test executables live in `target/<profile-dir>/deps/`; the example lands in
/// `target/<profile-dir>/examples/`. `cargo test` builds examples already, but `cargo test
/// --test net_x` does not, so we ask cargo for it (same profile, same target directory).
pub fn echo_example() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = profile_dir.join("examples").join("echo");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => "dev".to_string(),
    };
    let target_dir = profile_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--example",
            "echo",
            "--profile",
            &profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build --example echo");
    assert!(status.success(), "cargo build --example echo failed");
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// A child echo server; killed and reaped when dropped (if it has not exited already).
pub struct ChildServer {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_lines: mpsc::Receiver<String>,
}

impl ChildServer {
    /// Starts `echo --listen 127.0.0.1:0 --threads N`, optionally under `prlimit --nofile=N:N`,
    /// and reads the bound address from its "listening on" line.
    pub fn start(threads: usize, nofile: Option<u64>) -> ChildServer {
        let echo = echo_example();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(&echo);
                c
            }
            None => Command::new(&echo),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--threads", &threads.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn echo server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut guard = ChildServer {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr_lines: rx,
        };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = guard
                .stderr_lines
                .recv_timeout(left)
                .expect("echo server did not report its address");
            if let Some(rest) = line.strip_prefix("echo: listening on ") {
                let addr = rest.split_whitespace().next().unwrap();
                guard.addr = addr.parse().expect("address in listening line");
                return guard;
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The process's user + system CPU time so far, from /proc/PID/stat.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // Clock ticks: Linux reports them in USER_HZ, which is 100 on every architecture.
        Duration::from_millis(ticks * 10)
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
