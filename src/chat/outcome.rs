//! What a store job hands back to the connection's loop: a reply, a refusal, or more work
//! to do there (a login to finish, a group message to fan out).

use super::service::ChatService;
use crate::ids::ConnId;
use crate::net::EventLoop;
use crate::protocol::{reply, ErrorCode};
use crate::store::StoreError;
use std::sync::Arc;

/// Work that continues on the connection's loop once the store job is done.
pub(crate) type Continuation = Box<dyn FnOnce(&Arc<ChatService>, &mut EventLoop, ConnId) + Send>;

pub(crate) enum Outcome {
    /// Send this frame; the request is complete.
    Reply(Vec<u8>),
    /// Run this on the connection's loop.
    Then(Continuation),
}

impl Outcome {
    pub(crate) fn then(
        f: impl FnOnce(&Arc<ChatService>, &mut EventLoop, ConnId) + Send + 'static,
    ) -> Outcome {
        Outcome::Then(Box::new(f))
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The rules say no, with this code and maybe a detail.
    Code(ErrorCode, Option<&'static str>),
    /// The store failed: logged, answered as an internal error.
    Store(StoreError),
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Refusal {
        Refusal::Code(code, None)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

pub(crate) type JobResult = Result<Outcome, Refusal>;

impl Refusal {
    /// The frame that answers request `msgid` with this refusal.
    pub(crate) fn reply(&self, msgid: i64) -> Vec<u8> {
        match self {
            Refusal::Code(code, detail) => reply::refusal(*code, *detail, Some(msgid)),
            Refusal::Store(e) => {
                log::error!("request {msgid} failed in the store: {e}");
                reply::refusal(ErrorCode::Internal, None, Some(msgid))
            }
        }
    }
}
