//! TcpConnection: one accepted or connected socket, living in its loop's slab.
//!
//! Outside its loop a connection is named by a [`ConnId`] (loop index, slot, generation); the
//! loop checks the generation on every use, so an id kept after its connection closed is a
//! harmless no-op even when the slot has been reused. All methods of the loop that act on a
//! connection (`send`, `shutdown`, `force_close`, ...) take a `ConnId` and run on its loop's
//! thread; other threads go through `LoopHandle::queue_in_loop`.

use super::buffer::Buffer;
use super::event_loop::EventLoop;
use std::any::Any;
use std::fmt;
use std::net::TcpStream;
use std::rc::Rc;

/// Output bytes queued before the high-water-mark callback fires (muduo's default too).
pub const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024 * 1024;

/// Names a connection from anywhere: which loop, which slot, which generation of that slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) loop_index: u32,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The index of the loop that owns the connection.
    pub fn loop_index(self) -> usize {
        self.loop_index as usize
    }

    /// A compact form for maps and logs; unique among live connections of one process.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.loop_index) << 56)
            ^ (u64::from(self.generation) << 24)
            ^ u64::from(self.slot)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conn#{}.{}.{}",
            self.loop_index, self.slot, self.generation
        )
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    Connected,
    /// `shutdown` was asked: the write side closes once the output drains.
    Disconnecting,
    /// Closed; the slot is about to be freed.
    Disconnected,
}

pub(crate) struct TcpConnection {
    pub(crate) stream: TcpStream,
    pub(crate) id: ConnId,
    pub(crate) state: ConnState,
    pub(crate) input: Buffer,
    pub(crate) output: Buffer,
    /// EPOLLOUT is armed (exactly while output is pending).
    pub(crate) writing: bool,
    /// EPOLLIN is armed (cleared once the peer half-closed).
    pub(crate) reading: bool,
    /// The peer sent FIN: close as soon as our output is drained.
    pub(crate) peer_closed: bool,
    /// Output was queued by `send_later` and waits for the end-of-turn flush.
    pub(crate) flush_pending: bool,
    pub(crate) notify_write_complete: bool,
    pub(crate) high_water_mark: usize,
    pub(crate) handler: Rc<dyn ConnectionHandler>,
    pub(crate) context: Option<Box<dyn Any>>,
}
