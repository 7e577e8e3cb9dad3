//! Chat service: the handler table (msgid → handler), sessions, delivery and the business rules.
//!
//! How a request flows: [`ChatHandler`] frames and types it and checks the rules every
//! request shares; a handler in `cmd/` serves it, on the I/O loop when it needs no database
//! (chat between online users, ping, logout) and otherwise on a store worker
//! ([`ChatService::run_busy`]), whose result returns to the connection's loop. `delivery`
//! carries chat frames to their recipients under the no-loss rule.

mod backlog;
mod cmd;
mod conn_state;
mod delivery;
mod group_cache;
mod handler;
mod loops;
mod mid;
mod outbound;
mod outcome;
mod recent_cids;
mod resume_token;
mod service;
mod sessions;
mod store_pressure;
mod store_retry;
mod unconfirmed;
mod watchdog;
mod workers;

pub use handler::ChatHandler;
pub use service::{
    ChatConfig, ChatService, DEFAULT_HEARTBEAT, DEFAULT_LOGIN_IDLE, DEFAULT_OUTPUT_HIGH_WATER,
    DEFAULT_SEEDS_FRAME_GAP, DEFAULT_SLOW_READER_DEADLINE, DEFAULT_STORE_QUEUE_HIGH,
    DEFAULT_STORE_RETRY, DEFAULT_TOKEN_TTL,
};
pub use sessions::Sessions;
