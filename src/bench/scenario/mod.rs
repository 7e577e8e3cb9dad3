//! The scenarios, one file each, and the [`Scenario`] trait they implement.
//!
//! A scenario owns both halves of a workload: the [`Role`](crate::bench::driver::Role)s its
//! connections play (what a connection does on connect, on a reply, when the timed part
//! starts, when its message was delivered) and how a run goes (set-up, the measured part,
//! the report). The driver calls the roles and knows none of the scenarios.

pub mod chat;
pub mod echo;
pub mod group;
pub mod idle;
pub mod login;
pub mod peer;
pub mod reg;

use super::config::{BenchConfig, ScenarioKind};
use super::driver::{send_with, Bench, Conn, SendMode, Shared, Step, Window};
use super::stats::{latency_json, Report};
use crate::net::{ConnId, EventLoop};
use std::time::{Duration, Instant};

/// A workload of chat-bench.
pub trait Scenario {
    /// Sender slots the driver keeps: one per connection that sends bench messages.
    fn senders(&self, _cfg: &BenchConfig) -> usize {
        0
    }

    /// Deliveries that complete one bench message (a group message reaches all but one).
    fn per_msg(&self, _cfg: &BenchConfig) -> u64 {
        1
    }

    /// Everything before the measurement, not measured: registers users, connects them in
    /// their roles, waits until each is ready.
    fn setup(&mut self, b: &mut Bench) -> Result<(), String>;

    /// The measured part and its report; `setup_s` is how long the run took to get here.
    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String>;

    /// A whole run: client loops started, set-up, measurement.
    fn run(&mut self, cfg: BenchConfig) -> Result<Report, String> {
        let (senders, per_msg) = (self.senders(&cfg), self.per_msg(&cfg));
        let mut b = Bench::start(cfg, senders, per_msg)?;
        self.setup(&mut b)?;
        let setup_s = b.age();
        self.measure(&mut b, setup_s)
    }
}

/// The scenario `kind` names.
pub fn of(kind: ScenarioKind) -> Box<dyn Scenario> {
    match kind {
        ScenarioKind::Reg => Box::new(reg::Reg),
        ScenarioKind::Login => Box::new(login::Login),
        ScenarioKind::Chat => Box::new(chat::Chat),
        ScenarioKind::Echo => Box::new(echo::Echo),
        ScenarioKind::Group => Box::new(group::Group::default()),
        ScenarioKind::Idle => Box::new(idle::Idle::default()),
    }
}

/// The timed window (see [`Bench::timed`]) and the fields every timed scenario reports.
pub fn timed(b: &Bench, unit: &str, setup_s: f64) -> Result<(Window, Report), String> {
    let w = b.timed(unit)?;
    let r = timed_report(b, &w, unit, setup_s);
    Ok((w, r))
}

/// The fields every timed scenario reports: the rate of `unit` per second in the measured
/// window, the counts, and the latency percentiles.
pub fn timed_report(b: &Bench, w: &Window, unit: &str, setup_s: f64) -> Report {
    let cfg = &b.sh.cfg;
    let mut r = Report::new();
    r.set("scenario", cfg.scenario.name());
    r.set("target", cfg.target.to_string());
    if let Some(t2) = cfg.target2 {
        r.set("target2", t2.to_string());
    }
    r.set("legacy", cfg.legacy);
    r.set("acks", cfg.acks);
    r.set("client_threads", cfg.threads);
    r.set("setup_s", round2(setup_s));
    r.set("warmup_s", round2(cfg.warmup.as_secs_f64()));
    r.set("duration_s", round2(w.elapsed.as_secs_f64()));
    r.set("unit", unit);
    r.set("count", w.measured);
    r.set(
        "rate_per_s",
        (w.measured as f64 / w.elapsed.as_secs_f64().max(1e-9)).round(),
    );
    r.set("sent", w.sent);
    r.set("completed", w.done);
    r.set("errors", w.errors);
    r.set("lost", w.lost);
    r.set("closed", w.closed);
    r.set("latency", latency_json(&b.sh.stats.latency()));
    // CPU per unit in µs: this process (the load generator), the server, then each --cpu-pid.
    let per_unit = |spent: Duration| spent.as_secs_f64() * 1e6 / (w.measured.max(1) as f64);
    let mut others = serde_json::Map::new();
    for (i, (pid, spent)) in w.cpu.iter().enumerate() {
        let Some(spent) = *spent else { continue };
        match i {
            0 => r.set("client_cpu_us_per_unit", round3(per_unit(spent))),
            1 if cfg.server_pid.is_some() => {
                r.set("server_cpu_s", round3(spent.as_secs_f64()));
                r.set("server_cpu_us_per_unit", round3(per_unit(spent)));
            }
            _ => {
                others.insert(pid.clone(), round3(per_unit(spent)).into());
            }
        }
    }
    if !others.is_empty() {
        r.set("other_cpu_us_per_unit", serde_json::Value::Object(others));
    }
    r
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sends a LOGIN_MSG for the connection's user and notes the time.
pub fn send_login(sh: &Shared, lp: &mut EventLoop, conn: ConnId, how: SendMode) {
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    c.step = Step::Waiting;
    c.sent_at = Instant::now();
    let id = c.user.id;
    if sh.cfg.acks {
        send_with(sh, lp, conn, how, |b| {
            sh.wire.login_ext(b, id, Ok(&sh.password), true)
        });
    } else {
        send_with(sh, lp, conn, how, |b| sh.wire.login(b, id, &sh.password));
    }
}

/// Sends a LOGIN_MSG with a resume token for the connection's user and notes the time.
pub fn send_token_login(sh: &Shared, lp: &mut EventLoop, conn: ConnId, token: &str) {
    let Some(c) = lp.context_mut::<Conn>(conn) else {
        return;
    };
    c.step = Step::Waiting;
    c.sent_at = Instant::now();
    let id = c.user.id;
    send_with(sh, lp, conn, SendMode::Now, |b| {
        sh.wire.login_ext(b, id, Err(token), sh.cfg.acks)
    });
}
