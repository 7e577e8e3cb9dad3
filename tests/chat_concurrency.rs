//! Concurrency: 200 clients registering and logging in at once, one user logging in on two
//! connections at the same moment (exactly one wins), and 20 pairs pipelining 1,000 messages
//! each (every message delivered exactly once, in order per pair).

#[macro_use]
mod common;

use common::client::{unique, Client};
use common::server::{Backend, Server};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: the machine is small and shared, and 200 registrations queue on the workers.
const SLOW: Duration = Duration::from_secs(60);

fn start(backend: &Backend) -> Server {
    Server::start(backend, &["--threads", "2"])
}

/// Sends `value` and waits up to SLOW for a reply with `msgid`.
fn slow_request(c: &mut Client, value: Value, msgid: i64) -> Value {
    c.send(&value);
    c.wait_for(SLOW, |v| v["msgid"] == msgid)
        .unwrap_or_else(|| panic!("no reply {msgid} to {value} within {SLOW:?}"))
}

fn many_register_and_login(backend: Backend) {
    const N: usize = 200;
    let server = start(&backend);
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let barrier = barrier.clone();
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let mut c = Client::connect(addr);
                    let name = unique(&format!("many{i}_"));
                    barrier.wait();
                    let r = slow_request(
                        &mut c,
                        json!({"msgid": 4, "name": name, "password": "pw"}),
                        5,
                    );
                    assert_eq!(r["errno"], 0, "register {i}: {r}");
                    let id = r["id"].as_i64().unwrap();
                    let r =
                        slow_request(&mut c, json!({"msgid": 1, "id": id, "password": "pw"}), 2);
                    assert_eq!(r["errno"], 0, "login {i}: {r}");
                    assert_eq!(r["id"], id);
                    assert_eq!(r["name"], name);
                    (c, id)
                })
                .expect("spawn")
        })
        .collect();
    let mut clients: Vec<(Client, i64)> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let ids: HashSet<i64> = clients.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), N, "ids are distinct");
    // All of them are online at once: a ring of messages reaches every one.
    for i in 0..N {
        let (from, to) = (clients[i].1, clients[(i + 1) % N].1);
        clients[i].0.chat(from, to, &format!("ring {i}"));
    }
    for i in 0..N {
        let from = clients[(i + N - 1) % N].1;
        let got = clients[i].0.recv_chat(&format!("ring {}", (i + N - 1) % N));
        assert_eq!(got["id"], from);
    }
}

fn simultaneous_login(backend: Backend) {
    const ROUNDS: usize = 20;
    let server = start(&backend);
    let addr = server.addr;
    // One user per round: each round's loser and winner are both gone before the next.
    let mut reg = Client::connect(addr);
    let users: Vec<i64> = (0..ROUNDS)
        .map(|i| reg.register(&unique(&format!("twice{i}_")), "pw"))
        .collect();
    for (round, &id) in users.iter().enumerate() {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    let login =
                        serde_json::to_vec(&json!({"msgid": 1, "id": id, "password": "pw"}))
                            .unwrap();
                    barrier.wait();
                    c.stream.write_all(&login).expect("write");
                    let r = c.recv_msgid(2);
                    (c, r)
                })
            })
            .collect();
        let results: Vec<(Client, Value)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let mut errnos: Vec<i64> = results
            .iter()
            .map(|(_, r)| r["errno"].as_i64().unwrap())
            .collect();
        errnos.sort();
        assert_eq!(
            errnos,
            [0, 2],
            "round {round}: {results:?}",
            results = results.iter().map(|(_, r)| r).collect::<Vec<_>>()
        );
        // The winner holds the session: a message to the user reaches it and only it.
        let mut results = results;
        results.sort_by_key(|(_, r)| r["errno"].as_i64());
        let (mut winner, _) = results.remove(0);
        let (mut loser, refused) = results.remove(0);
        assert_eq!(refused["errmsg"], "this account is using, input another!");
        winner.ping(round as i64);
        loser.ping(round as i64);
        // The loser may still log in as someone else on the same connection.
        if round == 0 {
            let other = reg.register(&unique("other"), "pw");
            assert_eq!(loser.login(other, "pw")["errno"], 0);
            loser.chat(other, id, "to the winner");
            winner.recv_chat("to the winner");
        }
    }
}

fn pipelined_pairs(backend: Backend) {
    const PAIRS: usize = 20;
    const MESSAGES: usize = 1000;
    let server = start(&backend);
    let addr = server.addr;
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let (a, ida) = common::client::logged_in(addr, "send");
        let (b, idb) = common::client::logged_in(addr, "recv");
        pairs.push(((a, ida), (b, idb)));
    }
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(2 * PAIRS));
    let mut threads = Vec::new();
    for (pair, ((mut a, ida), (mut b, idb))) in pairs.into_iter().enumerate() {
        let barrier_s = barrier.clone();
        threads.push(thread::spawn(move || {
            barrier_s.wait();
            // One write per message, never waiting for anything.
            for i in 0..MESSAGES {
                a.chat(ida, idb, &format!("p{pair} m{i}"));
            }
            a // kept open until the receiver is done
        }));
        let barrier_r = barrier.clone();
        threads.push(thread::spawn(move || {
            barrier_r.wait();
            let deadline = Instant::now() + SLOW;
            let mut got = Vec::with_capacity(MESSAGES);
            while got.len() < MESSAGES {
                let left = deadline.saturating_duration_since(Instant::now());
                match b.wait_for(left, |v| v["msgid"] == 6) {
                    Some(v) => {
                        assert_eq!(v["id"], ida, "pair {pair}: {v}");
                        got.push(v["msg"].as_str().unwrap().to_owned());
                    }
                    None => panic!("pair {pair}: {} of {MESSAGES} within {SLOW:?}", got.len()),
                }
            }
            let want: Vec<String> = (0..MESSAGES).map(|i| format!("p{pair} m{i}")).collect();
            assert_eq!(got, want, "pair {pair}: exactly once, in order");
            let extra = b.drain(Duration::from_millis(200));
            assert!(extra.is_empty(), "pair {pair}: extra frames {extra:?}");
            b
        }));
    }
    // Join every thread (a panic in one is reported after the others ended).
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    let failures = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failures, 0, "{failures} sender/receiver threads failed");
    eprintln!("{} messages in {:?}", PAIRS * MESSAGES, started.elapsed());
}

both_backends!(many_register_and_login, simultaneous_login, pipelined_pairs);
