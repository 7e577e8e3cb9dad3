//! Unit tests of the protocol layer, one file per module under test.

mod framer;
mod reply;
mod request;
