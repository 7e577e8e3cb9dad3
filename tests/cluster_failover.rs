//! SIGKILL of a server while messages flow to its users: every message the other server
//! accepted reaches its recipient, live before the crash or from storage at the next login.
//! Duplicates are limited to the crash window (see the README's delivery guarantees).

mod common;

use common::client::{decoded, logged_in, login_when_free};
use common::cluster::ChatCluster;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const RECEIVERS: usize = 4;
const MESSAGES: usize = 3000;
/// Messages written per burst, and the pause between bursts: a steady flow, not one write.
const BURST: usize = 50;
const PAUSE: Duration = Duration::from_millis(2);

#[test]
fn sigkill_of_the_receivers_server_loses_nothing() {
    let Some(mut cluster) = ChatCluster::start("sigkill_of_the_receivers_server_loses_nothing", 2)
    else {
        return;
    };
    let received = Arc::new(AtomicUsize::new(0));
    let mut pairs = Vec::new();
    for r in 0..RECEIVERS {
        let (mut sender, ids) = logged_in(cluster.addr(0), "fs");
        let (mut receiver, idr) = logged_in(cluster.addr(1), "fr");
        let live = {
            let received = received.clone();
            thread::spawn(move || {
                // Everything that arrives until the server dies.
                let mut got = Vec::new();
                while let Some(m) = receiver.wait_for(Duration::from_secs(30), |v| v["msgid"] == 6)
                {
                    got.push(m["msg"].as_str().unwrap().to_owned());
                    received.fetch_add(1, Ordering::Relaxed);
                }
                assert!(
                    receiver.closed,
                    "receiver {r} went quiet but was not closed"
                );
                got
            })
        };
        let send = thread::spawn(move || {
            for burst in (0..MESSAGES).collect::<Vec<_>>().chunks(BURST) {
                sender.send_chats(ids, idr, burst.iter().map(|i| format!("{r}:{i}")));
                thread::sleep(PAUSE);
            }
            // The server has read and handled every message once the pong is back.
            sender.ping(7);
            sender
        });
        pairs.push((r, idr, live, send));
    }
    // Kill the receivers' server in the middle of the flow.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < RECEIVERS * MESSAGES / 3 {
        assert!(Instant::now() < deadline, "messages do not flow");
        thread::sleep(Duration::from_millis(1));
    }
    cluster.servers[1].kill();
    let at_kill = received.load(Ordering::Relaxed);

    let mut total_duplicates = 0;
    for (r, idr, live, send) in pairs {
        let _sender = send.join().expect("sender");
        let live = live.join().expect("receiver");
        let mut count: HashMap<String, usize> = HashMap::new();
        for m in &live {
            *count.entry(m.clone()).or_default() += 1;
        }
        // Next login, on the surviving server: stored messages come in the ack, and any stored
        // after the login arrive as ordinary messages.
        let (mut again, ack) = login_when_free(cluster.addr(0), idr, Duration::from_secs(10));
        for m in decoded(&ack, "offlinemsg") {
            *count
                .entry(m["msg"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while (0..MESSAGES).any(|i| !count.contains_key(&format!("{r}:{i}")))
            && Instant::now() < deadline
        {
            if let Some(m) = again.wait_for(Duration::from_millis(200), |v| v["msgid"] == 6) {
                *count
                    .entry(m["msg"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        for m in again.drain(Duration::from_millis(500)) {
            if m["msgid"] == 6 {
                *count
                    .entry(m["msg"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let missing: Vec<usize> = (0..MESSAGES)
            .filter(|i| !count.contains_key(&format!("{r}:{i}")))
            .collect();
        let duplicates: usize = count.values().map(|n| n - 1).sum();
        eprintln!(
            "receiver {r}: {} live, {} missing, {duplicates} duplicated",
            live.len(),
            missing.len()
        );
        assert!(
            missing.is_empty(),
            "receiver {r} lost {} messages: {missing:?}",
            missing.len()
        );
        assert_eq!(
            count.len(),
            MESSAGES,
            "receiver {r} got messages never sent"
        );
        total_duplicates += duplicates;
    }
    eprintln!("killed after {at_kill} live deliveries; {total_duplicates} duplicates in all");
    // KNOWN GAP (README, "Delivery guarantees"): a message the dying server had written to
    // its client's socket but not yet confirmed to the sender's server is stored again, so
    // it can arrive twice. Confirmations go per received batch, so a receiver may see the
    // last batch or two before the crash again (seen: 0 to 50 per receiver, bursts are 50);
    // anything near a tenth of the flow would mean confirmations are lost, not late.
    assert!(
        total_duplicates <= RECEIVERS * MESSAGES / 10,
        "{total_duplicates} duplicates: more than the crash window can explain"
    );
}
