//! CPU time of processes, from /proc: what the server (and its helpers) spent in a window.
//!
//! `/proc/PID/task/*/schedstat` counts each thread's time on a CPU in nanoseconds, far finer
//! than the 10 ms ticks of `/proc/PID/stat`, so a 10-second window gives a figure per message
//! that is exact to well under a nanosecond. Threads that exit inside the window are missed:
//! the server's threads live as long as the server.

use std::time::Duration;

/// CPU time so far of every live thread of `pid` (`self` for this process).
pub fn process_cpu(pid: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(total))
}

/// A snapshot of several processes' CPU time, to subtract from a later one.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot(Vec<(String, Option<Duration>)>);

impl CpuSnapshot {
    pub fn take(pids: &[String]) -> CpuSnapshot {
        CpuSnapshot(pids.iter().map(|p| (p.clone(), process_cpu(p))).collect())
    }

    /// CPU time spent by each process since `earlier` (None where it could not be read).
    pub fn since(&self, earlier: &CpuSnapshot) -> Vec<(String, Option<Duration>)> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|((pid, now), (_, then))| {
                let spent = match (now, then) {
                    (Some(now), Some(then)) => now.checked_sub(*then),
                    _ => None,
                };
                (pid.clone(), spent)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_spends_cpu() {
        let before = CpuSnapshot::take(&["self".to_owned()]);
        // Long enough for the scheduler to account it (it does so at ticks and switches).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let spent = CpuSnapshot::take(&["self".to_owned()]).since(&before);
        assert!(spent[0].1.is_some_and(|d| d > Duration::ZERO), "{spent:?}");
        assert!(process_cpu("999999999").is_none());
    }
}
