//! `chat`: `--pairs` one-to-one conversations, each sender keeping `--inflight` messages in
//! flight to its receiver (1: a closed loop). Rate: messages delivered per second.
//!
//! Both ends of a pair live on the same client loop, so a delivery lets its sender send the
//! next message without a cross-thread hop. With `--target2` the receivers connect there
//! (another node of a cluster): every message then crosses servers.

use super::timed_report;
use crate::bench::driver::{send_chat, Bench, Conn, Role};
use crate::bench::stats::Report;
use crate::bench::BenchConfig;

pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    let pairs = cfg.pairs;
    let (target, target2) = (cfg.target, cfg.receiver_target());
    let mut b = Bench::start(cfg, pairs, 1)?;
    let users = b.register_users(2 * pairs)?;
    for (i, two) in users.chunks_exact(2).enumerate() {
        let (sender, receiver) = (two[0].clone(), two[1].clone());
        let to = receiver.id;
        let send = Role::Peer {
            sender: Some(i),
            to,
            group: false,
        };
        let receive = Role::Peer {
            sender: None,
            to: 0,
            group: false,
        };
        b.connect_together(vec![
            (target, Conn::new(send, sender)),
            (target2, Conn::new(receive, receiver)),
        ])?;
    }
    b.wait_ready("logging in", 2 * pairs)?;
    let setup_s = b.age();
    let w = b.timed("messages", 1, start_senders)?;
    let cfg = &b.sh.cfg;
    let mut r = timed_report(&b, &w, "messages", setup_s);
    r.set("pairs", pairs);
    r.set("inflight", cfg.inflight);
    r.set("size", cfg.size);
    Ok(r)
}

/// Every sender sends its first `--inflight` messages; deliveries pace the rest.
pub fn start_senders(b: &Bench) -> Result<(), String> {
    b.broadcast(|sh, lp, conn| {
        let sender = matches!(
            lp.context::<Conn>(conn).map(|c| &c.role),
            Some(
                Role::Peer {
                    sender: Some(_),
                    ..
                } | Role::Echo { .. }
            )
        );
        if sender {
            for _ in 0..sh.cfg.inflight {
                send_chat(sh, lp, conn);
            }
        }
    })
}
