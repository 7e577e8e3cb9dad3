//! chat-bench, the load generator: scenarios that drive a chat server over protocol v1 (or the
//! seeds' NUL-framed form) from client event loops of the crate's own net layer.
//!
//! [`driver`] holds the client connections and the phases of a run, [`scenario`] one file per
//! workload, [`wire`] the requests and the reading of replies, [`stats`] the counters,
//! histograms and the report. `bin/chat-bench` only parses arguments into a [`BenchConfig`]
//! and calls [`run`].

pub mod config;
pub mod driver;
pub mod scenario;
pub mod stats;
pub mod wire;

pub use config::{BenchConfig, Scenario};
pub use stats::Report;

/// Runs the configured scenario and returns its report.
pub fn run(cfg: BenchConfig) -> Result<Report, String> {
    cfg.validate()?;
    raise_fd_limit();
    let pid = cfg.server_pid;
    let mut report = match cfg.scenario {
        Scenario::Reg => scenario::reg::run(cfg)?,
        Scenario::Login => scenario::login::run(cfg)?,
        Scenario::Chat => scenario::chat::run(cfg)?,
        Scenario::Echo => scenario::echo::run(cfg)?,
        Scenario::Group => scenario::group::run(cfg)?,
        Scenario::Idle => scenario::idle::run(cfg)?,
    };
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
