//! Delivery receipts between servers: how a sender learns that its message left the receiver.
//!
//! A published message is not yet delivered: the receiving server may die with it in its
//! subscriber buffer or task queues. So the sender keeps every cross-server delivery pending
//! until the receiver confirms it, and the receiver confirms only once each recipient's copy
//! was written to the recipient's socket or stored. If the receiver's liveness key lapses
//! first, the sender stores the pending copies for their next login. The window that is left
//! is the receiver dying between its socket write and its confirmation leaving the process:
//! then the message is delivered and stored, and arrives twice.

use super::publisher::Op;
use super::Cluster;
use crate::store::UserId;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// The sender's side: deliveries awaiting confirmation, by (message id, receiving server).
#[derive(Default)]
pub(crate) struct PendingDeliveries {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(u64, String), Pending>,
    /// A receiver can confirm before the publisher has read the script's reply and recorded
    /// the delivery as pending (the reply to a long pipeline comes after its last command):
    /// such confirmations wait here for their entry.
    early: HashMap<(u64, String), Instant>,
}

impl PendingDeliveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, mid: u64, server: String, pending: Pending) {
        let mut inner = self.lock();
        let key = (mid, server);
        if inner.early.remove(&key).is_none() {
            inner.map.insert(key, pending);
        }
    }

    pub(crate) fn confirm(&self, server: &str, mids: impl Iterator<Item = u64>) {
        let mut inner = self.lock();
        let now = Instant::now();
        for mid in mids {
            let key = (mid, server.to_owned());
            if inner.map.remove(&key).is_none() {
                inner.early.insert(key, now);
            }
        }
        if inner.early.len() > 1024 {
            inner.early.retain(|_, at| now - *at < EARLY_CONFIRM_TTL);
        }
    }

    /// Servers that have deliveries pending for longer than `CHECK_AFTER`.
    pub(crate) fn overdue_servers(&self) -> Vec<String> {
        let now = Instant::now();
        let inner = self.lock();
        let mut servers: Vec<String> = inner
            .map
            .iter()
            .filter(|(_, p)| now - p.sent >= CHECK_AFTER)
            .map(|((_, s), _)| s.clone())
            .collect();
        servers.sort();
        servers.dedup();
        servers
    }

    /// Takes every delivery pending for `server` (dead), or only those past the confirm
    /// timeout (alive but silent).
    pub(crate) fn take(&self, server: &str, dead: bool) -> Vec<Pending> {
        let now = Instant::now();
        let mut inner = self.lock();
        let keys: Vec<(u64, String)> = inner
            .map
            .iter()
            .filter(|((_, s), p)| s == server && (dead || now - p.sent >= CONFIRM_TIMEOUT))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| inner.map.remove(&k))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

/// The receiver's side: held by every path a received message takes to its recipients; when
/// the last holder drops it (all copies written or stored), the confirmation is queued.
pub struct Receipt {
    cluster: Arc<Cluster>,
    sender: String,
    mid: u64,
}

impl Receipt {
    pub(crate) fn new(cluster: Arc<Cluster>, sender: String, mid: u64) -> Receipt {
        Receipt {
            cluster,
            sender,
            mid,
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.cluster.send(Op::Confirm {
            to: std::mem::take(&mut self.sender),
            mid: self.mid,
        });
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
        p.insert(7, "b".into(), pending());
        assert_eq!(p.len(), 0);
        p.insert(8, "b".into(), pending());
        p.insert(8, "c".into(), pending());
        p.confirm("b", [8].into_iter());
        assert_eq!(p.len(), 1);
        assert_eq!(p.take("c", true).len(), 1);
    }
}
