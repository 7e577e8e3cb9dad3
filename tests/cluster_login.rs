//! Login is exclusive across the cluster, and a crashed server's users are free again within
//! the liveness TTL (3 s); a server that stops cleanly frees them at once.

mod common;

use common::client::{logged_in, Client};
use common::cluster::ChatCluster;
use std::time::{Duration, Instant};

/// Logs `id` in on `addr` every 100 ms until it works; returns how long that took.
fn login_until_accepted(addr: std::net::SocketAddr, id: i64, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut c = Client::connect(addr);
        let r = c.login(id, "pw");
        if r["errno"] == 0 {
            return start.elapsed();
        }
        assert_eq!(r["errno"], 2, "unexpected login reply: {r}");
        assert!(
            start.elapsed() < limit,
            "still 'already online' after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn login_is_exclusive_and_freed_after_a_crash() {
    let Some(mut cluster) = ChatCluster::start("login_is_exclusive_and_freed_after_a_crash", 2)
    else {
        return;
    };
    let (_on_a, id) = logged_in(cluster.addr(0), "ex");
    let mut on_b = Client::connect(cluster.addr(1));
    let r = on_b.login(id, "pw");
    assert_eq!(r["errno"], 2, "second login on another server: {r}");
    // And on the same server, from another connection.
    let mut again = Client::connect(cluster.addr(0));
    assert_eq!(again.login(id, "pw")["errno"], 2);

    cluster.servers[0].kill();
    let took = login_until_accepted(cluster.addr(1), id, Duration::from_secs(6));
    eprintln!("login accepted on s1 {took:?} after s0 was killed");
    assert!(
        took <= Duration::from_millis(4500),
        "took {took:?}, TTL is 3 s"
    );
}

#[test]
fn clean_stop_frees_users_at_once() {
    let Some(mut cluster) = ChatCluster::start("clean_stop_frees_users_at_once", 2) else {
        return;
    };
    let (_on_a, id) = logged_in(cluster.addr(0), "cs");
    assert_eq!(cluster.servers[0].stop(), Some(0));
    let mut on_b = Client::connect(cluster.addr(1));
    let r = on_b.login(id, "pw");
    assert_eq!(
        r["errno"], 0,
        "login after a clean stop of the other server: {r}"
    );
}
