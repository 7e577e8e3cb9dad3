//! Poller: a thin, safe wrapper over one epoll instance (nix), level-triggered.
//!
//! Level-triggered like muduo's, by choice: a handler may stop reading mid-burst (a frame limit,
//! a full output queue) and the next `epoll_wait` reports the fd again, so no handler has to
//! drain a socket to EAGAIN to stay correct, and a listener that cannot accept (out of fds) is
//! retried without bookkeeping. The cost is one `epoll_ctl` to arm EPOLLOUT while output is
//! pending and one to disarm it, which the connection does only on those transitions.

use super::channel::Interest;
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

const INITIAL_EVENTS: usize = 64;
const MAX_EVENTS: usize = 4096;

/// Readiness reported for one token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// EPOLLHUP without data to read: the peer is gone both ways.
    pub hangup: bool,
    pub error: bool,
}

impl Ready {
    fn from_flags(flags: EpollFlags) -> Ready {
        Ready {
            readable: flags
                .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLPRI | EpollFlags::EPOLLRDHUP),
            writable: flags.contains(EpollFlags::EPOLLOUT),
            hangup: flags.contains(EpollFlags::EPOLLHUP) && !flags.contains(EpollFlags::EPOLLIN),
            error: flags.contains(EpollFlags::EPOLLERR),
        }
    }
}

fn flags_for(interest: Interest) -> EpollFlags {
    let mut flags = EpollFlags::empty();
    if interest.readable {
        flags |= EpollFlags::EPOLLIN | EpollFlags::EPOLLPRI | EpollFlags::EPOLLRDHUP;
    }
    if interest.writable {
        flags |= EpollFlags::EPOLLOUT;
    }
    flags
}

/// One epoll instance and the event array it fills.
pub struct Poller {
    epoll: Epoll,
    events: Vec<EpollEvent>,
    ready: usize,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            events: vec![EpollEvent::empty(); INITIAL_EVENTS],
            ready: 0,
        })
    }

    pub fn add(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        Ok(self
            .epoll
            .add(fd, EpollEvent::new(flags_for(interest), token))?)
    }

    pub fn modify(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = EpollEvent::new(flags_for(interest), token);
        Ok(self.epoll.modify(fd, &mut event)?)
    }

    pub fn delete(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(self.epoll.delete(fd)?)
    }

    /// Waits for events (`None`: forever). Returns how many are ready; an interrupted wait
    /// returns 0 rather than an error, since a signal is no failure of the loop.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = match timeout {
            None => EpollTimeout::NONE,
            Some(d) => EpollTimeout::try_from(d).unwrap_or(EpollTimeout::MAX),
        };
        self.ready = match self.epoll.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        // A full array means more may be waiting: give the next wait more room.
        if self.ready == self.events.len() && self.events.len() < MAX_EVENTS {
            let len = self.events.len() * 2;
            self.events.resize(len, EpollEvent::empty());
        }
        Ok(self.ready)
    }

    /// The `i`-th event of the last `poll`, as `(token, readiness)`.
    pub fn event(&self, i: usize) -> (u64, Ready) {
        let event = &self.events[i.min(self.ready.saturating_sub(1))];
        (event.data(), Ready::from_flags(event.events()))
    }
}
