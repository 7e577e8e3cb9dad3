//! 16 sender/receiver pairs across two servers, each sender pipelining 1,000 messages without
//! waiting: every message is delivered exactly once, in order per pair (the seeds deadlock
//! with two such pairs).

mod common;

use common::client::logged_in;
use common::cluster::ChatCluster;
use std::thread;
use std::time::Duration;

const PAIRS: usize = 16;
const MESSAGES: usize = 1000;

#[test]
fn sixteen_cross_server_pairs_pipelining() {
    let Some(cluster) = ChatCluster::start("sixteen_cross_server_pairs_pipelining", 2) else {
        return;
    };
    let mut handles = Vec::new();
    for pair in 0..PAIRS {
        // Half the senders on each server, so both directions cross Redis at once.
        let (from, to) = if pair % 2 == 0 { (0, 1) } else { (1, 0) };
        let (mut sender, ids) = logged_in(cluster.addr(from), "ps");
        let (mut receiver, idr) = logged_in(cluster.addr(to), "pr");
        let send = thread::spawn(move || {
            // All of it at once: the server must take a pipelined burst.
            sender.send_chats(ids, idr, (0..MESSAGES).map(|i| format!("{pair}:{i}")));
            sender.ping(1);
            sender
        });
        let receive = thread::spawn(move || {
            let mut got = Vec::with_capacity(MESSAGES);
            while got.len() < MESSAGES {
                let Some(m) = receiver.wait_for(Duration::from_secs(30), |v| v["msgid"] == 6)
                else {
                    break;
                };
                assert_eq!(m["id"], ids, "pair {pair}: message from someone else: {m}");
                got.push(m["msg"].as_str().unwrap().to_owned());
            }
            let extra = receiver.drain(Duration::from_millis(300));
            (got, extra)
        });
        handles.push((pair, send, receive));
    }
    for (pair, send, receive) in handles {
        let _sender = send.join().expect("sender");
        let (got, extra) = receive.join().expect("receiver");
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("{pair}:{i}")).collect();
        assert_eq!(
            got.len(),
            MESSAGES,
            "pair {pair}: only {} delivered",
            got.len()
        );
        assert!(got == expected, "pair {pair}: out of order or altered");
        assert!(
            extra.iter().all(|v| v["msgid"] != 6),
            "pair {pair}: duplicates after the last message: {extra:?}"
        );
    }
}
