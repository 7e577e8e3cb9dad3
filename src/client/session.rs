//! A session's delivery bookkeeping (pure): chat frames counted and acknowledged, duplicates recognised by `mid`, sends awaiting their SEND_ACK.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use serde_json::Value;

use crate::protocol::msgid;

/// How many recent message ids (and sender/cid pairs) are remembered to drop duplicates.
pub const RECENT_IDS: usize = 4096;
/// How many sends may wait for their SEND_ACK; past that the oldest is given up on.
pub const PENDING_SENDS: usize = 1024;

/// A set that forgets its oldest entries past `cap`.
#[derive(Debug)]
pub struct RecentSet<T> {
    cap: usize,
    set: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: Hash + Eq + Clone> RecentSet<T> {
    pub fn new(cap: usize) -> Self {
        RecentSet {
            cap: cap.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Adds `item`; false if it was already there.
    pub fn insert(&mut self, item: T) -> bool {
        if self.set.contains(&item) {
            return false;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(item.clone());
        self.order.push_back(item);
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Whether a server frame is a chat message (one-to-one or group), the frames acks count.
pub fn is_chat(frame: &Value) -> bool {
    matches!(
        frame.get("msgid").and_then(Value::as_i64),
        Some(msgid::ONE_CHAT_MSG | msgid::GROUP_CHAT_MSG)
    )
}

/// What the reader knows of the chat messages of the current login.
#[derive(Debug)]
pub struct Delivery {
    /// The server confirmed acknowledged delivery (`"acks":true` in the login ack).
    acks: bool,
    /// Chat frames received since the login (duplicates included: the server counts copies).
    received: u64,
    /// The count last sent in a DELIVERY_ACK_MSG.
    acked: u64,
    /// Kept across logins: what comes back after a reconnect is what was shown before.
    mids: RecentSet<u64>,
    /// A retry that reached another server comes with a new `mid` but its sender's `cid`.
    cids: RecentSet<(i64, String)>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            acks: false,
            received: 0,
            acked: 0,
            mids: RecentSet::new(RECENT_IDS),
            cids: RecentSet::new(RECENT_IDS),
        }
    }
}

impl Delivery {
    /// A login succeeded: counting starts again; `acks` is what its ack said.
    pub fn logged_in(&mut self, acks: bool) {
        self.acks = acks;
        self.received = 0;
        self.acked = 0;
    }

    /// The session ended (logout or a lost connection): nothing more to acknowledge.
    pub fn ended(&mut self) {
        self.logged_in(false);
    }

    pub fn acks(&self) -> bool {
        self.acks
    }

    /// A chat frame arrived: counts it; true if it is new (to be shown), false for a copy of
    /// one shown already.
    pub fn chat(&mut self, frame: &Value) -> bool {
        self.received += 1;
        let by_mid = match frame.get("mid").and_then(Value::as_u64) {
            Some(mid) => self.mids.insert(mid),
            None => true,
        };
        let from = frame.get("id").and_then(Value::as_i64);
        let by_cid = match (from, frame.get("cid").and_then(Value::as_str)) {
            (Some(from), Some(cid)) => self.cids.insert((from, cid.to_owned())),
            _ => true,
        };
        by_mid && by_cid
    }

    /// The count to acknowledge now, if acks are on and something arrived since the last one.
    pub fn ack_due(&mut self) -> Option<u64> {
        if !self.acks || self.received == self.acked {
            return None;
        }
        self.acked = self.received;
        Some(self.received)
    }
}

/// Chat messages sent with a client id (`cid`) and not yet confirmed by a SEND_ACK.
#[derive(Debug)]
pub struct Outbox {
    /// Unique to this run of the client: a cid must not repeat one the server still remembers.
    prefix: String,
    next: u64,
    pending: VecDeque<(String, Vec<u8>)>,
}

impl Outbox {
    /// `run` tells this run apart from earlier ones (a random number).
    pub fn new(run: u64) -> Outbox {
        Outbox {
            prefix: format!("{run:016x}"),
            next: 0,
            pending: VecDeque::new(),
        }
    }

    /// The client id of the next message.
    pub fn next_cid(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.prefix, self.next)
    }

    /// `frame` (tagged `cid`) was sent or is about to be: kept until confirmed.
    pub fn sent(&mut self, cid: String, frame: Vec<u8>) {
        if self.pending.len() == PENDING_SENDS {
            self.pending.pop_front();
        }
        self.pending.push_back((cid, frame));
    }

    /// A SEND_ACK for `cid`: true if it was waiting for one.
    pub fn confirmed(&mut self, cid: &str) -> bool {
        match self.pending.iter().position(|(c, _)| c == cid) {
            Some(at) => {
                self.pending.remove(at);
                true
            }
            None => false,
        }
    }

    /// The frames still unconfirmed, oldest first (to send again after a reconnect).
    pub fn unconfirmed(&self) -> Vec<Vec<u8>> {
        self.pending.iter().map(|(_, f)| f.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_set_forgets_the_oldest() {
        let mut s = RecentSet::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert_eq!(s.len(), 2);
        assert!(s.insert(1), "1 was forgotten");
        assert!(!s.insert(3));
    }

    #[test]
    fn counts_every_copy_shows_each_message_once() {
        let mut d = Delivery::default();
        d.logged_in(true);
        let a = json!({"mid":10,"msgid":6,"id":8,"toid":7,"msg":"a"});
        assert!(d.chat(&a));
        assert!(!d.chat(&a), "same mid");
        assert!(d.chat(&json!({"mid":11,"msgid":6,"id":8,"msg":"b","cid":"x"})));
        // A retry delivered by another server: new mid, same sender and cid.
        assert!(!d.chat(&json!({"mid":12,"msgid":6,"id":8,"msg":"b","cid":"x"})));
        // No mid (the seeds' server): always shown.
        assert!(d.chat(&json!({"msgid":6,"id":8,"msg":"c"})));
        assert!(d.chat(&json!({"msgid":6,"id":8,"msg":"c"})));
        assert_eq!(d.ack_due(), Some(6));
        assert_eq!(d.ack_due(), None, "nothing new");
        d.chat(&json!({"mid":13,"msgid":10,"id":9,"groupid":2}));
        assert_eq!(d.ack_due(), Some(7), "cumulative");
    }

    #[test]
    fn no_acks_without_the_servers_word_and_a_new_login_counts_afresh() {
        let mut d = Delivery::default();
        d.logged_in(false);
        assert!(d.chat(&json!({"mid":1,"msgid":6})));
        assert_eq!(d.ack_due(), None);
        d.logged_in(true);
        assert!(!d.chat(&json!({"mid":1,"msgid":6})), "mids outlive a login");
        assert_eq!(d.ack_due(), Some(1));
        d.ended();
        assert!(!d.acks());
        assert!(is_chat(&json!({"msgid":10})));
        assert!(!is_chat(&json!({"msgid":28})));
    }

    #[test]
    fn outbox_keeps_unconfirmed_sends_in_order() {
        let mut o = Outbox::new(0xab);
        let (c1, c2) = (o.next_cid(), o.next_cid());
        assert_ne!(c1, c2);
        assert!(c1.starts_with("00000000000000ab-"));
        assert!(c1.len() <= crate::protocol::request::MAX_CID_BYTES);
        o.sent(c1.clone(), b"one".to_vec());
        o.sent(c2.clone(), b"two".to_vec());
        assert!(o.confirmed(&c1));
        assert!(!o.confirmed(&c1), "only once");
        assert_eq!(o.unconfirmed(), vec![b"two".to_vec()]);
        for i in 0..PENDING_SENDS + 5 {
            o.sent(format!("c{i}"), vec![]);
        }
        assert_eq!(o.len(), PENDING_SENDS);
    }
}
