//! Network core: muduo's event-loop layer in Rust — poller, loops, channels, acceptor, connections, buffers.
//!
//! One [`EventLoop`] per thread owns an epoll [`Poller`], a slab of sources (connections,
//! listeners, its wakeup eventfd, its timerfd, signalfds) and a timer queue. Other threads reach
//! a loop only through its [`LoopHandle`] (`queue_in_loop`, `quit`), and name a
//! connection only by its [`ConnId`], whose generation keeps a stale id from ever reaching a
//! reused slot. A [`TcpServer`] accepts on a base loop and deals connections round-robin to the
//! loops of an [`EventLoopThreadPool`]; a [`ConnectionHandler`] gets the events.
//!
//! ```no_run
//! use chatserver::net::{Buffer, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool, ServerOptions, TcpServer};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl ConnectionHandler for Echo {
//!     fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
//!         lp.send(conn, input.peek());
//!         input.retrieve_all();
//!     }
//! }
//!
//! let mut base = EventLoop::new(0).unwrap();
//! let pool = EventLoopThreadPool::start(2, "io").unwrap();
//! let addr = "127.0.0.1:7000".parse().unwrap();
//! let _server = TcpServer::start(&mut base, addr, ServerOptions::default(), Arc::new(Echo), pool.handles()).unwrap();
//! base.run();
//! ```
//!
//! All `unsafe` of the crate lives in this module, each block with a `// SAFETY:` line.

mod acceptor;
mod buffer;
mod channel;
mod connection;
mod connections;
mod event_loop;
mod handler;
mod loop_handle;
mod poller;
mod server;
mod signals;
mod socket;
mod thread_pool;
mod timer_queue;

pub use crate::ids::ConnId;
pub use acceptor::ListenerId;
pub use buffer::Buffer;
pub use channel::Interest;
pub use connection::DEFAULT_HIGH_WATER_MARK;
pub use event_loop::EventLoop;
pub use handler::ConnectionHandler;
pub use loop_handle::{LoopHandle, Task};
pub use poller::{Poller, Ready};
pub use server::{ServerOptions, TcpServer};
pub use signals::block_termination_signals;
pub use socket::{bind_listener, connect_nonblocking, set_linger_zero};
pub use thread_pool::EventLoopThreadPool;
pub use timer_queue::TimerId;
