//! Socket set-up helpers: listening sockets with the options muduo sets, and test conveniences.

use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Binds a non-blocking listening socket with SO_REUSEADDR and, when asked, SO_REUSEPORT
/// (which must be set before `bind`, hence nix rather than `TcpListener::bind`).
pub fn bind_listener(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuse_port {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let backlog = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog)?;
    Ok(TcpListener::from(fd))
}

/// Connects (blocking, with a timeout), then makes the stream non-blocking with TCP_NODELAY:
/// ready for `EventLoop::adopt`.
pub fn connect_nonblocking(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// SO_LINGER with a zero timeout: closing the socket then sends RST instead of FIN.
pub fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    socket::setsockopt(stream, sockopt::Linger, &linger)?;
    Ok(())
}

/// SO_KEEPALIVE with its three timers (seconds, at least 1). Failures are ignored: a socket
/// kind without TCP keepalive (Unix-domain, in tests) simply has none.
pub(crate) fn set_keepalive(stream: &TcpStream, idle: Duration, interval: Duration, probes: u32) {
    let secs = |d: Duration| d.as_secs().clamp(1, i32::MAX as u64) as u32;
    let _ = socket::setsockopt(stream, sockopt::KeepAlive, &true);
    let _ = socket::setsockopt(stream, sockopt::TcpKeepIdle, &secs(idle));
    let _ = socket::setsockopt(stream, sockopt::TcpKeepInterval, &secs(interval));
    let _ = socket::setsockopt(stream, sockopt::TcpKeepCount, &probes.max(1));
}
