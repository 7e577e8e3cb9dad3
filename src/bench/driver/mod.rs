//! The connection driver: client loops, per-connection contexts, shared counters, run phases.
//!
//! Client connections live on an [`EventLoopThreadPool`](crate::net::EventLoopThreadPool) of
//! the crate's own event loops. The main thread connects each socket (a blocking connect on
//! loopback is quick), hands it to a loop with `queue_in_loop`, and the loop `adopt`s it with
//! a [`Conn`] as its context. From then on everything about the connection happens on its
//! loop: the [`BenchHandler`] frames the input, reads each reply, and the connection's
//! [`Role`] decides what to send next. The main thread ([`Bench`]) only steers phases (set-up
//! steps, warm-up, measure, drain) and prints progress.
//!
//! The driver knows no scenario: each scenario brings its own [`Role`]s and drives a
//! [`Bench`], so new workloads need no change here.
//!
//! A chat message names its sender in its text; whichever loop receives it credits the
//! sender (directly when the sender lives on the same loop, else by a task on the sender's
//! loop), and every `per_msg` deliveries the sender's role may send one more: `--inflight N`
//! keeps N messages in flight per sender, for one recipient (chat) or a whole group.

mod conn;
mod handler;
mod run;
mod shared;

pub use conn::{send_chat, send_with, Conn, Role, Route, SendMode, Step};
pub use handler::BenchHandler;
pub use run::{Bench, Window};
pub use shared::{Phase, SenderSlot, Shared, User};
