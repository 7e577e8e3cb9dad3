//! Persistence across restarts on the same database (a SQLite file; MySQL too): users,
//! friends, groups with their members and undelivered offline messages survive a graceful
//! stop (SIGTERM, exit 0) and a crash (SIGKILL), and the offline messages are delivered once.

#[macro_use]
mod common;

use common::client::{decoded, logged_in, login_when_free, offline_without_mids, unique, Client};
use common::server::{Backend, Server};

/// How long a login may wait for the previous session of its user to be released.
const LOGIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn start(backend: &Backend) -> Server {
    Server::start(backend, &["--threads", "2"])
}

/// What the first server run leaves behind.
struct World {
    a: (i64, String),
    b: (i64, String),
    c: (i64, String),
    group: (i64, String),
    /// Exact texts of the messages stored for C, in order.
    for_c: Vec<String>,
}

/// A and B online, C offline; A befriends B and C, B befriends A; A's group has B and C;
/// C gets two direct messages and one group message while away.
fn build(addr: SocketAddr) -> World {
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    let cname = unique("c");
    let idc = Client::connect(addr).register(&cname, "pw");
    let friend_name = |client: &mut Client, me: i64, other: i64| {
        let r = client.add_friend(me, other);
        assert_eq!(r["msgid"], 13, "{r}");
        r["name"].as_str().unwrap().to_owned()
    };
    let bname = friend_name(&mut a, ida, idb);
    assert_eq!(friend_name(&mut a, ida, idc), cname);
    let aname = friend_name(&mut b, idb, ida);
    let gname = unique("g");
    let group = a.create_group(ida, &gname, "kept");
    b.join_group(idb, group);
    {
        let (mut c, _) = login_when_free(addr, idc, LOGIN_LIMIT);
        c.join_group(idc, group);
    }
    let m1 = format!(r#"{{"msgid":6,"id":{ida},"toid":{idc},"msg":"one \"1\"","time":"t"}}"#);
    let m2 = format!(r#"{{"msgid":10,"id":{idb},"groupid":{group},"msg":"to the group"}}"#);
    let m3 = format!(r#"{{"msgid":6,"id":{ida},"toid":{idc},"msg":"three 中"}}"#);
    a.raw(format!("{m1}\0").as_bytes());
    a.ping(1);
    b.raw(format!("{m2}\0").as_bytes());
    b.ping(2);
    a.recv_chat("to the group");
    a.raw(format!("{m3}\0").as_bytes());
    a.ping(3);
    World {
        a: (ida, aname),
        b: (idb, bname),
        c: (idc, cname),
        group: (group, gname),
        for_c: vec![m1, m2, m3],
    }
}

/// Checks everything `build` stored, on a restarted server. Delivers C's messages.
fn check(addr: SocketAddr, w: &World) {
    let (ida, ref aname) = w.a;
    let (idb, ref bname) = w.b;
    let (idc, ref cname) = w.c;
    // Wrong passwords still fail; names are still taken, by users and groups.
    let mut x = Client::connect(addr);
    assert_eq!(x.login(ida, "wrong")["errno"], 1);
    let r = x.request(json!({"msgid": 4, "name": aname, "password": "pw"}), 5);
    assert_eq!(r["errno"], 1, "{r}");
    // C: offline messages once, in order, byte for byte; friends none; the group.
    let (mut c, ack) = login_when_free(addr, idc, LOGIN_LIMIT);
    assert_eq!(ack["name"], *cname);
    assert_eq!(offline_without_mids(&ack), w.for_c, "{ack}");
    assert!(ack.get("friends").is_none(), "{ack}");
    let groups = decoded(&ack, "groups");
    assert_eq!(groups.len(), 1, "{ack}");
    assert_eq!(groups[0]["id"], w.group.0);
    assert_eq!(groups[0]["groupname"], w.group.1);
    assert_eq!(groups[0]["groupdesc"], "kept");
    let mut members: Vec<(i64, String, String)> = groups[0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let u: Value = serde_json::from_str(u.as_str().unwrap()).unwrap();
            (
                u["id"].as_i64().unwrap(),
                u["name"].as_str().unwrap().to_owned(),
                u["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort();
    let mut want = vec![
        (ida, aname.clone(), "creator".to_owned()),
        (idb, bname.clone(), "normal".to_owned()),
        (idc, cname.clone(), "normal".to_owned()),
    ];
    want.sort();
    assert_eq!(members, want);
    // A: both friends, with names.
    let (mut a, ack) = login_when_free(addr, ida, LOGIN_LIMIT);
    let mut friends: Vec<(i64, String)> = decoded(&ack, "friends")
        .iter()
        .map(|f| {
            (
                f["id"].as_i64().unwrap(),
                f["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    friends.sort();
    let mut want = vec![(idb, bname.clone()), (idc, cname.clone())];
    want.sort();
    assert_eq!(friends, want);
    assert!(ack.get("offlinemsg").is_none(), "{ack}");
    // B: A as a friend (one-directional, as stored).
    let (mut b, ack) = login_when_free(addr, idb, LOGIN_LIMIT);
    let friends = decoded(&ack, "friends");
    assert_eq!(friends.len(), 1, "{ack}");
    assert_eq!(friends[0]["id"], ida);
    // The group still works: a message reaches both other members.
    a.group_chat(ida, w.group.0, "after restart");
    b.recv_chat("after restart");
    c.recv_chat("after restart");
    // New ids do not collide with old ones.
    let fresh = Client::connect(addr).register(&unique("new"), "pw");
    assert!(![ida, idb, idc].contains(&fresh), "id {fresh} reused");
    a.request_error(
        json!({"msgid": 8, "id": ida, "groupname": w.group.1, "groupdesc": ""}),
        16,
    );
}

fn graceful_restart(backend: Backend) {
    let mut server = start(&backend);
    let world = build(server.addr);
    assert_eq!(server.stop(), Some(0), "SIGTERM exits 0:\n{}", server.log());
    drop(server);
    let mut server = start(&backend);
    check(server.addr, &world);
    // Delivered once: a second restart finds nothing left for C.
    assert_eq!(server.stop(), Some(0));
    drop(server);
    let server = start(&backend);
    let (_, ack) = login_when_free(server.addr, world.c.0, LOGIN_LIMIT);
    assert!(ack.get("offlinemsg").is_none(), "{ack}");
    assert_eq!(decoded(&ack, "groups").len(), 1);
}

fn crash_keeps_committed_data(backend: Backend) {
    let mut server = start(&backend);
    let world = build(server.addr);
    // Everything but C's messages was acknowledged; those are committed once in the table.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.offline_count(world.c.0) < 3 {
        assert!(Instant::now() < deadline, "C's messages never stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    drop(server);
    let server = start(&backend);
    check(server.addr, &world);
}

both_backends!(graceful_restart, crash_keeps_committed_data);
