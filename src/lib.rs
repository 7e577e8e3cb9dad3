//! chatserver: a cluster chat server on a hand-rolled epoll event loop, layered as muduo.
//!
//! Layers, each using only those below it: [`net`] (event loops, connections, buffers),
//! [`protocol`] (framing and typed messages), [`store`] (SQLite / MySQL persistence),
//! [`cluster`] (presence and delivery across servers over Redis), [`chat`] (handler table,
//! sessions, business rules). [`app`] wires them into the server process from a
//! [`config::Config`]; [`client`] is the interactive client's logic. Binaries in `src/bin/`
//! only parse arguments.

pub mod app;
pub mod bench;
pub mod chat;
pub mod client;
pub mod cluster;
pub mod config;
pub mod ids;
pub mod net;
pub mod protocol;
pub mod store;
