//! Where workers leave the tasks they are done with, so that a spawner frees
//! them.
//!
//! A task is allocated by the thread that spawns it and, without this, freed
//! by the worker that settles it. With the system allocator that pattern is
//! costly: every free goes back to the spawner's arena under its lock, and
//! the spawner's next allocation finds its thread cache empty (measured in
//! `docs/perf-notes.md`). So a worker hands each batch of settled tasks (the registry's
//! references, removed 64 at a time, see `registry`) to the graveyard, and
//! every spawn frees at most one waiting batch: the memory goes back to the
//! thread that will allocate again.
//!
//! Only empty tasks arrive here: their closure ran or was dropped, and their
//! result was taken, or dropped by the worker because the handle was gone.
//! Freeing them runs no user code. The graveyard holds at most `LIMIT`
//! batches (of small tasks: large closures are boxed and freed when they
//! run); past that a worker frees its batch itself.

use std::sync::Arc;

use crate::sync::{channel, AtomicUsize, Ordering, Receiver, Sender};
use crate::task::cell::Job;

pub(crate) type Batch = Vec<Arc<dyn Job>>;

pub(crate) struct Graveyard {
    sender: Sender<Batch>,
    receiver: Receiver<Batch>,
    /// Batches waiting: lets a spawn skip the channel when there are none.
    waiting: AtomicUsize,
}

impl Graveyard {
    const LIMIT: usize = 16;

    pub(crate) fn new() -> Graveyard {
        let (sender, receiver) = channel();
        Graveyard {
            sender,
            receiver,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Leaves a batch for a spawner to free, or frees it here if too many
    /// wait already.
    pub(crate) fn bury(&self, batch: Batch) {
        if batch.is_empty() || self.waiting.load(Ordering::Relaxed) >= Self::LIMIT {
            return drop(batch);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // The receiver lives in `self`: the send cannot fail.
        let _ = self.sender.send(batch);
    }

    /// Frees one waiting batch, if there is one.
    pub(crate) fn free_one(&self) -> bool {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return false;
        }
        match self.receiver.try_recv() {
            Ok(batch) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                drop(batch);
                true
            }
            Err(_) => false,
        }
    }

    /// Frees every waiting batch.
    pub(crate) fn free_all(&self) {
        while self.free_one() {}
    }
}
