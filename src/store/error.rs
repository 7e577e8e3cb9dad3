//! StoreError: every way a storage call can fail, with a message fit for a log line.

use std::fmt;

/// Why a storage call failed. Expected outcomes (name taken, not a member, ...) are not
/// errors: they come back as `Option`s or the outcome enums of [`super::Store`].
#[derive(Debug)]
pub enum StoreError {
    /// The SQLite engine reported an error.
    Sqlite(rusqlite::Error),
    /// The MySQL server or driver reported an error.
    Mysql(::mysql::Error),
    /// The store URL or an option was unusable (bad scheme, bad database name, pool size 0).
    Config(String),
    /// No connection became free within the pool's wait limit.
    Busy,
    /// A row held something the schema should have ruled out (e.g. an unknown group role).
    Corrupt(String),
    /// The password hasher failed or was given unusable parameters.
    Password(String),
    /// Creating the SQLite file's directory failed.
    Io(std::io::Error),
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "sqlite: {e}"),
            StoreError::Mysql(e) => write!(f, "mysql: {e}"),
            StoreError::Config(msg) => write!(f, "store configuration: {msg}"),
            StoreError::Busy => write!(f, "store busy: no database connection free in time"),
            StoreError::Corrupt(msg) => write!(f, "unexpected data in the store: {msg}"),
            StoreError::Password(msg) => write!(f, "password hashing: {msg}"),
            StoreError::Io(e) => write!(f, "store file system: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sqlite(e) => Some(e),
            StoreError::Mysql(e) => Some(e),
            StoreError::Io(e) => Some(e),
            StoreError::Config(_)
            | StoreError::Busy
            | StoreError::Corrupt(_)
            | StoreError::Password(_) => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<::mysql::Error> for StoreError {
    fn from(e: ::mysql::Error) -> Self {
        StoreError::Mysql(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}
