//! The database goes away under a running server (a private MariaDB, killed and started
//! again): logins get a clear error at once, chat between online users goes on, messages for
//! offline users are retried in order and all arrive once the database is back; past the
//! retry time the sender is told which message was lost (errno 19 naming its mid); service
//! returns by itself.

mod common;

use common::client::{unique, Client};
use common::private_mysql::PrivateMysql;
use common::server::{Backend, MysqlDb, Server};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn cid_chat(c: &mut Client, from: i64, to: i64, msg: &str, cid: &str) -> u64 {
    c.send_built(|o| chatserver::protocol::build::one_chat_cid(o, (from, "s"), to, msg, "t", cid));
    let ack = c
        .wait_for(WAIT, |v| v["msgid"] == 28 && v["cid"] == cid)
        .unwrap_or_else(|| panic!("no SEND_ACK for {cid}"));
    ack["mid"].as_u64().expect("mid")
}

fn registered(addr: std::net::SocketAddr, prefix: &str) -> i64 {
    Client::connect(addr).register(&unique(prefix), "pw")
}

fn online(addr: std::net::SocketAddr, id: i64) -> Client {
    let mut c = Client::connect(addr);
    let ack = c.login(id, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    c
}

fn server_on(db: &PrivateMysql, name: &str, retry_secs: &str) -> Server {
    let backend = Backend::Mysql(Arc::new(MysqlDb {
        base: db.base_url(),
        name: name.to_owned(),
    }));
    Server::start(
        &backend,
        &["--threads", "2", "--store-retry-secs", retry_secs],
    )
}

#[test]
fn database_restart_under_traffic_loses_nothing() {
    let Some(mut db) = PrivateMysql::start("database_restart_under_traffic_loses_nothing") else {
        return;
    };
    let server = server_on(&db, "chat_outage", "60");
    let addr = server.addr;
    let (ida, idb, idc) = (
        registered(addr, "a"),
        registered(addr, "b"),
        registered(addr, "c"),
    );
    let (mut a, mut b) = (online(addr, ida), online(addr, idb));

    db.kill();
    // A login needs the database: a clear error, at once rather than after a long hang.
    let started = Instant::now();
    let ack = Client::connect(addr).login(idc, "pw");
    assert_eq!(ack["errno"], 19, "login without a database: {ack}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    // Online users still chat.
    a.chat(ida, idb, "during the outage");
    b.recv_chat("during the outage");
    // Messages for C (offline) are accepted and wait for the database.
    let mids: Vec<u64> = (0..20)
        .map(|i| cid_chat(&mut a, ida, idc, &format!("for c {i}"), &format!("c{i}")))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    db.resume();

    // C's login works again by itself (the pool reconnects), and every message is there, in
    // order, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut c, ack) = loop {
        let mut c = Client::connect(addr);
        let ack = c.login(idc, "pw");
        if ack["errno"] == 0 {
            break (c, ack);
        }
        assert!(Instant::now() < deadline, "service never came back: {ack}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut got: Vec<Value> = ack["offlinemsg"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| serde_json::from_str(s.as_str().unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    // Any still in the retry line when C logged in come as frames.
    while got.len() < mids.len() {
        let Some(v) = c.wait_for(WAIT, |v| v["msgid"] == 6) else {
            break;
        };
        got.push(v);
    }
    let got_mids: Vec<u64> = got.iter().map(|v| v["mid"].as_u64().unwrap()).collect();
    assert_eq!(got_mids, mids, "all 20, in order, once");
    c.assert_quiet(Duration::from_millis(500), "no duplicates");
    assert_eq!(server.log().matches("LOST").count(), 0, "{}", server.log());
}

#[test]
fn sender_is_told_when_a_message_cannot_be_stored() {
    let Some(mut db) = PrivateMysql::start("sender_is_told_when_a_message_cannot_be_stored") else {
        return;
    };
    let server = server_on(&db, "chat_lost", "2");
    let addr = server.addr;
    let (ida, idc) = (registered(addr, "a"), registered(addr, "c"));
    let mut a = online(addr, ida);
    db.kill();
    let mid = cid_chat(&mut a, ida, idc, "doomed", "d1");
    let error = a
        .wait_for(Duration::from_secs(20), |v| {
            v["msgid"] == 11 && v["mid"] == mid
        })
        .unwrap_or_else(|| panic!("the sender was never told: {}", server.log()));
    assert_eq!(error["errno"], 19, "{error}");
    assert_eq!(error["reqmsgid"], 6, "{error}");
    // And once the database is back, everything works again without a restart.
    db.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ack = Client::connect(addr).login(idc, "pw");
        if ack["errno"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "service never came back: {ack}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = cid_chat(&mut a, ida, idc, "kept", "d2");
    assert!(after > mid);
}
