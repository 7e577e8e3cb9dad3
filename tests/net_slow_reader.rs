//! A 64 MiB reply to a client that reads slowly: the part `send` cannot write at once is
//! buffered and finished through EPOLLOUT, nothing is lost or reordered, the high-water-mark
//! callback fires when the queued output crosses the mark, and `on_write_complete` fires once
//! the output has drained.

#[path = "common/net_util.rs"]
mod net_util;

use chatserver::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use net_util::{pattern, wait_until, TestServer};
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 64 << 20;
const MARK: usize = 1 << 20;

#[derive(Default)]
struct Events {
    high_water: AtomicUsize,
    high_water_queued: AtomicUsize,
    write_complete: AtomicUsize,
    /// Output still queued when `on_write_complete` ran (must be 0).
    queued_at_complete: AtomicUsize,
    /// Output queued right after the sends returned (must be most of the payload).
    queued_after_send: AtomicUsize,
    /// `(high_water, write_complete)` in the order they fired.
    order: Mutex<Vec<&'static str>>,
}

/// Sends the payload in `pieces` sends as soon as a client connects.
struct BigSender {
    payload: Arc<Vec<u8>>,
    pieces: usize,
    events: Arc<Events>,
}

impl ConnectionHandler for BigSender {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        lp.set_high_water_mark(conn, MARK);
        lp.notify_write_complete(conn, true);
        let piece = self.payload.len() / self.pieces;
        for chunk in self.payload.chunks(piece) {
            assert!(lp.send(conn, chunk), "send refused on a live connection");
        }
        self.events
            .queued_after_send
            .store(lp.output_bytes(conn), Ordering::SeqCst);
    }

    fn on_message(&self, _lp: &mut EventLoop, _conn: ConnId, input: &mut Buffer) {
        input.retrieve_all();
    }

    fn on_high_water_mark(&self, _lp: &mut EventLoop, _conn: ConnId, queued: usize) {
        self.events.high_water.fetch_add(1, Ordering::SeqCst);
        self.events
            .high_water_queued
            .store(queued, Ordering::SeqCst);
        self.events.order.lock().unwrap().push("high_water");
    }

    fn on_write_complete(&self, lp: &mut EventLoop, conn: ConnId) {
        self.events.write_complete.fetch_add(1, Ordering::SeqCst);
        self.events
            .queued_at_complete
            .store(lp.output_bytes(conn), Ordering::SeqCst);
        self.events.order.lock().unwrap().push("write_complete");
    }
}

fn slow_reader(pieces: usize) {
    let payload = Arc::new(pattern(7, PAYLOAD));
    let events = Arc::new(Events::default());
    let server = TestServer::start(
        Arc::new(BigSender {
            payload: payload.clone(),
            pieces,
            events: events.clone(),
        }),
        1,
    );
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::with_capacity(PAYLOAD);
    let mut buf = vec![0u8; 256 * 1024];
    // Slow phase: 16 KiB reads with a nap between them, for the first 8 MiB.
    while received.len() < 8 << 20 {
        let n = stream.read(&mut buf[..16 * 1024]).expect("slow read");
        assert!(n > 0, "EOF after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(1));
    }
    // Deep into the reply the server must still be writing.
    assert_eq!(
        events.write_complete.load(Ordering::SeqCst),
        0,
        "write complete reported while most of 64 MiB was still unread"
    );
    assert_eq!(events.high_water.load(Ordering::SeqCst), 1);
    while received.len() < PAYLOAD {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "EOF after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed();
    assert!(received == *payload, "the 64 MiB came back altered");
    assert!(
        wait_until(Duration::from_secs(5), || events
            .write_complete
            .load(Ordering::SeqCst)
            == 1),
        "on_write_complete did not fire after the output drained"
    );
    let queued_after_send = events.queued_after_send.load(Ordering::SeqCst);
    eprintln!(
        "{pieces} send(s): {queued_after_send} bytes queued after send, high water at {} bytes, drained in {elapsed:.2?}",
        events.high_water_queued.load(Ordering::SeqCst)
    );
    assert!(
        queued_after_send > PAYLOAD / 2,
        "a non-reading client cannot take half of 64 MiB at once"
    );
    assert_eq!(events.high_water.load(Ordering::SeqCst), 1);
    assert!(events.high_water_queued.load(Ordering::SeqCst) >= MARK);
    assert_eq!(events.queued_at_complete.load(Ordering::SeqCst), 0);
    assert_eq!(
        *events.order.lock().unwrap(),
        vec!["high_water", "write_complete"]
    );
    // Nothing more arrives: exactly the payload, no duplicate tail.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        stream.read(&mut buf).is_err(),
        "bytes beyond the payload arrived"
    );
    drop(stream);
    server.stop();
}

#[test]
fn sixty_four_mib_in_one_send_to_a_slow_reader() {
    slow_reader(1);
}

#[test]
fn sixty_four_mib_in_sixteen_sends_to_a_slow_reader() {
    slow_reader(16);
}
