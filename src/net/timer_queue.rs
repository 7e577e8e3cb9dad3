//! TimerQueue: a loop's timers, ordered by deadline, fired through one timerfd.
//!
//! The timerfd is armed for the earliest deadline only, and re-armed whenever that changes.
//! A timer's callback is taken out of its entry while it runs, so it may cancel itself (or any
//! other timer) or add timers; a repeating timer is put back only if it was not cancelled.

use super::event_loop::EventLoop;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Names a timer; unique within its loop for the loop's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

pub(crate) type TimerCallback = Box<dyn FnMut(&mut EventLoop)>;

struct Entry {
    deadline: Instant,
    interval: Option<Duration>,
    /// `None` while the callback is running.
    callback: Option<TimerCallback>,
}

pub(crate) struct TimerQueue {
    fd: TimerFd,
    entries: HashMap<u64, Entry>,
    order: BTreeSet<(Instant, u64)>,
    armed_for: Option<Instant>,
}

impl TimerQueue {
    pub(crate) fn new() -> io::Result<TimerQueue> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(TimerQueue {
            fd,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            armed_for: None,
        })
    }

    pub(crate) fn fd(&self) -> impl AsFd + '_ {
        &self.fd
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn add(
        &mut self,
        id: u64,
        delay: Duration,
        interval: Option<Duration>,
        callback: TimerCallback,
    ) {
        let deadline = Instant::now() + delay;
        self.entries.insert(
            id,
            Entry {
                deadline,
                interval,
                callback: Some(callback),
            },
        );
        self.order.insert((deadline, id));
        self.rearm();
    }

    /// Removes the timer; true if it was pending (or is the one running now).
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        match self.entries.remove(&id) {
            Some(entry) => {
                self.order.remove(&(entry.deadline, id));
                self.rearm();
                true
            }
            None => false,
        }
    }

    /// Clears the timerfd and returns the ids whose deadline has passed, earliest first.
    pub(crate) fn take_expired(&mut self) -> Vec<u64> {
        let mut expirations = [0u8; 8];
        let _ = nix::unistd::read(&self.fd, &mut expirations);
        self.armed_for = None;
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(&(deadline, id)) = self.order.first() {
            if deadline > now {
                break;
            }
            self.order.pop_first();
            due.push(id);
        }
        due
    }

    /// Takes a due timer's callback out to run it.
    pub(crate) fn begin_run(&mut self, id: u64) -> Option<TimerCallback> {
        self.entries.get_mut(&id).and_then(|e| e.callback.take())
    }

    /// Puts a repeating timer back after its run; drops a one-shot or a cancelled one.
    pub(crate) fn end_run(&mut self, id: u64, callback: TimerCallback) {
        let repeat = match self.entries.get_mut(&id) {
            Some(entry) => match entry.interval {
                Some(interval) => {
                    entry.deadline = Instant::now() + interval;
                    entry.callback = Some(callback);
                    Some(entry.deadline)
                }
                None => None,
            },
            None => return,
        };
        match repeat {
            Some(deadline) => {
                self.order.insert((deadline, id));
            }
            None => {
                self.entries.remove(&id);
            }
        }
    }

    /// Arms the timerfd for the earliest deadline if that changed.
    pub(crate) fn rearm(&mut self) {
        let earliest = self.order.first().map(|&(d, _)| d);
        if earliest == self.armed_for {
            return;
        }
        self.armed_for = earliest;
        let result = match earliest {
            Some(deadline) => {
                // A zero it_value would disarm the timer: wait at least a microsecond.
                let delay = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_micros(1));
                self.fd.set(
                    Expiration::OneShot(TimeSpec::from_duration(delay)),
                    TimerSetTimeFlags::empty(),
                )
            }
            None => self.fd.unset(),
        };
        if let Err(e) = result {
            log::error!("timerfd_settime failed: {e}");
        }
    }
}
