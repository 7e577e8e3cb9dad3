//! SIGTERM under load, on both backends: clients are told (SHUTDOWN_MSG 29), the server exits
//! 0 in bounded time, and every message it accepted (SEND_ACK) is delivered or stored: the
//! online recipient's reads plus what it finds at its next login hold each exactly once, and
//! the offline recipient finds all of its own.

#[macro_use]
mod common;

use common::client::{unique, Client};
use common::server::{Backend, Server};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn online(addr: std::net::SocketAddr, id: i64) -> (Client, Value) {
    let mut c = Client::connect(addr);
    let ack = c.login(id, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    (c, ack)
}

/// Everything a connection receives until the server closes it.
fn until_closed(c: &mut Client) -> Vec<Value> {
    let mut frames = Vec::new();
    let deadline = Instant::now() + WAIT;
    while let Some(v) = c.wait_for(deadline.saturating_duration_since(Instant::now()), |_| true) {
        frames.push(v);
    }
    assert!(c.closed, "the server never closed the connection");
    frames
}

/// The chat messages a login brings: in the ack, then (a batch that did not fit) as frames.
fn offline_mids(c: &mut Client, ack: &Value) -> Vec<u64> {
    let mut mids: Vec<u64> = ack["offlinemsg"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    serde_json::from_str::<Value>(s.as_str().unwrap()).unwrap()["mid"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        })
        .unwrap_or_default();
    while let Some(v) = c.wait_for(Duration::from_millis(700), |v| v["msgid"] == 6) {
        mids.push(v["mid"].as_u64().unwrap());
    }
    mids
}

fn sigterm_under_load_keeps_every_accepted_message(backend: Backend) {
    let mut server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let ids: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|p| Client::connect(addr).register(&unique(p), "pw"))
        .collect();
    let (ida, idb, idc) = (ids[0], ids[1], ids[2]);
    let (mut a, _) = online(addr, ida);
    let (mut b, _) = online(addr, idb);

    // A pipelines messages, alternately to B (online) and C (offline), each with a cid,
    // until the server closes on it.
    let mut writer = a.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut sent = 0u32;
        'outer: for round in 0..200u32 {
            let mut bytes = Vec::new();
            for i in 0..50u32 {
                let n = round * 50 + i;
                let to = if n % 2 == 0 { idb } else { idc };
                chatserver::protocol::build::one_chat_cid(
                    &mut bytes,
                    (ida, "a"),
                    to,
                    &format!("m{n} {}", "x".repeat(200)),
                    "t",
                    &format!("{n}"),
                );
                bytes.push(b'\n');
            }
            if writer.write_all(&bytes).is_err() {
                break 'outer;
            }
            sent += 50;
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    // Stop in the middle of the traffic.
    let mut accepted = Vec::new();
    while accepted.len() < 1000 {
        let ack = a.wait_for(WAIT, |v| v["msgid"] == 28).expect("SEND_ACKs");
        accepted.push(ack);
    }
    let stopped = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let rest_a = until_closed(&mut a);
    let rest_b = until_closed(&mut b);
    let code = server.stop();
    assert_eq!(code, Some(0), "exit status:\n{}", server.log());
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopped.elapsed()
    );
    let sent = sender.join().expect("sender");
    accepted.extend(rest_a.iter().filter(|v| v["msgid"] == 28).cloned());
    assert!(rest_a.iter().any(|v| v["msgid"] == 29), "A was not told");
    assert!(rest_b.iter().any(|v| v["msgid"] == 29), "B was not told");

    let for_b: Vec<u64> = accepted
        .iter()
        .filter(|v| v["cid"].as_str().unwrap().parse::<u32>().unwrap() % 2 == 0)
        .map(|v| v["mid"].as_u64().unwrap())
        .collect();
    let for_c: HashSet<u64> = accepted
        .iter()
        .filter(|v| v["cid"].as_str().unwrap().parse::<u32>().unwrap() % 2 == 1)
        .map(|v| v["mid"].as_u64().unwrap())
        .collect();
    let b_read: Vec<u64> = b_frames_mids(&rest_b);
    drop(server);

    let server = Server::start(&backend, &["--threads", "2"]);
    let (mut b2, ack) = online(server.addr, idb);
    let b_stored = offline_mids(&mut b2, &ack);
    let (mut c2, ack) = online(server.addr, idc);
    let c_stored: Vec<u64> = offline_mids(&mut c2, &ack);

    let b_all: Vec<u64> = b_read.iter().chain(&b_stored).copied().collect();
    let distinct: HashSet<u64> = b_all.iter().copied().collect();
    assert_eq!(distinct.len(), b_all.len(), "B got a message twice");
    let missing: Vec<_> = for_b.iter().filter(|m| !distinct.contains(m)).collect();
    assert!(missing.is_empty(), "accepted for B and lost: {missing:?}");
    let c_set: HashSet<u64> = c_stored.iter().copied().collect();
    assert_eq!(c_set.len(), c_stored.len(), "C got a message twice");
    let lost_c: Vec<_> = for_c.iter().filter(|m| !c_set.contains(m)).collect();
    assert!(lost_c.is_empty(), "accepted for C and lost: {lost_c:?}");
    eprintln!(
        "{}: sent {sent}, accepted {} ({} for B: {} read, {} stored; {} for C)",
        backend.name(),
        accepted.len(),
        for_b.len(),
        b_read.len(),
        b_stored.len(),
        for_c.len()
    );
}

fn b_frames_mids(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|v| v["msgid"] == 6)
        .map(|v| v["mid"].as_u64().unwrap())
        .collect()
}

both_backends!(sigterm_under_load_keeps_every_accepted_message);
