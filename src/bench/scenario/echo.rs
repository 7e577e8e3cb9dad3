//! `echo`: the ceiling of the chat path. `--pairs` connections to an echo server on the
//! network core (`examples/echo`), each keeping `--inflight` frames in flight to itself. The
//! frames are the very bytes `chat` sends (same `--size`), and each costs the server one read
//! and one write, as a chat message does, but no parsing, no session lookup, no routing:
//! `chat` rate / `echo` rate is the share of raw pingpong the chat path keeps.

use super::chat::start_senders;
use super::timed_report;
use crate::bench::driver::{Bench, Conn, Role, User};
use crate::bench::stats::Report;
use crate::bench::BenchConfig;

pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    let pairs = cfg.pairs;
    let target = cfg.target;
    let mut b = Bench::start(cfg, pairs, 1)?;
    for i in 0..pairs {
        // Ids as a chat run would have them, so the frames have the same length.
        let user = User {
            id: 100_000 + i as i64,
            name: format!("echo_{i:06}"),
        };
        b.connect(target, Conn::new(Role::Echo { sender: i }, user))?;
    }
    b.wait_ready("connecting", pairs)?;
    let setup_s = b.age();
    let w = b.timed("messages", 1, start_senders)?;
    let cfg = &b.sh.cfg;
    let mut r = timed_report(&b, &w, "messages", setup_s);
    r.set("pairs", pairs);
    r.set("inflight", cfg.inflight);
    r.set("size", cfg.size);
    Ok(r)
}
