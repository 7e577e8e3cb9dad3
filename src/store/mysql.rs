//! MysqlStore: the cluster backend, on the `mysql` crate's connection pool.

use std::time::Duration;

use ::mysql::prelude::{FromRow, Queryable};
use ::mysql::{
    Conn, DriverError, Error as MysqlError, FromRowError, IsolationLevel, Opts, OptsBuilder, Pool,
    PoolConstraints, PoolOpts, PooledConn, Transaction, TxOpts,
};

use super::mysql_schema::schema_statements;
use super::{
    fill_batch, Contact, FriendAdd, Group, GroupId, GroupJoin, GroupLeave, GroupRole, Member,
    OfflineBatch, Store, StoreError, StoreResult, User, UserId,
};

const SCHEMA: &str = include_str!("../../sql/mysql.sql");

/// How long a call waits for a free pooled connection before failing with `Busy`; without
/// a limit the driver would wait forever.
const POOL_WAIT: Duration = Duration::from_secs(5);

// Server error codes acted upon: a duplicate key or a missing referenced row is an
// expected outcome (name taken, no such user), an unknown database is created.
const ER_DUP_ENTRY: u16 = 1062;
const ER_BAD_DB_ERROR: u16 = 1049;
const ER_NO_REFERENCED_ROW: u16 = 1452;
/// InnoDB gave up a transaction to break a lock cycle: running it again is the cure.
const ER_LOCK_DEADLOCK: u16 = 1213;
const DEADLOCK_RETRIES: usize = 5;

pub(super) struct MysqlStore {
    pool: Pool,
}

impl MysqlStore {
    /// Connects to `url`, creating its database if missing, and creates missing tables.
    pub(super) fn open(url: &str, pool_size: usize) -> StoreResult<Self> {
        let opts =
            Opts::from_url(url).map_err(|e| StoreError::Config(format!("bad MySQL URL: {e}")))?;
        let db = opts
            .get_db_name()
            .filter(|db| !db.is_empty())
            .ok_or_else(|| StoreError::Config("the MySQL URL names no database".into()))?
            .to_owned();
        // The name goes into DDL text (no placeholders there), so only plain names pass.
        if !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Config(format!(
                "database name {db:?} must be letters, digits and underscores"
            )));
        }
        let constraints = PoolConstraints::new(1, pool_size)
            .ok_or_else(|| StoreError::Config(format!("bad pool size {pool_size}")))?;
        // No reset on return: calls leave no session state (transactions end by commit or
        // rollback-on-drop), and a reset costs a round trip plus re-running `init`.
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_reset_connection(false);
        let builder = OptsBuilder::from_opts(opts)
            .init(vec!["SET NAMES utf8mb4"])
            .pool_opts(pool_opts);

        let pool = match Pool::new(builder.clone()) {
            Err(e) if server_code(&e) == Some(ER_BAD_DB_ERROR) => {
                let mut conn = Conn::new(builder.clone().db_name(None::<String>))?;
                conn.query_drop(format!(
                    "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"
                ))?;
                drop(conn);
                Pool::new(builder)?
            }
            other => other?,
        };
        let store = MysqlStore { pool };
        let mut conn = store.conn()?;
        for statement in schema_statements(SCHEMA) {
            conn.query_drop(statement)?;
        }
        Ok(store)
    }

    fn conn(&self) -> StoreResult<PooledConn> {
        self.pool.try_get_conn(POOL_WAIT).map_err(|e| match e {
            MysqlError::DriverError(DriverError::Timeout) => StoreError::Busy,
            other => other.into(),
        })
    }

    /// Runs a transaction (or one autocommit statement), again if InnoDB chose it as a
    /// deadlock victim: it was then rolled back whole, so running it again is safe.
    fn retrying<T>(
        &self,
        mut body: impl FnMut(&mut PooledConn) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn()?;
        let mut attempt = 1;
        loop {
            match body(&mut conn) {
                Err(StoreError::Mysql(e))
                    if server_code(&e) == Some(ER_LOCK_DEADLOCK) && attempt < DEADLOCK_RETRIES =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The server's error code, when the error came from the server.
fn server_code(e: &MysqlError) -> Option<u16> {
    match e {
        MysqlError::MySqlError(e) => Some(e.code),
        _ => None,
    }
}

/// Rows decoded without the driver's panicking conversions.
fn decoded<T: FromRow>(rows: Vec<Result<T, FromRowError>>) -> StoreResult<Vec<T>> {
    rows.into_iter()
        .map(|row| row.map_err(|e| StoreError::Corrupt(format!("unexpected row: {e}"))))
        .collect()
}

fn decoded_first<T: FromRow>(row: Option<Result<T, FromRowError>>) -> StoreResult<Option<T>> {
    row.map(|r| r.map_err(|e| StoreError::Corrupt(format!("unexpected row: {e}"))))
        .transpose()
}

/// The id the last INSERT generated, as our id type.
fn inserted_id(id: Option<u64>) -> StoreResult<i64> {
    let id = id.ok_or_else(|| StoreError::Corrupt("INSERT generated no id".into()))?;
    i64::try_from(id).map_err(|_| StoreError::Corrupt(format!("insert id {id} out of range")))
}

impl Store for MysqlStore {
    fn backend_name(&self) -> &'static str {
        "mysql"
    }

    fn create_user(&self, name: &str, password_hash: &str) -> StoreResult<Option<UserId>> {
        let mut conn = self.conn()?;
        let inserted = conn.exec_drop(
            "INSERT INTO `user` (name, password) VALUES (?, ?)",
            (name, password_hash),
        );
        match inserted {
            Ok(()) => Ok(Some(inserted_id(Some(conn.last_insert_id()))?)),
            Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let mut conn = self.conn()?;
        let row = conn.exec_first_opt::<(i64, String, String), _, _>(
            "SELECT id, name, password FROM `user` WHERE id = ?",
            (id,),
        )?;
        Ok(decoded_first(row)?.map(|(id, name, password_hash)| User {
            id,
            name,
            password_hash,
        }))
    }

    fn user_name(&self, id: UserId) -> StoreResult<Option<String>> {
        let mut conn = self.conn()?;
        let row = conn.exec_first_opt("SELECT name FROM `user` WHERE id = ?", (id,))?;
        decoded_first(row)
    }

    fn add_friend(&self, user: UserId, friend: UserId) -> StoreResult<FriendAdd> {
        let mut conn = self.conn()?;
        // Users are never deleted, so the name read here is still valid at the insert.
        let row = conn.exec_first_opt("SELECT name FROM `user` WHERE id = ?", (friend,))?;
        let Some(name) = decoded_first::<String>(row)? else {
            return Ok(FriendAdd::NoSuchUser);
        };
        let inserted = conn.exec_drop(
            "INSERT INTO friend (userid, friendid) VALUES (?, ?)",
            (user, friend),
        );
        match inserted {
            Ok(()) => Ok(FriendAdd::Added { name }),
            Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => Ok(FriendAdd::AlreadyFriends),
            // `user` itself does not exist.
            Err(e) if server_code(&e) == Some(ER_NO_REFERENCED_ROW) => Ok(FriendAdd::NoSuchUser),
            Err(e) => Err(e.into()),
        }
    }

    fn remove_friend(&self, user: UserId, friend: UserId) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            "DELETE FROM friend WHERE userid = ? AND friendid = ?",
            (user, friend),
        )?;
        Ok(conn.affected_rows() > 0)
    }

    fn friends(&self, user: UserId) -> StoreResult<Vec<Contact>> {
        let mut conn = self.conn()?;
        let rows = conn.exec_opt::<(i64, String), _, _>(
            "SELECT u.id, u.name FROM friend f JOIN `user` u ON u.id = f.friendid \
             WHERE f.userid = ? ORDER BY u.id",
            (user,),
        )?;
        Ok(decoded(rows)?
            .into_iter()
            .map(|(id, name)| Contact { id, name })
            .collect())
    }

    fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
    ) -> StoreResult<Option<GroupId>> {
        let mut conn = self.conn()?;
        let mut tx = conn.start_transaction(TxOpts::default())?;
        let inserted = tx.exec_drop(
            "INSERT INTO allgroup (groupname, groupdesc) VALUES (?, ?)",
            (name, desc),
        );
        match inserted {
            Ok(()) => {}
            // Dropping `tx` rolls back.
            Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let group = inserted_id(tx.last_insert_id())?;
        tx.exec_drop(
            "INSERT INTO groupuser (groupid, userid, grouprole) VALUES (?, ?, 'creator')",
            (group, creator),
        )?;
        tx.commit()?;
        Ok(Some(group))
    }

    fn join_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupJoin> {
        let mut conn = self.conn()?;
        // One statement: the group's existence is checked by the same write that joins.
        let inserted = conn.exec_drop(
            "INSERT INTO groupuser (groupid, userid, grouprole) \
             SELECT id, ?, 'normal' FROM allgroup WHERE id = ?",
            (user, group),
        );
        match inserted {
            Ok(()) if conn.affected_rows() == 0 => Ok(GroupJoin::NoSuchGroup),
            Ok(()) => Ok(GroupJoin::Joined),
            Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => Ok(GroupJoin::AlreadyMember),
            Err(e) => Err(e.into()),
        }
    }

    fn leave_group(&self, user: UserId, group: GroupId) -> StoreResult<GroupLeave> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            "DELETE FROM groupuser WHERE groupid = ? AND userid = ?",
            (group, user),
        )?;
        Ok(if conn.affected_rows() > 0 {
            GroupLeave::Left
        } else {
            GroupLeave::NotMember
        })
    }

    fn groups_of(&self, user: UserId) -> StoreResult<Vec<Group>> {
        let mut conn = self.conn()?;
        // One read-only transaction: groups and members come from one snapshot.
        let mut tx = conn.start_transaction(
            TxOpts::default()
                .set_with_consistent_snapshot(true)
                .set_access_mode(Some(::mysql::AccessMode::ReadOnly)),
        )?;
        let rows = tx.exec_opt::<(i64, String, String), _, _>(
            "SELECT g.id, g.groupname, g.groupdesc FROM allgroup g \
             JOIN groupuser gu ON gu.groupid = g.id \
             WHERE gu.userid = ? ORDER BY g.id",
            (user,),
        )?;
        let mut groups: Vec<Group> = decoded(rows)?
            .into_iter()
            .map(|(id, name, desc)| Group {
                id,
                name,
                desc,
                members: Vec::new(),
            })
            .collect();
        let rows = tx.exec_opt::<(i64, i64, String, String), _, _>(
            "SELECT gu.groupid, u.id, u.name, gu.grouprole FROM groupuser gu \
             JOIN `user` u ON u.id = gu.userid \
             WHERE gu.groupid IN (SELECT groupid FROM groupuser WHERE userid = ?) \
             ORDER BY gu.groupid, u.id",
            (user,),
        )?;
        for (group, id, name, role) in decoded(rows)? {
            let member = Member {
                id,
                name,
                role: GroupRole::parse(&role)?,
            };
            if let Ok(i) = groups.binary_search_by_key(&group, |g| g.id) {
                groups[i].members.push(member);
            }
        }
        tx.commit()?;
        Ok(groups)
    }

    fn group_member_ids(&self, group: GroupId) -> StoreResult<Option<Vec<UserId>>> {
        let mut conn = self.conn()?;
        let exists =
            conn.exec_first_opt::<i64, _, _>("SELECT id FROM allgroup WHERE id = ?", (group,))?;
        if decoded_first(exists)?.is_none() {
            return Ok(None);
        }
        let rows = conn.exec_opt(
            "SELECT userid FROM groupuser WHERE groupid = ? ORDER BY userid",
            (group,),
        )?;
        Ok(Some(decoded(rows)?))
    }

    fn store_offline(&self, user: UserId, message: &str) -> StoreResult<bool> {
        // INSERT ... SELECT stores nothing for a missing user instead of failing.
        self.retrying(|conn| {
            conn.exec_drop(
                "INSERT INTO offlinemessage (userid, message) \
                 SELECT id, ? FROM `user` WHERE id = ?",
                (message, user),
            )?;
            Ok(conn.affected_rows() > 0)
        })
    }

    fn store_offline_batch(&self, items: &[(UserId, &str)]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.retrying(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            tx.exec_batch(
                "INSERT INTO offlinemessage (userid, message) VALUES (?, ?)",
                items.iter().map(|&(user, message)| (user, message)),
            )?;
            Ok(tx.commit()?)
        })
    }

    fn store_offline_front(&self, user: UserId, messages: &[&str]) -> StoreResult<bool> {
        if messages.is_empty() {
            return Ok(true);
        }
        self.retrying(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            // Locks the user's rows (and the gap after them), as take_offline does.
            let exists: Option<i64> =
                tx.exec_first("SELECT id FROM `user` WHERE id = ? FOR UPDATE", (user,))?;
            if exists.is_none() {
                tx.rollback()?;
                return Ok(false);
            }
            let older: Vec<(i64, String)> = tx.exec(
                "SELECT id, message FROM offlinemessage FORCE INDEX (userid) \
                 WHERE userid = ? ORDER BY id FOR UPDATE",
                (user,),
            )?;
            tx.exec_batch(
                "INSERT INTO offlinemessage (userid, message) VALUES (?, ?)",
                messages
                    .iter()
                    .map(|&m| (user, m))
                    .chain(older.iter().map(|(_, m)| (user, m.as_str()))),
            )?;
            if let Some(&(last, _)) = older.last() {
                delete_through(&mut tx, user, last)?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn take_offline(&self, user: UserId, max_bytes: usize) -> StoreResult<OfflineBatch> {
        self.retrying(|conn| {
            // Repeatable read, whatever the server's default: its next-key locks are what
            // makes the delete below remove exactly the rows read.
            let mut tx = conn.start_transaction(
                TxOpts::default().set_isolation_level(Some(IsolationLevel::RepeatableRead)),
            )?;
            // FOR UPDATE reads the latest committed rows (not a snapshot) and locks them
            // and the gap after them in the (userid, id) index, so no message for this user
            // can be stored until commit: a concurrent store waits and lands in the next
            // take. Rows are decoded before anything is deleted, so an undecodable row
            // fails the take and stays stored.
            //
            // Both statements are pinned to that index. On a small table the optimizer
            // likes a full scan, which would lock other users' half-inserted rows and
            // deadlock with their inserts (the insert holds its primary-key record and
            // waits for our gap lock). The delete uses the multi-table syntax because
            // that is where MySQL and MariaDB both accept an index hint.
            let (taken, more) = fill_batch(max_bytes, |after, limit| {
                decoded(tx.exec_opt::<(i64, String), _, _>(
                    "SELECT id, message FROM offlinemessage FORCE INDEX (userid) \
                     WHERE userid = ? AND id > ? ORDER BY id LIMIT ? FOR UPDATE",
                    (user, after, limit as u64),
                )?)
            })?;
            if let Some(&(last, _)) = taken.last() {
                delete_through(&mut tx, user, last)?;
            }
            tx.commit()?;
            Ok(OfflineBatch {
                messages: taken.into_iter().map(|(_, message)| message).collect(),
                more,
            })
        })
    }

    fn put_token(&self, user: UserId, digest: &[u8], expires: i64, now: i64) -> StoreResult<bool> {
        self.retrying(|conn| {
            let mut tx = conn.start_transaction(TxOpts::default())?;
            tx.exec_drop(
                "DELETE FROM resumetoken WHERE userid = ? AND expires <= ?",
                (user, now),
            )?;
            tx.exec_drop(
                "INSERT INTO resumetoken (digest, userid, expires) \
                 SELECT ?, id, ? FROM `user` WHERE id = ?",
                (digest, expires, user),
            )?;
            let stored = tx.affected_rows() > 0;
            tx.commit()?;
            Ok(stored)
        })
    }

    fn token_user(&self, digest: &[u8], now: i64) -> StoreResult<Option<UserId>> {
        let row = self.conn()?.exec_first_opt(
            "SELECT userid FROM resumetoken WHERE digest = ? AND expires > ?",
            (digest, now),
        )?;
        decoded_first(row)
    }

    fn drop_token(&self, digest: &[u8]) -> StoreResult<()> {
        self.retrying(|conn| {
            Ok(conn.exec_drop("DELETE FROM resumetoken WHERE digest = ?", (digest,))?)
        })
    }
}

/// Deletes `user`'s stored messages up to id `last`, pinned to the (userid, id) index (see
/// `take_offline` for why the pin and the multi-table syntax).
fn delete_through(tx: &mut Transaction<'_>, user: UserId, last: i64) -> StoreResult<()> {
    tx.exec_drop(
        "DELETE m FROM offlinemessage m FORCE INDEX (userid) \
         WHERE m.userid = ? AND m.id <= ?",
        (user, last),
    )?;
    Ok(())
}
