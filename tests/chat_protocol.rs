//! Every msgid of protocol v1 and every error path, against a real server on SQLite and MySQL.

#[macro_use]
mod common;

use common::client::{
    decoded, logged_in, login_when_free, offline_without_mids, strip_mid, unique, Client,
};
use common::server::{Backend, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// An id no test user has.
const NOBODY: i64 = 987_654_321;

fn start(backend: &Backend) -> Server {
    Server::start(backend, &["--threads", "2"])
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

/// Sorts a list of objects by their "id".
fn by_id(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x["id"].as_i64());
    v
}

/// A registered user that is not logged in: (name, id).
fn registered(addr: std::net::SocketAddr, prefix: &str) -> (String, i64) {
    let name = unique(prefix);
    let id = Client::connect(addr).register(&name, "pw");
    (name, id)
}

/// A round trip on `c`: once the pong is back, every frame sent before it was processed.
fn sync(c: &mut Client) {
    c.ping(-1);
}

fn register(backend: Backend) {
    let server = start(&backend);
    let mut c = Client::connect(server.addr);
    let name = unique("reg");
    let r = c.request(json!({"msgid": 4, "name": name, "password": "secret"}), 5);
    assert_eq!(keys(&r), ["errno", "id", "msgid"], "{r}");
    assert_eq!(r["errno"], 0);
    let first = r["id"].as_i64().expect("integer id");
    assert!(first > 0);
    let second = c.register(&unique("reg"), "pw");
    assert_ne!(first, second, "ids are distinct");

    // Name taken: the seeds' REG_MSG_ACK errno 1.
    let r = c.request(json!({"msgid": 4, "name": name, "password": "other"}), 5);
    assert_eq!(
        r,
        json!({"msgid": 5, "errno": 1, "errmsg": "name is already taken!"})
    );

    // Value limits: names count characters, passwords bytes.
    let chinese: String = "张".repeat(50);
    let r = c.request(json!({"msgid": 4, "name": chinese, "password": "pw"}), 5);
    assert_eq!(r["errno"], 0, "50 characters is a valid name: {r}");
    let r = c.request(
        json!({"msgid": 4, "name": unique("p"), "password": "p".repeat(128)}),
        5,
    );
    assert_eq!(r["errno"], 0, "128 bytes is a valid password: {r}");
    let bad = [
        (json!({"msgid": 4, "name": "", "password": "pw"}), "name"),
        (
            json!({"msgid": 4, "name": "x".repeat(51), "password": "pw"}),
            "name",
        ),
        (
            json!({"msgid": 4, "name": unique("e"), "password": ""}),
            "password",
        ),
        (
            json!({"msgid": 4, "name": unique("l"), "password": "p".repeat(129)}),
            "password",
        ),
    ];
    for (req, field) in bad {
        let e = c.request_error(req.clone(), 20);
        assert!(
            e["errmsg"].as_str().unwrap().ends_with(field),
            "{req} -> {e}"
        );
    }
    for (req, field) in [
        (json!({"msgid": 4, "name": unique("m")}), "password"),
        (json!({"msgid": 4, "password": "pw"}), "name"),
        (json!({"msgid": 4, "name": 12, "password": "pw"}), "name"),
        (json!({"msgid": 4, "name": "n", "password": 12}), "password"),
    ] {
        let e = c.request_error(req.clone(), 5);
        assert!(
            e["errmsg"].as_str().unwrap().ends_with(field),
            "{req} -> {e}"
        );
    }
    // A refused registration created nothing: the name is still free.
    let r = c.request(
        json!({"msgid": 4, "name": "x".repeat(50), "password": "pw"}),
        5,
    );
    assert_eq!(r["errno"], 0, "{r}");
}

fn login(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;

    // A fresh user: the three arrays are omitted when empty.
    let mut c = Client::connect(addr);
    let name = unique("fresh");
    let id = c.register(&name, "pw");
    let mut r = c.login(id, "pw");
    // The modern dialect's ack also carries a resume token (tests/chat_resume.rs).
    let token = r.as_object_mut().unwrap().remove("token");
    assert!(
        token
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|t| t.len() == 64),
        "{token:?}"
    );
    assert_eq!(r, json!({"msgid": 2, "errno": 0, "id": id, "name": name}));

    // Wrong password and unknown id: the seeds' errno 1, nothing else.
    let invalid = json!({"msgid": 2, "errno": 1, "errmsg": "id or password is invalid!"});
    let mut other = Client::connect(addr);
    assert_eq!(other.login(id, "nope"), invalid);
    assert_eq!(other.login(NOBODY, "pw"), invalid);
    // Already logged in elsewhere: errno 2; the first session is untouched.
    assert_eq!(
        other.login(id, "pw"),
        json!({"msgid": 2, "errno": 2, "errmsg": "this account is using, input another!"})
    );
    // Twice on the same connection: ERROR 13, whichever id it names.
    c.request_error(json!({"msgid": 1, "id": id, "password": "pw"}), 13);
    c.request_error(json!({"msgid": 1, "id": NOBODY, "password": "pw"}), 13);
    sync(&mut c);
    // Once the first connection is gone, the other one can log in (after failed attempts).
    drop(c);
    let (_c, r) = login_when_free(addr, id, Duration::from_secs(5));
    assert_eq!(r["id"], id);
}

fn login_ack_shape(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    let (cname, idc) = registered(addr, "c");
    let bname = {
        let r = a.add_friend(ida, idb);
        assert_eq!(r["msgid"], 13, "{r}");
        r["name"].as_str().unwrap().to_owned()
    };
    assert_eq!(a.add_friend(ida, idc)["name"], cname);
    let gname = unique("g");
    let group = a.create_group(ida, &gname, "crabs \"and\" 蟹");
    b.join_group(idb, group);
    // A logs out; D sends A two messages while A is away.
    assert_eq!(
        a.request(json!({"msgid": 3, "id": ida}), 12),
        json!({"msgid": 12, "errno": 0, "id": ida})
    );
    let (mut d, idd) = logged_in(addr, "d");
    let m1 =
        format!(r#"{{"msgid":6,"id":{idd},"name":"d","toid":{ida},"msg":"first","time":"t1"}}"#);
    let m2 = format!(
        r#"{{ "msgid" : 6, "toid":{ida}, "id":{idd}, "msg":"second \"quoted\" \u00e9", "x":[1,{{}}] }}"#
    );
    d.raw(format!("{m1}\0{m2}\0").as_bytes());
    sync(&mut d);

    let mut a = Client::connect(addr);
    let ack = a.login(ida, "pw");
    assert_eq!(
        keys(&ack),
        [
            "errno",
            "friends",
            "groups",
            "id",
            "msgid",
            "name",
            "offlinemsg",
            "token"
        ],
        "{ack}"
    );
    assert_eq!(ack["msgid"], 2);
    assert_eq!(ack["errno"], 0);
    assert_eq!(ack["id"], ida);
    for key in ["offlinemsg", "friends", "groups"] {
        assert!(
            ack[key].as_array().unwrap().iter().all(Value::is_string),
            "{key} must hold JSON strings: {ack}"
        );
    }
    // Offline messages: the exact text each was sent with, in order.
    assert_eq!(offline_without_mids(&ack), [m1, m2]);
    assert_eq!(
        by_id(decoded(&ack, "friends")),
        by_id(vec![
            json!({"id": idb, "name": bname, "state": "online"}),
            json!({"id": idc, "name": cname, "state": "offline"}),
        ])
    );
    let groups = decoded(&ack, "groups");
    assert_eq!(groups.len(), 1, "{ack}");
    let g = &groups[0];
    assert_eq!(keys(g), ["groupdesc", "groupname", "id", "users"]);
    assert_eq!(g["id"], group);
    assert_eq!(g["groupname"], gname);
    assert_eq!(g["groupdesc"], "crabs \"and\" 蟹");
    let users: Vec<Value> = g["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| serde_json::from_str(u.as_str().expect("user as a JSON string")).unwrap())
        .collect();
    let aname = ack["name"].clone();
    assert_eq!(
        by_id(users),
        by_id(vec![
            json!({"id": ida, "name": aname, "state": "online", "role": "creator"}),
            json!({"id": idb, "name": bname, "state": "online", "role": "normal"}),
        ])
    );
    // Delivered once: gone from the store.
    drop(a);
    let (_a, again) = login_when_free(addr, ida, Duration::from_secs(5));
    assert!(again.get("offlinemsg").is_none(), "{again}");
}

fn logout(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    // The id must be the session's.
    a.request_error(json!({"msgid": 3, "id": idb}), 7);
    let r = a.request(json!({"msgid": 3, "id": ida}), 12);
    assert_eq!(r, json!({"msgid": 12, "errno": 0, "id": ida}));
    // Requests need a login again; ping does not.
    a.request_error(json!({"msgid": 16, "id": ida}), 6);
    a.request_error(
        json!({"msgid": 6, "id": ida, "toid": idb, "msg": "after logout"}),
        6,
    );
    a.request_error(json!({"msgid": 3, "id": ida}), 6);
    a.ping(1);
    b.assert_quiet(QUIET, "a chat sent after logout");
    // The session is released: a message to A is stored, and another connection may log in.
    b.chat(idb, ida, "while away");
    sync(&mut b);
    let mut other = Client::connect(server.addr);
    let ack = other.login(ida, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(decoded(&ack, "offlinemsg")[0]["msg"], "while away");
    // The first connection logs in again as someone else.
    let (_, idc) = registered(server.addr, "c");
    assert_eq!(a.login(idc, "pw")["errno"], 0);
    common::client::assert_chatting(&mut a, idc, &mut b, idb, "relogin");
}

fn one_chat(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");

    // Forwarded byte for byte: field order, spacing, escapes, unknown fields, all kept.
    let frames = [
        format!(
            r#"{{"msgid":6,"id":{ida},"name":"zhang san","toid":{idb},"msg":"hello","time":"2024-05-01 10:00:00"}}"#
        ),
        format!(
            r#"{{ "toid" : {idb} , "msg":"}}{{ \"q\" \\ \u4e2d 中 \n","msgid":6,"id":{ida},"extra":{{"k":[1,2.5,null,true,"]"]}} }}"#
        ),
        format!(r#"{{"msgid":6,"id":{ida},"toid":{idb},"msg":""}}"#),
    ];
    for (i, frame) in frames.iter().enumerate() {
        let end: &[u8] = if i == 1 { b"" } else { b"\0" };
        a.raw(&[frame.as_bytes(), end].concat());
        let (_, raw) = b
            .wait_for_raw(Duration::from_secs(10), |v| v["msgid"] == 6)
            .expect("forwarded");
        assert_eq!(
            strip_mid(&String::from_utf8(raw).unwrap()),
            *frame,
            "forwarded byte for byte"
        );
    }
    a.assert_quiet(QUIET, "no reply to the sender of a chat");

    // To a user that does not exist: ERROR 9, and nobody gets anything.
    let e = a.request_error(
        json!({"msgid": 6, "id": ida, "toid": NOBODY, "msg": "void"}),
        9,
    );
    assert!(
        e["errmsg"].as_str().unwrap().contains("no such user"),
        "{e}"
    );
    b.assert_quiet(QUIET, "a chat to nobody");

    // To an offline user: stored, then delivered once, in order, at the next login.
    let (_, idc) = registered(addr, "c");
    let sent: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"msgid":6,"id":{ida},"toid":{idc},"msg":"offline {i}"}}"#))
        .collect();
    for frame in &sent {
        a.raw(frame.as_bytes());
    }
    sync(&mut a);
    a.assert_quiet(QUIET, "no error for a stored message");
    let (_c, ack) = login_when_free(addr, idc, Duration::from_secs(5));
    assert_eq!(offline_without_mids(&ack), sent);
    drop(_c);
    let (mut c, ack) = login_when_free(addr, idc, Duration::from_secs(5));
    assert!(ack.get("offlinemsg").is_none(), "delivered twice: {ack}");
    // Now online: delivered directly.
    a.chat(ida, idc, "online now");
    c.recv_chat("online now");
}

fn add_friend(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let (cname, idc) = registered(server.addr, "c");
    // An offline user can be added; the ack names the friend.
    let r = a.add_friend(ida, idc);
    assert_eq!(
        r,
        json!({"msgid": 13, "errno": 0, "friendid": idc, "name": cname})
    );
    assert_eq!(a.add_friend(ida, idb)["errno"], 0);
    a.request_error(json!({"msgid": 7, "id": ida, "friendid": ida}), 18);
    a.request_error(json!({"msgid": 7, "id": ida, "friendid": idc}), 14);
    a.request_error(json!({"msgid": 7, "id": ida, "friendid": NOBODY}), 9);
    a.request_error(json!({"msgid": 7, "id": ida}), 5);
    a.request_error(json!({"msgid": 7, "id": ida, "friendid": "2"}), 5);
    // One-directional: B's list is still empty, and B may add A in turn.
    let r = b.request(json!({"msgid": 16, "id": idb}), 17);
    assert_eq!(r["friends"], json!([]));
    assert_eq!(b.add_friend(idb, ida)["errno"], 0);
}

fn create_group(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let name = unique("g");
    let r = a.request(
        json!({"msgid": 8, "id": ida, "groupname": name, "groupdesc": "d"}),
        14,
    );
    assert_eq!(keys(&r), ["errno", "groupid", "groupname", "msgid"], "{r}");
    assert_eq!(r["errno"], 0);
    assert_eq!(r["groupname"], name);
    let group = r["groupid"].as_i64().expect("groupid");
    // Name taken, by anyone.
    b.request_error(
        json!({"msgid": 8, "id": idb, "groupname": name, "groupdesc": "x"}),
        16,
    );
    // groupdesc is optional (""), and the values are checked.
    let plain = unique("plain");
    let other = b.create_group(idb, &plain, "");
    assert_ne!(other, group);
    let r = b.request(json!({"msgid": 18, "id": idb}), 19);
    assert_eq!(r["groups"][0]["groupdesc"], "");
    let other2 = unique("nodesc");
    let r = b.request(json!({"msgid": 8, "id": idb, "groupname": other2}), 14);
    assert_eq!(r["errno"], 0, "{r}");
    for (req, errno) in [
        (json!({"msgid": 8, "id": ida, "groupname": ""}), 20),
        (
            json!({"msgid": 8, "id": ida, "groupname": "g".repeat(51)}),
            20,
        ),
        (
            json!({"msgid": 8, "id": ida, "groupname": unique("d"), "groupdesc": "d".repeat(201)}),
            20,
        ),
        (json!({"msgid": 8, "id": ida}), 5),
        (json!({"msgid": 8, "id": ida, "groupname": 5}), 5),
        (
            json!({"msgid": 8, "id": ida, "groupname": unique("d"), "groupdesc": 5}),
            5,
        ),
    ] {
        a.request_error(req, errno);
    }
    // The creator is the first member, with role creator.
    let r = a.request(json!({"msgid": 18, "id": ida}), 19);
    assert_eq!(r["groups"][0]["users"][0]["role"], "creator", "{r}");
}

fn add_group(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let group = a.create_group(ida, &unique("g"), "");
    let r = b.request(json!({"msgid": 9, "id": idb, "groupid": group}), 15);
    assert_eq!(r, json!({"msgid": 15, "errno": 0, "groupid": group}));
    b.request_error(json!({"msgid": 9, "id": idb, "groupid": group}), 15);
    a.request_error(json!({"msgid": 9, "id": ida, "groupid": group}), 15);
    b.request_error(json!({"msgid": 9, "id": idb, "groupid": NOBODY}), 10);
    b.request_error(json!({"msgid": 9, "id": idb, "groupid": 1.0}), 5);
}

fn group_chat(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    let (mut c, idc) = logged_in(addr, "c");
    let (mut d, idd) = logged_in(addr, "d");
    let (_, ide) = registered(addr, "e");
    let group = a.create_group(ida, &unique("g"), "");
    b.join_group(idb, group);
    c.join_group(idc, group);
    {
        let mut e = Client::connect(addr);
        assert_eq!(e.login(ide, "pw")["errno"], 0);
        e.join_group(ide, group);
    } // E goes offline.

    // A non-member, before anything is cached and after: ERROR 8, nobody gets it.
    d.request_error(
        json!({"msgid": 10, "id": idd, "groupid": group, "msg": "intruder"}),
        8,
    );
    let frame = format!(
        r#"{{"msgid":10,"id":{ida},"name":"a","groupid":{group},"msg":"hi all }}\"","time":"t","z":null}}"#
    );
    a.raw(format!("{frame}\0").as_bytes());
    for member in [&mut b, &mut c] {
        let (_, raw) = member
            .wait_for_raw(Duration::from_secs(10), |v| v["msgid"] == 10)
            .expect("group message");
        assert_eq!(strip_mid(&String::from_utf8(raw).unwrap()), frame);
    }
    d.request_error(
        json!({"msgid": 10, "id": idd, "groupid": group, "msg": "intruder"}),
        8,
    );
    // Unknown group, twice (nothing gets cached for it).
    for _ in 0..2 {
        d.request_error(
            json!({"msgid": 10, "id": idd, "groupid": NOBODY, "msg": "x"}),
            10,
        );
    }
    a.request_error(json!({"msgid": 10, "id": ida, "groupid": group}), 5);
    a.assert_quiet(QUIET, "the sender gets no copy");
    for (who, client) in [("b", &mut b), ("c", &mut c), ("d", &mut d)] {
        client.assert_quiet(QUIET, who);
    }
    // A member's message reaches the creator too.
    b.group_chat(idb, group, "from b");
    a.recv_chat("from b");
    c.recv_chat("from b");
    // The offline member gets both, in order, at the next login.
    let (_e, ack) = login_when_free(addr, ide, Duration::from_secs(5));
    let offline = decoded(&ack, "offlinemsg");
    let texts: Vec<&str> = offline.iter().map(|m| m["msg"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hi all }\"", "from b"], "{ack}");
    let first = ack["offlinemsg"][0].as_str().expect("stored as text");
    assert_eq!(strip_mid(first), frame, "stored byte for byte");
}

fn friend_list(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let r = a.request(json!({"msgid": 16, "id": ida}), 17);
    assert_eq!(r, json!({"msgid": 17, "errno": 0, "friends": []}));
    let (b, idb) = logged_in(addr, "b");
    let (cname, idc) = registered(addr, "c");
    let bname = a.add_friend(ida, idb)["name"].clone();
    a.add_friend(ida, idc);
    let r = a.request(json!({"msgid": 16, "id": ida}), 17);
    assert_eq!(keys(&r), ["errno", "friends", "msgid"]);
    assert_eq!(
        by_id(r["friends"].as_array().unwrap().clone()),
        by_id(vec![
            json!({"id": idb, "name": bname, "state": "online"}),
            json!({"id": idc, "name": cname, "state": "offline"}),
        ])
    );
    // B leaves: its state follows.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = a.request(json!({"msgid": 16, "id": ida}), 17);
        let states: Vec<&Value> = r["friends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["state"])
            .collect();
        if states.iter().all(|s| *s == "offline") {
            break;
        }
        assert!(Instant::now() < deadline, "B still online: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn group_list(backend: Backend) {
    let server = start(&backend);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let r = a.request(json!({"msgid": 18, "id": ida}), 19);
    assert_eq!(r, json!({"msgid": 19, "errno": 0, "groups": []}));
    let (mut b, idb) = logged_in(addr, "b");
    let (cname, idc) = registered(addr, "c");
    let (g1name, g2name) = (unique("g1"), unique("g2"));
    let g1 = a.create_group(ida, &g1name, "one");
    let g2 = b.create_group(idb, &g2name, "two");
    b.join_group(idb, g1);
    a.join_group(ida, g2);
    {
        let mut c = Client::connect(addr);
        assert_eq!(c.login(idc, "pw")["errno"], 0);
        c.join_group(idc, g1);
    } // C goes offline.
    let names = a.request(json!({"msgid": 16, "id": ida}), 17); // (empty: no friends)
    assert_eq!(names["friends"], json!([]));
    // Each member's name comes from the group list itself; checked against B's and C's.
    let member = |id: i64, state: &str, role: &str| json!({"id": id, "state": state, "role": role});
    let want = by_id(vec![
        json!({"id": g1, "groupname": g1name, "groupdesc": "one", "users": by_id(vec![
            member(ida, "online", "creator"),
            member(idb, "online", "normal"),
            member(idc, "offline", "normal"),
        ])}),
        json!({"id": g2, "groupname": g2name, "groupdesc": "two", "users": by_id(vec![
            member(ida, "online", "normal"),
            member(idb, "online", "creator"),
        ])}),
    ]);
    // C's close is handled asynchronously: retry until it shows offline.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = a.request(json!({"msgid": 18, "id": ida}), 19);
        assert_eq!(keys(&r), ["errno", "groups", "msgid"]);
        let mut groups = by_id(r["groups"].as_array().unwrap().clone());
        for g in &mut groups {
            let mut users = by_id(g["users"].as_array().unwrap().clone());
            for u in &mut users {
                assert_eq!(keys(u), ["id", "name", "role", "state"], "{u}");
                if u["id"] == idc {
                    assert_eq!(u["name"], cname);
                }
                u.as_object_mut().unwrap().remove("name");
            }
            g["users"] = Value::Array(users);
        }
        if groups == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group list: {groups:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn leave_group(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let group = a.create_group(ida, &unique("g"), "");
    b.join_group(idb, group);
    b.group_chat(idb, group, "before");
    a.recv_chat("before");
    let r = b.request(json!({"msgid": 20, "id": idb, "groupid": group}), 21);
    assert_eq!(r, json!({"msgid": 21, "errno": 0, "groupid": group}));
    // No longer a member: can't send, doesn't receive.
    b.request_error(
        json!({"msgid": 10, "id": idb, "groupid": group, "msg": "after"}),
        8,
    );
    a.group_chat(ida, group, "to nobody");
    sync(&mut a);
    a.assert_quiet(QUIET, "a group of one");
    b.assert_quiet(QUIET, "a member that left");
    b.request_error(json!({"msgid": 20, "id": idb, "groupid": group}), 8);
    b.request_error(json!({"msgid": 20, "id": idb, "groupid": NOBODY}), 10);
    b.request_error(json!({"msgid": 20, "id": idb}), 5);
    // The group list agrees, and B may join again.
    let r = b.request(json!({"msgid": 18, "id": idb}), 19);
    assert_eq!(r["groups"], json!([]));
    b.join_group(idb, group);
    a.group_chat(ida, group, "welcome back");
    b.recv_chat("welcome back");
}

fn remove_friend(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (_, idb) = registered(server.addr, "b");
    a.add_friend(ida, idb);
    let r = a.request(json!({"msgid": 22, "id": ida, "friendid": idb}), 23);
    assert_eq!(r, json!({"msgid": 23, "errno": 0, "friendid": idb}));
    a.request_error(json!({"msgid": 22, "id": ida, "friendid": idb}), 17);
    a.request_error(json!({"msgid": 22, "id": ida, "friendid": NOBODY}), 17);
    a.request_error(json!({"msgid": 22, "id": ida, "friendid": ida}), 17);
    a.request_error(json!({"msgid": 22, "id": ida}), 5);
    let r = a.request(json!({"msgid": 16, "id": ida}), 17);
    assert_eq!(r["friends"], json!([]));
    // And may be added again.
    assert_eq!(a.add_friend(ida, idb)["errno"], 0);
}

fn ping(backend: Backend) {
    let server = start(&backend);
    let mut c = Client::connect(server.addr);
    // Before login, with any seq (echoed as sent), or none.
    for seq in [
        json!(42),
        json!("abc"),
        json!({"x": [1, 2.5, null]}),
        json!(null),
        json!(-7),
    ] {
        let r = c.request(json!({"msgid": 24, "seq": seq}), 25);
        assert_eq!(r, json!({"msgid": 25, "seq": seq}));
    }
    // No seq: none in the pong either.
    let r = c.raw_request(br#"{"msgid":24}"#);
    assert_eq!(r, json!({"msgid": 25}));
    let r = c.raw_request(br#"{"msgid":24,"seq":1.5}"#);
    assert_eq!(r, json!({"msgid": 25, "seq": 1.5}));
    // And after login.
    let (mut a, _) = logged_in(server.addr, "a");
    assert_eq!(
        a.request(json!({"msgid": 24, "seq": 9}), 25),
        json!({"msgid": 25, "seq": 9})
    );
}

/// One request of each msgid that carries an id, claiming to be `id`.
fn requests_as(id: i64, other: i64, group: i64) -> Vec<Value> {
    vec![
        json!({"msgid": 3, "id": id}),
        json!({"msgid": 6, "id": id, "toid": other, "msg": "spoof", "name": "n", "time": "t"}),
        json!({"msgid": 7, "id": id, "friendid": other}),
        json!({"msgid": 8, "id": id, "groupname": unique("spoof"), "groupdesc": ""}),
        json!({"msgid": 9, "id": id, "groupid": group}),
        json!({"msgid": 10, "id": id, "groupid": group, "msg": "spoof"}),
        json!({"msgid": 16, "id": id}),
        json!({"msgid": 18, "id": id}),
        json!({"msgid": 20, "id": id, "groupid": group}),
        json!({"msgid": 22, "id": id, "friendid": other}),
    ]
}

fn id_mismatch(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let group = b.create_group(idb, &unique("g"), "");
    for req in requests_as(idb, ida, group) {
        a.request_error(req, 7);
    }
    // Nothing happened on B's behalf.
    b.assert_quiet(QUIET, "spoofed requests");
    let r = b.request(json!({"msgid": 16, "id": idb}), 17);
    assert_eq!(r["friends"], json!([]));
    let r = b.request(json!({"msgid": 18, "id": idb}), 19);
    assert_eq!(r["groups"].as_array().unwrap().len(), 1, "{r}");
    common::client::assert_chatting(&mut a, ida, &mut b, idb, "after spoofing");
}

fn not_logged_in(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let group = a.create_group(ida, &unique("g"), "");
    let mut c = Client::connect(server.addr);
    for req in requests_as(ida, ida, group) {
        c.request_error(req, 6);
    }
    // Also after a failed login.
    assert_eq!(c.login(ida, "wrong")["errno"], 1);
    c.request_error(json!({"msgid": 16, "id": ida}), 6);
    a.assert_quiet(QUIET, "requests before login");
    // Register, login and ping are allowed.
    c.ping(5);
    let id = c.register(&unique("late"), "pw");
    assert_eq!(c.login(id, "pw")["errno"], 0);
}

fn replies_in_request_order(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (_, idb) = registered(server.addr, "b");
    // Storage requests and instant ones in one write: the replies keep the requests' order.
    let name = unique("g");
    let batch = [
        json!({"msgid": 7, "id": ida, "friendid": idb}),
        json!({"msgid": 24, "seq": 1}),
        json!({"msgid": 16, "id": ida}),
        json!({"msgid": 24, "seq": 2}),
        json!({"msgid": 8, "id": ida, "groupname": name}),
        json!({"msgid": 7, "id": ida, "friendid": idb}),
        json!({"msgid": 18, "id": ida}),
        json!({"msgid": 24, "seq": 3}),
    ];
    let mut bytes = Vec::new();
    for req in &batch {
        bytes.extend(serde_json::to_vec(req).unwrap());
        bytes.push(0);
    }
    a.raw(&bytes);
    let got: Vec<Value> = (0..batch.len()).map(|_| a.recv()).collect();
    let ids: Vec<i64> = got.iter().map(|v| v["msgid"].as_i64().unwrap()).collect();
    assert_eq!(ids, [13, 25, 17, 25, 14, 11, 19, 25], "{got:?}");
    assert_eq!(got[2]["friends"][0]["id"], idb);
    assert_eq!(got[5]["errno"], 14);
    assert_eq!(got[6]["groups"][0]["groupname"], name);
    assert_eq!(got[7]["seq"], 3);
}

both_backends!(
    register,
    login,
    login_ack_shape,
    logout,
    one_chat,
    add_friend,
    create_group,
    add_group,
    group_chat,
    friend_list,
    group_list,
    leave_group,
    remove_friend,
    ping,
    id_mismatch,
    not_logged_in,
    replies_in_request_order,
);
