//! TcpConnection: one socket in its loop's slab, and its state machine (read, send, write,
//! shutdown, close).
//!
//! Outside its loop a connection is named by a [`ConnId`]; the loop finds it by that id
//! (connections.rs) and lends it the parts of the loop it needs, as an [`Io`]: the poller,
//! the queue of deferred callbacks, the list of connections to flush at the end of the turn.
//! Every method runs on the owning loop's thread.
//!
//! Output: `send` writes at once when nothing is queued and buffers the rest; EPOLLOUT is
//! armed exactly while output is pending (muduo's `enableWriting` / `disableWriting`), and
//! `update_interest` is the one place that tells the poller.

use super::buffer::Buffer;
use super::channel::{token, Interest};
use super::event_loop::Deferred;
use super::handler::ConnectionHandler;
use super::poller::Poller;
use crate::ids::ConnId;
use std::any::Any;
use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

/// Output bytes queued before the high-water-mark callback fires (muduo's default too).
pub const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    Connected,
    /// `shutdown` was asked: the write side closes once the output drains.
    Disconnecting,
    /// Closed; the slot is about to be freed.
    Disconnected,
}

/// The parts of its loop a connection uses while the loop lends it out.
pub(crate) struct Io<'a> {
    pub(crate) poller: &'a Poller,
    pub(crate) deferred: &'a mut VecDeque<Deferred>,
    pub(crate) dirty: &'a mut Vec<ConnId>,
}

/// What one read of the socket came to.
pub(crate) enum ReadOutcome {
    /// Bytes arrived: hand the input to the handler.
    Data,
    /// Nothing to do now (EAGAIN, or output still owed after the peer's FIN).
    Nothing,
    /// The connection is done: close it now.
    Close,
}

pub(crate) struct TcpConnection {
    pub(crate) stream: TcpStream,
    pub(crate) id: ConnId,
    pub(crate) state: ConnState,
    pub(crate) input: Buffer,
    pub(crate) output: Buffer,
    /// Bytes handed to the kernel so far; with `output`'s, every byte ever accepted for output.
    pub(crate) written: u64,
    /// EPOLLOUT is wanted (exactly while output is pending).
    writing: bool,
    /// EPOLLIN is wanted (cleared once the peer half-closed, or by `set_reading`).
    reading: bool,
    /// What the poller has been told, so an unchanged interest costs no `epoll_ctl`.
    registered: Interest,
    /// The peer sent FIN (or we stopped reading for good): close once our output is drained.
    peer_closed: bool,
    /// Output was queued by `send_later` and waits for the end-of-turn flush.
    flush_pending: bool,
    pub(crate) notify_write_complete: bool,
    pub(crate) high_water_mark: usize,
    pub(crate) handler: Rc<dyn ConnectionHandler>,
    pub(crate) context: Option<Box<dyn Any>>,
}

impl TcpConnection {
    /// A connection registered with the poller for reading.
    pub(crate) fn new(
        stream: TcpStream,
        id: ConnId,
        handler: Rc<dyn ConnectionHandler>,
    ) -> TcpConnection {
        TcpConnection {
            stream,
            id,
            state: ConnState::Connected,
            input: Buffer::new(),
            output: Buffer::new(),
            written: 0,
            writing: false,
            reading: true,
            registered: Interest::READABLE,
            peer_closed: false,
            flush_pending: false,
            notify_write_complete: false,
            high_water_mark: DEFAULT_HIGH_WATER_MARK,
            handler,
            context: None,
        }
    }

    /// Tells the poller what the connection wants now, if that changed.
    fn update_interest(&mut self, poller: &Poller) {
        let wanted = Interest {
            readable: self.reading,
            writable: self.writing,
        };
        if wanted != self.registered {
            self.registered = wanted;
            let token = token(self.id.slot as usize, self.id.generation);
            let _ = poller.modify(&self.stream, token, wanted);
        }
    }

    fn enable_writing(&mut self, poller: &Poller) {
        self.writing = true;
        self.update_interest(poller);
    }

    /// Writes `data` at once when nothing is queued; queues the rest and arms EPOLLOUT. False
    /// if the connection no longer accepts output.
    pub(crate) fn send(&mut self, data: &[u8], io: &mut Io) -> bool {
        if self.state != ConnState::Connected {
            return false;
        }
        let mut written = 0;
        if !self.writing && self.output.is_empty() {
            match (&self.stream).write(data) {
                Ok(n) => {
                    written = n;
                    self.written += n as u64;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    log::debug!("{:?}: write failed: {e}", self.id);
                    io.deferred.push_back(Deferred::Close(self.id));
                    return false;
                }
            }
            if written == data.len() {
                if self.notify_write_complete {
                    io.deferred.push_back(Deferred::WriteComplete(self.id));
                }
                return true;
            }
        }
        self.queue(&data[written..], io);
        // The rest goes out when the socket is writable; nothing else would ever write it.
        self.enable_writing(io.poller);
        true
    }

    /// Queues `data` for the end of this turn, together with everything else queued for the
    /// connection in the turn: one `write` for a burst of messages.
    pub(crate) fn send_later(&mut self, data: &[u8], io: &mut Io) -> bool {
        if self.state != ConnState::Connected {
            return false;
        }
        self.queue(data, io);
        // While EPOLLOUT is armed it writes this too. Only a connection put on the dirty list
        // counts as flush-pending: marking one that is not would leave its next output unsent
        // once EPOLLOUT has drained the queue.
        if !self.flush_pending && !self.writing {
            self.flush_pending = true;
            io.dirty.push(self.id);
        }
        true
    }

    fn queue(&mut self, data: &[u8], io: &mut Io) {
        let before = self.output.readable_bytes();
        self.output.append(data);
        let after = before + data.len();
        if before < self.high_water_mark && after >= self.high_water_mark {
            io.deferred.push_back(Deferred::HighWater(self.id, after));
        }
    }

    /// The end-of-turn flush of `send_later` output (unless EPOLLOUT will write it anyway).
    pub(crate) fn flush(&mut self, io: &mut Io) {
        self.flush_pending = false;
        if !self.writing && !self.output.is_empty() {
            self.write_output(io);
        }
    }

    /// Writes queued output once; arms EPOLLOUT if some remains, disarms it when drained.
    pub(crate) fn write_output(&mut self, io: &mut Io) {
        match (&self.stream).write(self.output.peek()) {
            Ok(n) => {
                self.output.retrieve(n);
                self.written += n as u64;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                log::debug!("{:?}: write failed: {e}", self.id);
                io.deferred.push_back(Deferred::Close(self.id));
                return;
            }
        }
        if !self.output.is_empty() {
            if !self.writing {
                self.enable_writing(io.poller);
            }
            return;
        }
        self.output.release();
        self.writing = false;
        self.update_interest(io.poller);
        if self.peer_closed {
            io.deferred.push_back(Deferred::Close(self.id));
        } else if self.state == ConnState::Disconnecting {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if self.notify_write_complete {
            io.deferred.push_back(Deferred::WriteComplete(self.id));
        }
    }

    /// True while EPOLLOUT is armed, i.e. output waits for the socket to take it.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing
    }

    /// Half-closes: no more sends; the write side shuts once queued output is written.
    pub(crate) fn shutdown(&mut self) {
        if self.state != ConnState::Connected {
            return;
        }
        self.state = ConnState::Disconnecting;
        if !self.writing && self.output.is_empty() {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }

    /// Stops or resumes reading; while stopped, bytes wait in the kernel and TCP pushes back.
    pub(crate) fn set_reading(&mut self, on: bool, poller: &Poller) {
        if self.peer_closed || self.state == ConnState::Disconnected {
            return;
        }
        self.reading = on;
        self.update_interest(poller);
    }

    /// Stops reading and closes once queued output is written (at once if none is queued).
    pub(crate) fn close_after_flush(&mut self, io: &mut Io) {
        if self.state == ConnState::Disconnected {
            return;
        }
        self.peer_closed = true;
        self.state = ConnState::Disconnecting;
        self.reading = false;
        self.update_interest(io.poller);
        if !self.writing && self.output.is_empty() {
            io.deferred.push_back(Deferred::Close(self.id));
        }
    }

    /// Reads what the socket has into the input buffer (with `spill` past its free space).
    pub(crate) fn read(&mut self, spill: &mut [u8], poller: &Poller) -> ReadOutcome {
        if !self.reading {
            return ReadOutcome::Nothing;
        }
        match self.input.read_fd(&self.stream, spill) {
            Ok(0) => {
                // The peer half-closed: send what we still owe, then close.
                self.peer_closed = true;
                self.reading = false;
                if self.output.is_empty() {
                    return ReadOutcome::Close;
                }
                self.update_interest(poller);
                ReadOutcome::Nothing
            }
            Ok(_) => ReadOutcome::Data,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                ReadOutcome::Nothing
            }
            Err(e) => {
                log::debug!("{:?}: read failed: {e}", self.id);
                ReadOutcome::Close
            }
        }
    }
}
