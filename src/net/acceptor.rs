//! Acceptor: a listening socket that accepts with accept4(NONBLOCK|CLOEXEC) until EAGAIN.
//!
//! Out of file descriptors, a level-triggered listener would be reported ready forever and the
//! loop would spin. muduo's answer, kept here: hold one spare fd (/dev/null); on EMFILE/ENFILE
//! close it, accept the pending connection, close that at once (the client sees an orderly
//! close rather than a hang), and reopen the spare. If even the spare cannot be had, the caller
//! pauses the listener for a moment instead of spinning.

use super::channel::{token, Interest};
use super::event_loop::{EventLoop, Source};
use nix::errno::Errno;
use nix::sys::socket::{accept4, SockFlag};
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// At most this many accepts per readiness event, so a connect storm cannot starve the
/// loop's other work; level triggering brings the listener back on the next turn.
const ACCEPT_BUDGET: usize = 256;

pub(crate) type AcceptCallback = Box<dyn FnMut(&mut EventLoop, TcpStream)>;

pub(crate) enum AcceptStop {
    /// Nothing more to accept now (EAGAIN), or the budget is used.
    Drained,
    /// Out of fds with no spare to free: pause the listener.
    OutOfFds,
}

pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    spare: Option<File>,
    pub(crate) on_accept: Option<AcceptCallback>,
    /// Connections accepted and closed at once because the process was out of fds (logged).
    refused: u64,
}

fn wrap(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful accept4, so it is open and owned by no
    // one else; wrapping it makes it closed exactly once, when the OwnedFd drops.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl Acceptor {
    pub(crate) fn new(
        listener: TcpListener,
        on_accept: AcceptCallback,
    ) -> std::io::Result<Acceptor> {
        listener.set_nonblocking(true)?;
        Ok(Acceptor {
            listener,
            spare: File::open("/dev/null").ok(),
            on_accept: Some(on_accept),
            refused: 0,
        })
    }

    /// Accepts what is pending into `out`.
    pub(crate) fn accept_pending(&mut self, out: &mut Vec<TcpStream>) -> AcceptStop {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        for _ in 0..ACCEPT_BUDGET {
            match accept4(self.listener.as_raw_fd(), flags) {
                Ok(fd) => out.push(TcpStream::from(wrap(fd))),
                Err(Errno::EAGAIN) => return AcceptStop::Drained,
                Err(Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM) => continue,
                Err(Errno::EMFILE | Errno::ENFILE) => {
                    if self.spare.take().is_none() {
                        return AcceptStop::OutOfFds;
                    }
                    if let Ok(fd) = accept4(self.listener.as_raw_fd(), flags) {
                        drop(wrap(fd));
                        self.refused += 1;
                    }
                    self.spare = File::open("/dev/null").ok();
                    if self.refused.is_power_of_two() {
                        log::warn!(
                            "out of file descriptors: {} connections refused so far",
                            self.refused
                        );
                    }
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM: transient; try again on the next turn.
                    log::warn!("accept4 failed: {e}");
                    return AcceptStop::Drained;
                }
            }
        }
        AcceptStop::Drained
    }
}

/// Names a listener registered with `add_listener`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerId(usize, u32);

/// The loop's side of its listeners.
impl EventLoop {
    /// Registers a listening socket; `on_accept` gets each accepted (non-blocking) stream.
    pub fn add_listener(
        &mut self,
        listener: TcpListener,
        on_accept: impl FnMut(&mut EventLoop, TcpStream) + 'static,
    ) -> std::io::Result<ListenerId> {
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

    /// Stops accepting on `id` and closes its socket.
    pub fn remove_listener(&mut self, id: ListenerId) {
        let ours = matches!(self.sources.get(id.0), Some((g, Source::Listener(_))) if *g == id.1);
        if ours {
            if let (_, Source::Listener(acceptor)) = self.sources.remove(id.0) {
                let _ = self.poller.delete(&acceptor.listener);
            }
        }
    }

    pub(crate) fn handle_accept(&mut self, slot: usize) {
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
}
