//! `LoopHandle::queue_in_loop` from 8 threads × 100,000 tasks: every task runs exactly once, each
//! producer's tasks in the order it queued them, and a burst costs far fewer eventfd wakeups than
//! tasks (the eventfd is written only when the queue goes from empty to non-empty).

use chatserver::net::EventLoop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRODUCERS: usize = 8;
const TASKS: u64 = 100_000;

#[test]
fn eight_producers_hundred_thousand_tasks_each() {
    let mut lp = EventLoop::new(0).unwrap();
    let handle = lp.handle();
    // next[p]: the sequence number producer p's next task must carry. Touched only by the
    // loop's thread (inside tasks), so relaxed atomics are enough; they are atomics only to be
    // Send.
    let next: Arc<Vec<AtomicU64>> = Arc::new((0..PRODUCERS).map(|_| AtomicU64::new(0)).collect());
    let ran = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let handle = handle.clone();
            let next = next.clone();
            let ran = ran.clone();
            let out_of_order = out_of_order.clone();
            std::thread::spawn(move || {
                for seq in 0..TASKS {
                    let next = next.clone();
                    let ran = ran.clone();
                    let out_of_order = out_of_order.clone();
                    handle.queue_in_loop(move |_lp| {
                        if next[p].swap(seq + 1, Ordering::Relaxed) != seq {
                            out_of_order.fetch_add(1, Ordering::Relaxed);
                        }
                        ran.fetch_add(1, Ordering::Relaxed);
                    });
                }
            })
        })
        .collect();
    let total = PRODUCERS as u64 * TASKS;
    let finished = lp.run_until(Duration::from_secs(60), |_| {
        ran.load(Ordering::Relaxed) == total
    });
    for p in producers {
        p.join().unwrap();
    }
    let elapsed = started.elapsed();
    assert!(
        finished,
        "only {} of {total} tasks ran",
        ran.load(Ordering::Relaxed)
    );
    // A few more turns: nothing may run twice.
    lp.run_until(Duration::from_millis(50), |_| false);
    assert_eq!(ran.load(Ordering::Relaxed), total, "a task ran twice");
    assert_eq!(
        out_of_order.load(Ordering::Relaxed),
        0,
        "a producer's tasks ran out of order"
    );
    for (p, n) in next.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), TASKS, "producer {p} lost tasks");
    }
    let wakeups = handle.wakeup_count();
    let queued = handle.queued_count();
    eprintln!("{queued} tasks queued, {wakeups} wakeups, in {elapsed:.2?}");
    assert_eq!(queued, total);
    assert!(
        wakeups < total / 10,
        "{wakeups} wakeups for {total} tasks: the empty-to-non-empty rule is not batching"
    );
}

#[test]
fn defer_runs_right_after_the_task_before_the_next_poll_without_a_wakeup() {
    let mut lp = EventLoop::new(0).unwrap();
    let handle = lp.handle();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = order.clone();
    handle.queue_in_loop(move |lp| {
        o.lock().unwrap().push("task");
        let o2 = o.clone();
        // On the loop's own thread: runs right after this task, not through the queue.
        lp.defer(move |_lp| o2.lock().unwrap().push("nested"));
        o.lock().unwrap().push("task end");
    });
    let wakeups_before = handle.wakeup_count();
    let o = order.clone();
    assert!(
        lp.run_until(Duration::from_secs(5), move |_| o.lock().unwrap().len()
            == 3)
    );
    assert_eq!(*order.lock().unwrap(), vec!["task", "task end", "nested"]);
    assert_eq!(
        handle.wakeup_count(),
        wakeups_before,
        "defer woke its own loop"
    );
    assert_eq!(handle.queued_count(), 1);
}

#[test]
fn quit_from_another_thread_ends_run() {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut lp = EventLoop::new(3).unwrap();
        tx.send(lp.handle()).unwrap();
        lp.run();
        lp.index()
    });
    let handle = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    handle.quit();
    assert_eq!(thread.join().unwrap(), 3);
}
