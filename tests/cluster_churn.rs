//! 1,000 users logging in and out in a loop across two servers for 30 s: no crash, and at the
//! end the presence in Redis names exactly the users that are connected, on the right server.

mod common;

use common::client::{unique, Client};
use common::cluster::ChatCluster;
use redis::Commands;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

const USERS: usize = 1000;
const THREADS: usize = 40;
const CHURN: Duration = Duration::from_secs(30);

struct Outcome {
    /// Users connected at the end: user id → index of their server.
    connected: HashMap<i64, usize>,
    clients: Vec<Client>,
    cycles: usize,
    busy: usize,
}

fn churn(addrs: [SocketAddr; 2], users: Vec<i64>, seed: usize) -> Outcome {
    let mut sessions: Vec<Option<(Client, usize)>> = users.iter().map(|_| None).collect();
    let (mut cycles, mut busy) = (0, 0);
    let start = Instant::now();
    let mut turn = seed;
    while start.elapsed() < CHURN {
        turn += 1;
        let slot = turn % users.len();
        let id = users[slot];
        match sessions[slot].take() {
            Some((mut c, _)) => {
                if turn.is_multiple_of(3) {
                    // A clean logout half the time; otherwise the connection just drops.
                    c.send(&json!({"msgid": 3, "id": id}));
                    c.recv_msgid(12);
                }
                cycles += 1;
            }
            None => {
                let server = (turn / users.len()) % 2;
                let mut c = Client::connect(addrs[server]);
                let r = c.login(id, "pw");
                match r["errno"].as_i64() {
                    Some(0) => sessions[slot] = Some((c, server)),
                    // The previous session's release is still on its way: try later.
                    Some(2) => busy += 1,
                    _ => panic!("login {id}: {r}"),
                }
            }
        }
    }
    // Leave a deterministic part of the users connected.
    let mut connected = HashMap::new();
    let mut clients = Vec::new();
    for (slot, session) in sessions.into_iter().enumerate() {
        if let Some((c, server)) = session {
            if slot.is_multiple_of(2) {
                connected.insert(users[slot], server);
                clients.push(c);
            }
        }
    }
    Outcome {
        connected,
        clients,
        cycles,
        busy,
    }
}

#[test]
fn thousand_users_churning_across_two_servers() {
    let Some(mut cluster) = ChatCluster::start("thousand_users_churning_across_two_servers", 2)
    else {
        return;
    };
    let addrs = [cluster.addr(0), cluster.addr(1)];
    let mut registrar = Client::connect(addrs[0]);
    let users: Vec<i64> = (0..USERS)
        .map(|i| registrar.register(&unique(&format!("ch{i}_")), "pw"))
        .collect();
    drop(registrar);

    let workers: Vec<_> = users
        .chunks(USERS / THREADS)
        .enumerate()
        .map(|(i, chunk)| {
            let chunk = chunk.to_vec();
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || churn(addrs, chunk, i))
                .unwrap()
        })
        .collect();
    let mut connected = HashMap::new();
    let mut clients = Vec::new();
    let (mut cycles, mut busy) = (0, 0);
    for w in workers {
        let outcome = w.join().expect("churn thread");
        connected.extend(outcome.connected);
        clients.extend(outcome.clients);
        cycles += outcome.cycles;
        busy += outcome.busy;
    }
    eprintln!(
        "{cycles} login/logout cycles, {busy} logins refused while a release was in flight, {} connected at the end",
        connected.len()
    );
    assert!(cycles > USERS, "too little churn: {cycles} cycles");
    for (i, server) in cluster.servers.iter_mut().enumerate() {
        assert!(server.is_running(), "server {i} died:\n{}", server.log());
    }

    // Presence converges to exactly the connected users, each on the server it is on.
    let names = ["s0", "s1"];
    let mut con = cluster.redis.conn();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = con
            .keys(format!("{}*", chatserver::cluster::wire::USER_PREFIX))
            .unwrap();
        let mut present = HashMap::new();
        for key in &keys {
            let token: Option<String> = con.get(key).unwrap();
            if let Some(token) = token {
                let id: i64 = key.rsplit(':').next().unwrap().parse().unwrap();
                present.insert(id, token.split('|').next().unwrap().to_owned());
            }
        }
        let expected: HashMap<i64, String> = connected
            .iter()
            .map(|(id, s)| (*id, names[*s].to_owned()))
            .collect();
        if present == expected {
            break;
        }
        if Instant::now() > deadline {
            let stale: HashSet<_> = present
                .keys()
                .filter(|k| !expected.contains_key(k))
                .collect();
            let absent: HashSet<_> = expected
                .keys()
                .filter(|k| !present.contains_key(k))
                .collect();
            panic!(
                "presence differs from the connections: {} stale, {} absent, {} in all",
                stale.len(),
                absent.len(),
                present.len()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    // And the servers agree: a connected user cannot log in again; a free one can.
    let some_online = *connected.keys().next().expect("someone connected");
    let some_offline = *users.iter().find(|u| !connected.contains_key(u)).unwrap();
    let mut probe = Client::connect(addrs[1]);
    assert_eq!(probe.login(some_online, "pw")["errno"], 2);
    let mut probe = Client::connect(addrs[1]);
    assert_eq!(probe.login(some_offline, "pw")["errno"], 0);
    drop(clients);
}
