//! Protocol v1: framing of JSON objects and the typed msgid table.
//!
//! Pure code, no I/O. A connection's input goes through three steps:
//! 1. [`Framer::drain`] cuts JSON values out of the byte stream, one frame at a time;
//! 2. [`parse_request`] turns each into a typed [`Request`] (or a [`ParseError`]);
//! 3. the handler answers with a frame built by [`reply`] (chat messages are forwarded as is).
//!
//! Clients build their requests with [`build`].
//!
//! `docs/PROTOCOL.md` describes the wire format for client authors.

pub mod build;
mod error_code;
pub mod framer;
mod login_ack;
pub mod msgid;
pub mod reply;
pub mod request;
mod slot;
pub mod view;

#[cfg(test)]
mod tests;

pub use error_code::ErrorCode;
pub use framer::{Frame, FrameError, FrameInput, Framer, Scan, DEFAULT_MAX_FRAME};
pub use request::{parse_request, ParseError, Request, Secret, TOKEN_CHARS};
pub use view::{FriendView, GroupView, MemberView};
