//! SIGKILL of the receivers' server while acking clients read a flow from the other server:
//! nothing is lost, and the only repeats are repeats by message id, which an acking client
//! drops. (tests/cluster_failover.rs is the same crash for clients that do not acknowledge.)

mod common;

use chatserver::protocol::build;
use common::client::{logged_in, login_acking_when_free, mid_of, unique, Client};
use common::cluster::ChatCluster;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const RECEIVERS: usize = 4;
const MESSAGES: usize = 3000;
const BURST: usize = 50;
const PAUSE: Duration = Duration::from_millis(2);
/// The receiver acknowledges after this many messages (and whenever the flow pauses).
const ACK_EVERY: usize = 16;

/// Registers a user on `addr` and logs it in there with acknowledged delivery.
fn acking_user(addr: SocketAddr) -> (Client, i64) {
    let id = Client::connect(addr).register(&unique("ar"), "pw");
    let (c, ack) = login_acking_when_free(addr, id, Duration::ZERO);
    assert_eq!(ack["acks"], true, "acking login: {ack}");
    (c, id)
}

/// What an acking client keeps: every chat frame's text and mid, acknowledging as it goes.
/// Returns once `done` says so for a new frame, the connection closed, or `until` passed
/// (checked whenever nothing arrived for `quiet`).
fn read_acking(
    c: &mut Client,
    seen: &mut Vec<(String, u64)>,
    quiet: Duration,
    until: Instant,
    mut done: impl FnMut(&str) -> bool,
    counter: Option<&AtomicUsize>,
) {
    let mut received = 0usize;
    let mut acked = 0usize;
    loop {
        match c.wait_for(quiet, |v: &Value| v["msgid"] == 6) {
            Some(m) => {
                let text = m["msg"].as_str().expect("msg").to_owned();
                let finished = done(&text);
                seen.push((text, mid_of(&m)));
                received += 1;
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if received - acked >= ACK_EVERY || finished {
                    c.send_built(|o| build::delivery_ack(o, received as u64));
                    acked = received;
                }
                if finished {
                    return;
                }
            }
            None if c.closed => return,
            None => {
                if received > acked {
                    c.send_built(|o| build::delivery_ack(o, received as u64));
                    acked = received;
                }
                if Instant::now() >= until {
                    return;
                }
            }
        }
    }
}

#[test]
fn sigkill_with_acking_clients_loses_nothing_and_repeats_only_by_id() {
    let Some(mut cluster) = ChatCluster::start(
        "sigkill_with_acking_clients_loses_nothing_and_repeats_only_by_id",
        2,
    ) else {
        return;
    };
    let received = Arc::new(AtomicUsize::new(0));
    let mut pairs = Vec::new();
    for r in 0..RECEIVERS {
        let (mut sender, ids) = logged_in(cluster.addr(0), "as");
        let (mut receiver, idr) = acking_user(cluster.addr(1));
        let live = {
            let received = received.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                let until = Instant::now() + Duration::from_secs(60);
                let quiet = Duration::from_secs(20);
                read_acking(
                    &mut receiver,
                    &mut seen,
                    quiet,
                    until,
                    |_| false,
                    Some(&received),
                );
                assert!(
                    receiver.closed,
                    "receiver {r} went quiet but was not closed"
                );
                seen
            })
        };
        let send = thread::spawn(move || {
            for burst in (0..MESSAGES).collect::<Vec<_>>().chunks(BURST) {
                sender.send_chats(ids, idr, burst.iter().map(|i| format!("{r}:{i}")));
                thread::sleep(PAUSE);
            }
            sender.ping(7);
            sender
        });
        pairs.push((r, idr, live, send));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < RECEIVERS * MESSAGES / 3 {
        assert!(Instant::now() < deadline, "messages do not flow");
        thread::sleep(Duration::from_millis(1));
    }
    cluster.servers[1].kill();
    let at_kill = received.load(Ordering::Relaxed);

    let mut repeats_by_id = 0;
    for (r, idr, live, send) in pairs {
        let _sender = send.join().expect("sender");
        let mut seen = live.join().expect("receiver");
        let live_count = seen.len();
        let (mut again, _) = login_acking_when_free(cluster.addr(0), idr, Duration::from_secs(10));
        let want: HashSet<String> = (0..MESSAGES).map(|i| format!("{r}:{i}")).collect();
        let mut missing: HashSet<String> = want.clone();
        for (text, _) in &seen {
            missing.remove(text);
        }
        if !missing.is_empty() {
            let until = Instant::now() + Duration::from_secs(30);
            let quiet = Duration::from_millis(200);
            read_acking(
                &mut again,
                &mut seen,
                quiet,
                until,
                |text| missing.remove(text) && missing.is_empty(),
                None,
            );
        }
        // Anything still on its way after the last missing one arrived: repeats show here.
        let mut tail = Vec::new();
        let quiet = Duration::from_millis(500);
        read_acking(
            &mut again,
            &mut tail,
            quiet,
            Instant::now(),
            |_| false,
            None,
        );
        seen.extend(tail);

        let mut mids_of_text: HashMap<&str, HashSet<u64>> = HashMap::new();
        for (text, mid) in &seen {
            mids_of_text.entry(text).or_default().insert(*mid);
        }
        let missing: Vec<&String> = want
            .iter()
            .filter(|w| !mids_of_text.contains_key(w.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "receiver {r} lost {} messages, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        assert_eq!(
            mids_of_text.len(),
            MESSAGES,
            "receiver {r}: messages never sent"
        );
        let two_ids: Vec<_> = mids_of_text
            .iter()
            .filter(|(_, mids)| mids.len() > 1)
            .collect();
        assert!(
            two_ids.is_empty(),
            "receiver {r}: one message under two ids (a repeat dedup by id cannot catch): {:?}",
            two_ids.iter().take(5).collect::<Vec<_>>()
        );
        // After dropping repeated ids, exactly the flow, in order of id within the sender.
        let mut first_seen = HashSet::new();
        let shown: Vec<u64> = seen
            .iter()
            .filter(|(_, mid)| first_seen.insert(*mid))
            .map(|(_, mid)| *mid)
            .collect();
        assert_eq!(shown.len(), MESSAGES, "receiver {r}: shown once each");
        let repeats = seen.len() - shown.len();
        eprintln!(
            "receiver {r}: {live_count} live before the kill, {} after, {repeats} repeats by id",
            seen.len() - live_count
        );
        repeats_by_id += repeats;
    }
    eprintln!(
        "killed after {at_kill} live deliveries; {repeats_by_id} repeats by id in all, 0 lost"
    );
}
