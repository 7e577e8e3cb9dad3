//! The event loops the chat layer hands work to, by loop index (0: the base loop).

use crate::net::{EventLoop, LoopHandle};
use std::sync::OnceLock;

#[derive(Default)]
pub(crate) struct Loops(OnceLock<Vec<LoopHandle>>);

impl Loops {
    /// Once, at start: every loop, indexed by its index.
    pub(crate) fn set(&self, loops: Vec<LoopHandle>) {
        let _ = self.0.set(loops);
    }

    pub(crate) fn all(&self) -> &[LoopHandle] {
        self.0.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Runs `task` on loop `index` (from any thread).
    pub(crate) fn run(&self, index: usize, task: impl FnOnce(&mut EventLoop) + Send + 'static) {
        match self.all().get(index) {
            Some(handle) => handle.queue_in_loop(task),
            None => log::error!("no event loop {index}: a task was dropped"),
        }
    }
}
