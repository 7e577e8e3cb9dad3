//! ConnectionPool: a few SQLite connections shared by the store worker threads.
//!
//! A rusqlite `Connection` is Send but not Sync, so each call borrows one for its
//! duration. Connections are opened on demand up to `max`, then kept: in WAL mode several
//! of them read at once while one writes.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// How long SQLite retries a locked database before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct ConnectionPool {
    path: PathBuf,
    max: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    /// Connections in existence: idle plus lent out (plus one being opened).
    open: usize,
}

/// A connection lent by the pool; goes back to it on drop.
pub(super) struct PooledConnection<'a> {
    pool: &'a ConnectionPool,
    conn: Option<Connection>,
}

impl ConnectionPool {
    /// A pool of at most `max` connections to the file at `path`; a caller waits at most
    /// `wait` for a free one, then gets [`StoreError::Busy`].
    pub(super) fn new(path: PathBuf, max: usize, wait: Duration) -> Self {
        ConnectionPool {
            path,
            max,
            wait,
            state: Mutex::new(PoolState {
                idle: Vec::with_capacity(max),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// The state is a Vec and a counter, consistent at every step, so a panic in another
    /// thread while holding the lock leaves nothing half-done: carry on.
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self) -> StoreResult<PooledConnection<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(self.lend(conn));
            }
            if state.open < self.max {
                state.open += 1;
                // Opening touches the file system: do it without holding the lock.
                drop(state);
                return match open_connection(&self.path) {
                    Ok(conn) => Ok(self.lend(conn)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Busy);
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lend(&self, conn: Connection) -> PooledConnection<'_> {
        PooledConnection {
            pool: self,
            conn: Some(conn),
        }
    }
}

impl Deref for PooledConnection<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // `conn` is only None inside drop.
        self.conn
            .as_ref()
            .expect("pooled connection used after return")
    }
}

impl DerefMut for PooledConnection<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("pooled connection used after return")
    }
}

impl Drop for PooledConnection<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A transaction left open would block every later writer; rusqlite's
            // Transaction rolls back on drop, so this holds unless a caller forgot one.
            debug_assert!(
                conn.is_autocommit(),
                "connection returned inside a transaction"
            );
            self.pool.lock().idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// Opens one connection with the settings every connection needs: they are per connection
/// in SQLite (except journal_mode, which sticks to the file but is cheap to re-assert).
fn open_connection(path: &std::path::Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers do not block the writer nor each other. NORMAL: a commit is durable
    // against a process crash, and against power loss up to the last checkpoint; the
    // documented trade-off for WAL, and ~100x faster than FULL on small transactions.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "{}: SQLite refused WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}
