//! The loop's side of its connections: adopting a socket, the operations the layers above call
//! by [`ConnId`], dispatching a connection's readiness, closing, and the graceful drain.
//!
//! Each operation finds the connection in the slab (a stale id finds nothing and is a no-op),
//! then lends it the loop's poller and queues ([`Io`]) and lets `TcpConnection` do the work.

use super::channel::{token, Interest};
use super::connection::{ConnState, Io, ReadOutcome, TcpConnection};
use super::event_loop::{Deferred, EventLoop, Source};
use super::handler::ConnectionHandler;
use super::poller::Ready;
use crate::ids::ConnId;
use std::any::Any;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl EventLoop {
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
            Source::Connection(TcpConnection::new(stream, id, handler)),
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
        match self.sources.get_mut(id.slot as usize) {
            Some((_, Source::Connection(conn))) if conn.id == id => Some(conn),
            _ => None,
        }
    }

    /// Runs `f` on connection `id` with the loop's parts it needs; None if `id` is stale.
    fn with_conn<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut TcpConnection, &mut Io) -> R,
    ) -> Option<R> {
        let EventLoop {
            sources,
            poller,
            deferred,
            dirty,
            ..
        } = self;
        match sources.get_mut(id.slot as usize) {
            Some((_, Source::Connection(conn))) if conn.id == id => {
                let mut io = Io {
                    poller,
                    deferred,
                    dirty,
                };
                Some(f(conn, &mut io))
            }
            _ => None,
        }
    }

    pub(crate) fn handler_of(&self, id: ConnId) -> Option<Rc<dyn ConnectionHandler>> {
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

    /// Bytes of `id`'s output handed to the kernel so far (in `on_close` too): with
    /// [`output_end`](Self::output_end) after each send, a handler can tell which of the
    /// frames it sent never left.
    pub fn bytes_written(&self, id: ConnId) -> u64 {
        self.conn(id).map_or(0, |c| c.written)
    }

    /// Every byte ever accepted for `id`'s output: written, or queued to be.
    pub fn output_end(&self, id: ConnId) -> u64 {
        self.conn(id)
            .map_or(0, |c| c.written + c.output.readable_bytes() as u64)
    }

    /// TCP keepalive on `id`: probes after `idle` without traffic, every `interval`, and the
    /// kernel resets the connection after `probes` unanswered ones (a peer whose host or
    /// network is gone; a frozen process still answers, its kernel does).
    pub fn set_keepalive(&self, id: ConnId, idle: Duration, interval: Duration, probes: u32) {
        if let Some(conn) = self.conn(id) {
            super::socket::set_keepalive(&conn.stream, idle, interval, probes);
        }
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
        self.with_conn(id, |conn, io| conn.send(data, io))
            .unwrap_or(false)
    }

    /// Queues `data` and writes it at the end of this loop turn, together with everything
    /// else queued for the connection in the turn: one `write` for a burst of messages.
    pub fn send_later(&mut self, id: ConnId, data: &[u8]) -> bool {
        self.with_conn(id, |conn, io| conn.send_later(data, io))
            .unwrap_or(false)
    }

    /// Half-closes: no more sends; the write side shuts once queued output is written.
    pub fn shutdown(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            conn.shutdown();
        }
    }

    /// Stops or resumes reading from `id` (say, while a request it sent is being served
    /// elsewhere); bytes keep arriving in the kernel's buffer meanwhile, so TCP pushes back.
    pub fn set_reading(&mut self, id: ConnId, on: bool) {
        self.with_conn(id, |conn, io| conn.set_reading(on, io.poller));
    }

    /// Hands input already buffered for `id` to its handler again, as if it had just arrived:
    /// for a handler that left frames unprocessed while it waited for something.
    pub fn process_input(&mut self, id: ConnId) {
        let buffered = self
            .conn(id)
            .is_some_and(|c| !c.input.is_empty() && c.state != ConnState::Disconnected);
        if buffered {
            self.deliver_input(id);
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
        self.with_conn(id, |conn, io| conn.close_after_flush(io));
    }

    /// The end-of-turn flush of every connection that `send_later` queued output for.
    pub(crate) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for id in dirty.drain(..) {
            self.with_conn(id, |conn, io| conn.flush(io));
        }
        // Keep the Vec's capacity; a flush never queues onto `dirty`.
        self.dirty = dirty;
    }

    pub(crate) fn handle_connection_event(&mut self, slot: usize, ready: Ready) {
        let Some((_, Source::Connection(conn))) = self.sources.get(slot) else {
            return;
        };
        let id = conn.id;
        if ready.hangup {
            self.close_now(id);
            return;
        }
        if ready.readable || ready.error {
            let EventLoop {
                sources,
                poller,
                spill,
                ..
            } = self;
            let outcome = match sources.get_mut(slot) {
                Some((_, Source::Connection(conn))) => conn.read(spill, poller),
                _ => return,
            };
            match outcome {
                ReadOutcome::Data => self.deliver_input(id),
                ReadOutcome::Close => return self.close_now(id),
                ReadOutcome::Nothing => {}
            }
        }
        if ready.writable {
            self.with_conn(id, |conn, io| {
                if conn.is_writing() {
                    conn.write_output(io);
                }
            });
        }
    }

    /// Lends the connection's input buffer to its handler's `on_message`.
    fn deliver_input(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let handler = conn.handler.clone();
        let mut input = std::mem::take(&mut conn.input);
        handler.on_message(self, id, &mut input);
        if let Some(conn) = self.conn_mut(id) {
            input.release();
            conn.input = input;
        }
    }

    pub(crate) fn close_now(&mut self, id: ConnId) {
        let EventLoop {
            sources, poller, ..
        } = self;
        let conn = match sources.get_mut(id.slot as usize) {
            Some((_, Source::Connection(conn))) if conn.id == id => conn,
            _ => return,
        };
        if conn.state == ConnState::Disconnected {
            return;
        }
        conn.state = ConnState::Disconnected;
        let _ = poller.delete(&conn.stream);
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
