//! LoopHandle: the Send + Clone face of an EventLoop that any thread may hold.
//!
//! Cross-thread work enters a loop only here. Tasks go into a mutex-guarded Vec that the loop
//! swaps out whole once per turn; the loop's eventfd is written only when that Vec goes from
//! empty to non-empty, so a burst of N tasks costs one wakeup, not N (Redis ae's and muduo's
//! `queueInLoop` make the same bargain).

use super::event_loop::EventLoop;
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Work handed to a loop from anywhere; it runs on the loop's thread with the loop in hand.
pub type Task = Box<dyn FnOnce(&mut EventLoop) + Send>;

pub(crate) struct Shared {
    pub(crate) index: usize,
    pub(crate) tasks: Mutex<Vec<Task>>,
    pub(crate) waker: EventFd,
    pub(crate) quit: AtomicBool,
    pub(crate) next_timer_id: AtomicU64,
    /// eventfd writes: how often producers had to wake the loop.
    pub(crate) wakeups: AtomicU64,
    /// Tasks queued in total, to compare with `wakeups`.
    pub(crate) queued: AtomicU64,
}

/// Names one loop from any thread.
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) shared: Arc<Shared>,
}

impl LoopHandle {
    pub(crate) fn new(index: usize) -> io::Result<LoopHandle> {
        let waker =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(LoopHandle {
            shared: Arc::new(Shared {
                index,
                tasks: Mutex::new(Vec::new()),
                waker,
                quit: AtomicBool::new(false),
                next_timer_id: AtomicU64::new(1),
                wakeups: AtomicU64::new(0),
                queued: AtomicU64::new(0),
            }),
        })
    }

    /// The loop's index in its server (0 is the base loop).
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// Queues `task` to run on the loop's thread during its next turn. Safe from any thread,
    /// including the loop's own. Tasks from one producer run in the order they were queued.
    pub fn queue_in_loop(&self, task: impl FnOnce(&mut EventLoop) + Send + 'static) {
        self.queue_boxed(Box::new(task));
    }

    pub fn queue_boxed(&self, task: Task) {
        let was_empty = {
            let mut tasks = self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.push(task);
            tasks.len() == 1
        };
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.wake();
        }
    }

    /// Asks the loop to leave `run` after its current turn. Safe from any thread.
    pub fn quit(&self) {
        self.shared.quit.store(true, Ordering::Release);
        self.wake();
    }

    /// How many times producers wrote the loop's eventfd.
    pub fn wakeup_count(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }

    /// How many tasks were queued through this loop's handles.
    pub fn queued_count(&self) -> u64 {
        self.shared.queued.load(Ordering::Relaxed)
    }

    fn wake(&self) {
        self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
        // EAGAIN means the counter is saturated: the loop is certainly awake already.
        let _ = self.shared.waker.write(1);
    }
}
