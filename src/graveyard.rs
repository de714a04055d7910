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
//! Freeing them runs no user code. Each producer lane (see `registry`) has
//! a graveyard of its own, so that a task goes back to the thread that
//! spawned it rather than to any spawner (with several producers, a task
//! freed on another producer's thread goes back to its arena under that
//! arena's lock). Each lane holds at most `LIMIT` batches (of small tasks:
//! large closures are boxed and freed when they run); past that a worker
//! frees them itself.

use crate::lane;
use crate::padded::Padded;
use crate::sync::{channel, AtomicUsize, Ordering, Receiver, Sender};
use crate::task::cell::JobRef;

pub(crate) type Batch = Vec<JobRef>;

/// The graveyard of one producer lane (see `registry`): a task goes back to
/// the lane of the thread that spawned it, so that the spawner that frees it
/// is, as a rule, the one that allocated it.
struct Lane {
    sender: Sender<Batch>,
    receiver: Receiver<Batch>,
    /// Batches waiting: lets a spawn skip the channel when there are none.
    waiting: AtomicUsize,
}

pub(crate) struct Graveyard {
    lanes: Box<[Padded<Lane>]>,
}

impl Graveyard {
    /// Batches each lane holds at most.
    const LIMIT: usize = 16;

    pub(crate) fn new() -> Graveyard {
        let lanes = (0..lane::LANES)
            .map(|_| {
                let (sender, receiver) = channel();
                Padded(Lane {
                    sender,
                    receiver,
                    waiting: AtomicUsize::new(0),
                })
            })
            .collect();
        Graveyard { lanes }
    }

    /// Leaves the tasks of `batch` for spawners of their lanes to free, or
    /// frees them here where too many wait already. `batch` is sorted by
    /// home shard, so each lane's tasks are one run.
    pub(crate) fn bury(&self, mut batch: Batch) {
        while let Some(last) = batch.last() {
            let lane = lane::lane_of(last.header().home());
            let start = batch
                .iter()
                .rposition(|job| lane::lane_of(job.header().home()) != lane)
                .map_or(0, |before| before + 1);
            let run = if start == 0 {
                std::mem::take(&mut batch)
            } else {
                batch.split_off(start)
            };
            self.lanes[lane].bury(run);
        }
    }

    /// Frees one waiting batch of this thread's lane, if there is one.
    pub(crate) fn free_one(&self) -> bool {
        self.lanes[lane::lane()].free_one()
    }

    /// Frees every waiting batch.
    pub(crate) fn free_all(&self) {
        for lane in self.lanes.iter() {
            while lane.free_one() {}
        }
    }
}

impl Lane {
    fn bury(&self, batch: Batch) {
        if batch.is_empty() || self.waiting.load(Ordering::Relaxed) >= Graveyard::LIMIT {
            return drop(batch);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // The receiver lives in `self`: the send cannot fail.
        let _ = self.sender.send(batch);
    }

    fn free_one(&self) -> bool {
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
}
