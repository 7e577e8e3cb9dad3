//! RecentCids: the client ids (`cid`) of recently accepted chat messages, by sender, so that a
//! client's retry of a message (its ack was lost with its connection) is recognised and
//! answered with the first acceptance's `mid` instead of being delivered twice.
//!
//! Per server and bounded: each shard keeps its newest entries and forgets the oldest. A
//! retry that reaches another server (its first server died) is not recognised here: it is
//! delivered again under a new `mid`, with the same `cid`, which is how an acking client
//! recognises it (docs/PROTOCOL.md, "Acknowledged delivery").

use crate::ids::UserId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const SHARDS: usize = 16;
/// Entries kept per shard (64 Ki in all: a few MiB).
const PER_SHARD: usize = 4096;

#[derive(Default)]
struct Shard {
    mids: HashMap<(UserId, Box<str>), u64>,
    order: VecDeque<(UserId, Box<str>)>,
}

#[derive(Default)]
pub(crate) struct RecentCids {
    shards: [Mutex<Shard>; SHARDS],
}

impl RecentCids {
    fn shard(&self, user: UserId) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(user as u64 as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The `mid` already given to `user`'s message `cid`, or None after recording `mid` for it.
    pub(crate) fn first_or_record(&self, user: UserId, cid: &str, mid: u64) -> Option<u64> {
        let mut shard = self.shard(user);
        let key = (user, Box::<str>::from(cid));
        if let Some(&first) = shard.mids.get(&key) {
            return Some(first);
        }
        if shard.order.len() >= PER_SHARD {
            if let Some(oldest) = shard.order.pop_front() {
                shard.mids.remove(&oldest);
            }
        }
        shard.mids.insert(key.clone(), mid);
        shard.order.push_back(key);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_gets_the_first_mid_and_old_entries_are_forgotten() {
        let recent = RecentCids::default();
        assert_eq!(recent.first_or_record(1, "a", 10), None);
        assert_eq!(recent.first_or_record(1, "a", 11), Some(10));
        assert_eq!(
            recent.first_or_record(2, "a", 12),
            None,
            "cids are per sender"
        );
        for i in 0..PER_SHARD {
            recent.first_or_record(1 + SHARDS as i64, &i.to_string(), 100);
        }
        assert_eq!(recent.first_or_record(1, "a", 13), None, "forgotten");
    }
}
