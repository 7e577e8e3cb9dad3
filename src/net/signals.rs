//! Signals: SIGINT and SIGTERM blocked in every thread and read from a loop's signalfd.

use nix::sys::signal::{SigSet, Signal};

/// Blocks SIGINT and SIGTERM in the calling thread and, through inheritance, in every thread it
/// spawns afterwards, so they are only ever read from a signalfd. Call it first thing in
/// `main`, before any thread exists; pass the returned set to `EventLoop::watch_signals`.
pub fn block_termination_signals() -> nix::Result<SigSet> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()?;
    Ok(mask)
}
