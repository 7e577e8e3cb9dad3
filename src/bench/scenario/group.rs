//! `group`: one group of `--members` members, the first `--senders` of them sending, each
//! with `--inflight` messages in flight (a message completes when every other member got
//! it). Rate: deliveries per second, i.e. messages received by members.
//!
//! Set-up (not measured): register and log in every member, member 0 creates the group,
//! the others join. With `--target2` the members who do not send connect there.

use super::chat::start_senders;
use super::timed_report;
use crate::bench::driver::{send_with, Bench, Conn, Role, SendMode};
use crate::bench::stats::Report;
use crate::bench::BenchConfig;
use std::sync::atomic::Ordering;

pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    let (members, senders) = (cfg.members, cfg.senders);
    let (target, target2) = (cfg.target, cfg.receiver_target());
    let per_msg = members as u64 - 1;
    let mut b = Bench::start(cfg, senders, per_msg)?;
    let users = b.register_users(members)?;
    for (i, user) in users.into_iter().enumerate() {
        let sender = (i < senders).then_some(i);
        let role = Role::Peer {
            sender,
            to: 0,
            group: true,
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
    let group = b.sh.group.load(Ordering::Acquire);

    b.sh.ready.store(0, Ordering::Release);
    b.broadcast(move |sh, lp, conn| {
        let creator = sh.senders[0].conn.get() == Some(&conn);
        let Some(c) = lp.context_mut::<Conn>(conn) else {
            return;
        };
        if let Role::Peer { to, .. } = &mut c.role {
            *to = group;
        }
        if !creator {
            let id = c.user.id;
            send_with(sh, lp, conn, SendMode::Uncounted, |b| {
                sh.wire.join_group(b, id, group)
            });
        }
    })?;
    b.wait_ready("joining the group", members - 1)?;
    let setup_s = b.age();

    let w = b.timed("deliveries", per_msg, start_senders)?;
    let cfg = &b.sh.cfg;
    let mut r = timed_report(&b, &w, "deliveries", setup_s);
    r.set("members", members);
    r.set("senders", senders);
    r.set("inflight", cfg.inflight);
    r.set("size", cfg.size);
    r.set(
        "messages_per_s",
        (w.measured as f64 / per_msg as f64 / w.elapsed.as_secs_f64().max(1e-9)).round(),
    );
    r.set("group_id", group);
    Ok(r)
}
