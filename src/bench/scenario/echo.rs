//! `echo`: the ceiling of the chat path, chat's very frames bounced off an echo server.
//!
//! `--pairs` connections to an echo server on the network core (`examples/echo`), each
//! keeping `--inflight` frames in flight to itself. The frames are the very bytes `chat` sends
//! (same `--size`), and each costs the server one read and one write, as a chat message does,
//! but no parsing, no session lookup, no routing: `chat` rate / `echo` rate is the share of
//! raw pingpong the chat path keeps.

use super::chat::measure_pairs;
use super::Scenario;
use crate::bench::driver::{send_chat, Bench, Conn, Role, Route, Shared, User};
use crate::bench::stats::Report;
use crate::bench::wire::Reply;
use crate::bench::BenchConfig;
use crate::net::{ConnId, EventLoop};
use std::sync::atomic::Ordering;

pub struct Echo;

impl Scenario for Echo {
    fn senders(&self, cfg: &BenchConfig) -> usize {
        cfg.pairs
    }

    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (pairs, target) = (b.sh.cfg.pairs, b.sh.cfg.target);
        for i in 0..pairs {
            // Ids as a chat run would have them, so the frames have the same length.
            let user = User {
                id: 100_000 + i as i64,
                name: format!("echo_{i:06}"),
            };
            let role = Pinger(Route {
                sender: i,
                to: user.id,
                group: false,
            });
            b.connect(target, Conn::new(role, user))?;
        }
        b.wait_ready("connecting", pairs)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        measure_pairs(b, setup_s)
    }
}

/// Sends chat frames to itself through the echo server; no login, as an echo server has none.
#[derive(Debug)]
struct Pinger(Route);

impl Role for Pinger {
    fn on_connection(&self, sh: &Shared, _lp: &mut EventLoop, conn: ConnId) {
        let _ = sh.senders[self.0.sender].conn.set(conn);
        sh.ready.fetch_add(1, Ordering::AcqRel);
    }

    fn on_reply(&self, sh: &Shared, _lp: &mut EventLoop, _conn: ConnId, reply: &Reply) {
        sh.fail(format!("the echo server sent {}", reply.describe()));
    }

    fn on_start(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        for _ in 0..sh.cfg.inflight {
            send_chat(sh, lp, conn, self.0);
        }
    }

    fn on_delivered(&self, sh: &Shared, lp: &mut EventLoop, conn: ConnId) {
        send_chat(sh, lp, conn, self.0);
    }
}
