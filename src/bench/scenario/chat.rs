//! `chat`: one-to-one conversations between pairs of users; rate: messages delivered per second.
//!
//! `--pairs` pairs, each sender keeping `--inflight` messages in flight to its receiver (1: a
//! closed loop).
//!
//! Both ends of a pair live on the same client loop, so a delivery lets its sender send the
//! next message without a cross-thread hop. With `--target2` the receivers connect there
//! (another node of a cluster): every message then crosses servers.

use super::peer::{Peer, To};
use super::reg::register_users;
use super::{timed, Scenario};
use crate::bench::driver::{Bench, Conn};
use crate::bench::stats::Report;
use crate::bench::BenchConfig;

pub struct Chat;

impl Scenario for Chat {
    fn senders(&self, cfg: &BenchConfig) -> usize {
        cfg.pairs
    }

    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let pairs = b.sh.cfg.pairs;
        let (target, target2) = (b.sh.cfg.target, b.sh.cfg.receiver_target());
        let users = register_users(b, 2 * pairs)?;
        for (i, two) in users.chunks_exact(2).enumerate() {
            let (sender, receiver) = (two[0].clone(), two[1].clone());
            let send = Peer {
                sender: Some(i),
                to: To::User(receiver.id),
            };
            b.connect_together(vec![
                (target, Conn::new(send, sender)),
                (target2, Conn::new(Peer::receiver(), receiver)),
            ])?;
        }
        b.wait_ready("logging in", 2 * pairs)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        measure_pairs(b, setup_s)
    }
}

/// The measurement of `chat` and of its baseline `echo`, reported alike so they compare.
pub fn measure_pairs(b: &Bench, setup_s: f64) -> Result<Report, String> {
    let (_, mut r) = timed(b, "messages", setup_s)?;
    let cfg = &b.sh.cfg;
    r.set("pairs", cfg.pairs);
    r.set("inflight", cfg.inflight);
    r.set("size", cfg.size);
    Ok(r)
}
