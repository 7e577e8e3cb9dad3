//! EventLoop: one per thread; poll, dispatch ready sources, run queued tasks, fire timers.
//!
//! One turn of the loop:
//! 1. `epoll_wait` (no timeout unless local work is pending; timers come through their timerfd);
//! 2. dispatch each ready token into the slab: the wakeup eventfd, the timerfd, a listener
//!    (acceptor.rs), a connection (connections.rs) or a signalfd (signals.rs); after each,
//!    run the deferred work it produced (closes, write-complete, high-water mark, `defer`red
//!    tasks) so no callback ever runs inside another;
//! 3. swap out the cross-thread task queue and run every task;
//! 4. the end-of-turn hooks (Redis's `beforeSleep`): the layers above hand over what they
//!    gathered during the turn, such as deliveries batched per target loop;
//! 5. flush connections whose output was queued with `send_later` during the turn, so several
//!    messages for one connection leave in one `write`; then the after-flush hooks and tasks.
//!
//! Everything here runs on the loop's own thread; the `&mut EventLoop` a callback receives is
//! the proof. Other threads use [`LoopHandle`]. State that the layers above keep per loop lives
//! in the loop too ([`EventLoop::state`]), so no thread-local stands in for it.

use super::acceptor::Acceptor;
use super::buffer::SPILL_SIZE;
use super::channel::{split_token, token, Interest};
use super::connection::TcpConnection;
use super::handler::ConnectionHandler;
use super::loop_handle::{LoopHandle, Task};
use super::poller::Poller;
use super::signals::SignalSource;
use super::timer_queue::{TimerId, TimerQueue};
use crate::ids::ConnId;
use slab::Slab;
use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Work for this loop from its own thread (so it need not be `Send`).
pub(crate) type LocalTask = Box<dyn FnOnce(&mut EventLoop)>;
/// Work the loop repeats every turn (see [`EventLoop::add_end_of_turn_hook`]).
type Hook = Box<dyn FnMut(&mut EventLoop)>;

/// What a slot of the loop's slab holds.
pub(crate) enum Source {
    Waker,
    Timers,
    Listener(Acceptor),
    Connection(TcpConnection),
    Signals(SignalSource),
}

/// Work produced inside a callback and run right after it.
pub(crate) enum Deferred {
    Connected(ConnId),
    WriteComplete(ConnId),
    HighWater(ConnId, usize),
    Close(ConnId),
    Task(LocalTask),
}

/// A muduo EventLoop: owns its poller, sources, timers and deferred work.
pub struct EventLoop {
    handle: LoopHandle,
    pub(crate) poller: Poller,
    pub(crate) sources: Slab<(u32, Source)>,
    next_generation: u32,
    timers: TimerQueue,
    pub(crate) deferred: VecDeque<Deferred>,
    /// Connections with output queued by `send_later`, flushed at the end of the turn.
    pub(crate) dirty: Vec<ConnId>,
    /// One-shot tasks to run once this turn's `send_later` output has been written.
    after_flush: Vec<LocalTask>,
    end_of_turn_hooks: Vec<Hook>,
    after_flush_hooks: Vec<Hook>,
    /// Per-loop state of the layers above, one value per type.
    states: Vec<(TypeId, Box<dyn Any>)>,
    pub(crate) spill: Box<[u8]>,
    task_scratch: Vec<Task>,
    pub(crate) handler_cache: Vec<(usize, Rc<dyn ConnectionHandler>)>,
    pub(crate) connections: usize,
    pub(crate) draining: Option<Instant>,
}

impl EventLoop {
    /// A loop for the calling thread; `index` names it in `ConnId`s (0: the base loop).
    pub fn new(index: usize) -> io::Result<EventLoop> {
        let handle = LoopHandle::new(index)?;
        let poller = Poller::new()?;
        let timers = TimerQueue::new()?;
        let mut sources = Slab::new();
        let waker_slot = sources.insert((0, Source::Waker));
        poller.add(
            &handle.shared.waker,
            token(waker_slot, 0),
            Interest::READABLE,
        )?;
        let timers_slot = sources.insert((0, Source::Timers));
        poller.add(timers.fd(), token(timers_slot, 0), Interest::READABLE)?;
        Ok(EventLoop {
            handle,
            poller,
            sources,
            next_generation: 1,
            timers,
            deferred: VecDeque::new(),
            dirty: Vec::new(),
            after_flush: Vec::new(),
            end_of_turn_hooks: Vec::new(),
            after_flush_hooks: Vec::new(),
            states: Vec::new(),
            spill: vec![0u8; SPILL_SIZE].into_boxed_slice(),
            task_scratch: Vec::new(),
            handler_cache: Vec::new(),
            connections: 0,
            draining: None,
        })
    }

    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    pub fn index(&self) -> usize {
        self.handle.index()
    }

    /// Runs turns until `quit` (from here or any thread).
    pub fn run(&mut self) {
        while !self.handle.shared.quit.load(Ordering::Acquire) {
            self.turn(None);
        }
    }

    /// Runs turns until `done` says so or `limit` passes; returns whether `done` held. For
    /// tests and tools that drive a loop from the current thread.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut EventLoop) -> bool,
    ) -> bool {
        let end = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end || self.handle.shared.quit.load(Ordering::Acquire) {
                return false;
            }
            self.turn(Some((end - now).min(Duration::from_millis(10))));
        }
    }

    pub fn quit(&self) {
        self.handle.quit();
    }

    fn turn(&mut self, timeout: Option<Duration>) {
        // Work queued after the last flush (by a deferred callback or a hook) must not wait
        // for the next event.
        let pending_here =
            !self.deferred.is_empty() || !self.dirty.is_empty() || !self.after_flush.is_empty();
        let timeout = if pending_here {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        match self.poller.poll(timeout) {
            Ok(ready) => {
                for i in 0..ready {
                    let (token, readiness) = self.poller.event(i);
                    self.dispatch(token, readiness);
                    self.run_deferred();
                }
            }
            Err(e) => {
                log::error!("epoll_wait failed: {e}");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.run_tasks();
        self.run_hooks(|lp| &mut lp.end_of_turn_hooks);
        self.run_deferred();
        self.flush_dirty();
        for task in std::mem::take(&mut self.after_flush) {
            task(self);
        }
        self.run_hooks(|lp| &mut lp.after_flush_hooks);
        self.run_deferred();
    }

    fn dispatch(&mut self, token: u64, ready: super::poller::Ready) {
        let (slot, generation) = split_token(token);
        let kind = match self.sources.get(slot) {
            Some((g, source)) if *g == generation => match source {
                Source::Waker => 0,
                Source::Timers => 1,
                Source::Listener(_) => 2,
                Source::Connection(_) => 3,
                Source::Signals(_) => 4,
            },
            _ => return, // stale: the source closed earlier in this turn
        };
        match kind {
            0 => {
                let _ = self.handle.shared.waker.read();
            }
            1 => self.handle_timers(),
            2 => self.handle_accept(slot),
            3 => self.handle_connection_event(slot, ready),
            _ => self.handle_signals(slot),
        }
    }

    pub(crate) fn run_deferred(&mut self) {
        while let Some(work) = self.deferred.pop_front() {
            match work {
                Deferred::Connected(id) => {
                    if let Some(handler) = self.handler_of(id) {
                        handler.on_connection(self, id);
                    }
                }
                Deferred::WriteComplete(id) => {
                    if let Some(handler) = self.handler_of(id) {
                        handler.on_write_complete(self, id);
                    }
                }
                Deferred::HighWater(id, queued) => {
                    if let Some(handler) = self.handler_of(id) {
                        handler.on_high_water_mark(self, id, queued);
                    }
                }
                Deferred::Close(id) => self.close_now(id),
                Deferred::Task(task) => task(self),
            }
        }
    }

    fn run_tasks(&mut self) {
        {
            let mut queue = self
                .handle
                .shared
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *queue, &mut self.task_scratch);
        }
        let mut tasks = std::mem::take(&mut self.task_scratch);
        for task in tasks.drain(..) {
            task(self);
            self.run_deferred();
        }
        // Keep the emptied Vec's capacity for the next swap.
        self.task_scratch = tasks;
    }

    /// Runs every hook of one kind; hooks added meanwhile run from the next turn on.
    fn run_hooks(&mut self, hooks: fn(&mut EventLoop) -> &mut Vec<Hook>) {
        if hooks(self).is_empty() {
            return;
        }
        let mut running = std::mem::take(hooks(self));
        for hook in running.iter_mut() {
            hook(self);
        }
        let added = std::mem::replace(hooks(self), running);
        hooks(self).extend(added);
    }

    // ------------------------------------------------------------------ work of the layers above

    /// Runs `task` on this loop right after the current callback, before the loop polls
    /// again, without a wakeup (muduo's `runInLoop` from the loop's own thread).
    pub fn defer(&mut self, task: impl FnOnce(&mut EventLoop) + 'static) {
        self.deferred.push_back(Deferred::Task(Box::new(task)));
    }

    /// Runs `hook` at the end of every turn, after the turn's events and tasks and before its
    /// `send_later` output is written: the place to hand over what a turn gathered.
    pub fn add_end_of_turn_hook(&mut self, hook: impl FnMut(&mut EventLoop) + 'static) {
        self.end_of_turn_hooks.push(Box::new(hook));
    }

    /// Runs `hook` every turn once the turn's `send_later` output has been handed to the
    /// kernel (or, for a peer that is not reading, left in its output buffer, as `send` would).
    pub fn add_after_flush_hook(&mut self, hook: impl FnMut(&mut EventLoop) + 'static) {
        self.after_flush_hooks.push(Box::new(hook));
    }

    /// Runs `task` once, right after this turn's `send_later` output has been written.
    pub fn after_flush(&mut self, task: impl FnOnce(&mut EventLoop) + 'static) {
        self.after_flush.push(Box::new(task));
    }

    /// This loop's value of type `T`, made with `Default` on first use: per-loop state of the
    /// layers above (an outbox, a queue of deadlines), owned by the loop and reached only on
    /// its thread, so it needs no lock.
    pub fn state<T: Default + 'static>(&mut self) -> &mut T {
        let id = TypeId::of::<T>();
        let index = match self.states.iter().position(|(t, _)| *t == id) {
            Some(index) => index,
            None => {
                self.states.push((id, Box::new(T::default())));
                self.states.len() - 1
            }
        };
        self.states[index]
            .1
            .downcast_mut()
            .expect("each state is stored under its own TypeId")
    }

    // ------------------------------------------------------------------ timers

    fn next_timer_id(&self) -> u64 {
        self.handle
            .shared
            .next_timer_id
            .fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `callback` once after `delay`.
    pub fn run_after(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut EventLoop) + 'static,
    ) -> TimerId {
        let id = self.next_timer_id();
        let mut callback = Some(callback);
        self.timers.add(
            id,
            delay,
            None,
            Box::new(move |lp: &mut EventLoop| {
                if let Some(cb) = callback.take() {
                    cb(lp)
                }
            }),
        );
        TimerId(id)
    }

    /// Runs `callback` every `interval`, the first time one interval from now.
    pub fn run_every(
        &mut self,
        interval: Duration,
        callback: impl FnMut(&mut EventLoop) + 'static,
    ) -> TimerId {
        let id = self.next_timer_id();
        self.timers
            .add(id, interval, Some(interval), Box::new(callback));
        TimerId(id)
    }

    /// Cancels a timer, also from inside its own callback. False if it already ran or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id.0)
    }

    /// Timers pending (one-shot not yet fired, repeating not cancelled).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    fn handle_timers(&mut self) {
        for id in self.timers.take_expired() {
            if let Some(mut callback) = self.timers.begin_run(id) {
                callback(self);
                self.timers.end_run(id, callback);
                self.run_deferred();
            }
        }
        self.timers.rearm();
    }

    // ------------------------------------------------------------------ sources

    /// A generation for a new source's slot, so stale tokens and ids never match it.
    pub(crate) fn next_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        // 0 is reserved for the loop's own waker and timerfd.
        self.next_generation = self.next_generation.checked_add(1).unwrap_or(1);
        generation
    }
}
