//! The delivery guarantees of issue 11 on one server, over real sockets, on both stores:
//! slow readers cost bounded memory and lose nothing; an acking client gets back whatever it
//! did not acknowledge (a dropped socket, a frozen then killed process, a partial ack); a
//! retried `cid` is delivered once; heartbeats close a silent modern client and spare one that
//! answers and the seeds' client; DELIVERY_ACK_MSG's errors; the slow-reader deadline.
//!
//! A client that does not acknowledge has a message delivered once the server wrote it into
//! the socket (../shared/DESIGN.md, the no-loss rule). When such a client closes without
//! reading, what sat in the kernel's buffers is gone by that rule; the tests measure those
//! bytes (/proc/net/tcp: the server side's send queue plus the client side's receive queue)
//! and check that exactly the messages they held are the ones not stored, a prefix of the flow.

#[macro_use]
mod common;

use chatserver::protocol::{build, Framer};
use common::client::{logged_in, mid_of, unique, Client, WAIT};
use common::seeds_client::SeedsClient;
use common::server::{Backend, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Messages of the slow-reader flows, each of [`TEXT_LEN`] bytes of text.
const MESSAGES: usize = 20_000;
const TEXT_LEN: usize = 1024;
/// The server's default `--output-high-water-kib`.
const HIGH_WATER_KIB: u64 = 256;
/// Messages per write of the pipelining sender.
const CHUNK: usize = 500;
/// Messages per round of a sender paced at the store's speed.
const PACED_CHUNK: usize = 1000;
/// How long the stored count must stay still to count as settled.
const QUIET: Duration = Duration::from_millis(400);

fn text(i: usize) -> String {
    let head = format!("{i:06}:");
    format!("{head}{}", "x".repeat(TEXT_LEN - head.len()))
}

/// The index a text of [`text`] carries.
fn index_of(v: &Value) -> usize {
    let msg = v["msg"].as_str().unwrap_or_else(|| panic!("no msg in {v}"));
    msg[..6]
        .parse()
        .unwrap_or_else(|_| panic!("not a test text: {msg:.20}"))
}

fn register(addr: SocketAddr, prefix: &str) -> i64 {
    Client::connect(addr).register(&unique(prefix), "pw")
}

/// Logs `id` in with `"acks":true`, retrying while an earlier session is being released.
fn login_acking(addr: SocketAddr, id: i64, limit: Duration) -> Client {
    let (c, r) = common::client::login_acking_when_free(addr, id, limit);
    assert_eq!(r["acks"], true, "acking login ack: {r}");
    let offline = r["offlinemsg"].as_array().map_or(0, Vec::len);
    assert_eq!(
        offline, 0,
        "an acking login ack carries no offline messages: {r}"
    );
    c
}

/// Logs `id` in without acks; returns the client and the offline messages of its ack.
fn login_plain(addr: SocketAddr, id: i64, limit: Duration) -> (Client, Vec<Value>) {
    let (c, ack) = common::client::login_when_free(addr, id, limit);
    (c, common::client::decoded(&ack, "offlinemsg"))
}

fn send_ack(c: &mut Client, count: usize) {
    c.send_built(|o| build::delivery_ack(o, count as u64));
}

/// Chat frames (msgid 6) on `c` until `want` are in `got` (which may hold some already),
/// acknowledging as they come when `acking`. Fails after `limit`.
fn collect(c: &mut Client, got: &mut Vec<Value>, want: usize, acking: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut acked = got.len();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.wait_for(left.min(Duration::from_secs(5)), |v| v["msgid"] == 6) {
            Some(v) => got.push(v),
            None => assert!(
                Instant::now() < deadline && !c.closed,
                "{} of {want} chat messages within {limit:?} (closed: {})",
                got.len(),
                c.closed
            ),
        }
        if acking && (got.len() - acked >= 64 || got.len() == want) {
            send_ack(c, got.len());
            acked = got.len();
        }
    }
}

/// `got` is exactly the messages `first..last` of [`text`], in order, mids increasing.
fn assert_in_order(got: &[Value], first: usize, last: usize, what: &str) {
    let indices: Vec<usize> = got.iter().map(index_of).collect();
    let expected: Vec<usize> = (first..last).collect();
    if indices != expected {
        let wrong = indices
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(indices.len().min(expected.len()));
        panic!(
            "{what}: {} messages, expected {first}..{last}; first difference at {wrong}: \
             {:?} vs {:?}",
            got.len(),
            indices.get(wrong),
            expected.get(wrong)
        );
    }
    for pair in got.windows(2) {
        assert!(
            mid_of(&pair[0]) < mid_of(&pair[1]),
            "{what}: mids do not increase: {} then {}",
            mid_of(&pair[0]),
            mid_of(&pair[1])
        );
    }
}

/// A logged-in sender that pipelines chats and reads its own socket on a thread of its own
/// (so that it is never a slow reader itself); its frames arrive on `rx`.
struct Sender {
    stream: TcpStream,
    id: i64,
    rx: mpsc::Receiver<Value>,
}

impl Sender {
    fn new(addr: SocketAddr) -> Sender {
        let (c, id) = logged_in(addr, "snd");
        let stream = c.stream;
        let mut reader = stream.try_clone().expect("clone");
        reader.set_read_timeout(None).expect("blocking");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut framer = Framer::new(64 << 20);
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 65536];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let ok = framer.drain(&mut buf, |frame| {
                    let value = serde_json::from_slice(frame.bytes).expect("server JSON");
                    let _ = tx.send(value);
                    ControlFlow::Continue(())
                });
                ok.expect("server output frames");
            }
        });
        Sender { stream, id, rx }
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("sender write");
    }

    /// Messages `range` of [`text`] to `to`, [`CHUNK`] per write.
    fn send(&mut self, to: i64, range: std::ops::Range<usize>) {
        let all: Vec<usize> = range.collect();
        for chunk in all.chunks(CHUNK) {
            let mut bytes = Vec::with_capacity(chunk.len() * (TEXT_LEN + 100));
            for &i in chunk {
                build::one_chat(&mut bytes, self.id, "s", to, &text(i), "t");
                bytes.push(b'\n');
            }
            self.write(&bytes);
        }
    }

    /// Waits until the server has handled everything sent so far (a ping's pong).
    fn sync(&mut self, seq: u64, limit: Duration) {
        let mut bytes = Vec::new();
        build::ping(&mut bytes, Some(seq));
        bytes.push(b'\n');
        self.write(&bytes);
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if v["msgid"] == 25 && v["seq"] == seq => return,
                Ok(v) => assert_ne!(v["msgid"], 11, "sender refused: {v}"),
                Err(_) => panic!("no pong {seq} within {limit:?}"),
            }
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Samples the server's RSS until stopped; returns the highest seen.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(10));
            }
        });
        RssPeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// (tx_queue, rx_queue, state) of the IPv4 TCP socket from `local` to `remote` port.
fn tcp_queues(local: u16, remote: u16) -> Option<(u64, u64, u8)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if port(f[1])? != local || port(f[2])? != remote {
            return None;
        }
        let state = u8::from_str_radix(f[3], 16).ok()?;
        let (tx, rx) = f[4].split_once(':')?;
        let tx = u64::from_str_radix(tx, 16).ok()?;
        let rx = u64::from_str_radix(rx, 16).ok()?;
        Some((tx, rx, state))
    })
}

/// Bytes the server wrote into the socket of `client` that `client` has not read: in the
/// server side's send queue plus the client side's receive queue.
fn unread_in_kernel(server: SocketAddr, client: &Client) -> u64 {
    let local = client.stream.local_addr().expect("local addr").port();
    let (_, rx, _) = tcp_queues(local, server.port()).unwrap_or((0, 0, 0));
    let (tx, _, _) = tcp_queues(server.port(), local).unwrap_or((0, 0, 0));
    tx + rx
}

/// Waits until the user's stored messages stop changing for a moment (store jobs done).
fn settle_store(backend: &Backend, user: i64, quiet: Duration, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    let mut last = backend.offline_count(user);
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < quiet && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        let now = backend.offline_count(user);
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

/// The length on the wire of a delivered chat frame of `raw_len` bytes (with its newline).
fn wire_len(raw_len: usize) -> u64 {
    raw_len as u64 + 1
}

/// What the slow reader does once the flow has been sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Then {
    /// Closes without reading a byte, logs in again.
    Reconnects,
    /// Starts reading on the same connection.
    ReadsLate,
}

/// B never reads while A sends [`MESSAGES`] of 1 KiB; the server's memory stays bounded and
/// every message reaches B in order (see the module doc for a plain client that closes).
/// `paced`: A sends 1,000 at a time and waits for the store to take them (see
/// `pipelined_flow_to_a_slow_reader_keeps_memory_bounded` for why).
fn slow_reader(backend: Backend, acking: bool, then: Then, paced: bool) {
    let server = Server::start(
        &backend,
        &["--threads", "2", "--heartbeat-interval-secs", "0"],
    );
    let addr = server.addr;
    let idb = register(addr, "slow");
    let mut b = if acking {
        login_acking(addr, idb, WAIT)
    } else {
        login_plain(addr, idb, WAIT).0
    };
    let mut a = Sender::new(addr);
    // A first small exchange: every lazily built structure exists before the measure.
    a.send(idb, 0..1);
    let mut got = Vec::new();
    collect(&mut b, &mut got, 1, acking, WAIT);
    let before = server.rss_kib();
    let peak = RssPeak::start(server.pid());
    let start = Instant::now();
    if paced {
        // At the store's pace: each chunk is stored before the next is sent.
        for start in (1..MESSAGES).step_by(PACED_CHUNK) {
            a.send(idb, start..(start + PACED_CHUNK).min(MESSAGES));
            a.sync(start as u64, Duration::from_secs(40));
            settle_store(
                &backend,
                idb,
                Duration::from_millis(150),
                Duration::from_secs(20),
            );
        }
    } else {
        a.send(idb, 1..MESSAGES);
        a.sync(1, Duration::from_secs(40));
    }
    let stored = settle_store(&backend, idb, QUIET, Duration::from_secs(20));
    let sent_in = start.elapsed();
    let after = server.rss_kib();
    let peak = peak.finish();
    let growth = peak.saturating_sub(before);
    // The bound: the high-water mark of output for B (and as much again for the copies it
    // counts as unconfirmed), a few marks of input buffers and store batches in flight, plus
    // 16 MiB for the allocator's arenas (two I/O loops and the store workers each keep one)
    // and the store's caches. Unbounded buffering would be all 20 MiB of the flow, and more.
    let bound = 8 * HIGH_WATER_KIB + 16 * 1024;
    eprintln!(
        "slow reader ({}, acking {acking}, {then:?}, paced {paced}): {MESSAGES} sent in {sent_in:?}, {stored} \
         stored; RSS {before} KiB before, peak {peak} KiB, {after} KiB after: growth {growth} \
         KiB (bound {bound} KiB)",
        backend.name()
    );
    assert!(
        growth < bound,
        "server RSS grew by {growth} KiB for a slow reader (bound {bound} KiB)"
    );
    assert!(stored > 0, "nothing was stored for the slow reader");
    match then {
        Then::ReadsLate => {
            collect(&mut b, &mut got, MESSAGES, acking, Duration::from_secs(45));
            assert_in_order(&got, 0, MESSAGES, "late reader");
            b.assert_quiet(Duration::from_millis(300), "after every message");
        }
        Then::Reconnects => {
            // Written into the socket and not read: delivered, for a plain client.
            let unread = unread_in_kernel(addr, &b);
            drop(b);
            let (mut b, mut again) = if acking {
                (login_acking(addr, idb, WAIT), Vec::new())
            } else {
                login_plain(addr, idb, WAIT)
            };
            // The first message was read and acknowledged before the flow. An acking client
            // gets all the others; a plain one those that were not in the kernel's buffers.
            if acking {
                collect(
                    &mut b,
                    &mut again,
                    MESSAGES - 1,
                    true,
                    Duration::from_secs(45),
                );
                assert_in_order(&again, 1, MESSAGES, "acking reader after reconnecting");
            } else {
                let probe_limit = Duration::from_secs(45);
                // The first frame tells the wire length of each (all the same length here).
                collect(&mut b, &mut again, 1, false, probe_limit);
                let lost_from = index_of(&again[0]);
                let raw = serde_json::to_string(&again[0]).expect("json").len();
                let per_frame = wire_len(raw);
                let expected_lost = (unread / per_frame) as usize;
                eprintln!(
                    "plain reader closed with {unread} unread bytes in the kernel: {} messages \
                     of {per_frame} bytes; the store gave back from message {lost_from}",
                    expected_lost
                );
                assert!(
                    lost_from.abs_diff(1 + expected_lost) <= 1,
                    "the store gave back from message {lost_from}, but the kernel held \
                     {unread} bytes = {expected_lost} messages after the first"
                );
                assert!(unread < 32 << 20, "{unread} bytes in socket buffers?");
                collect(&mut b, &mut again, MESSAGES - lost_from, false, probe_limit);
                assert_in_order(
                    &again,
                    lost_from,
                    MESSAGES,
                    "plain reader after reconnecting",
                );
            }
            b.assert_quiet(Duration::from_millis(300), "after every message");
        }
    }
}

fn slow_plain_reader_reconnects(backend: Backend) {
    slow_reader(backend, false, Then::Reconnects, true)
}

fn slow_plain_reader_reads_late(backend: Backend) {
    slow_reader(backend, false, Then::ReadsLate, true)
}

fn slow_acking_reader_reconnects(backend: Backend) {
    slow_reader(backend, true, Then::Reconnects, true)
}

fn slow_acking_reader_reads_late(backend: Backend) {
    slow_reader(backend, true, Then::ReadsLate, true)
}

/// The same flow, pipelined as fast as the sender can write: the server reads it faster than
/// the store writes it. Without backpressure the copies waiting for the store workers were all
/// in RAM (20-26 MiB of growth for 20 MiB of flow); now the sender is not read while more than
/// `--store-queue-high-kib` (4 MiB) waits for the store (chat/store_pressure.rs), so the rest
/// of the flow waits in its socket and the growth stays within the bound.
#[test]
fn pipelined_flow_to_a_slow_reader_keeps_memory_bounded() {
    slow_reader(Backend::sqlite(), false, Then::ReadsLate, false)
}

/// Sends `n` short chats `"{tag}{i}"` from `a` to `to` and returns nothing; `a` is plain.
fn chats(a: &mut Client, ida: i64, to: i64, tag: &str, n: usize) {
    a.send_chats(ida, to, (0..n).map(|i| format!("{tag}{i:04}")));
    a.ping(99);
}

fn tags(got: &[Value]) -> Vec<String> {
    got.iter()
        .map(|v| v["msg"].as_str().unwrap().to_owned())
        .collect()
}

fn mids(got: &[Value]) -> Vec<u64> {
    got.iter().map(mid_of).collect()
}

/// An acking client receives N messages, never acknowledges them, and its socket drops: all
/// N come back at the next login, with the same mids; once acknowledged, never again.
fn unacked_messages_come_back(backend: Backend) {
    const N: usize = 50;
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let idb = register(addr, "b");
    let mut b = login_acking(addr, idb, WAIT);
    chats(&mut a, ida, idb, "u", N);
    let mut first = Vec::new();
    collect(&mut b, &mut first, N, false, WAIT);
    drop(b);
    let mut b = login_acking(addr, idb, WAIT);
    let mut again = Vec::new();
    collect(&mut b, &mut again, N, false, WAIT);
    assert_eq!(
        tags(&again),
        tags(&first),
        "the unacknowledged messages, in order"
    );
    assert_eq!(mids(&again), mids(&first), "with the mids they had");
    b.assert_quiet(Duration::from_millis(300), "after the N");
    send_ack(&mut b, N);
    b.ping(1);
    drop(b);
    let mut b = login_acking(addr, idb, WAIT);
    b.assert_quiet(
        Duration::from_millis(500),
        "acknowledged messages are not delivered again",
    );
}

/// Ack k of N, then the socket drops: exactly the N − k others come back. Also a logout
/// (LOGINOUT_MSG) with unacknowledged messages stores them again.
fn partial_ack_returns_the_remainder(backend: Backend) {
    const N: usize = 50;
    const K: usize = 20;
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let idb = register(addr, "b");
    let mut b = login_acking(addr, idb, WAIT);
    chats(&mut a, ida, idb, "p", N);
    let mut first = Vec::new();
    collect(&mut b, &mut first, N, false, WAIT);
    send_ack(&mut b, K);
    b.ping(1); // the ack was handled before the close
    drop(b);
    let mut b = login_acking(addr, idb, WAIT);
    let mut again = Vec::new();
    collect(&mut b, &mut again, N - K, false, WAIT);
    assert_eq!(
        tags(&again),
        tags(&first[K..]),
        "the unacknowledged remainder"
    );
    assert_eq!(mids(&again), mids(&first[K..]), "same mids");
    b.assert_quiet(Duration::from_millis(300), "nothing but the remainder");
    // Ack 10 of these 30, then log out: the other 20 are stored again.
    send_ack(&mut b, 10);
    b.send_built(|o| build::logout(o, idb));
    let r = b.recv_msgid(12);
    assert_eq!(r["errno"], 0, "logout: {r}");
    drop(b);
    let mut b = login_acking(addr, idb, WAIT);
    let mut last = Vec::new();
    collect(&mut b, &mut last, N - K - 10, true, WAIT);
    assert_eq!(mids(&last), mids(&first[K + 10..]), "after a logout");
    b.assert_quiet(
        Duration::from_millis(300),
        "nothing more after the logout's remainder",
    );
}

/// An acking client in a process of its own (python3) receives N messages, never acks, and is
/// frozen (SIGSTOP): the heartbeat closes it, the next login gets all N back with their mids
/// while the frozen process still holds its socket; then it is SIGKILLed.
fn frozen_acking_process_loses_nothing(backend: Backend) {
    const N: usize = 20;
    let server = Server::start(
        &backend,
        &[
            "--threads",
            "2",
            "--heartbeat-interval-secs",
            "2",
            "--heartbeat-timeout-secs",
            "1",
        ],
    );
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let idb = register(addr, "b");
    let mut child = ChildClient::spawn(addr, idb, N);
    child.expect_line("login");
    chats(&mut a, ida, idb, "f", N);
    let mut seen = Vec::new();
    for _ in 0..N {
        let line = child.expect_line("got ");
        seen.push(line["got ".len()..].parse::<u64>().expect("mid"));
    }
    child.expect_line("ready");
    child.signal(nix::sys::signal::Signal::SIGSTOP);
    let frozen = Instant::now();
    // The frozen client holds its session until the heartbeat gives up on it.
    let mut b = login_acking(addr, idb, Duration::from_secs(15));
    let waited = frozen.elapsed();
    let mut again = Vec::new();
    collect(&mut b, &mut again, N, true, WAIT);
    assert_eq!(
        mids(&again),
        seen,
        "what the frozen process had, with its mids"
    );
    assert_eq!(
        tags(&again),
        (0..N).map(|i| format!("f{i:04}")).collect::<Vec<_>>()
    );
    b.assert_quiet(Duration::from_millis(300), "nothing more");
    eprintln!("frozen client freed after {waited:?}");
    assert!(waited < Duration::from_secs(10), "freed after {waited:?}");
    child.signal(nix::sys::signal::Signal::SIGKILL);
    drop(child);
    // Its death changes nothing: what was acknowledged since stays so.
    b.ping(2);
    b.assert_quiet(Duration::from_millis(300), "after the SIGKILL");
}

/// A python3 child speaking the protocol as an acking client that never acknowledges.
struct ChildClient {
    child: Child,
    lines: mpsc::Receiver<String>,
}

const CHILD_SCRIPT: &str = r#"
import json, socket, sys, time
host, port, uid, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection((host, port))
s.sendall(json.dumps({"msgid": 1, "id": uid, "password": "pw", "acks": True}).encode() + b"\n")
f = s.makefile("rb")
n = 0
for line in f:
    m = json.loads(line)
    if m.get("msgid") == 2:
        assert m["errno"] == 0, m
        print("login", flush=True)
    elif m.get("msgid") in (6, 10):
        n += 1
        print("got %d" % m["mid"], flush=True)
        if n == want:
            break
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

impl ChildClient {
    fn spawn(addr: SocketAddr, id: i64, want: usize) -> ChildClient {
        let mut child = Command::new("python3")
            .args(["-c", CHILD_SCRIPT])
            .args([
                addr.ip().to_string(),
                addr.port().to_string(),
                id.to_string(),
                want.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        ChildClient { child, lines }
    }

    fn expect_line(&mut self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("child client: no line {prefix:?} within {WAIT:?}"));
        assert!(
            line.starts_with(prefix),
            "child client said {line:?}, not {prefix:?}"
        );
        line
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the child");
    }
}

impl Drop for ChildClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A retried `cid` is delivered once and acknowledged twice with the same mid; distinct cids
/// are two deliveries with increasing mids, each the mid of its SEND_ACK. Also when the
/// recipient is offline: stored once.
fn a_retried_cid_is_delivered_once(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    let send = |a: &mut Client, to: i64, msg: &str, cid: &str| {
        a.send_built(|o| build::one_chat_cid(o, (ida, "a"), to, msg, "t", cid));
    };
    send(&mut a, idb, "once", "c-1");
    send(&mut a, idb, "once", "c-1");
    let ack1 = a.recv_msgid(28);
    let ack2 = a.recv_msgid(28);
    assert_eq!(ack1["cid"], "c-1", "{ack1}");
    assert_eq!(ack1, ack2, "a retry is acknowledged with the first mid");
    let got = b.recv_chat("once");
    assert_eq!(
        mid_of(&got),
        ack1["mid"].as_u64().unwrap(),
        "delivered under the acked mid"
    );
    assert_eq!(got["cid"], "c-1", "the frame goes as sent: {got}");
    b.assert_quiet(Duration::from_millis(400), "a retry is not delivered again");

    send(&mut a, idb, "two", "c-2");
    send(&mut a, idb, "three", "c-3");
    let ack2 = a.recv_msgid(28);
    let ack3 = a.recv_msgid(28);
    assert_eq!(
        (ack2["cid"].as_str(), ack3["cid"].as_str()),
        (Some("c-2"), Some("c-3"))
    );
    let (two, three) = (b.recv_chat("two"), b.recv_chat("three"));
    assert_eq!(mid_of(&two), ack2["mid"].as_u64().unwrap());
    assert_eq!(mid_of(&three), ack3["mid"].as_u64().unwrap());
    assert!(
        mid_of(&got) < mid_of(&two) && mid_of(&two) < mid_of(&three),
        "mids increase"
    );
    // The same cid from another sender is another message.
    b.send_built(|o| build::one_chat_cid(o, (idb, "b"), ida, "mine", "t", "c-1"));
    let other = b.recv_msgid(28);
    assert_ne!(other["mid"], ack1["mid"], "cids are per sender");
    a.recv_chat("mine");

    // Offline recipient: a retry is stored once.
    let idc = register(addr, "c");
    send(&mut a, idc, "stored once", "c-9");
    send(&mut a, idc, "stored once", "c-9");
    let (s1, s2) = (a.recv_msgid(28), a.recv_msgid(28));
    assert_eq!(s1, s2);
    let (_c, offline) = login_plain(addr, idc, WAIT);
    assert_eq!(offline.len(), 1, "one stored copy: {offline:?}");
    assert_eq!(mid_of(&offline[0]), s1["mid"].as_u64().unwrap());
}

const HEARTBEAT_FLAGS: [&str; 6] = [
    "--threads",
    "2",
    "--heartbeat-interval-secs",
    "1",
    "--heartbeat-timeout-secs",
    "1",
];

/// A silent modern client gets HEARTBEAT_MSG (27), then ERROR errno 21 and the close.
fn heartbeat_closes_a_silent_client(backend: Backend) {
    let server = Server::start(&backend, &HEARTBEAT_FLAGS);
    let (mut b, _) = logged_in(server.addr, "hb");
    let start = Instant::now();
    let beat = b
        .wait_for(Duration::from_secs(4), |_| true)
        .expect("a heartbeat");
    assert_eq!(
        beat,
        serde_json::json!({"msgid": 27}),
        "the first frame: {beat}"
    );
    let at = start.elapsed();
    let err = b
        .wait_for(Duration::from_secs(4), |_| true)
        .expect("the closing error");
    assert_eq!(err["msgid"], 11, "{err}");
    assert_eq!(err["errno"], 21, "TimedOut: {err}");
    assert!(
        b.wait_closed(Duration::from_secs(3)),
        "closed after the error"
    );
    let closed = start.elapsed();
    eprintln!("heartbeat after {at:?}, closed after {closed:?}");
    assert!(
        at >= Duration::from_millis(800),
        "heartbeat too early: {at:?}"
    );
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
}

/// A client that answers each heartbeat (a plain one with PING, an acking one with its
/// DELIVERY_ACK) stays connected well past interval + timeout.
fn heartbeat_spares_a_client_that_answers(backend: Backend) {
    let server = Server::start(&backend, &HEARTBEAT_FLAGS);
    let addr = server.addr;
    let (mut plain, idp) = logged_in(addr, "hp");
    let ida = register(addr, "ha");
    let mut acking = login_acking(addr, ida, WAIT);
    let start = Instant::now();
    let mut beats = [0, 0];
    while start.elapsed() < Duration::from_secs(6) {
        for (i, c) in [&mut plain, &mut acking].into_iter().enumerate() {
            if let Some(v) = c.wait_for(Duration::from_millis(100), |_| true) {
                match v["msgid"].as_i64() {
                    Some(27) if i == 0 => {
                        beats[i] += 1;
                        c.send_built(|o| build::ping(o, Some(beats[i])));
                    }
                    Some(27) => {
                        beats[i] += 1;
                        send_ack(c, 0);
                    }
                    Some(25) => {}
                    _ => panic!("unexpected frame {v}"),
                }
            }
            assert!(!c.closed, "client {i} closed after {:?}", start.elapsed());
        }
    }
    eprintln!(
        "heartbeats answered: plain {}, acking {}",
        beats[0], beats[1]
    );
    assert!(
        beats[0] >= 3 && beats[1] >= 3,
        "heartbeats every second: {beats:?}"
    );
    plain.ping(1000);
    acking.ping(1000);
    // And both still chat.
    plain.chat(idp, ida, "still here");
    acking.recv_chat("still here");
}

/// The seeds' dialect (first request ends with a NUL) gets no heartbeat and is not closed:
/// that client never answers one (watchdog.rs); it has TCP keepalive only.
fn heartbeat_spares_the_seeds_client(backend: Backend) {
    let server = Server::start(&backend, &HEARTBEAT_FLAGS);
    let addr = server.addr;
    let seeds = SeedsClient::connect(addr);
    let id = seeds.register(&unique("seed"), "pw");
    let ack = seeds.login(id, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    let got = seeds.drain(Duration::from_secs(5));
    assert!(got.is_empty(), "the seeds' client got {got:?}");
    assert!(!seeds.is_closed(), "the seeds' client was closed");
    // (A modern sender now: one silent for those 5 s would have been closed.)
    let (mut a, ida) = logged_in(addr, "a");
    a.chat(ida, id, "to the seeds client");
    let m = seeds
        .wait_for(WAIT, |v| v["msgid"] == 6)
        .expect("the seeds' client still gets messages");
    assert_eq!(m["msg"], "to the seeds client");
    seeds.assert_no_violation("seeds client");
}

/// DELIVERY_ACK_MSG errors: acks off, a count past what was sent; the connection stays
/// usable after each.
fn delivery_ack_errors(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut plain, idp) = logged_in(addr, "plain");
    send_ack(&mut plain, 1);
    let e = plain.expect_error(20, Some(26));
    assert!(e["errmsg"].as_str().unwrap().contains("acks"), "{e}");
    plain.ping(1);
    a.chat(ida, idp, "after the refusal");
    plain.recv_chat("after the refusal");

    let idb = register(addr, "acking");
    let mut b = login_acking(addr, idb, WAIT);
    chats(&mut a, ida, idb, "e", 2);
    let mut got = Vec::new();
    collect(&mut b, &mut got, 2, false, WAIT);
    send_ack(&mut b, 3);
    b.expect_error(20, Some(26));
    b.ping(2);
    b.send_built(|o| build::delivery_ack(o, i64::MAX as u64));
    b.expect_error(20, Some(26));
    send_ack(&mut b, 2);
    b.ping(3); // a good ack has no reply
    b.assert_quiet(Duration::from_millis(200), "a good ack");
    a.chat(ida, idb, "after the errors");
    let m = b.recv_chat("after the errors");
    assert!(mid_of(&m) > mid_of(&got[1]));
    send_ack(&mut b, 3);
    b.ping(4);
    b.assert_quiet(Duration::from_millis(200), "an ack of everything");
    drop(b);
    let mut b = login_acking(addr, idb, WAIT);
    b.assert_quiet(Duration::from_millis(400), "all was acknowledged");
}

/// A reader that never reads is closed `--slow-reader-deadline-secs` after it fell behind
/// (errno 22 is sent first, though it will not read it), and every message is retrievable
/// at the next login (a plain client: all but those written into its socket).
fn slow_reader_deadline(backend: Backend, acking: bool) {
    let server = Server::start(
        &backend,
        &[
            "--threads",
            "2",
            "--heartbeat-interval-secs",
            "0",
            "--slow-reader-deadline-secs",
            "2",
        ],
    );
    let addr = server.addr;
    let idb = register(addr, "dl");
    let b = if acking {
        login_acking(addr, idb, WAIT)
    } else {
        login_plain(addr, idb, WAIT).0
    };
    let local = b.stream.local_addr().unwrap().port();
    let mut a = Sender::new(addr);
    let start = Instant::now();
    a.send(idb, 0..MESSAGES);
    a.sync(1, Duration::from_secs(40));
    let sent = start.elapsed();
    // Closed by the server: its side gone or closing, ours in CLOSE_WAIT (FIN received).
    let deadline = Instant::now() + Duration::from_secs(15);
    let closed_at = loop {
        let ours = tcp_queues(local, addr.port());
        if ours.is_none_or(|(_, _, state)| state == 0x08 || state == 0x07) {
            break start.elapsed();
        }
        let theirs = tcp_queues(addr.port(), local);
        if theirs.is_none_or(|(_, _, state)| state != 0x01) {
            break start.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "a reader that never reads is still connected {:?} after the flow (sent in \
             {sent:?}); server log:\n{}",
            start.elapsed(),
            server.log()
        );
        thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "slow-reader deadline 2 s ({}, acking {acking}): flow sent in {sent:?}, closed {closed_at:?} \
         after it started",
        backend.name()
    );
    assert!(
        server
            .log()
            .contains("closing a connection that does not read"),
        "the close is the slow-reader deadline's"
    );
    settle_store(&backend, idb, QUIET, Duration::from_secs(20));
    let unread = unread_in_kernel(addr, &b);
    drop(b);
    if acking {
        let mut b = login_acking(addr, idb, WAIT);
        let mut again = Vec::new();
        collect(&mut b, &mut again, MESSAGES, true, Duration::from_secs(45));
        assert_in_order(&again, 0, MESSAGES, "after the slow-reader close");
        b.assert_quiet(Duration::from_millis(300), "after every message");
    } else {
        let (mut b, mut again) = login_plain(addr, idb, WAIT);
        collect(&mut b, &mut again, 1, false, Duration::from_secs(45));
        let from = index_of(&again[0]);
        let per_frame = wire_len(serde_json::to_string(&again[0]).unwrap().len());
        eprintln!(
            "plain reader closed with {unread} bytes unread in the kernel; the store gave back \
             from message {from} (frames of {per_frame} bytes)"
        );
        // After the close the server's side may have dropped what it had not sent (the
        // receive queue alone is then measured): the store must give back at most what
        // the kernel could not have held, and from then on everything.
        assert!(
            from as u64 <= unread / per_frame + 1,
            "messages {}..{from} are missing: the kernel held only {unread} bytes",
            unread / per_frame + 1
        );
        collect(
            &mut b,
            &mut again,
            MESSAGES - from,
            false,
            Duration::from_secs(45),
        );
        assert_in_order(
            &again,
            from,
            MESSAGES,
            "plain reader after the slow-reader close",
        );
        b.assert_quiet(Duration::from_millis(300), "after every message");
    }
}

fn slow_reader_deadline_plain(backend: Backend) {
    slow_reader_deadline(backend, false)
}

fn slow_reader_deadline_acking(backend: Backend) {
    slow_reader_deadline(backend, true)
}

both_backends!(
    slow_plain_reader_reconnects,
    slow_plain_reader_reads_late,
    slow_acking_reader_reconnects,
    slow_acking_reader_reads_late,
    unacked_messages_come_back,
    partial_ack_returns_the_remainder,
    frozen_acking_process_loses_nothing,
    a_retried_cid_is_delivered_once,
    heartbeat_closes_a_silent_client,
    heartbeat_spares_a_client_that_answers,
    heartbeat_spares_the_seeds_client,
    delivery_ack_errors,
    slow_reader_deadline_plain,
    slow_reader_deadline_acking,
);
