//! Loop-owned state and the turn's hooks: `EventLoop::state` is one value per loop that lives
//! as long as the loop; end-of-turn hooks run after the turn's work and before its
//! `send_later` output is written; after-flush hooks run once it has been written.

#[path = "common/net_util.rs"]
mod net_util;

use chatserver::net::{Buffer, ConnId, ConnectionHandler, EventLoop};
use net_util::{what_is_there, TestServer};
use std::io::Write;
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Counter(u32);

#[derive(Default)]
struct Other(u32);

#[test]
fn state_is_one_value_per_type_per_loop() {
    let mut a = EventLoop::new(0).unwrap();
    let mut b = EventLoop::new(1).unwrap();
    a.state::<Counter>().0 += 2;
    a.state::<Counter>().0 += 3;
    a.state::<Other>().0 = 7;
    b.state::<Counter>().0 += 1;
    assert_eq!(a.state::<Counter>().0, 5);
    assert_eq!(a.state::<Other>().0, 7);
    assert_eq!(b.state::<Counter>().0, 1);
    assert_eq!(b.state::<Other>().0, 0);
}

/// Queues a reply with `send_later` on each message and notes the connection in the loop's
/// state; the hooks record what the client had received when they ran.
struct Handler {
    client: Mutex<Option<TcpStream>>,
    seen: Mutex<mpsc::Sender<(&'static str, Vec<u8>)>>,
}

#[derive(Default)]
struct Turn {
    replied: Vec<ConnId>,
    hooked: bool,
}

impl ConnectionHandler for Handler {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        input.retrieve_all();
        assert!(lp.send_later(conn, b"reply;"));
        lp.state::<Turn>().replied.push(conn);
        if std::mem::replace(&mut lp.state::<Turn>().hooked, true) {
            return;
        }
        let client = self
            .client
            .lock()
            .unwrap()
            .take()
            .expect("the client's socket");
        let client = Arc::new(client);
        let (before, after) = (client.clone(), client);
        let (tx1, tx2) = {
            let seen = self.seen.lock().unwrap();
            (seen.clone(), seen.clone())
        };
        lp.add_end_of_turn_hook(move |lp| {
            if !lp.state::<Turn>().replied.is_empty() {
                let _ = tx1.send(("end of turn", what_is_there(&before, 6)));
            }
        });
        lp.add_after_flush_hook(move |lp| {
            if !std::mem::take(&mut lp.state::<Turn>().replied).is_empty() {
                let _ = tx2.send(("after flush", what_is_there(&after, 6)));
            }
        });
    }
}

#[test]
fn end_of_turn_hooks_run_before_the_flush_and_after_flush_hooks_after_it() {
    let (tx, seen) = mpsc::channel();
    let handler = Arc::new(Handler {
        client: Mutex::new(None),
        seen: Mutex::new(tx),
    });
    let server = TestServer::start(handler.clone(), 1);
    let mut client = TcpStream::connect(server.addr).unwrap();
    *handler.client.lock().unwrap() = Some(client.try_clone().unwrap());
    client.write_all(b"go").unwrap();
    let wait = Duration::from_secs(10);
    let end = seen
        .recv_timeout(wait)
        .expect("the end-of-turn hook did not run");
    assert_eq!(
        end,
        ("end of turn", Vec::new()),
        "end-of-turn hook ran after the flush"
    );
    let after = seen
        .recv_timeout(wait)
        .expect("the after-flush hook did not run");
    assert_eq!(after, ("after flush", b"reply;".to_vec()));
    // The hooks stay: the next turn with a reply runs them again.
    client.write_all(b"again").unwrap();
    assert_eq!(
        seen.recv_timeout(wait).unwrap(),
        ("end of turn", Vec::new())
    );
    assert_eq!(
        seen.recv_timeout(wait).unwrap(),
        ("after flush", b"reply;".to_vec())
    );
    server.stop();
}
