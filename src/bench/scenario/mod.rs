//! The scenarios, one file each: what their connections do and how a run of them goes.

pub mod chat;
pub mod echo;
pub mod group;
pub mod idle;
pub mod login;
pub mod reg;

use super::driver::{Bench, Window};
use super::stats::{latency_json, Report};

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
    r
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
