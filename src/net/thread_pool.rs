//! EventLoopThreadPool: N threads, each running one EventLoop, reachable by their handles.

use super::event_loop::EventLoop;
use super::loop_handle::LoopHandle;
use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// I/O loops numbered 1..=N (0 is the base loop that owns the pool).
pub struct EventLoopThreadPool {
    handles: Vec<LoopHandle>,
    threads: Vec<JoinHandle<()>>,
}

impl EventLoopThreadPool {
    /// Starts `threads` loops named `{name}-{index}`; returns once every loop exists.
    pub fn start(threads: usize, name: &str) -> io::Result<EventLoopThreadPool> {
        let mut pool = EventLoopThreadPool {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        for index in 1..=threads {
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || match EventLoop::new(index) {
                    Ok(mut lp) => {
                        let _ = tx.send(Ok(lp.handle()));
                        lp.run();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                })?;
            pool.threads.push(thread);
            let handle = rx
                .recv()
                .map_err(|_| io::Error::other("event loop thread died at start"))??;
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// Handles of the pool's loops, in index order.
    pub fn handles(&self) -> Vec<LoopHandle> {
        self.handles.clone()
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Asks every loop to quit and waits for their threads.
    pub fn stop(mut self) {
        for handle in &self.handles {
            handle.quit();
        }
        self.join_threads();
    }

    /// Waits for every loop thread to end (after each was told to quit or drain).
    pub fn join(mut self) {
        self.join_threads();
    }

    fn join_threads(&mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for EventLoopThreadPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            for handle in &self.handles {
                handle.quit();
            }
            self.join_threads();
        }
    }
}
