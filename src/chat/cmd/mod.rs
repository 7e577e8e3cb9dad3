//! One module per group of commands, each request's handling side by side with its reply.

pub(crate) mod account;
pub(crate) mod chat;
pub(crate) mod contacts;
pub(crate) mod groups;
