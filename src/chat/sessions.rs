//! Sessions: who is logged in on this server, and on which connection.
//!
//! Sharded mutex-guarded maps: every I/O loop looks recipients up here for each message, and
//! store workers claim entries at login, so one global lock would be the hottest line in the
//! process. A claim is exclusive: the first connection to claim a user wins.

use crate::ids::{ConnId, UserId};
use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 16;

#[derive(Default)]
pub struct Sessions {
    shards: [Mutex<HashMap<UserId, ConnId>>; SHARDS],
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    fn shard(&self, user: UserId) -> std::sync::MutexGuard<'_, HashMap<UserId, ConnId>> {
        let index = (user as u64 as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `conn` the session of `user` unless another connection already is.
    pub fn claim(&self, user: UserId, conn: ConnId) -> bool {
        let mut shard = self.shard(user);
        match shard.get(&user) {
            Some(existing) => *existing == conn,
            None => {
                shard.insert(user, conn);
                true
            }
        }
    }

    /// Ends `user`'s session if (and only if) it is `conn`'s.
    pub fn release(&self, user: UserId, conn: ConnId) -> bool {
        let mut shard = self.shard(user);
        if shard.get(&user) == Some(&conn) {
            shard.remove(&user);
            true
        } else {
            false
        }
    }

    pub fn lookup(&self, user: UserId) -> Option<ConnId> {
        self.shard(user).get(&user).copied()
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.lookup(user).is_some()
    }

    /// Every session: (user, connection).
    pub fn all(&self) -> Vec<(UserId, ConnId)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(
                shard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(u, c)| (*u, *c)),
            );
        }
        out
    }
}
