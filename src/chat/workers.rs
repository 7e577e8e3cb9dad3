//! Store workers: the threads where every blocking database call (and password hashing) runs.
//!
//! I/O loops never block on the database: a handler submits a job here and the result comes
//! back to the connection's loop with `queue_in_loop`. Jobs carry a key (usually the user they
//! concern) and a key always maps to the same worker, so the jobs of one user run in the order
//! they were submitted: a message stored for an offline user is in the store before that
//! user's next login takes the offline messages.
//!
//! Offline messages are the one job that comes in floods (a server died, a big group, a user
//! away): a worker takes every offline message queued behind the first and stores them in one
//! transaction, so a flood costs one commit per batch rather than one per message. One
//! the store refuses goes to the retry line (store_retry.rs) instead of failing at once.
//!
//! The text bytes of offline messages queued and not yet stored are counted
//! ([`StoreWorkers::queued_offline_bytes`]): chat senders are slowed while that is high
//! (store_pressure.rs), so a flood waits in the senders' sockets, not in this queue.

use super::store_retry::RetryLine;
use crate::ids::UserId;
use crate::store::{Store, StoreResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most offline messages stored in one transaction.
const MAX_OFFLINE_BATCH: usize = 512;

/// One message to store for `user`; `done` gets the outcome (false: no such user).
pub struct OfflineJob {
    pub user: UserId,
    pub text: String,
    pub done: Box<dyn FnOnce(StoreResult<bool>) + Send>,
}

/// A database call to run on a worker.
type RunJob = Box<dyn FnOnce(&dyn Store) + Send>;

enum Job {
    Run(RunJob),
    Offline(OfflineJob),
}

pub struct StoreWorkers {
    senders: Mutex<Vec<Sender<Job>>>,
    count: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    retry: Arc<RetryLine>,
    /// Text bytes of the offline jobs queued to the workers and not yet stored (or handed to
    /// the retry line).
    queued: Arc<AtomicUsize>,
}

impl StoreWorkers {
    /// `count` workers; an offline message the store refuses is retried for `patience`.
    pub fn start(
        store: Arc<dyn Store>,
        count: usize,
        patience: std::time::Duration,
    ) -> std::io::Result<StoreWorkers> {
        let count = count.max(1);
        let retry = Arc::new(RetryLine::start(store.clone(), patience)?);
        let queued = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = mpsc::channel::<Job>();
            let (store, retry, queued) = (store.clone(), retry.clone(), queued.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("store-{index}"))
                    .spawn(move || work(&*store, rx, &retry, &queued))?,
            );
            senders.push(tx);
        }
        Ok(StoreWorkers {
            senders: Mutex::new(senders),
            count,
            threads: Mutex::new(threads),
            retry,
            queued,
        })
    }

    fn send(&self, key: i64, job: Job) -> bool {
        let index = (key as u64 % self.count as u64) as usize;
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        match senders.get(index) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Runs `job` on the worker that owns `key`. False once the workers are stopping.
    pub fn submit(&self, key: i64, job: impl FnOnce(&dyn Store) + Send + 'static) -> bool {
        self.send(key, Job::Run(Box::new(job)))
    }

    /// Stores an offline message on the worker that owns its recipient. False once stopping.
    pub fn submit_offline(&self, job: OfflineJob) -> bool {
        // Counted before the send: the worker may store it (and subtract) at once.
        let bytes = job.text.len();
        self.queued.fetch_add(bytes, Ordering::AcqRel);
        let sent = self.send(job.user, Job::Offline(job));
        if !sent {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
        }
        sent
    }

    /// Text bytes of offline messages queued to the workers and not yet stored.
    pub fn queued_offline_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Lets every worker finish the jobs already queued, then joins them, then the retry
    /// line (bounded by its patience).
    pub fn stop(&self) {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
        self.retry.stop();
    }
}

fn work(store: &dyn Store, jobs: Receiver<Job>, retry: &RetryLine, queued: &AtomicUsize) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Run(run) => run(store),
            Job::Offline(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_OFFLINE_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Offline(job)) => batch.push(job),
                        Ok(other) => {
                            // Runs right after the batch: the queue's order is kept.
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                store_batch(store, batch, retry, queued);
            }
        }
    }
}

/// One transaction for the batch; if it fails (a recipient that does not exist makes the
/// whole batch fail), each message is stored on its own, so each gets its own outcome. A
/// message the store refuses joins the retry line, as does everything while the line is
/// busy (so nothing overtakes a message that waits there). Each job leaves the `queued`
/// count once the store has answered for it, or once it is handed to the retry line.
fn store_batch(store: &dyn Store, batch: Vec<OfflineJob>, retry: &RetryLine, queued: &AtomicUsize) {
    let left = |job: &OfflineJob| queued.fetch_sub(job.text.len(), Ordering::AcqRel);
    if retry.busy() {
        return batch.into_iter().for_each(|job| {
            left(&job);
            retry.enqueue(job, None)
        });
    }
    if batch.len() > 1 {
        let items: Vec<(UserId, &str)> = batch.iter().map(|j| (j.user, j.text.as_str())).collect();
        if store.store_offline_batch(&items).is_ok() {
            for job in batch {
                left(&job);
                (job.done)(Ok(true));
            }
            return;
        }
    }
    for job in batch {
        if retry.busy() {
            left(&job);
            retry.enqueue(job, None);
            continue;
        }
        let result = store.store_offline(job.user, &job.text);
        left(&job);
        match result {
            Err(e) => retry.enqueue(job, Some(e)),
            result => (job.done)(result),
        }
    }
}
