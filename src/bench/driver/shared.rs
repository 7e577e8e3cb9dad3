//! What every client loop and the main thread share: the run's phase, counters and failure.

use crate::bench::config::BenchConfig;
use crate::bench::stats::{LoopStats, Stats};
use crate::bench::wire::Wire;
use crate::net::{ConnId, ConnectionHandler, EventLoop, LoopHandle};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

/// Where the run is; every loop reads it before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Warmup = 1,
    Measure = 2,
    /// No new requests; waiting for the ones in flight.
    Drain = 3,
    Stop = 4,
}

/// A user the tool registered.
#[derive(Clone, Debug, Default)]
pub struct User {
    pub id: i64,
    pub name: String,
}

/// A sender's connection (known once it is adopted) and the deliveries of its messages so far.
#[derive(Default)]
pub struct SenderSlot {
    pub conn: OnceLock<ConnId>,
    pub delivered: AtomicU64,
}

/// What every loop and the main thread share.
pub struct Shared {
    pub cfg: BenchConfig,
    pub wire: Wire,
    pub password: String,
    /// Prefix of this run's user and group names: `--prefix`, a random tag, `_`.
    pub tag: String,
    pub(super) phase: AtomicU8,
    pub stats: Stats,
    pub handles: Vec<LoopHandle>,
    pub senders: Vec<SenderSlot>,
    /// Deliveries that make one message complete (1 for chat, members − 1 for a group).
    pub per_msg: u64,
    /// Connections done with the current set-up step.
    pub ready: AtomicUsize,
    pub(super) failure: Mutex<Option<String>>,
    pub(super) clock: Instant,
    /// Weak because the handler holds this state: a strong one would be a cycle, never freed.
    pub(super) handler: OnceLock<Weak<dyn ConnectionHandler>>,
}

impl Shared {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Setup,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            3 => Phase::Drain,
            _ => Phase::Stop,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Nanoseconds on the run's monotonic clock (the same in every thread).
    pub fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Remembers the first thing that went wrong; the main thread stops on it.
    pub fn fail(&self, why: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(why);
        }
    }

    /// The handler every connection uses, for connections a loop opens itself (None only
    /// while the run is ending).
    pub fn handler(&self) -> Option<Arc<dyn ConnectionHandler>> {
        self.handler.get()?.upgrade()
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts a completed request: always in `done`, in `measured` (with its latency) only
    /// inside the measured window.
    pub fn complete(&self, lp: &EventLoop, latency_ns: u64) {
        let st = self.stats.of(lp.index());
        LoopStats::add(&st.done, 1);
        if self.phase() == Phase::Measure {
            LoopStats::add(&st.measured, 1);
            st.record(latency_ns);
        }
    }
}
