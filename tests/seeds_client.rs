//! The seeds' own C++ client, as it really reads: one `recv` of at most 1,024 bytes, parsed as
//! exactly one JSON object (tests/common/seeds_client.rs). Messages sent back to back, a login
//! with many offline messages and one too long for that client, bad registrations and logins,
//! a person idling at the menu: that client never sees a read it cannot parse, never waits for
//! a reply that does not come, and is not closed for thinking.

#[macro_use]
mod common;

use common::client::{logged_in, unique, Client};
use common::cluster::ChatCluster;
use common::seeds_client::{login_when_free, SeedsClient};
use common::server::{Backend, Server};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn chat(from: i64, to: i64, msg: &str) -> Value {
    json!({"msgid": 6, "id": from, "name": "n", "toid": to, "msg": msg, "time": "2026-12-03 10:00:00"})
}

/// A user registered and logged in through the seeds' client: (client, id).
fn seeds_user(addr: SocketAddr, prefix: &str) -> (SeedsClient, i64) {
    let c = SeedsClient::connect(addr);
    let id = c.register(&unique(prefix), "pw");
    let ack = c.login(id, "pw");
    assert_eq!(ack["errno"], 0, "login: {ack}");
    (c, id)
}

/// `sender` sends five messages in one write (a paste of five lines, at its worst); the
/// seeds' client on `to_addr` gets each in a read of its own.
fn five_back_to_back(from_addr: SocketAddr, to_addr: SocketAddr) {
    let (sender, ids) = seeds_user(from_addr, "s5");
    let (receiver, idr) = seeds_user(to_addr, "r5");
    let mut burst = Vec::new();
    for i in 0..5 {
        burst.extend_from_slice(chat(ids, idr, &format!("line {i}")).to_string().as_bytes());
        burst.push(0);
    }
    sender.send_raw(&burst);
    for i in 0..5 {
        let want = format!("line {i}");
        let got = receiver
            .wait_for(WAIT, |v| v["msg"] == want.as_str())
            .unwrap_or_else(|| panic!("{want} not received: {:?}", receiver.violations()));
        assert_eq!(got["id"], ids);
    }
    receiver.assert_no_violation("five messages back to back");
    assert_eq!(receiver.long_frames(), 0);
    // And the other way, one by one as that client sends them.
    for i in 0..5 {
        receiver.send(&chat(idr, ids, &format!("back {i}")));
    }
    for i in 0..5 {
        let want = format!("back {i}");
        assert!(
            sender
                .wait_for(WAIT, |v| v["msg"] == want.as_str())
                .is_some(),
            "{want}"
        );
    }
    sender.assert_no_violation("five messages the other way");
}

fn five_messages_back_to_back(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    five_back_to_back(server.addr, server.addr);
}

#[test]
fn five_messages_back_to_back_across_servers() {
    let Some(cluster) = ChatCluster::start("five_messages_back_to_back_across_servers", 2) else {
        return;
    };
    five_back_to_back(cluster.addr(0), cluster.addr(1));
}

/// 20 offline messages and one of 3,000 characters (the 11th): the login ack fits in one read,
/// the messages that do not fit follow as frames of their own, in order, the long one whole.
fn login_with_offline_messages(addr: SocketAddr) {
    let (mut a, ida) = logged_in(addr, "oa");
    let away = SeedsClient::connect(addr);
    let idb = away.register(&unique("ob"), "pw");
    drop(away);
    let long = "长".repeat(1000); // 3,000 bytes of UTF-8
    let texts: Vec<String> = (0..21)
        .map(|i| {
            if i == 10 {
                long.clone()
            } else {
                format!("offline {i}")
            }
        })
        .collect();
    for text in &texts {
        a.send(&chat(ida, idb, text));
    }
    a.ping(1); // every message handled (and its store job queued) before the login
    let b = SeedsClient::connect(addr);
    let ack = b.login(idb, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    let mut got: Vec<String> = ack["offlinemsg"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| {
                    let m: Value = serde_json::from_str(m.as_str().unwrap()).unwrap();
                    m["msg"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let in_ack = got.len();
    assert!(
        in_ack < 21,
        "the ack cannot hold them all and fit in 1,024 bytes"
    );
    while got.len() < texts.len() {
        let Some(m) = b.wait_for(WAIT, |v| v["msgid"] == 6) else {
            panic!(
                "{} of {} offline messages arrived: {:?}",
                got.len(),
                texts.len(),
                b.violations()
            );
        };
        got.push(m["msg"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, texts, "every one, once, in order");
    assert_eq!(
        b.long_frames(),
        1,
        "only the long one took more than one read"
    );
    b.assert_no_violation("login with offline messages");
    // Nothing is left in the store, and nothing more arrives.
    assert!(b.drain(Duration::from_millis(200)).is_empty());
    b.send(&json!({"msgid": 3, "id": idb}));
    drop(b);
    let again = SeedsClient::connect(addr);
    let ack = login_when_free(&again, idb, "pw");
    assert!(ack.get("offlinemsg").is_none(), "delivered again: {ack}");
}

fn login_with_20_offline_messages_and_a_long_one(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    login_with_offline_messages(server.addr);
}

#[test]
fn login_with_offline_messages_across_servers() {
    let Some(cluster) = ChatCluster::start("login_with_offline_messages_across_servers", 2) else {
        return;
    };
    login_with_offline_messages(cluster.addr(1));
}

/// Many friends with long names and a big group: the ack still fits in one read.
fn login_ack_with_many_friends_fits(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut me, id) = logged_in(addr, "many");
    let group = me.create_group(id, &unique("g"), &"d".repeat(200));
    for i in 0..30 {
        let mut friend = Client::connect(addr);
        let fid = friend.register(
            &format!("{}{}", "名".repeat(30), unique(&i.to_string())),
            "pw",
        );
        assert_eq!(me.add_friend(id, fid)["errno"], 0);
        assert_eq!(friend.login(fid, "pw")["errno"], 0);
        friend.join_group(fid, group);
    }
    me.send(&json!({"msgid": 3, "id": id}));
    me.recv_msgid(12);
    let seeds = SeedsClient::connect(addr);
    let ack = seeds.login(id, "pw");
    assert_eq!(ack["errno"], 0);
    assert!(
        ack["friends"].as_array().is_some_and(|f| !f.is_empty()),
        "some friends fit: {ack}"
    );
    seeds.assert_no_violation("login ack with 30 friends");
    assert_eq!(seeds.long_frames(), 0, "the ack took more than one read");
}

/// Refused registrations and logins get the reply the seeds' client waits for.
fn refusals_answer_what_the_client_waits_for(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let c = SeedsClient::connect(server.addr);
    for (request, ack) in [
        (json!({"msgid": 4, "name": unique("e"), "password": ""}), 5),
        (json!({"msgid": 4, "name": "", "password": "pw"}), 5),
        (
            json!({"msgid": 4, "name": "x".repeat(51), "password": "pw"}),
            5,
        ),
        (json!({"msgid": 1, "id": 1, "password": ""}), 2),
        (json!({"msgid": 1, "id": "1", "password": "pw"}), 2),
        (
            json!({"msgid": 1, "id": 2_000_000_000, "password": "pw"}),
            2,
        ),
    ] {
        c.send(&request);
        let r = c.recv_msgid(ack);
        assert_ne!(r["errno"], 0, "{request}: {r}");
        assert!(r["errmsg"].is_string(), "{request}: {r}");
    }
    // Still usable: a good registration and login.
    let id = c.register(&unique("ok"), "pw");
    assert_eq!(c.login(id, "pw")["errno"], 0);
    c.assert_no_violation("refusals");
}

/// A person at the menu: 2 s idle, register, 2 s, log in, log out, 2 s, log in again, with a
/// 3-second idle limit (the default is 10 minutes; the test shortens the clock). A connection
/// that says nothing for longer than the limit is closed.
fn thinking_at_the_menu_is_not_idling(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2", "--login-idle-secs", "3"]);
    let silent = SeedsClient::connect(server.addr);
    let person = SeedsClient::connect(server.addr);
    std::thread::sleep(Duration::from_secs(2));
    let id = person.register(&unique("menu"), "pw");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(person.login(id, "pw")["errno"], 0, "4 s after connecting");
    person.send(&json!({"msgid": 3, "id": id}));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(person.login(id, "pw")["errno"], 0, "2 s after logging out");
    assert!(!person.is_closed());
    person.assert_no_violation("menu");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !silent.is_closed() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        silent.is_closed(),
        "a connection silent for 5 s (limit 3) was not closed"
    );
}

both_backends!(
    five_messages_back_to_back,
    login_with_20_offline_messages_and_a_long_one,
    login_ack_with_many_friends_fits,
    refusals_answer_what_the_client_waits_for,
    thinking_at_the_menu_is_not_idling,
);
