//! Half-close in both directions.
//!
//! Client side: the client sends, then shuts its write side; the server reads EOF, writes
//! everything it still owes, then closes. The client reads every byte, then EOF.
//! Server side: `EventLoop::shutdown` with output queued shuts the write side only once the
//! output drained; the client reads all of it, then EOF, and can still send to the server.

#[path = "common/net_util.rs"]
mod net_util;

use chatserver::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use net_util::{pattern, read_to_eof, wait_until, TestServer};
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BYE: &[u8] = b"bye\n";
const FAREWELL: usize = 2 << 20;

/// Echoes, except that a message starting with "bye" is answered with a 2 MiB farewell and a
/// `shutdown`. Counts closes and the bytes that arrive after the shutdown.
#[derive(Default)]
struct Handler {
    closed: AtomicUsize,
    after_shutdown: AtomicUsize,
    refused_after_shutdown: AtomicUsize,
}

impl ConnectionHandler for Handler {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        if !lp.is_connected(conn) {
            // Already shut down by us: the peer may still talk.
            self.after_shutdown
                .fetch_add(input.readable_bytes(), Ordering::SeqCst);
            input.retrieve_all();
            return;
        }
        if input.peek().starts_with(BYE) {
            input.retrieve_all();
            lp.send(conn, &pattern(3, FAREWELL));
            lp.shutdown(conn);
            if !lp.send(conn, b"too late") {
                self.refused_after_shutdown.fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
        lp.send(conn, input.peek());
        input.retrieve_all();
    }

    fn on_close(&self, _lp: &mut EventLoop, _conn: ConnId) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn connections(server: &TestServer) -> usize {
    TestServer::call(server.conn_loop(), |lp| lp.connection_count())
}

fn client_half_close(len: usize) {
    let handler = Arc::new(Handler::default());
    let server = TestServer::start(handler.clone(), 1);
    let data = pattern(len as u64, len);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    // Not reading while writing: the server must buffer what the socket cannot take.
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let echoed = read_to_eof(&mut stream, len, Duration::from_secs(30));
    assert_eq!(echoed.len(), len, "echo short after half-close");
    assert!(echoed == data, "echo altered after half-close");
    assert!(
        wait_until(Duration::from_secs(5), || handler
            .closed
            .load(Ordering::SeqCst)
            == 1),
        "on_close did not fire after the owed bytes were written"
    );
    assert_eq!(connections(&server), 0);
    server.stop();
}

#[test]
fn client_half_close_small() {
    client_half_close(100);
}

#[test]
fn client_half_close_with_megabytes_owed() {
    client_half_close(6 << 20);
}

#[test]
fn client_half_close_with_nothing_sent() {
    client_half_close(0);
}

#[test]
fn server_shutdown_after_queued_output() {
    let handler = Arc::new(Handler::default());
    let server = TestServer::start(handler.clone(), 1);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(BYE).unwrap();
    let farewell = read_to_eof(&mut stream, FAREWELL, Duration::from_secs(30));
    assert_eq!(farewell.len(), FAREWELL);
    assert!(farewell == pattern(3, FAREWELL), "farewell altered");
    // The farewell may fit the socket buffer whole, so the client can see EOF before the
    // handler's thread gets to count the refused send.
    assert!(
        wait_until(Duration::from_secs(5), || handler
            .refused_after_shutdown
            .load(Ordering::SeqCst)
            == 1),
        "send after shutdown was not refused"
    );
    // Our write side is still open: the server keeps reading.
    stream.write_all(b"still here").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || handler
            .after_shutdown
            .load(Ordering::SeqCst)
            == 10),
        "server stopped reading after its own shutdown"
    );
    assert_eq!(handler.closed.load(Ordering::SeqCst), 0);
    drop(stream);
    assert!(wait_until(Duration::from_secs(5), || handler
        .closed
        .load(Ordering::SeqCst)
        == 1));
    assert_eq!(connections(&server), 0);
    server.stop();
}
