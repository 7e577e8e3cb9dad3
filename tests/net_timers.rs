//! Timers: one-shot order, cancel before firing, repeating timers and their cancel (also from
//! inside their own callback), and timers added from another thread through `queue_in_loop`.

use chatserver::net::{EventLoop, TimerId};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

#[test]
fn run_after_fires_in_deadline_order() {
    let mut lp = EventLoop::new(0).unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let started = Instant::now();
    for delay in [50u64, 10, 40, 0, 20, 30] {
        let fired = fired.clone();
        lp.run_after(Duration::from_millis(delay), move |_lp| {
            fired.borrow_mut().push((delay, started.elapsed()))
        });
    }
    assert_eq!(lp.timer_count(), 6);
    let f = fired.clone();
    assert!(lp.run_until(Duration::from_secs(5), move |_| f.borrow().len() == 6));
    let fired = fired.borrow();
    let order: Vec<u64> = fired.iter().map(|&(d, _)| d).collect();
    assert_eq!(order, vec![0, 10, 20, 30, 40, 50]);
    for &(delay, at) in fired.iter() {
        assert!(
            at >= Duration::from_millis(delay),
            "timer of {delay} ms fired early, at {at:?}"
        );
    }
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn cancel_before_firing() {
    let mut lp = EventLoop::new(0).unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let doomed = lp.run_after(20 * MS, move |_| f.set(f.get() + 100));
    let f = fired.clone();
    lp.run_after(40 * MS, move |_| f.set(f.get() + 1));
    assert!(lp.cancel_timer(doomed));
    assert!(
        !lp.cancel_timer(doomed),
        "a second cancel must report false"
    );
    assert_eq!(lp.timer_count(), 1);
    let f = fired.clone();
    assert!(lp.run_until(Duration::from_secs(5), move |_| f.get() >= 1));
    // Past the cancelled deadline by a margin: it never fired.
    lp.run_until(30 * MS, |_| false);
    assert_eq!(fired.get(), 1);
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn run_every_repeats_until_cancelled() {
    let mut lp = EventLoop::new(0).unwrap();
    let runs = Rc::new(Cell::new(0u32));
    let r = runs.clone();
    let id = lp.run_every(5 * MS, move |_| r.set(r.get() + 1));
    let r = runs.clone();
    assert!(lp.run_until(Duration::from_secs(5), move |_| r.get() >= 5));
    assert!(lp.cancel_timer(id));
    let at_cancel = runs.get();
    lp.run_until(50 * MS, |_| false);
    assert_eq!(runs.get(), at_cancel, "a cancelled run_every kept firing");
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn run_every_cancelling_itself_on_its_third_run_runs_three_times() {
    let mut lp = EventLoop::new(0).unwrap();
    let runs = Rc::new(Cell::new(0u32));
    let me: Rc<Cell<Option<TimerId>>> = Rc::new(Cell::new(None));
    let cancelled = Rc::new(Cell::new(None));
    let (r, m, c) = (runs.clone(), me.clone(), cancelled.clone());
    let id = lp.run_every(3 * MS, move |lp| {
        r.set(r.get() + 1);
        if r.get() == 3 {
            c.set(Some(
                lp.cancel_timer(m.get().expect("id set before the first run")),
            ));
        }
    });
    me.set(Some(id));
    lp.run_until(100 * MS, |_| false);
    assert_eq!(runs.get(), 3);
    assert_eq!(
        cancelled.get(),
        Some(true),
        "cancel from inside the callback failed"
    );
    assert_eq!(lp.timer_count(), 0);
    assert!(!lp.cancel_timer(id));
}

#[test]
fn timer_callbacks_may_add_and_cancel_other_timers() {
    let mut lp = EventLoop::new(0).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let victim = lp.run_after(20 * MS, {
        let log = log.clone();
        move |_| log.borrow_mut().push("victim")
    });
    let l = log.clone();
    lp.run_after(5 * MS, move |lp| {
        l.borrow_mut().push("first");
        assert!(lp.cancel_timer(victim));
        let l2 = l.clone();
        lp.run_after(10 * MS, move |_| l2.borrow_mut().push("added"));
    });
    lp.run_until(60 * MS, |_| false);
    assert_eq!(*log.borrow(), vec!["first", "added"]);
}

#[test]
fn timers_added_from_another_thread_via_queue_in_loop() {
    let mut lp = EventLoop::new(0).unwrap();
    let handle = lp.handle();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let adders: Vec<_> = (0..4u64)
        .map(|i| {
            let handle = handle.clone();
            let fired = fired.clone();
            std::thread::spawn(move || {
                handle.queue_in_loop(move |lp| {
                    // Runs on the loop's thread: timers are the loop's own business.
                    lp.run_after(Duration::from_millis(40 - 10 * i), move |_| {
                        fired.lock().unwrap().push(i)
                    });
                });
            })
        })
        .collect();
    for a in adders {
        a.join().unwrap();
    }
    let f = fired.clone();
    assert!(
        lp.run_until(Duration::from_secs(5), move |_| f.lock().unwrap().len()
            == 4)
    );
    assert_eq!(*fired.lock().unwrap(), vec![3, 2, 1, 0]);
    assert!(started.elapsed() >= 40 * MS);
    assert_eq!(lp.timer_count(), 0);
}

#[test]
fn a_timer_wakes_a_loop_blocked_in_run() {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut lp = EventLoop::new(0).unwrap();
        let started = Instant::now();
        // `run` polls with no timeout: only the timerfd can end this wait.
        lp.run_after(30 * MS, move |lp| {
            tx.send(started.elapsed()).unwrap();
            lp.quit();
        });
        lp.run();
    });
    let at = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("timer never fired inside run()");
    assert!(at >= 30 * MS);
    thread.join().unwrap();
}
