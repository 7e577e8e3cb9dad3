//! `group`: one group chat, some members sending; rate: deliveries per second.
//!
//! One group of `--members` members, the first `--senders` of them sending, each with
//! `--inflight` messages in flight (a message completes when every other member got it).
//! Deliveries are messages received by members.
//!
//! Set-up (not measured): register and log in every member, member 0 creates the group,
//! the others join. With `--target2` the members who do not send connect there.

use super::peer::{Peer, To};
use super::reg::register_users;
use super::{timed, Scenario};
use crate::bench::driver::{send_with, Bench, Conn, SendMode};
use crate::bench::stats::Report;
use crate::bench::BenchConfig;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct Group {
    /// The group's id, set by its creator's connection when the ack comes.
    id: Arc<AtomicI64>,
}

impl Scenario for Group {
    fn senders(&self, cfg: &BenchConfig) -> usize {
        cfg.senders
    }

    fn per_msg(&self, cfg: &BenchConfig) -> u64 {
        cfg.members as u64 - 1
    }

    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (members, senders) = (b.sh.cfg.members, b.sh.cfg.senders);
        let (target, target2) = (b.sh.cfg.target, b.sh.cfg.receiver_target());
        let users = register_users(b, members)?;
        for (i, user) in users.into_iter().enumerate() {
            let sender = (i < senders).then_some(i);
            let role = Peer {
                sender,
                to: To::Group(self.id.clone()),
            };
            let addr = if sender.is_some() { target } else { target2 };
            b.connect(addr, Conn::new(role, user))?;
        }
        b.wait_ready("logging in", members)?;

        b.sh.ready.store(0, Ordering::Release);
        b.broadcast(|sh, lp, conn| {
            if sh.senders[0].conn.get() == Some(&conn) {
                let Some(c) = lp.context::<Conn>(conn) else {
                    return;
                };
                let (id, name) = (c.user.id, format!("{}group", sh.tag));
                send_with(sh, lp, conn, SendMode::Uncounted, |b| {
                    sh.wire.create_group(b, id, &name)
                });
            }
        })?;
        b.wait_ready("creating the group", 1)?;
        let group = self.id.load(Ordering::Acquire);

        b.sh.ready.store(0, Ordering::Release);
        b.broadcast(move |sh, lp, conn| {
            if sh.senders[0].conn.get() == Some(&conn) {
                return;
            }
            let Some(c) = lp.context::<Conn>(conn) else {
                return;
            };
            let id = c.user.id;
            send_with(sh, lp, conn, SendMode::Uncounted, |b| {
                sh.wire.join_group(b, id, group)
            });
        })?;
        b.wait_ready("joining the group", members - 1)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        let (w, mut r) = timed(b, "deliveries", setup_s)?;
        let cfg = &b.sh.cfg;
        let per_msg = b.sh.per_msg;
        r.set("members", cfg.members);
        r.set("senders", cfg.senders);
        r.set("inflight", cfg.inflight);
        r.set("size", cfg.size);
        r.set(
            "messages_per_s",
            (w.measured as f64 / per_msg as f64 / w.elapsed.as_secs_f64().max(1e-9)).round(),
        );
        r.set("group_id", self.id.load(Ordering::Acquire));
        Ok(r)
    }
}
