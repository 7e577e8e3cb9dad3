//! Persistence: the Store trait and its SQLite and MySQL backends.
//!
//! Every method blocks on the database, so callers run them on store worker threads, never
//! on an I/O loop. Both backends implement the same contract and pass the same test suite
//! (`tests/store_suite.rs`); schemas live in `sql/`.

mod error;
mod mysql;
mod mysql_schema;
pub mod password;
mod sqlite;
mod sqlite_pool;

use std::sync::Arc;

pub use error::{StoreError, StoreResult};
pub use password::PasswordHasher;

pub use crate::ids::{GroupId, UserId};

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// Argon2id PHC string; check it with [`PasswordHasher::verify`].
    pub password_hash: String,
}

/// A friend as listed to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: UserId,
    pub name: String,
}

/// A member's standing in a group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GroupRole {
    Creator,
    Normal,
}

impl GroupRole {
    /// The seeds' spelling, stored in `groupuser.grouprole` and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Creator => "creator",
            GroupRole::Normal => "normal",
        }
    }

    /// Reads a stored role; anything else means the table holds data the schema forbids.
    pub(crate) fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "creator" => Ok(GroupRole::Creator),
            "normal" => Ok(GroupRole::Normal),
            other => Err(StoreError::Corrupt(format!("unknown group role {other:?}"))),
        }
    }
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: UserId,
    pub name: String,
    pub role: GroupRole,
}

/// A group with its members (ordered by user id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub desc: String,
    pub members: Vec<Member>,
}

/// What one [`Store::take_offline`] handed over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfflineBatch {
    pub messages: Vec<String>,
    /// Messages are still stored for the user after this batch.
    pub more: bool,
}

/// Rows read per query while filling a batch.
pub(crate) const TAKE_PAGE: usize = 256;

/// Picks the prefix of `rows` (id, text) that a batch of `max_bytes` takes: every row until
/// the texts reach the budget (at least one). Returns how many.
fn batch_prefix(rows: &[(i64, String)], max_bytes: usize, taken_bytes: &mut usize) -> usize {
    let mut n = 0;
    for (_, text) in rows {
        if n > 0 && *taken_bytes >= max_bytes {
            break;
        }
        *taken_bytes += text.len();
        n += 1;
        if *taken_bytes >= max_bytes {
            break;
        }
    }
    n
}

/// The rows (id, text) one take hands over, oldest first, and whether more stay stored.
/// `rows(after, limit)` reads up to `limit` of the user's rows with an id past `after`, in
/// id order, inside the backend's transaction.
pub(crate) fn fill_batch<E>(
    max_bytes: usize,
    mut rows: impl FnMut(i64, usize) -> Result<Vec<(i64, String)>, E>,
) -> Result<(Vec<(i64, String)>, bool), E> {
    let mut taken: Vec<(i64, String)> = Vec::new();
    let mut taken_bytes = 0;
    loop {
        let after = taken.last().map_or(i64::MIN, |&(id, _)| id);
        let page = rows(after, TAKE_PAGE)?;
        let n = batch_prefix(&page, max_bytes, &mut taken_bytes);
        let (full_page, cut) = (page.len() == TAKE_PAGE, n < page.len());
        taken.extend(page.into_iter().take(n));
        if cut {
            return Ok((taken, true));
        }
        if !full_page {
            return Ok((taken, false));
        }
        if taken_bytes >= max_bytes {
            let after = taken.last().map_or(i64::MIN, |&(id, _)| id);
            let more = !rows(after, 1)?.is_empty();
            return Ok((taken, more));
        }
    }
}

/// Outcome of [`Store::add_friend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FriendAdd {
    /// Added; `name` is the friend's name, handy for the reply.
    Added {
        name: String,
    },
    AlreadyFriends,
    NoSuchUser,
}

/// Outcome of [`Store::join_group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupJoin {
    Joined,
    AlreadyMember,
    NoSuchGroup,
}

/// Outcome of [`Store::leave_group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLeave {
    Left,
    NotMember,
}

/// The chat server's storage. Implementations are shared by all store workers, so every
/// method takes `&self` and may run concurrently with any other.
pub trait Store: Send + Sync {
    /// `"sqlite"` or `"mysql"`.
    fn backend_name(&self) -> &'static str;
    /// Registers a user; `None` when the name is taken.
    fn create_user(&self, name: &str, password_hash: &str) -> StoreResult<Option<UserId>>;
    fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    fn user_name(&self, id: UserId) -> StoreResult<Option<String>>;
    /// Makes `friend` a friend of `user` (one direction only, as in the seeds).
    fn add_friend(&self, user: UserId, friend: UserId) -> StoreResult<FriendAdd>;
    /// `false` when they were not friends.
    fn remove_friend(&self, user: UserId, friend: UserId) -> StoreResult<bool>;
    /// `user`'s friends, ordered by id.
    fn friends(&self, user: UserId) -> StoreResult<Vec<Contact>>;
    /// Creates a group with `creator` as its member of role Creator, atomically; `None` when
    /// the name is taken.
    fn create_group(&self, creator: UserId, name: &str, desc: &str)
        -> StoreResult<Option<GroupId>>;
    fn join_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupJoin>;
    fn leave_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupLeave>;
    /// The groups `user` belongs to, ordered by id, each with its members ordered by id.
    fn groups_of(&self, user: UserId) -> StoreResult<Vec<Group>>;
    /// Ids of a group's members, ordered; `None` when there is no such group.
    fn group_member_ids(&self, group: GroupId) -> StoreResult<Option<Vec<UserId>>>;
    /// Stores a message for a user who is away; `false` (nothing stored) when there is no
    /// such user.
    fn store_offline(&self, user: UserId, message: &str) -> StoreResult<bool>;
    /// Stores several messages in one transaction: all or none. Every recipient must exist,
    /// otherwise the whole batch fails with an error.
    fn store_offline_batch(&self, items: &[(UserId, &str)]) -> StoreResult<()>;
    /// Hands over and deletes `user`'s oldest stored messages, in arrival order: whole
    /// messages, until their text reaches `max_bytes` (at least one, however long). The read
    /// and the delete are one transaction, so a message stored concurrently is either in
    /// this result or still stored for the next take: never lost, never delivered twice.
    fn take_offline(&self, user: UserId, max_bytes: usize) -> StoreResult<OfflineBatch>;
    /// Stores `messages` for `user` ahead of what is stored for the user already (they are
    /// older: taken and never delivered), in one transaction. False if `user` does not exist.
    fn store_offline_front(&self, user: UserId, messages: &[&str]) -> StoreResult<bool>;
    /// Keeps a resume token's digest for `user` until `expires` (Unix seconds), and forgets
    /// the user's tokens that expired by `now`. False if `user` does not exist.
    fn put_token(&self, user: UserId, digest: &[u8], expires: i64, now: i64) -> StoreResult<bool>;
    /// Whose token this digest is, if it is known and has not expired by `now`.
    fn token_user(&self, digest: &[u8], now: i64) -> StoreResult<Option<UserId>>;
    /// Forgets a token (logout); forgetting an unknown one is not an error.
    fn drop_token(&self, digest: &[u8]) -> StoreResult<()>;
}

/// Opens a store from a URL: `sqlite:PATH` (e.g. `sqlite:data/chat.db`) or
/// `mysql://USER:PASS@HOST:PORT/DB`. `pool_size` bounds the number of connections, which is
/// how many store calls can run at once. Creates what is missing: the SQLite file and its
/// directory, the MySQL database, and the tables.
pub fn open(url: &str, pool_size: usize) -> StoreResult<Arc<dyn Store>> {
    if pool_size == 0 {
        return Err(StoreError::Config("pool size must be at least 1".into()));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        // Accept `sqlite://PATH` too, the spelling other tools use.
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Config(format!("no file path in {url:?}")));
        }
        Ok(Arc::new(sqlite::SqliteStore::open(
            path.as_ref(),
            pool_size,
        )?))
    } else if url.starts_with("mysql://") {
        Ok(Arc::new(mysql::MysqlStore::open(url, pool_size)?))
    } else {
        Err(StoreError::Config(format!(
            "unknown store URL {url:?}: expected sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB"
        )))
    }
}
