//! Cluster chat: users on different servers chat one-to-one and in groups, directly, through
//! nginx (conf/nginx.conf) and through its TLS-terminating variant (conf/nginx-tls.conf);
//! a message to a user who is offline everywhere waits for the next login on any server.

mod common;

use common::client::{assert_chatting, logged_in, Client};
use common::cluster::{ChatCluster, Nginx};
use redis::Commands;
use serde_json::json;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn one_to_one_and_group_across_servers() {
    let Some(cluster) = ChatCluster::start("one_to_one_and_group_across_servers", 2) else {
        return;
    };
    let (mut a, ida) = logged_in(cluster.addr(0), "xa");
    let (mut b, idb) = logged_in(cluster.addr(1), "xb");
    let (mut c, idc) = logged_in(cluster.addr(1), "xc");
    assert_eq!(a.add_friend(ida, idb)["errno"], 0);
    assert_chatting(&mut a, ida, &mut b, idb, "direct");

    // A group made on s0, joined from s1: every message reaches every other member once.
    let gid = a.create_group(ida, &common::client::unique("g"), "cross");
    b.join_group(idb, gid);
    c.join_group(idc, gid);
    a.group_chat(ida, gid, "from s0");
    for member in [&mut b, &mut c] {
        let got = member.recv_chat("from s0");
        assert_eq!(got["groupid"], gid);
        assert_eq!(got["id"], ida);
    }
    b.group_chat(idb, gid, "from s1");
    assert_eq!(a.recv_chat("from s1")["id"], idb);
    assert_eq!(c.recv_chat("from s1")["id"], idb);
    b.assert_quiet(
        Duration::from_millis(300),
        "the sender got its own group message",
    );

    // The friend list shows b online although b is on the other server.
    a.send(&json!({"msgid": 16, "id": ida}));
    let friends = a.recv_msgid(17);
    let b_state = friends["friends"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["id"] == idb))
        .map(|f| f["state"].clone());
    assert_eq!(b_state, Some(json!("online")), "friend list: {friends}");

    // Offline everywhere: stored, then handed over at the next login, on the other server.
    let (mut d, idd) = logged_in(cluster.addr(1), "xd");
    d.send(&json!({"msgid": 3, "id": idd}));
    d.recv_msgid(12);
    drop(d);
    std::thread::sleep(Duration::from_millis(200));
    a.chat(ida, idd, "while you were away");
    a.ping(1);
    let mut d = Client::connect(cluster.addr(0));
    let ack = d.login(idd, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    // The message is stored by a worker on s0 while the login runs: it is either in the ack or,
    // if it landed after the login took the offline box, pushed right after the ack.
    let offline = common::client::decoded(&ack, "offlinemsg");
    match offline.as_slice() {
        [] => assert_eq!(d.recv_chat("while you were away")["id"], ida),
        [only] => assert_eq!(only["msg"], "while you were away"),
        more => panic!("{} offline messages at login: {ack}", more.len()),
    }
    d.assert_quiet(Duration::from_millis(300), "the offline message came twice");
}

/// Which server holds each user's session, from the presence keys in Redis.
fn servers_of(cluster: &ChatCluster, users: &[i64]) -> HashSet<String> {
    let mut con = cluster.redis.conn();
    users
        .iter()
        .map(|u| {
            let token: String = con
                .get(chatserver::cluster::wire::user_key(*u))
                .expect("presence key");
            token.split('|').next().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn through_nginx() {
    let test = "through_nginx";
    let Some(cluster) = ChatCluster::start(test, 2) else {
        return;
    };
    let Some(nginx) = Nginx::plain(test, &cluster.addrs()) else {
        return;
    };
    // Round robin: four clients land on both servers.
    let mut users: Vec<(Client, i64)> = (0..4).map(|_| logged_in(nginx.addr, "ng")).collect();
    let ids: Vec<i64> = users.iter().map(|u| u.1).collect();
    assert_eq!(
        servers_of(&cluster, &ids).len(),
        2,
        "nginx used one server only"
    );
    for i in 0..users.len() {
        for j in i + 1..users.len() {
            let (left, right) = users.split_at_mut(j);
            let (a, ida) = &mut left[i];
            let (b, idb) = &mut right[0];
            assert_chatting(a, *ida, b, *idb, &format!("nginx {i}-{j}"));
        }
    }
    let (mut a, ida) = users.swap_remove(0);
    let gid = a.create_group(ida, &common::client::unique("ng"), "via nginx");
    for (c, id) in users.iter_mut() {
        c.join_group(*id, gid);
    }
    a.group_chat(ida, gid, "to all via nginx");
    for (c, _) in users.iter_mut() {
        c.recv_chat("to all via nginx");
    }
}

/// An `openssl s_client` session: what we write goes encrypted to nginx, what nginx sends back
/// is collected from its stdout.
struct TlsClient {
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl TlsClient {
    fn connect(nginx: &Nginx) -> TlsClient {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
            .arg(nginx.addr.to_string())
            .arg("-CAfile")
            .arg(nginx.certificate())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        TlsClient { child, output }
    }

    fn send(&mut self, value: serde_json::Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(value.to_string().as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until the decrypted output contains `needle`.
    fn expect(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if String::from_utf8_lossy(&self.output.lock().unwrap()).contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "TLS client never read {needle:?}; got {:?}",
            String::from_utf8_lossy(&self.output.lock().unwrap())
        );
    }
}

impl Drop for TlsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn through_tls_nginx() {
    let test = "through_tls_nginx";
    let Some(cluster) = ChatCluster::start(test, 2) else {
        return;
    };
    let Some(nginx) = Nginx::tls(test, &cluster.addrs()) else {
        return;
    };
    let (mut plain, idp) = logged_in(cluster.addr(0), "plain");
    let mut setup = Client::connect(cluster.addr(1));
    let idt = setup.register(&common::client::unique("tls"), "pw");
    drop(setup);

    let mut tls = TlsClient::connect(&nginx);
    tls.send(json!({"msgid": 1, "id": idt, "password": "pw"}));
    tls.expect(&format!("\"id\":{idt}"));
    tls.expect("\"errno\":0");
    tls.send(
        json!({"msgid": 6, "id": idt, "name": "t", "toid": idp, "msg": "over tls", "time": "now"}),
    );
    assert_eq!(plain.recv_chat("over tls")["id"], idt);
    plain.chat(idp, idt, "back to tls");
    tls.expect("back to tls");
}
