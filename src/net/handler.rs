//! ConnectionHandler: what a server does with its connections, event by event.

use super::buffer::Buffer;
use super::event_loop::EventLoop;
use crate::ids::ConnId;

/// What a server does with its connections. One handler serves every loop, so it is shared
/// (`Send + Sync`); per-connection state goes in the connection's context
/// (`EventLoop::set_context` / `context_mut`). Every method runs on the connection's loop.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// The connection is registered and readable.
    fn on_connection(&self, _lp: &mut EventLoop, _conn: ConnId) {}
    /// Bytes arrived; consume what you handle from `input`, leave a partial frame in it.
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer);
    /// All queued output was written (only after `EventLoop::notify_write_complete`).
    fn on_write_complete(&self, _lp: &mut EventLoop, _conn: ConnId) {}
    /// Queued output crossed the high-water mark (`queued` bytes are pending).
    fn on_high_water_mark(&self, _lp: &mut EventLoop, _conn: ConnId, _queued: usize) {}
    /// The connection is closing; its context is still readable. Nothing can be sent anymore.
    fn on_close(&self, _lp: &mut EventLoop, _conn: ConnId) {}
}

impl<H: ConnectionHandler + ?Sized> ConnectionHandler for std::sync::Arc<H> {
    fn on_connection(&self, lp: &mut EventLoop, conn: ConnId) {
        (**self).on_connection(lp, conn)
    }
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        (**self).on_message(lp, conn, input)
    }
    fn on_write_complete(&self, lp: &mut EventLoop, conn: ConnId) {
        (**self).on_write_complete(lp, conn)
    }
    fn on_high_water_mark(&self, lp: &mut EventLoop, conn: ConnId, queued: usize) {
        (**self).on_high_water_mark(lp, conn, queued)
    }
    fn on_close(&self, lp: &mut EventLoop, conn: ConnId) {
        (**self).on_close(lp, conn)
    }
}
