//! TcpServer: the base loop accepts, I/O loops serve; connections are dealt round-robin.

use super::acceptor::ListenerId;
use super::event_loop::EventLoop;
use super::handler::ConnectionHandler;
use super::loop_handle::LoopHandle;
use super::socket::bind_listener;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the listening socket is set up.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// SO_REUSEPORT, so several processes can share one port.
    pub reuse_port: bool,
    pub backlog: i32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            reuse_port: false,
            backlog: 1024,
        }
    }
}

/// A listening server bound to a base loop. With no I/O loops every connection stays on the
/// base loop.
pub struct TcpServer {
    local_addr: SocketAddr,
    listener: ListenerId,
    io_loops: Vec<LoopHandle>,
}

impl TcpServer {
    /// Binds `addr` and starts accepting on `base`; each connection goes to the next of
    /// `io_loops` (queued there with `queue_in_loop`) and is served by `handler`.
    pub fn start(
        base: &mut EventLoop,
        addr: SocketAddr,
        options: ServerOptions,
        handler: Arc<dyn ConnectionHandler>,
        io_loops: Vec<LoopHandle>,
    ) -> io::Result<TcpServer> {
        let listener = bind_listener(addr, options.reuse_port, options.backlog)?;
        let local_addr = listener.local_addr()?;
        let loops = io_loops.clone();
        let mut next = 0usize;
        let id = base.add_listener(listener, move |lp, stream| {
            if loops.is_empty() {
                if let Err(e) = lp.adopt(stream, handler.clone()) {
                    log::warn!("cannot register a new connection: {e}");
                }
                return;
            }
            let target = &loops[next % loops.len()];
            next = next.wrapping_add(1);
            let handler = handler.clone();
            target.queue_in_loop(move |lp| {
                if let Err(e) = lp.adopt(stream, handler) {
                    log::warn!("cannot register a new connection: {e}");
                }
            });
        })?;
        Ok(TcpServer {
            local_addr,
            listener: id,
            io_loops,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Graceful stop: close the listener, then let every loop write what it owes, close its
    /// connections and quit (within `grace`). Call on the base loop; join the pool afterwards.
    pub fn stop(&self, base: &mut EventLoop, grace: Duration) {
        base.remove_listener(self.listener);
        for handle in &self.io_loops {
            handle.queue_in_loop(move |lp| lp.drain_and_quit(grace));
        }
        base.drain_and_quit(grace);
    }
}
