//! Backpressure on chat senders while the offline store's queue is deep: they stop being read.
//!
//! A sender to a recipient who does not read (or is away) fills the store workers' queue as
//! fast as the loop reads it, and that queue is in RAM. So while more than the high mark
//! waits (offline text for the workers, plus copies still on their way to the recipient's
//! loop: measured up to 9 MiB of those when that loop lagged behind the sender's), a
//! connection that sends a chat message is not read after it: its later frames wait in its
//! input buffer and the kernel, and TCP slows the sender down. Each loop keeps its paused
//! connections and, only while it has some, looks every [`TICK`] whether that is below the
//! low mark (half the high one) to read them again. Only chat senders are paused: logins,
//! acks and the rest never add to the queue.

use super::conn_state::ChatConn;
use super::service::ChatService;
use crate::ids::ConnId;
use crate::net::EventLoop;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a loop with paused senders looks at the queue again: the workers drain the low
/// mark's worth in far less than a second, so a sender waits little past the drain.
const TICK: Duration = Duration::from_millis(10);

/// One loop's senders paused for the store, and whether its tick is armed.
#[derive(Default)]
struct Paused {
    conns: Vec<ConnId>,
    ticking: bool,
}

/// Bytes of chat copies waiting in RAM for the store workers or for another loop.
fn waiting(svc: &ChatService) -> usize {
    svc.workers.queued_offline_bytes() + svc.delivery.crossing_bytes()
}

/// After a chat message from `conn`: stops reading it if the store's queue is over the mark.
pub(crate) fn after_chat(svc: &Arc<ChatService>, lp: &mut EventLoop, conn: ConnId) {
    if waiting(svc) <= svc.config.store_queue_high {
        return;
    }
    match lp.context_mut::<ChatConn>(conn) {
        // Closing (or gone): nothing more will be read anyway.
        Some(c) if !c.store_paused && !c.closing => c.store_paused = true,
        _ => return,
    }
    lp.set_reading(conn, false);
    let paused = lp.state::<Paused>();
    paused.conns.push(conn);
    if !paused.ticking {
        paused.ticking = true;
        arm(svc.clone(), lp);
    }
}

fn arm(svc: Arc<ChatService>, lp: &mut EventLoop) {
    lp.run_after(TICK, move |lp| tick(svc, lp));
}

fn tick(svc: Arc<ChatService>, lp: &mut EventLoop) {
    let mut conns = std::mem::take(&mut lp.state::<Paused>().conns);
    if waiting(&svc) > svc.config.store_queue_high / 2 {
        let now = Instant::now();
        // A connection that closed meanwhile has no context any more: forget it.
        conns.retain(|&conn| match lp.context_mut::<ChatConn>(conn) {
            Some(c) => {
                // Its silence is ours (we do not read it): not a dead peer for the heartbeat.
                c.watch.last_heard = Some(now);
                true
            }
            None => false,
        });
        let paused = lp.state::<Paused>();
        // Empty while the tick runs (the list was taken), appended only for robustness.
        conns.append(&mut paused.conns);
        paused.conns = conns;
        if paused.conns.is_empty() {
            paused.ticking = false;
        } else {
            arm(svc, lp);
        }
        return;
    }
    lp.state::<Paused>().ticking = false;
    for conn in conns {
        resume(lp, conn);
    }
}

/// Reads `conn` again, unless it is still waiting for a store job of its own (`busy`: that
/// job's completion resumes it) or is closing; frames it left buffered are handled now, since
/// no new bytes may ever arrive to prompt it.
fn resume(lp: &mut EventLoop, conn: ConnId) {
    let Some(c) = lp.context_mut::<ChatConn>(conn) else {
        return; // closed while paused
    };
    c.store_paused = false;
    if c.busy || c.closing || !lp.is_connected(conn) {
        return;
    }
    lp.set_reading(conn, true);
    lp.process_input(conn);
}
