//! The database never blocks the I/O loops (MySQL only): while another session holds
//! `LOCK TABLES user WRITE`, online users chat and ping at full speed and a login waits;
//! after `UNLOCK TABLES` the login completes.

mod common;

use common::client::{logged_in, unique, Client};
use common::server::{Backend, Server};
use mysql::prelude::Queryable;
use serde_json::json;
use std::time::{Duration, Instant};

const ROUND_TRIPS: usize = 1000;
/// Generous bounds for a small shared machine; a blocked loop would miss them by far (never).
const CHAT_BOUND: Duration = Duration::from_secs(10);
const PING_BOUND: Duration = Duration::from_secs(1);

#[test]
fn locked_user_table_blocks_only_logins() {
    let Some(backend) = Backend::mysql("locked_user_table_blocks_only_logins") else {
        return;
    };
    let Backend::Mysql(db) = &backend else {
        unreachable!("Backend::mysql gives a MySQL backend")
    };
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    let idc = Client::connect(addr).register(&unique("c"), "pw");

    let mut lock = db.conn();
    lock.query_drop("LOCK TABLES user WRITE")
        .expect("LOCK TABLES");
    let mut c = Client::connect(addr);
    c.send(&json!({"msgid": 1, "id": idc, "password": "pw"}));
    assert!(
        c.wait_for(Duration::from_millis(300), |v| v["msgid"] == 2)
            .is_none(),
        "the login completed although the user table is locked"
    );

    // A and B exchange 2,000 messages, one round trip at a time.
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        let there = format!("rt {i}");
        a.chat(ida, idb, &there);
        b.recv_chat(&there);
        let back = format!("back {i}");
        b.chat(idb, ida, &back);
        a.recv_chat(&back);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} messages round trip in {elapsed:?} under the lock",
        2 * ROUND_TRIPS
    );
    assert!(
        elapsed < CHAT_BOUND,
        "{} messages took {elapsed:?} while the database was locked",
        2 * ROUND_TRIPS
    );
    // Pings stay fast, logged in or not.
    let mut d = Client::connect(addr);
    for seq in 0..10 {
        for client in [&mut a, &mut b, &mut d] {
            let rtt = client.ping(seq);
            assert!(rtt < PING_BOUND, "ping took {rtt:?} under the lock");
        }
    }
    // The login is still waiting on the database, and its connection sent nothing else.
    assert!(
        c.wait_for(Duration::from_millis(100), |_| true).is_none(),
        "the login connection got a reply while the user table is locked"
    );

    lock.query_drop("UNLOCK TABLES").expect("UNLOCK TABLES");
    let r = c
        .wait_for(Duration::from_secs(10), |v| v["msgid"] == 2)
        .expect("login completes after UNLOCK TABLES");
    assert_eq!(r["errno"], 0, "{r}");
    assert_eq!(r["id"], idc);
    common::client::assert_chatting(&mut c, idc, &mut a, ida, "after the unlock");
}
