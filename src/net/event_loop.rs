//! EventLoop: one per thread; poll, dispatch ready sources, run queued tasks, fire timers.
//!
//! One turn of the loop:
//! 1. `epoll_wait` (no timeout unless local work is pending; timers come through their timerfd);
//! 2. dispatch each ready token into the slab: the wakeup eventfd, the timerfd, a listener, a
//!    connection or a signalfd; after each, run the deferred callbacks it produced (closes,
//!    write-complete, high-water mark) so no callback ever runs inside another;
//! 3. swap out the cross-thread task queue and run every task;
//! 4. flush connections whose output was queued with `send_later` during the turn, so several
//!    messages for one connection leave in one `write`; then run the `after_flush` tasks.
//!
//! Everything here runs on the loop's own thread; the `&mut EventLoop` a callback receives is
//! the proof. Other threads use [`LoopHandle`].

use super::acceptor::{AcceptCallback, AcceptStop, Acceptor};
use super::buffer::{Buffer, SPILL_SIZE};
use super::channel::{split_token, token, Interest};
use super::connection::{
    ConnId, ConnState, ConnectionHandler, TcpConnection, DEFAULT_HIGH_WATER_MARK,
};
use super::loop_handle::{LoopHandle, Task};
use super::poller::{Poller, Ready};
use super::timer_queue::{TimerId, TimerQueue};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use slab::Slab;
use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// Tasks given to `LoopHandle::run_in_loop` on the loop's own thread. One loop per thread,
    /// so a thread-local is that loop's.
    static LOCAL_TASKS: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn push_local_task(task: Task) {
    LOCAL_TASKS.with(|tasks| tasks.borrow_mut().push(task));
}

fn take_local_tasks() -> Vec<Task> {
    LOCAL_TASKS.with(|tasks| std::mem::take(&mut *tasks.borrow_mut()))
}

fn has_local_tasks() -> bool {
    LOCAL_TASKS.with(|tasks| !tasks.borrow().is_empty())
}

/// Work for this loop from its own thread (so it need not be `Send`).
type LocalTask = Box<dyn FnOnce(&mut EventLoop)>;

/// Names a listener registered with `add_listener`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerId(usize, u32);

type SignalCallback = Box<dyn FnMut(&mut EventLoop, Signal)>;

struct SignalSource {
    fd: SignalFd,
    callback: Option<SignalCallback>,
}

enum Source {
    Waker,
    Timers,
    Listener(Acceptor),
    Connection(TcpConnection),
    Signals(SignalSource),
}

enum Deferred {
    Connected(ConnId),
    WriteComplete(ConnId),
    HighWater(ConnId, usize),
    Close(ConnId),
}

/// A muduo EventLoop: owns its poller, sources, timers and deferred work.
pub struct EventLoop {
    handle: LoopHandle,
    poller: Poller,
    sources: Slab<(u32, Source)>,
    next_generation: u32,
    timers: TimerQueue,
    deferred: VecDeque<Deferred>,
    /// Connections with output queued by `send_later`, flushed at the end of the turn.
    dirty: Vec<ConnId>,
    /// Tasks to run once this turn's `send_later` output has been written.
    after_flush: Vec<LocalTask>,
    spill: Box<[u8]>,
    task_scratch: Vec<Task>,
    handler_cache: Vec<(usize, Rc<dyn ConnectionHandler>)>,
    connections: usize,
    draining: Option<Instant>,
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
        let _ = self.handle.shared.thread.set(std::thread::current().id());
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
        let _ = self.handle.shared.thread.set(std::thread::current().id());
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
        // Work queued after the last flush (by a deferred callback or a local task) must not
        // wait for the next event.
        let pending_here = has_local_tasks()
            || !self.deferred.is_empty()
            || !self.dirty.is_empty()
            || !self.after_flush.is_empty();
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
        self.flush_dirty();
        for task in std::mem::take(&mut self.after_flush) {
            task(self);
        }
        self.run_deferred();
    }

    fn dispatch(&mut self, token: u64, ready: Ready) {
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

    fn run_deferred(&mut self) {
        loop {
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
                }
            }
            let local = take_local_tasks();
            if local.is_empty() {
                return;
            }
            for task in local {
                task(self);
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

    // ------------------------------------------------------------------ listeners and signals

    fn next_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        // 0 is reserved for the loop's own waker and timerfd.
        self.next_generation = self.next_generation.checked_add(1).unwrap_or(1);
        generation
    }

    /// Registers a listening socket; `on_accept` gets each accepted (non-blocking) stream.
    pub fn add_listener(
        &mut self,
        listener: TcpListener,
        on_accept: impl FnMut(&mut EventLoop, TcpStream) + 'static,
    ) -> io::Result<ListenerId> {
        let acceptor = Acceptor::new(listener, Box::new(on_accept) as AcceptCallback)?;
        let generation = self.next_generation();
        let entry = self.sources.vacant_entry();
        let slot = entry.key();
        self.poller.add(
            &acceptor.listener,
            token(slot, generation),
            Interest::READABLE,
        )?;
        entry.insert((generation, Source::Listener(acceptor)));
        Ok(ListenerId(slot, generation))
    }

    /// Stops accepting on a listener and closes it.
    pub fn remove_listener(&mut self, id: ListenerId) {
        if matches!(self.sources.get(id.0), Some((g, Source::Listener(_))) if *g == id.1) {
            if let (_, Source::Listener(acceptor)) = self.sources.remove(id.0) {
                let _ = self.poller.delete(&acceptor.listener);
            }
        }
    }

    /// Connections refused (accepted and closed at once) because the process was out of fds.
    pub fn refused_connections(&self, id: ListenerId) -> u64 {
        match self.sources.get(id.0) {
            Some((g, Source::Listener(acceptor))) if *g == id.1 => acceptor.refused,
            _ => 0,
        }
    }

    fn handle_accept(&mut self, slot: usize) {
        let mut accepted = Vec::new();
        let (stop, mut callback) = match self.sources.get_mut(slot) {
            Some((_, Source::Listener(acceptor))) => (
                acceptor.accept_pending(&mut accepted),
                acceptor.on_accept.take(),
            ),
            _ => return,
        };
        if let Some(cb) = callback.as_mut() {
            for stream in accepted {
                cb(self, stream);
            }
        }
        let generation = match self.sources.get_mut(slot) {
            Some((g, Source::Listener(acceptor))) => {
                acceptor.on_accept = callback;
                *g
            }
            _ => return,
        };
        if let AcceptStop::OutOfFds = stop {
            // No spare fd to shed the backlog with: stop listening for a moment rather than spin.
            self.set_listener_interest(slot, generation, Interest::NONE);
            self.run_after(Duration::from_millis(50), move |lp| {
                lp.set_listener_interest(slot, generation, Interest::READABLE)
            });
        }
    }

    fn set_listener_interest(&mut self, slot: usize, generation: u32, interest: Interest) {
        if let Some((g, Source::Listener(acceptor))) = self.sources.get(slot) {
            if *g == generation {
                let _ = self
                    .poller
                    .modify(&acceptor.listener, token(slot, generation), interest);
            }
        }
    }

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

    fn handle_signals(&mut self, slot: usize) {
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

    // ------------------------------------------------------------------ connections

    /// Takes ownership of a connected, non-blocking stream (TCP_NODELAY is turned on) and
    /// registers it; `handler.on_connection` runs right after the current callback.
    pub fn adopt(
        &mut self,
        stream: TcpStream,
        handler: Arc<dyn ConnectionHandler>,
    ) -> io::Result<ConnId> {
        // Unix-domain or other streams have no Nagle to turn off; ignore that failure.
        let _ = stream.set_nodelay(true);
        let handler = self.local_handler(handler);
        let generation = self.next_generation();
        let loop_index = self.index() as u32;
        let entry = self.sources.vacant_entry();
        let slot = entry.key();
        let id = ConnId {
            loop_index,
            slot: slot as u32,
            generation,
        };
        self.poller
            .add(&stream, token(slot, generation), Interest::READABLE)?;
        entry.insert((
            generation,
            Source::Connection(TcpConnection {
                stream,
                id,
                state: ConnState::Connected,
                input: Buffer::new(),
                output: Buffer::new(),
                writing: false,
                reading: true,
                peer_closed: false,
                flush_pending: false,
                notify_write_complete: false,
                high_water_mark: DEFAULT_HIGH_WATER_MARK,
                handler,
                context: None,
            }),
        ));
        self.connections += 1;
        self.deferred.push_back(Deferred::Connected(id));
        Ok(id)
    }

    /// One `Rc` per handler per loop, so dispatch clones a local count instead of bouncing an
    /// `Arc`'s count between the cores.
    fn local_handler(&mut self, handler: Arc<dyn ConnectionHandler>) -> Rc<dyn ConnectionHandler> {
        let key = Arc::as_ptr(&handler) as *const () as usize;
        if let Some((_, local)) = self.handler_cache.iter().find(|(k, _)| *k == key) {
            return local.clone();
        }
        let local: Rc<dyn ConnectionHandler> = Rc::new(handler);
        self.handler_cache.push((key, local.clone()));
        local
    }

    fn conn(&self, id: ConnId) -> Option<&TcpConnection> {
        match self.sources.get(id.slot as usize) {
            Some((_, Source::Connection(conn))) if conn.id == id => Some(conn),
            _ => None,
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut TcpConnection> {
        conn_in(&mut self.sources, id)
    }

    fn handler_of(&self, id: ConnId) -> Option<Rc<dyn ConnectionHandler>> {
        self.conn(id)
            .filter(|c| c.state != ConnState::Disconnected)
            .map(|c| c.handler.clone())
    }

    /// Number of open connections on this loop.
    pub fn connection_count(&self) -> usize {
        self.connections
    }

    /// The ids of this loop's open connections.
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.sources
            .iter()
            .filter_map(|(_, (_, source))| match source {
                Source::Connection(conn) if conn.state != ConnState::Disconnected => Some(conn.id),
                _ => None,
            })
            .collect()
    }

    /// True while `id` names an open connection of this loop that still accepts output.
    pub fn is_connected(&self, id: ConnId) -> bool {
        self.conn(id)
            .is_some_and(|c| c.state == ConnState::Connected)
    }

    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conn(id).and_then(|c| c.stream.peer_addr().ok())
    }

    /// Bytes queued for `id` and not yet written.
    pub fn output_bytes(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, |c| c.output.readable_bytes())
    }

    pub fn set_high_water_mark(&mut self, id: ConnId, bytes: usize) {
        if let Some(conn) = self.conn_mut(id) {
            conn.high_water_mark = bytes;
        }
    }

    /// Ask for `on_write_complete` each time the output drains.
    pub fn notify_write_complete(&mut self, id: ConnId, on: bool) {
        if let Some(conn) = self.conn_mut(id) {
            conn.notify_write_complete = on;
        }
    }

    pub fn set_context(&mut self, id: ConnId, context: Box<dyn Any>) {
        if let Some(conn) = self.conn_mut(id) {
            conn.context = Some(context);
        }
    }

    pub fn context<T: 'static>(&self, id: ConnId) -> Option<&T> {
        self.conn(id)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.downcast_ref())
    }

    pub fn context_mut<T: 'static>(&mut self, id: ConnId) -> Option<&mut T> {
        self.conn_mut(id)
            .and_then(|c| c.context.as_mut())
            .and_then(|c| c.downcast_mut())
    }

    /// Sends `data`: written at once when nothing is queued, the rest buffered and written
    /// when the socket is writable. False if `id` is stale or no longer accepts output.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        if conn.state != ConnState::Connected {
            return false;
        }
        let mut written = 0;
        if !conn.writing && conn.output.is_empty() {
            match (&conn.stream).write(data) {
                Ok(n) => written = n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    log::debug!("{id:?}: write failed: {e}");
                    self.deferred.push_back(Deferred::Close(id));
                    return false;
                }
            }
            if written == data.len() {
                if conn.notify_write_complete {
                    self.deferred.push_back(Deferred::WriteComplete(id));
                }
                return true;
            }
        }
        self.queue_output(id, &data[written..]);
        // The rest goes out when the socket is writable: arm EPOLLOUT now (muduo's
        // `enableWriting`), or nothing would ever write it.
        self.enable_writing(id);
        true
    }

    /// Arms EPOLLOUT for `id` unless it is armed already.
    fn enable_writing(&mut self, id: ConnId) {
        let Some(conn) = conn_in(&mut self.sources, id) else {
            return;
        };
        if conn.writing {
            return;
        }
        conn.writing = true;
        let interest = Interest {
            readable: conn.reading,
            writable: true,
        };
        let _ = self.poller.modify(
            &conn.stream,
            token(id.slot as usize, id.generation),
            interest,
        );
    }

    /// Queues `data` and writes it at the end of this loop turn, together with everything
    /// else queued for the connection in the turn: one `write` for a burst of messages.
    pub fn send_later(&mut self, id: ConnId, data: &[u8]) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        if conn.state != ConnState::Connected {
            return false;
        }
        let first = !conn.flush_pending && !conn.writing;
        conn.flush_pending = true;
        self.queue_output(id, data);
        if first {
            self.dirty.push(id);
        }
        true
    }

    /// Runs `task` on this loop right after this turn's `send_later` output has been handed
    /// to the kernel (or, for a connection the peer is not reading, to its output buffer, as
    /// `send` would leave it). For work that must follow the write, such as confirming it.
    pub fn after_flush(&mut self, task: impl FnOnce(&mut EventLoop) + 'static) {
        self.after_flush.push(Box::new(task));
    }

    fn queue_output(&mut self, id: ConnId, data: &[u8]) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let before = conn.output.readable_bytes();
        conn.output.append(data);
        let after = before + data.len();
        let crossed = before < conn.high_water_mark && after >= conn.high_water_mark;
        if crossed {
            self.deferred.push_back(Deferred::HighWater(id, after));
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            conn.flush_pending = false;
            if !conn.writing && !conn.output.is_empty() {
                self.write_output(id);
            }
        }
        self.dirty = dirty;
    }

    /// Writes queued output once; arms EPOLLOUT if some remains, disarms it when drained.
    fn write_output(&mut self, id: ConnId) {
        let slot = id.slot as usize;
        let generation = id.generation;
        let Some(conn) = conn_in(&mut self.sources, id) else {
            return;
        };
        match (&conn.stream).write(conn.output.peek()) {
            Ok(n) => conn.output.retrieve(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                log::debug!("{id:?}: write failed: {e}");
                self.deferred.push_back(Deferred::Close(id));
                return;
            }
        }
        if conn.output.is_empty() {
            conn.output.release();
            let notify = conn.notify_write_complete;
            if conn.writing {
                conn.writing = false;
                let interest = Interest {
                    readable: conn.reading,
                    writable: false,
                };
                let _ = self
                    .poller
                    .modify(&conn.stream, token(slot, generation), interest);
            }
            if conn.peer_closed {
                self.deferred.push_back(Deferred::Close(id));
            } else if conn.state == ConnState::Disconnecting {
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
            if notify {
                self.deferred.push_back(Deferred::WriteComplete(id));
            }
        } else if !conn.writing {
            conn.writing = true;
            let interest = Interest {
                readable: conn.reading,
                writable: true,
            };
            let _ = self
                .poller
                .modify(&conn.stream, token(slot, generation), interest);
        }
    }

    /// Half-closes: no more sends; the write side shuts once queued output is written.
    pub fn shutdown(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Connected {
            return;
        }
        conn.state = ConnState::Disconnecting;
        if !conn.writing && conn.output.is_empty() {
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
    }

    /// Stops or resumes reading from `id` (say, while a request it sent is being served
    /// elsewhere); bytes keep arriving in the kernel's buffer meanwhile, so TCP pushes back.
    pub fn set_reading(&mut self, id: ConnId, on: bool) {
        let slot = id.slot as usize;
        let Some(conn) = conn_in(&mut self.sources, id) else {
            return;
        };
        if conn.reading == on || conn.peer_closed || conn.state == ConnState::Disconnected {
            return;
        }
        conn.reading = on;
        let interest = Interest {
            readable: on,
            writable: conn.writing,
        };
        let _ = self
            .poller
            .modify(&conn.stream, token(slot, id.generation), interest);
    }

    /// Hands input already buffered for `id` to its handler again, as if it had just arrived:
    /// for a handler that left frames unprocessed while it waited for something.
    pub fn process_input(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.input.is_empty() || conn.state == ConnState::Disconnected {
            return;
        }
        let handler = conn.handler.clone();
        let mut input = std::mem::take(&mut conn.input);
        handler.on_message(self, id, &mut input);
        if let Some(conn) = self.conn_mut(id) {
            input.release();
            conn.input = input;
        }
    }

    /// Closes after the current callback, dropping any queued output.
    pub fn force_close(&mut self, id: ConnId) {
        if self.conn(id).is_some() {
            self.deferred.push_back(Deferred::Close(id));
        }
    }

    /// Stops reading and closes once queued output is written (at once if none is queued).
    pub fn close_after_flush(&mut self, id: ConnId) {
        let slot = id.slot as usize;
        let Some(conn) = conn_in(&mut self.sources, id) else {
            return;
        };
        if conn.state == ConnState::Disconnected {
            return;
        }
        conn.peer_closed = true;
        conn.state = ConnState::Disconnecting;
        let drained = !conn.writing && conn.output.is_empty();
        if conn.reading {
            conn.reading = false;
            let interest = Interest {
                readable: false,
                writable: conn.writing,
            };
            let _ = self
                .poller
                .modify(&conn.stream, token(slot, id.generation), interest);
        }
        if drained {
            self.deferred.push_back(Deferred::Close(id));
        }
    }

    fn handle_connection_event(&mut self, slot: usize, ready: Ready) {
        let Some((_, Source::Connection(conn))) = self.sources.get(slot) else {
            return;
        };
        let id = conn.id;
        if ready.hangup {
            self.close_now(id);
            return;
        }
        if ready.readable || ready.error {
            self.handle_read(id);
        }
        if ready.writable && self.conn(id).is_some_and(|c| c.writing) {
            self.write_output(id);
        }
    }

    fn handle_read(&mut self, id: ConnId) {
        let slot = id.slot as usize;
        let Some((_, Source::Connection(conn))) = self.sources.get_mut(slot) else {
            return;
        };
        if !conn.reading {
            return;
        }
        match conn.input.read_fd(&conn.stream, &mut self.spill) {
            Ok(0) => {
                // The peer half-closed: send what we still owe, then close.
                conn.peer_closed = true;
                conn.reading = false;
                if conn.output.is_empty() {
                    self.close_now(id);
                } else {
                    let interest = Interest {
                        readable: false,
                        writable: conn.writing,
                    };
                    let _ = self
                        .poller
                        .modify(&conn.stream, token(slot, id.generation), interest);
                }
            }
            Ok(_) => {
                let handler = conn.handler.clone();
                let mut input = std::mem::take(&mut conn.input);
                handler.on_message(self, id, &mut input);
                if let Some(conn) = self.conn_mut(id) {
                    input.release();
                    conn.input = input;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                log::debug!("{id:?}: read failed: {e}");
                self.close_now(id);
            }
        }
    }

    fn close_now(&mut self, id: ConnId) {
        let Some(conn) = conn_in(&mut self.sources, id) else {
            return;
        };
        if conn.state == ConnState::Disconnected {
            return;
        }
        conn.state = ConnState::Disconnected;
        let _ = self.poller.delete(&conn.stream);
        let handler = conn.handler.clone();
        handler.on_close(self, id);
        self.sources.remove(id.slot as usize);
        self.connections -= 1;
        if self.draining.is_some() && self.connections == 0 {
            self.quit();
        }
    }

    /// Graceful stop of this loop: stop reading every connection, write what is queued, close
    /// each as it drains, and quit when none is left or `grace` has passed (closing the rest).
    pub fn drain_and_quit(&mut self, grace: Duration) {
        self.draining = Some(Instant::now() + grace);
        for id in self.connection_ids() {
            self.close_after_flush(id);
        }
        self.run_deferred();
        if self.connections == 0 {
            self.quit();
            return;
        }
        self.run_every(Duration::from_millis(10), |lp| {
            if lp
                .draining
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                for id in lp.connection_ids() {
                    lp.force_close(id);
                }
                lp.quit();
            }
        });
    }
}

/// The connection `id` names, borrowing only the slab (so the poller stays usable beside it).
fn conn_in(sources: &mut Slab<(u32, Source)>, id: ConnId) -> Option<&mut TcpConnection> {
    match sources.get_mut(id.slot as usize) {
        Some((_, Source::Connection(conn))) if conn.id == id => Some(conn),
        _ => None,
    }
}
