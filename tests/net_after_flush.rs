//! `send_later` and `after_flush`: what a turn queues leaves in one write at the end of the
//! turn, `after_flush` tasks run only once it has left, and output queued by such a task (after
//! the turn's flush) goes out at once instead of waiting for the next event.

#[path = "common/net_util.rs"]
mod net_util;

use chatserver::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use net_util::{what_is_there, TestServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// On each message: queues two replies, then, after the flush, reads what the client's socket
/// already holds (through a clone of it) and queues a third reply.
struct Handler {
    client: Mutex<Option<TcpStream>>,
    seen: Mutex<mpsc::Sender<Vec<u8>>>,
}

impl ConnectionHandler for Handler {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        input.retrieve_all();
        assert!(lp.send_later(conn, b"one;"));
        assert!(lp.send_later(conn, b"two;"));
        let client = self
            .client
            .lock()
            .unwrap()
            .take()
            .expect("the client's socket");
        let seen = self.seen.lock().unwrap().clone();
        lp.after_flush(move |lp| {
            let _ = seen.send(what_is_there(&client, 8));
            lp.send_later(conn, b"late;");
        });
    }
}

#[test]
fn after_flush_runs_once_the_turn_output_left_and_late_output_is_not_stuck() {
    let (tx, seen) = mpsc::channel();
    let handler = Arc::new(Handler {
        client: Mutex::new(None),
        seen: Mutex::new(tx),
    });
    let server = TestServer::start(handler.clone(), 1);
    let mut client = TcpStream::connect(server.addr).unwrap();
    *handler.client.lock().unwrap() = Some(client.try_clone().unwrap());

    client.write_all(b"go").unwrap();
    let before_task = seen
        .recv_timeout(Duration::from_secs(10))
        .expect("the after_flush task did not run");
    assert_eq!(
        before_task, b"one;two;",
        "the after_flush task ran before the turn's output was written"
    );

    // Nothing else happens on the connection: "late;" must leave without a further event.
    // (The clone shares the socket's file status flags: make it blocking again.)
    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut late = [0u8; 5];
    client
        .read_exact(&mut late)
        .expect("output queued by an after_flush task waited for the next event");
    assert_eq!(&late, b"late;");
    server.stop();
}
