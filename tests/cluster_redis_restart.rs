//! Redis stopped and restarted (empty: nothing on disk) while messages flow between two
//! servers: no accepted message is lost (each is delivered or stored), nothing is delivered
//! twice, presence and subscriptions come back by themselves, the servers neither crash nor
//! leak threads.

mod common;

use common::client::{assert_chatting, decoded, logged_in, Client};
use common::cluster::ChatCluster;
use serde_json::json;
use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

const PAIRS: usize = 4;
const MESSAGES: usize = 3000;
const BURST: usize = 15;
const PAUSE: Duration = Duration::from_millis(15);

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .count()
}

#[test]
fn redis_restart_while_traffic_flows() {
    let Some(mut cluster) = ChatCluster::start("redis_restart_while_traffic_flows", 2) else {
        return;
    };
    // A warm-up exchange, so that every thread a server starts lazily exists before counting.
    let (mut wa, ida) = logged_in(cluster.addr(0), "wa");
    let (mut wb, idb) = logged_in(cluster.addr(1), "wb");
    assert_chatting(&mut wa, ida, &mut wb, idb, "warm-up");
    let threads_before: Vec<usize> = cluster
        .servers
        .iter()
        .map(|s| threads_of(s.pid()))
        .collect();

    let mut pairs = Vec::new();
    for p in 0..PAIRS {
        let (from, to) = if p % 2 == 0 { (0, 1) } else { (1, 0) };
        let (mut sender, ids) = logged_in(cluster.addr(from), "rs");
        let (mut receiver, idr) = logged_in(cluster.addr(to), "rr");
        let send = thread::spawn(move || {
            for burst in (0..MESSAGES).collect::<Vec<_>>().chunks(BURST) {
                sender.send_chats(ids, idr, burst.iter().map(|i| format!("{p}:{i}")));
                thread::sleep(PAUSE);
            }
            sender.ping(9);
            sender
        });
        let live = thread::spawn(move || {
            let mut got = Vec::new();
            // Quiet for 8 s: the flow is over (the outage itself lasts under 2 s).
            while let Some(m) = receiver.wait_for(Duration::from_secs(8), |v| v["msgid"] == 6) {
                got.push(m["msg"].as_str().unwrap().to_owned());
            }
            (receiver, got)
        });
        pairs.push((p, to, idr, send, live));
    }

    thread::sleep(Duration::from_millis(1000));
    cluster.redis.stop();
    thread::sleep(Duration::from_millis(1500));
    cluster.redis.restart();
    let restarted = Instant::now();

    let mut total_live = 0;
    let mut total_duplicates = 0;
    for (p, to, idr, send, live) in pairs {
        let _sender = send.join().expect("sender");
        let (receiver, got) = live.join().expect("receiver");
        total_live += got.len();
        let mut count: HashMap<String, usize> = HashMap::new();
        for m in got {
            *count.entry(m).or_default() += 1;
        }
        // What could not be handed over live is stored: it comes with the next login.
        drop(receiver);
        let mut again = Client::connect(cluster.addr(to));
        let deadline = Instant::now() + Duration::from_secs(10);
        let ack = loop {
            again.send(&json!({"msgid": 1, "id": idr, "password": "pw"}));
            let reply = again.wait_for(Duration::from_secs(10), |v| {
                v["msgid"] == 2 || (v["msgid"] == 11 && v["reqmsgid"] == 1)
            });
            let Some(ack) = reply else {
                panic!(
                    "no login reply on s{to}; logs:\n{}\n---\n{}",
                    cluster.servers[0].log(),
                    cluster.servers[1].log()
                );
            };
            if ack["errno"] == 0 || Instant::now() > deadline {
                break ack;
            }
            thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(ack["errno"], 0, "login again: {ack}");
        for m in decoded(&ack, "offlinemsg") {
            *count
                .entry(m["msg"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        for m in again.drain(Duration::from_millis(300)) {
            if m["msgid"] == 6 {
                *count
                    .entry(m["msg"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let missing: Vec<usize> = (0..MESSAGES)
            .filter(|i| !count.contains_key(&format!("{p}:{i}")))
            .collect();
        let duplicates: usize = count.values().map(|n| n - 1).sum();
        total_duplicates += duplicates;
        assert!(
            missing.is_empty(),
            "pair {p} lost {} messages: {missing:?}",
            missing.len()
        );
        assert_eq!(count.len(), MESSAGES, "pair {p} got messages never sent");
    }
    eprintln!(
        "{total_live} of {} delivered live, the rest stored; {total_duplicates} duplicates",
        PAIRS * MESSAGES
    );
    assert_eq!(total_duplicates, 0, "messages delivered twice");

    // Presence is back: the warm-up users are known online across servers again...
    let deadline = restarted + Duration::from_secs(10);
    loop {
        let mut probe = Client::connect(cluster.addr(1));
        let r = probe.login(ida, "pw");
        if r["errno"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "presence not restored 10 s after Redis came back: {r}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    // ...and both subscriptions deliver again, both ways.
    assert_chatting(&mut wa, ida, &mut wb, idb, "after the restart");
    let (mut na, idna) = logged_in(cluster.addr(0), "na");
    let (mut nb, idnb) = logged_in(cluster.addr(1), "nb");
    assert_chatting(&mut na, idna, &mut nb, idnb, "new users after the restart");

    for (i, server) in cluster.servers.iter_mut().enumerate() {
        assert!(server.is_running(), "server {i} died:\n{}", server.log());
        let after = threads_of(server.pid());
        assert_eq!(
            after, threads_before[i],
            "server {i} threads before/after the outage"
        );
    }
}
