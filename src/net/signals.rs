//! Signals: SIGINT and SIGTERM blocked in every thread and read from a loop's signalfd.

use super::channel::{token, Interest};
use super::event_loop::{EventLoop, Source};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;

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

type SignalCallback = Box<dyn FnMut(&mut EventLoop, Signal)>;

/// A signalfd in a loop's slab and what to do with what it reads.
pub(crate) struct SignalSource {
    fd: SignalFd,
    /// `None` while the callback runs.
    callback: Option<SignalCallback>,
}

/// The loop's side of its signalfds.
impl EventLoop {
    /// Delivers the signals in `mask` through a signalfd to `callback`. The signals must
    /// already be blocked in every thread (see `block_termination_signals`).
    pub fn watch_signals(
        &mut self,
        mask: &SigSet,
        callback: impl FnMut(&mut EventLoop, Signal) + 'static,
    ) -> io::Result<()> {
        let fd = SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let generation = self.next_generation();
        let entry = self.sources.vacant_entry();
        self.poller
            .add(&fd, token(entry.key(), generation), Interest::READABLE)?;
        entry.insert((
            generation,
            Source::Signals(SignalSource {
                fd,
                callback: Some(Box::new(callback)),
            }),
        ));
        Ok(())
    }

    pub(crate) fn handle_signals(&mut self, slot: usize) {
        let mut signals = Vec::new();
        let mut callback = match self.sources.get_mut(slot) {
            Some((_, Source::Signals(source))) => {
                while let Ok(Some(info)) = source.fd.read_signal() {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        signals.push(signal);
                    }
                }
                source.callback.take()
            }
            _ => return,
        };
        if let Some(cb) = callback.as_mut() {
            for signal in signals {
                cb(self, signal);
            }
        }
        if let Some((_, Source::Signals(source))) = self.sources.get_mut(slot) {
            source.callback = callback;
        }
    }
}
