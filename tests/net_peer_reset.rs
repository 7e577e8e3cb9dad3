//! Peer reset mid-write: the client sets SO_LINGER 0 and closes while the server is writing a
//! large reply. No panic, `on_close` fires, the next connection reuses the slot under a new
//! generation, and the stale id is a harmless no-op while the new connection is unaffected.

#[path = "common/net_util.rs"]
mod net_util;

use chatserver::net::{set_linger_zero, Buffer, ConnId, ConnectionHandler, EventLoop};
use net_util::{conn_parts, read_to_eof, TestServer};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIG: usize = 32 << 20;

enum Event {
    Connected(ConnId),
    Closed(ConnId, usize),
}

/// "big" is answered with 32 MiB; anything else is echoed. Reports connects and closes.
struct Handler {
    events: Mutex<mpsc::Sender<Event>>,
}

impl ConnectionHandler for Handler {
    fn on_connection(&self, _lp: &mut EventLoop, conn: ConnId) {
        let _ = self.events.lock().unwrap().send(Event::Connected(conn));
    }

    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        if input.peek() == b"big" {
            lp.send(conn, &vec![b'x'; BIG]);
        } else {
            lp.send(conn, input.peek());
        }
        input.retrieve_all();
    }

    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        let queued = lp.output_bytes(conn);
        let _ = self
            .events
            .lock()
            .unwrap()
            .send(Event::Closed(conn, queued));
    }
}

fn next(events: &mpsc::Receiver<Event>) -> Event {
    events
        .recv_timeout(Duration::from_secs(10))
        .expect("no connection event within 10 s")
}

#[test]
fn reset_mid_write_closes_and_the_slot_is_reused_safely() {
    let (tx, events) = mpsc::channel();
    // No I/O loops: the base loop serves connections, and `stop` joins its thread, so a panic
    // anywhere in the server fails this test.
    let server = TestServer::start(
        Arc::new(Handler {
            events: Mutex::new(tx),
        }),
        0,
    );
    let lp = server.conn_loop().clone();

    let mut a = TcpStream::connect(server.addr).unwrap();
    let Event::Connected(old) = next(&events) else {
        panic!("expected a connect")
    };
    a.write_all(b"big").unwrap();
    // Read a little so the reply is certainly under way, then reset.
    let mut buf = vec![0u8; 64 * 1024];
    a.read_exact(&mut buf).unwrap();
    let queued = TestServer::call(&lp, move |lp| lp.output_bytes(old));
    assert!(queued > 0, "server is not mid-write (nothing queued)");
    set_linger_zero(&a).unwrap();
    drop(a);
    let Event::Closed(closed, queued_at_close) = next(&events) else {
        panic!("expected on_close for the reset connection")
    };
    assert_eq!(closed, old);
    eprintln!("reset with {queued} bytes queued; {queued_at_close} still queued at on_close");
    assert!(!TestServer::call(&lp, move |lp| lp.is_connected(old)));

    let mut b = TcpStream::connect(server.addr).unwrap();
    let Event::Connected(new) = next(&events) else {
        panic!("expected a connect")
    };
    let (old_loop, old_slot, old_gen) = conn_parts(old);
    let (new_loop, new_slot, new_gen) = conn_parts(new);
    assert_eq!(
        (new_loop, new_slot),
        (old_loop, old_slot),
        "slot not reused"
    );
    assert_ne!(new_gen, old_gen, "a reused slot must get a new generation");
    assert_ne!(new, old);

    // The stale id reaches nothing: every call is a no-op, the new connection is untouched.
    let (sent_old, sent_new) = TestServer::call(&lp, move |lp| {
        let sent_old = lp.send(old, b"stale!");
        let later_old = lp.send_later(old, b"stale!");
        lp.shutdown(old);
        lp.force_close(old);
        lp.close_after_flush(old);
        lp.set_high_water_mark(old, 1);
        assert_eq!(lp.output_bytes(old), 0);
        assert!(lp.peer_addr(old).is_none());
        (sent_old || later_old, lp.send(new, b"hello"))
    });
    assert!(!sent_old, "send to a stale id reported success");
    assert!(sent_new);
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = [0u8; 5];
    b.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    b.write_all(b"ping").unwrap();
    let mut ping = [0u8; 4];
    b.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
    assert!(TestServer::call(&lp, move |lp| lp.is_connected(new)));
    assert_eq!(TestServer::call(&lp, |lp| lp.connection_count()), 1);
    b.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut b, 0, Duration::from_secs(5)).is_empty());
    let Event::Closed(closed, _) = next(&events) else {
        panic!("expected on_close")
    };
    assert_eq!(closed, new);
    server.stop();
}

#[test]
fn many_resets_mid_write_leave_no_connection_behind() {
    let (tx, events) = mpsc::channel();
    let server = TestServer::start(
        Arc::new(Handler {
            events: Mutex::new(tx),
        }),
        2,
    );
    for round in 0..20 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"big").unwrap();
        let mut buf = vec![0u8; 1024 + round * 1000];
        s.read_exact(&mut buf).unwrap();
        set_linger_zero(&s).unwrap();
        drop(s);
    }
    let (mut opened, mut closed) = (0, 0);
    while closed < 20 {
        match next(&events) {
            Event::Connected(_) => opened += 1,
            Event::Closed(..) => closed += 1,
        }
    }
    assert_eq!(opened, 20);
    for h in &server.io {
        assert_eq!(TestServer::call(h, |lp| lp.connection_count()), 0);
    }
    server.stop();
}
