//! The retry line for offline messages the store refused (the database is down or busy).
//!
//! A failed offline store is never dropped at once: it waits here, in order, and is tried
//! again with a growing pause until its deadline; only then does its `done` hear the error
//! (and the sender is told). While anything waits here, new offline messages queue behind it
//! rather than overtake it, so a recipient's messages keep their order across an outage.
//! Retries run on a thread of their own so that the store workers stay free: logins and
//! other calls during an outage get their error at once instead of waiting behind retries.

use super::workers::OfflineJob;
use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// First pause after a failure; doubled each time up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// An offline message that could not be stored yet, with the time it gets for that.
pub(crate) struct Waiting {
    pub(crate) job: OfflineJob,
    pub(crate) deadline: Instant,
    pub(crate) last_error: Option<StoreError>,
}

pub(crate) struct RetryLine {
    sender: Mutex<Option<Sender<Waiting>>>,
    /// Messages in the line: while non-zero, new offline messages join it.
    waiting: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// How long a message is retried from its first failure.
    pub(crate) patience: Duration,
}

impl RetryLine {
    pub(crate) fn start(store: Arc<dyn Store>, patience: Duration) -> std::io::Result<RetryLine> {
        let (tx, rx) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let count = waiting.clone();
        let thread = std::thread::Builder::new()
            .name("store-retry".into())
            .spawn(move || retry(&*store, rx, &count))?;
        Ok(RetryLine {
            sender: Mutex::new(Some(tx)),
            waiting,
            thread: Mutex::new(Some(thread)),
            patience,
        })
    }

    /// Something waits in the line: a new message must queue behind it.
    pub(crate) fn busy(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Puts `job` in the line; if the line is closed (stopping), its `done` hears the error.
    pub(crate) fn enqueue(&self, job: OfflineJob, last_error: Option<StoreError>) {
        let waiting = Waiting {
            job,
            deadline: Instant::now() + self.patience,
            last_error,
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let refused = match sender.as_ref() {
            Some(tx) => tx.send(waiting).err().map(|e| e.0),
            None => Some(waiting),
        };
        drop(sender);
        if let Some(w) = refused {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            let error = w.last_error.unwrap_or(StoreError::Busy);
            (w.job.done)(Err(error));
        }
    }

    /// Lets the line finish (each message until stored or out of time), then joins it.
    pub(crate) fn stop(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn retry(store: &dyn Store, line: Receiver<Waiting>, waiting: &AtomicUsize) {
    let mut pause = FIRST_PAUSE;
    for w in line {
        let Waiting { job, deadline, .. } = w;
        let result = loop {
            match store.store_offline(job.user, &job.text) {
                Ok(stored) => {
                    pause = FIRST_PAUSE;
                    break Ok(stored);
                }
                Err(e) if Instant::now() + pause < deadline => {
                    log::debug!("offline store for user {} failed, retrying: {e}", job.user);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Err(e) => break Err(e),
            }
        };
        waiting.fetch_sub(1, Ordering::AcqRel);
        (job.done)(result);
    }
}
