//! Protocol v1: framing of JSON objects and the typed msgid table.
//!
//! Pure code, no I/O. A connection's input goes through three steps:
//! 1. [`Framer::next_frame`] cuts one JSON value out of the byte stream;
//! 2. [`parse_request`] turns it into a typed [`Request`] (or a [`ParseError`]);
//! 3. the handler answers with a frame built by [`reply`] (chat messages are forwarded as is).
//!
//! `docs/PROTOCOL.md` describes the wire format for client authors.

mod error_code;
pub mod framer;
pub mod msgid;
pub mod reply;
pub mod request;
mod slot;
pub mod view;

#[cfg(test)]
mod tests;

pub use error_code::ErrorCode;
pub use framer::{FrameError, Framer, Scan, DEFAULT_MAX_FRAME};
pub use request::{parse_request, ParseError, Request};
pub use view::{FriendView, GroupView, MemberView};
