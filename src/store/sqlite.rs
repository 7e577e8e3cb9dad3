//! SqliteStore: the embedded default backend, one database file in WAL mode.

use std::path::Path;
use std::time::Duration;

use rusqlite::{ffi, params, OptionalExtension, TransactionBehavior};

use super::sqlite_pool::{ConnectionPool, PooledConnection};
use super::{
    fill_batch, Contact, FriendAdd, Group, GroupId, GroupJoin, GroupLeave, GroupRole, Member,
    OfflineBatch, Store, StoreResult, User, UserId,
};

const SCHEMA: &str = include_str!("../../sql/sqlite.sql");

/// How long a call waits for a free pooled connection before failing with `Busy`.
const POOL_WAIT: Duration = Duration::from_secs(5);

pub(super) struct SqliteStore {
    pool: ConnectionPool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and its parent directories,
    /// and creates the tables that are missing.
    pub(super) fn open(path: &Path, pool_size: usize) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let store = SqliteStore {
            pool: ConnectionPool::new(path.to_path_buf(), pool_size, POOL_WAIT),
        };
        store.conn()?.execute_batch(SCHEMA)?;
        Ok(store)
    }

    fn conn(&self) -> StoreResult<PooledConnection<'_>> {
        self.pool.get()
    }
}

/// Whether `e` is a constraint failure with this extended code (SQLITE_CONSTRAINT_*).
fn is_constraint(e: &rusqlite::Error, extended: std::ffi::c_int) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == extended)
}

fn is_duplicate(e: &rusqlite::Error) -> bool {
    is_constraint(e, ffi::SQLITE_CONSTRAINT_UNIQUE)
        || is_constraint(e, ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn is_missing_reference(e: &rusqlite::Error) -> bool {
    is_constraint(e, ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn create_user(&self, name: &str, password_hash: &str) -> StoreResult<Option<UserId>> {
        let conn = self.conn()?;
        let inserted = conn
            .prepare_cached("INSERT INTO user (name, password) VALUES (?1, ?2)")?
            .execute(params![name, password_hash]);
        match inserted {
            Ok(_) => Ok(Some(conn.last_insert_rowid())),
            Err(e) if is_duplicate(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let conn = self.conn()?;
        let user = conn
            .prepare_cached("SELECT id, name, password FROM user WHERE id = ?1")?
            .query_row([id], |row| {
                Ok(User {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    password_hash: row.get(2)?,
                })
            })
            .optional()?;
        Ok(user)
    }

    fn user_name(&self, id: UserId) -> StoreResult<Option<String>> {
        let conn = self.conn()?;
        let name = conn
            .prepare_cached("SELECT name FROM user WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        Ok(name)
    }

    fn add_friend(&self, user: UserId, friend: UserId) -> StoreResult<FriendAdd> {
        let conn = self.conn()?;
        // Users are never deleted, so the name read here is still valid at the insert.
        let name: Option<String> = conn
            .prepare_cached("SELECT name FROM user WHERE id = ?1")?
            .query_row([friend], |row| row.get(0))
            .optional()?;
        let Some(name) = name else {
            return Ok(FriendAdd::NoSuchUser);
        };
        let inserted = conn
            .prepare_cached("INSERT INTO friend (userid, friendid) VALUES (?1, ?2)")?
            .execute([user, friend]);
        match inserted {
            Ok(_) => Ok(FriendAdd::Added { name }),
            Err(e) if is_duplicate(&e) => Ok(FriendAdd::AlreadyFriends),
            // `user` itself does not exist.
            Err(e) if is_missing_reference(&e) => Ok(FriendAdd::NoSuchUser),
            Err(e) => Err(e.into()),
        }
    }

    fn remove_friend(&self, user: UserId, friend: UserId) -> StoreResult<bool> {
        let conn = self.conn()?;
        let removed = conn
            .prepare_cached("DELETE FROM friend WHERE userid = ?1 AND friendid = ?2")?
            .execute([user, friend])?;
        Ok(removed > 0)
    }

    fn friends(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT u.id, u.name FROM friend f JOIN user u ON u.id = f.friendid \
             WHERE f.userid = ?1 ORDER BY u.id",
        )?;
        let contacts = stmt
            .query_map([user], |row| {
                Ok(Contact {
                    id: row.get(0)?,
                    name: row.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(contacts)
    }

    fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
    ) -> StoreResult<Option<GroupId>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx
            .prepare_cached("INSERT INTO allgroup (groupname, groupdesc) VALUES (?1, ?2)")?
            .execute([name, desc]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let group = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO groupuser (groupid, userid, grouprole) VALUES (?1, ?2, 'creator')",
        )?
        .execute([group, creator])?;
        tx.commit()?;
        Ok(Some(group))
    }

    fn join_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupJoin> {
        let conn = self.conn()?;
        // One statement: the group's existence is checked by the same write that joins.
        let inserted = conn
            .prepare_cached(
                "INSERT INTO groupuser (groupid, userid, grouprole) \
                 SELECT id, ?2, 'normal' FROM allgroup WHERE id = ?1",
            )?
            .execute([group, user]);
        match inserted {
            Ok(0) => Ok(GroupJoin::NoSuchGroup),
            Ok(_) => Ok(GroupJoin::Joined),
            Err(e) if is_duplicate(&e) => Ok(GroupJoin::AlreadyMember),
            Err(e) => Err(e.into()),
        }
    }

    fn leave_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupLeave> {
        let conn = self.conn()?;
        let removed = conn
            .prepare_cached("DELETE FROM groupuser WHERE groupid = ?1 AND userid = ?2")?
            .execute([group, user])?;
        Ok(if removed > 0 {
            GroupLeave::Left
        } else {
            GroupLeave::NotMember
        })
    }

    fn groups_of(&self, user: UserId) -> StoreResult<Vec<Group>> {
        let mut conn = self.conn()?;
        // A read transaction: groups and members come from one snapshot.
        let tx = conn.transaction()?;
        let mut groups = tx
            .prepare_cached(
                "SELECT g.id, g.groupname, g.groupdesc FROM allgroup g \
                 JOIN groupuser gu ON gu.groupid = g.id \
                 WHERE gu.userid = ?1 ORDER BY g.id",
            )?
            .query_map([user], |row| {
                Ok(Group {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    desc: row.get(2)?,
                    members: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = tx.prepare_cached(
            "SELECT gu.groupid, u.id, u.name, gu.grouprole FROM groupuser gu \
             JOIN user u ON u.id = gu.userid \
             WHERE gu.groupid IN (SELECT groupid FROM groupuser WHERE userid = ?1) \
             ORDER BY gu.groupid, u.id",
        )?;
        let mut rows = stmt.query([user])?;
        while let Some(row) = rows.next()? {
            let group: GroupId = row.get(0)?;
            let role: String = row.get(3)?;
            let member = Member {
                id: row.get(1)?,
                name: row.get(2)?,
                role: GroupRole::parse(&role)?,
            };
            if let Ok(i) = groups.binary_search_by_key(&group, |g| g.id) {
                groups[i].members.push(member);
            }
        }
        Ok(groups)
    }

    fn group_member_ids(&self, group: GroupId) -> StoreResult<Option<Vec<UserId>>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM allgroup WHERE id = ?1")?
            .exists([group])?;
        if !exists {
            return Ok(None);
        }
        let ids = tx
            .prepare_cached("SELECT userid FROM groupuser WHERE groupid = ?1 ORDER BY userid")?
            .query_map([group], |row| row.get(0))?
            .collect::<Result<Vec<UserId>, _>>()?;
        Ok(Some(ids))
    }

    fn store_offline(&self, user: UserId, message: &str) -> StoreResult<bool> {
        let conn = self.conn()?;
        // INSERT ... SELECT stores nothing for a missing user instead of failing.
        let stored = conn
            .prepare_cached(
                "INSERT INTO offlinemessage (userid, message) SELECT id, ?2 FROM user WHERE id = ?1",
            )?
            .execute(params![user, message])?;
        Ok(stored > 0)
    }

    fn store_offline_batch(&self, items: &[(UserId, &str)]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO offlinemessage (userid, message) VALUES (?1, ?2)")?;
            for (user, message) in items {
                stmt.execute(params![user, message])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn take_offline(&self, user: UserId, max_bytes: usize) -> StoreResult<OfflineBatch> {
        let mut conn = self.conn()?;
        // Most logins find nothing: answer those without taking the write lock. A message
        // stored just after this check stays stored for the next take.
        let any = conn
            .prepare_cached("SELECT 1 FROM offlinemessage WHERE userid = ?1 LIMIT 1")?
            .exists([user])?;
        if !any {
            return Ok(OfflineBatch::default());
        }
        // IMMEDIATE takes the write lock before reading, so no insert lands between the
        // read and the delete, and no read-to-write upgrade can fail with SQLITE_BUSY.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (taken, more) = fill_batch(max_bytes, |after, limit| {
            tx.prepare_cached(
                "SELECT id, message FROM offlinemessage WHERE userid = ?1 AND id > ?2 \
                 ORDER BY id LIMIT ?3",
            )?
            .query_map((user, after, limit as i64), |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })?;
        if let Some(&(last, _)) = taken.last() {
            tx.prepare_cached("DELETE FROM offlinemessage WHERE userid = ?1 AND id <= ?2")?
                .execute([user, last])?;
        }
        tx.commit()?;
        Ok(OfflineBatch {
            messages: taken.into_iter().map(|(_, message)| message).collect(),
            more,
        })
    }

    fn store_offline_front(&self, user: UserId, messages: &[&str]) -> StoreResult<bool> {
        if messages.is_empty() {
            return Ok(true);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !tx
            .prepare_cached("SELECT 1 FROM user WHERE id = ?1")?
            .exists([user])?
        {
            return Ok(false);
        }
        // Ids give the order: the older rows move behind the new ones (same transaction, so
        // no take sees them half moved).
        let first_new: i64 = tx.query_row(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM offlinemessage",
            [],
            |row| row.get(0),
        )?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO offlinemessage (userid, message) VALUES (?1, ?2)")?;
            for message in messages {
                insert.execute(params![user, message])?;
            }
        }
        tx.execute(
            "INSERT INTO offlinemessage (userid, message) SELECT userid, message \
             FROM offlinemessage WHERE userid = ?1 AND id < ?2 ORDER BY id",
            [user, first_new],
        )?;
        tx.execute(
            "DELETE FROM offlinemessage WHERE userid = ?1 AND id < ?2",
            [user, first_new],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn put_token(&self, user: UserId, digest: &[u8], expires: i64, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("DELETE FROM resumetoken WHERE userid = ?1 AND expires <= ?2")?
            .execute(params![user, now])?;
        let stored = tx
            .prepare_cached(
                "INSERT INTO resumetoken (digest, userid, expires) SELECT ?1, id, ?3 FROM user \
                 WHERE id = ?2",
            )?
            .execute(params![digest, user, expires])?;
        tx.commit()?;
        Ok(stored > 0)
    }

    fn token_user(&self, digest: &[u8], now: i64) -> StoreResult<Option<UserId>> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT userid FROM resumetoken WHERE digest = ?1 AND expires > ?2")?
            .query_row(params![digest, now], |row| row.get(0))
            .optional()?)
    }

    fn drop_token(&self, digest: &[u8]) -> StoreResult<()> {
        self.conn()?
            .prepare_cached("DELETE FROM resumetoken WHERE digest = ?1")?
            .execute([digest])?;
        Ok(())
    }
}
