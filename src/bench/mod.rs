//! chat-bench, the load generator: its scenarios, the driver they run on, wire and report.
//!
//! The scenarios drive a chat server over protocol v1 (or the seeds' NUL-framed form) from
//! client event loops of the crate's own net layer.
//!
//! [`driver`] holds the client connections and the phases of a run and knows no workload;
//! [`scenario`] has one file per workload, each a [`scenario::Scenario`] whose connections
//! play [`driver::Role`]s of its own; [`wire`] the requests and the reading of replies,
//! [`stats`] the counters, histograms and the report. `bin/chat-bench` only parses arguments
//! into a [`BenchConfig`] and calls [`run`].

pub mod config;
pub mod cpu;
pub mod driver;
pub mod scenario;
pub mod stats;
pub mod wire;

pub use config::{BenchConfig, ScenarioKind};
pub use stats::Report;

/// Runs the configured scenario and returns its report.
pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    cfg.validate()?;
    raise_fd_limit();
    let pid = cfg.server_pid;
    let mut report = scenario::of(cfg.scenario).run(cfg)?;
    if let Some(pid) = pid {
        if report.get("server_rss_end_kib").is_none() {
            if let Ok(kib) = scenario::idle::vm_rss_kib(pid) {
                report.set("server_rss_end_kib", kib);
            }
        }
    }
    Ok(report)
}

/// Lifts the soft limit on open files to the hard one: idle runs hold many connections.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
