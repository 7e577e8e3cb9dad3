//! Pending deliveries: the sender's side of a cross-server delivery, held until confirmed.
//!
//! A published message is not yet delivered: the receiving server may die with it in its
//! subscriber buffer or task queues. So the sender keeps every cross-server delivery pending
//! until the receiver confirms it, and the receiver confirms only once each recipient's copy
//! was written to the recipient's socket or stored (its `Receipt`, bus.rs). If the receiver's
//! liveness key lapses first, the sender stores the pending copies for their next login. The
//! window that is left is the receiver dying between its socket write and its confirmation
//! leaving the process: then the message is delivered and stored, and arrives twice.

use crate::ids::UserId;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A receiver that confirms nothing for this long (though alive) is presumed to have lost the
/// message: the sender stores it.
pub(crate) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending deliveries older than this are checked against their receiver's liveness.
pub(crate) const CHECK_AFTER: Duration = Duration::from_millis(1000);

/// One delivery published to one server and not yet confirmed by it.
pub(crate) struct Pending {
    pub(crate) users: Vec<UserId>,
    pub(crate) frame: Bytes,
    pub(crate) sent: Instant,
}

/// Confirmations for deliveries not (yet) known as pending are kept this long.
const EARLY_CONFIRM_TTL: Duration = Duration::from_secs(60);

/// The sender's side: deliveries awaiting confirmation, by receiving server and message id.
#[derive(Default)]
pub(crate) struct PendingDeliveries {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per receiving server (a handful), its unconfirmed messages: no string per entry.
    map: HashMap<String, HashMap<u64, Pending>>,
    /// A receiver can confirm before the publisher has read the reply to its PUBLISH and
    /// recorded the delivery as pending: such confirmations wait here for their entry.
    early: HashMap<String, HashMap<u64, Instant>>,
}

/// The map of `server`, created on first use.
fn of_server<'m, V>(
    map: &'m mut HashMap<String, HashMap<u64, V>>,
    server: &str,
) -> &'m mut HashMap<u64, V> {
    if !map.contains_key(server) {
        map.insert(server.to_owned(), HashMap::new());
    }
    map.get_mut(server).expect("inserted above")
}

impl PendingDeliveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, mid: u64, server: &str, pending: Pending) {
        let mut inner = self.lock();
        let confirmed_early = inner
            .early
            .get_mut(server)
            .is_some_and(|early| early.remove(&mid).is_some());
        if !confirmed_early {
            of_server(&mut inner.map, server).insert(mid, pending);
        }
    }

    pub(crate) fn confirm(&self, server: &str, mids: impl Iterator<Item = u64>) {
        let mut inner = self.lock();
        let now = Instant::now();
        let Inner { map, early } = &mut *inner;
        let mut pending = map.get_mut(server);
        for mid in mids {
            let found = pending.as_mut().is_some_and(|p| p.remove(&mid).is_some());
            if !found {
                of_server(early, server).insert(mid, now);
            }
        }
        if let Some(early) = early.get_mut(server) {
            if early.len() > 1024 {
                early.retain(|_, at| now - *at < EARLY_CONFIRM_TTL);
            }
        }
    }

    /// Servers that have deliveries pending for longer than `CHECK_AFTER`.
    pub(crate) fn overdue_servers(&self) -> Vec<String> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .map
            .iter()
            .filter(|(_, pending)| pending.values().any(|p| now - p.sent >= CHECK_AFTER))
            .map(|(server, _)| server.clone())
            .collect()
    }

    /// Takes every delivery pending for `server` (dead), or only those past the confirm
    /// timeout (alive but silent).
    pub(crate) fn take(&self, server: &str, dead: bool) -> Vec<Pending> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(pending) = inner.map.get_mut(server) else {
            return Vec::new();
        };
        let overdue: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| dead || now - p.sent >= CONFIRM_TIMEOUT)
            .map(|(mid, _)| *mid)
            .collect();
        overdue
            .into_iter()
            .filter_map(|mid| pending.remove(&mid))
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            users: vec![1],
            frame: Bytes::from_static(b"{}"),
            sent: Instant::now(),
        }
    }

    #[test]
    fn a_confirmation_may_arrive_before_its_entry() {
        let p = PendingDeliveries::default();
        p.confirm("b", [7].into_iter());
        p.insert(7, "b", pending());
        assert_eq!(p.len(), 0);
        p.insert(8, "b", pending());
        p.insert(8, "c", pending());
        p.confirm("b", [8].into_iter());
        assert_eq!(p.len(), 1);
        assert_eq!(p.take("c", true).len(), 1);
    }
}
