//! `ErrorCode`: the errno values carried by ERROR_MSG (msgid 11), with their messages.

use std::fmt;

/// Why the server refused a request. The numbers are part of the protocol: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadJson,
    NotObject,
    BadMsgId,
    UnknownMsgId,
    BadField,
    NotLoggedIn,
    IdMismatch,
    NotMember,
    NoSuchUser,
    NoSuchGroup,
    FrameTooLarge,
    Garbage,
    AlreadyLoggedIn,
    AlreadyFriends,
    AlreadyMember,
    GroupNameTaken,
    NotFriends,
    SelfFriend,
    Internal,
    BadValue,
    TimedOut,
    SlowReader,
}

impl ErrorCode {
    /// Every code, in numeric order (for tables and tests).
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::BadJson,
        ErrorCode::NotObject,
        ErrorCode::BadMsgId,
        ErrorCode::UnknownMsgId,
        ErrorCode::BadField,
        ErrorCode::NotLoggedIn,
        ErrorCode::IdMismatch,
        ErrorCode::NotMember,
        ErrorCode::NoSuchUser,
        ErrorCode::NoSuchGroup,
        ErrorCode::FrameTooLarge,
        ErrorCode::Garbage,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::AlreadyFriends,
        ErrorCode::AlreadyMember,
        ErrorCode::GroupNameTaken,
        ErrorCode::NotFriends,
        ErrorCode::SelfFriend,
        ErrorCode::Internal,
        ErrorCode::BadValue,
        ErrorCode::TimedOut,
        ErrorCode::SlowReader,
    ];

    /// The `errno` sent on the wire.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::BadJson => 1,
            ErrorCode::NotObject => 2,
            ErrorCode::BadMsgId => 3,
            ErrorCode::UnknownMsgId => 4,
            ErrorCode::BadField => 5,
            ErrorCode::NotLoggedIn => 6,
            ErrorCode::IdMismatch => 7,
            ErrorCode::NotMember => 8,
            ErrorCode::NoSuchUser => 9,
            ErrorCode::NoSuchGroup => 10,
            ErrorCode::FrameTooLarge => 11,
            ErrorCode::Garbage => 12,
            ErrorCode::AlreadyLoggedIn => 13,
            ErrorCode::AlreadyFriends => 14,
            ErrorCode::AlreadyMember => 15,
            ErrorCode::GroupNameTaken => 16,
            ErrorCode::NotFriends => 17,
            ErrorCode::SelfFriend => 18,
            ErrorCode::Internal => 19,
            ErrorCode::BadValue => 20,
            ErrorCode::TimedOut => 21,
            ErrorCode::SlowReader => 22,
        }
    }

    /// The `errmsg` sent on the wire (a detail such as a field name may be appended).
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "malformed JSON",
            ErrorCode::NotObject => "a frame must be a JSON object",
            ErrorCode::BadMsgId => "missing or non-integer msgid",
            ErrorCode::UnknownMsgId => "unknown msgid",
            ErrorCode::BadField => "missing or mistyped field",
            ErrorCode::NotLoggedIn => "log in first",
            ErrorCode::IdMismatch => "id is not the logged-in user",
            ErrorCode::NotMember => "not a member of this group",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::NoSuchGroup => "no such group",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::Garbage => "bytes outside any JSON object",
            ErrorCode::AlreadyLoggedIn => "already logged in on this connection",
            ErrorCode::AlreadyFriends => "already friends",
            ErrorCode::AlreadyMember => "already a member",
            ErrorCode::GroupNameTaken => "group name is already taken",
            ErrorCode::NotFriends => "not friends",
            ErrorCode::SelfFriend => "cannot befriend yourself",
            ErrorCode::Internal => "server error, try again",
            ErrorCode::BadValue => "invalid value",
            ErrorCode::TimedOut => "timed out",
            ErrorCode::SlowReader => "too far behind in reading",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl From<super::FrameError> for ErrorCode {
    fn from(err: super::FrameError) -> Self {
        match err {
            super::FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            super::FrameError::Garbage { .. } => ErrorCode::Garbage,
        }
    }
}
