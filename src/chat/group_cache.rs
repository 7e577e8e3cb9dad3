//! GroupCache: group id → sorted member ids, so group chat needs no query per message.
//!
//! Filled on a miss by a store worker, dropped for a group whenever its membership changes.
//! A load that started before an invalidation must not install the list it read, which may
//! already be stale: every invalidation bumps an epoch, and a load installs its result only if
//! the epoch it saw at its start is still current.

use crate::ids::{GroupId, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub type Members = Arc<Vec<UserId>>;

#[derive(Default)]
pub struct GroupCache {
    groups: RwLock<HashMap<GroupId, Members>>,
    epoch: AtomicU64,
}

impl GroupCache {
    pub fn get(&self, group: GroupId) -> Option<Members> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&group)
            .cloned()
    }

    /// Read before loading; pass to `install`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Installs a freshly loaded member list unless the cache was invalidated since `epoch`.
    pub fn install(&self, group: GroupId, mut members: Vec<UserId>, epoch: u64) -> Members {
        members.sort_unstable();
        let members = Arc::new(members);
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            groups.insert(group, members.clone());
        }
        members
    }

    pub fn invalidate(&self, group: GroupId) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        groups.remove(&group);
    }
}

/// True if `user` is in the sorted member list.
pub fn is_member(members: &[UserId], user: UserId) -> bool {
    members.binary_search(&user).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_load_is_not_installed() {
        let cache = GroupCache::default();
        let epoch = cache.epoch();
        cache.invalidate(7);
        cache.install(7, vec![3, 1], epoch);
        assert!(cache.get(7).is_none());
        let epoch = cache.epoch();
        let members = cache.install(7, vec![3, 1, 2], epoch);
        assert_eq!(*members, vec![1, 2, 3]);
        assert!(is_member(&cache.get(7).unwrap(), 2));
        cache.invalidate(7);
        assert!(cache.get(7).is_none());
    }
}
