//! The map from task id to task, for everything that finds a task by id or
//! needs to see them all: `cancel(id)`, `state(id)`, `wait_all`,
//! `cancel_all`, `queued()`, close, and a waiting task that runs the task it
//! waits for.
//!
//! Ids are dense and increasing, so the registry stores tasks in *blocks*
//! of 64 consecutive ids, in shards, each behind its own mutex on its own
//! cache lines. Each spawning thread has a *lane* of shards, and spreads its
//! blocks round them ([`home_for`]; the shard is kept in the task's header,
//! its *home*). Two producers never take the same lock to insert, and a
//! spawner inserting 64 tasks in a row stays on one block and one lock that
//! the workers, removing older blocks, are not touching. A lookup by id
//! does not know the lane, and tries each.
//!
//! Removal is lazy. A task handed over to a live handle is removed by that
//! handle, when it is joined or dropped (`Engine::forget`): on the handle's
//! thread, as a rule the spawner, whose lane the entry is in, so the task
//! is freed where it was allocated. Any other settled task (detached, or
//! whose handle went first) stays registered until its worker removes it
//! with others, in a batch ([`Removals`]) of 64, or when the worker times
//! out idle (with `keep_alive`) or exits; until then an idle worker keeps
//! its batch. Everything that reads the registry checks the task's state,
//! so a settled entry is only a little memory: 8 bytes beside a task that
//! its handle keeps alive anyway. (Why not flush on every idle moment, and
//! what handles removing their own tasks saves: `docs/perf-notes.md`.)
//!
//! The registry is also where close and spawn agree on who got in. A spawner
//! checks the `closing` flag *inside* the shard lock that guards its insert;
//! close sets the flag first and then takes every shard lock once
//! ([`Registry::barrier`]). Either the spawner's insert happened before close
//! took that shard's lock (close will see the task), or the spawner saw the
//! flag and backs out: no task slips in unseen.

use crate::dense::DenseMap;
use crate::graveyard::Graveyard;
use crate::padded::Padded;
use crate::sync::{AtomicBool, Mutex, Ordering};
use crate::task::cell::JobRef;
use crate::task::TaskId;

use crate::lane::{lane, LANES, SHARDS_PER_LANE};

pub(crate) const SHARDS: usize = LANES * SHARDS_PER_LANE;
const BLOCK: u64 = 64;

/// The shard in `lane` that holds the block of `raw_id`.
fn shard_in_lane(lane: usize, raw_id: u64) -> u8 {
    (lane * SHARDS_PER_LANE + ((raw_id / BLOCK) % SHARDS_PER_LANE as u64) as usize) as u8
}

/// The shard a task spawned now, on this thread, with this id lives in
/// (its *home*, kept in its header): a shard of the spawning thread's lane,
/// picked by the task's block of 64 consecutive ids. Two producers never
/// share a lock; one producer fills a block in one shard while workers
/// remove settled tasks of older blocks from the lane's other shards.
/// (Why not one shard per thread, or `id % 16`: `docs/perf-notes.md`.)
pub(crate) fn home_for(raw_id: u64) -> u8 {
    shard_in_lane(lane(), raw_id)
}

/// 64 consecutive ids, and how many of them are registered.
struct Block {
    live: u32,
    tasks: Box<[Option<JobRef>; BLOCK as usize]>,
}

impl Block {
    fn new() -> Block {
        Block {
            live: 0,
            tasks: Box::new([const { None }; BLOCK as usize]),
        }
    }
}

/// A shard's blocks: the one inserts go to now, the others by number, and
/// one spare. The spawner fills one block at a time, so the block it fills
/// is kept apart (its *hot* block): an insert finds it without hashing. A
/// block that empties is kept for the shard's next new block rather than
/// freed (a spawner would allocate a block every 64 tasks, and a worker
/// free it: a cross-thread free the allocator pays for on the spawner's
/// next allocations).
#[derive(Default)]
struct Shard {
    hot: Option<(u64, Block)>,
    blocks: DenseMap<u64, Block>,
    spare: Option<Block>,
}

impl Shard {
    fn block_for_insert(&mut self, number: u64) -> &mut Block {
        if !matches!(&self.hot, Some((hot, _)) if *hot == number) {
            if let Some((old, block)) = self.hot.take() {
                if block.live == 0 {
                    self.spare.get_or_insert(block);
                } else {
                    self.blocks.insert(old, block);
                }
            }
            let block = self
                .blocks
                .remove(&number)
                .or_else(|| self.spare.take())
                .unwrap_or_else(Block::new);
            self.hot = Some((number, block));
        }
        &mut self.hot.as_mut().expect("made hot above").1
    }

    fn block(&self, number: u64) -> Option<&Block> {
        match &self.hot {
            Some((hot, block)) if *hot == number => Some(block),
            _ => self.blocks.get(&number),
        }
    }

    fn block_mut(&mut self, number: u64) -> Option<&mut Block> {
        match &mut self.hot {
            Some((hot, block)) if *hot == number => Some(block),
            _ => self.blocks.get_mut(&number),
        }
    }

    /// Every block, hot or not.
    fn all_blocks(&self) -> impl Iterator<Item = &Block> {
        self.hot
            .iter()
            .map(|(_, block)| block)
            .chain(self.blocks.values())
    }

    /// Takes the entry of `id` out (`None` if it is gone already), and
    /// keeps its block as the spare if that emptied it.
    fn take(&mut self, id: TaskId) -> Option<JobRef> {
        let (block_no, index) = place(id);
        let block = self.block_mut(block_no)?;
        let taken = block.tasks[index].take()?;
        block.live -= 1;
        if block.live == 0 {
            self.release(block_no);
        }
        Some(taken)
    }

    /// A block emptied: kept as the spare, unless it is the hot one, which
    /// stays where the spawner is inserting.
    fn release(&mut self, number: u64) {
        if let Some(block) = self.blocks.remove(&number) {
            debug_assert_eq!(block.live, 0);
            self.spare.get_or_insert(block);
        }
    }
}

fn place(id: TaskId) -> (u64, usize) {
    let block = id.get() / BLOCK;
    (block, (id.get() % BLOCK) as usize)
}

pub(crate) struct Registry {
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Padded(Mutex::default())).collect(),
        }
    }

    fn shard(&self, home: u8) -> &Mutex<Shard> {
        &self.shards[usize::from(home) % SHARDS]
    }

    /// Inserts `job` in its home shard unless `closing` is set; gives it
    /// back if it did not.
    pub(crate) fn insert_unless(&self, job: JobRef, closing: &AtomicBool) -> Result<(), JobRef> {
        let header = job.header();
        let (block, index) = place(header.id());
        let mut shard = self.shard(header.home()).lock();
        if closing.load(Ordering::Acquire) {
            return Err(job);
        }
        let block = shard.block_for_insert(block);
        debug_assert!(block.tasks[index].is_none());
        block.tasks[index] = Some(job);
        block.live += 1;
        Ok(())
    }

    /// Removes these tasks (id and home); the tasks they held are returned
    /// so that they are dropped after the lock is released.
    fn remove_all(&self, entries: &mut Vec<(u8, TaskId)>, dropped: &mut Vec<JobRef>) {
        entries.sort_unstable();
        let mut rest = &entries[..];
        while let Some(&(home, _)) = rest.first() {
            let end = rest
                .iter()
                .position(|&(other, _)| other != home)
                .unwrap_or(rest.len());
            let mut shard = self.shard(home).lock();
            dropped.extend(rest[..end].iter().filter_map(|&(_, id)| shard.take(id)));
            drop(shard);
            rest = &rest[end..];
        }
        entries.clear();
    }

    /// Removes one task now.
    pub(crate) fn remove(&self, job: &JobRef) {
        // The registry's reference is dropped here, after the lock.
        drop(self.take(job));
    }

    /// Removes one task now and hands back the registry's reference to it
    /// (`None` if it was removed already), to be dropped after the lock.
    fn take(&self, job: &JobRef) -> Option<JobRef> {
        let header = job.header();
        self.shard(header.home()).lock().take(header.id())
    }

    /// The task registered under `id`, if any. Its lane is not known (it
    /// is its spawner's): this looks in every lane (a rare call: `cancel`,
    /// `state` and waits by id, not the hot path).
    pub(crate) fn get(&self, id: TaskId) -> Option<JobRef> {
        let (block, index) = place(id);
        (0..LANES).find_map(|lane| {
            let shard = self.shard(shard_in_lane(lane, id.get())).lock();
            shard.block(block)?.tasks[index].clone()
        })
    }

    /// Takes and releases every shard lock once (see the module docs).
    pub(crate) fn barrier(&self) {
        for shard in self.shards.iter() {
            drop(shard.lock());
        }
    }

    /// Every task registered now, in no particular order. Some may have
    /// settled already: callers check the state.
    pub(crate) fn snapshot(&self) -> Vec<JobRef> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for block in shard.all_blocks() {
                all.extend(block.tasks.iter().flatten().cloned());
            }
        }
        all
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .all_blocks()
                    .map(|block| block.live as usize)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// A worker's batch of settled tasks waiting to be removed.
pub(crate) struct Removals {
    ids: Vec<(u8, TaskId)>,
    dropped: Vec<JobRef>,
}

impl Removals {
    const BATCH: usize = 64;

    pub(crate) fn new() -> Removals {
        Removals {
            ids: Vec::with_capacity(Self::BATCH),
            dropped: Vec::with_capacity(Self::BATCH),
        }
    }

    /// Notes a settled task; removes the batch once it is full.
    pub(crate) fn push(&mut self, registry: &Registry, graveyard: &Graveyard, job: &JobRef) {
        let header = job.header();
        self.ids.push((header.home(), header.id()));
        if self.ids.len() >= Self::BATCH {
            self.flush(registry, graveyard);
        }
    }

    /// Removes every noted task now, and leaves the registry's references to
    /// them in the graveyard (see there).
    pub(crate) fn flush(&mut self, registry: &Registry, graveyard: &Graveyard) {
        if !self.ids.is_empty() {
            registry.remove_all(&mut self.ids, &mut self.dropped);
        }
        // A task whose handle went after the hand-over may have been
        // removed by that handle already (see `Engine::forget`): when the
        // whole batch was, there is nothing to bury and the vector is kept.
        if !self.dropped.is_empty() {
            graveyard.bury(std::mem::replace(
                &mut self.dropped,
                Vec::with_capacity(Self::BATCH),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::cell::{Erase, Inline, Task};

    fn job(id: u64) -> JobRef {
        JobRef::new(
            Task::new(
                TaskId::from_raw(id).unwrap(),
                Inline(|| ()),
                (),
                false,
                home_for(id),
            ),
            Erase::STATIC,
        )
    }

    #[test]
    fn insert_get_remove_across_blocks() {
        let registry = Registry::new();
        let open = AtomicBool::new(false);
        for id in 1..=300 {
            assert!(registry.insert_unless(job(id), &open).is_ok());
        }
        assert_eq!(registry.len(), 300);
        assert_eq!(
            registry
                .get(TaskId::from_raw(130).unwrap())
                .unwrap()
                .header()
                .id()
                .get(),
            130
        );
        let mut removals = Removals::new();
        let graveyard = Graveyard::new();
        for id in (1..=300).rev().step_by(2) {
            let job = registry.get(TaskId::from_raw(id).unwrap()).unwrap();
            removals.push(&registry, &graveyard, &job);
        }
        removals.flush(&registry, &graveyard);
        graveyard.free_all();
        assert_eq!(registry.len(), 150);
        assert!(registry.get(TaskId::from_raw(300).unwrap()).is_none());
        assert!(registry.get(TaskId::from_raw(299).unwrap()).is_some());
        let job = registry.get(TaskId::from_raw(299).unwrap()).unwrap();
        registry.remove(&job);
        assert!(registry.get(TaskId::from_raw(299).unwrap()).is_none());
        assert_eq!(registry.snapshot().len(), 149);
    }

    /// A task removed on its own (a join) is skipped by the worker's later
    /// batch: nothing is buried twice, and the block's count stays right.
    #[test]
    fn a_task_removed_alone_is_skipped_by_the_batch() {
        let registry = Registry::new();
        let open = AtomicBool::new(false);
        for id in 1..=64 {
            assert!(registry.insert_unless(job(id), &open).is_ok());
        }
        let graveyard = Graveyard::new();
        let mut removals = Removals::new();
        for id in 1..=64 {
            let job = registry.get(TaskId::from_raw(id).unwrap()).unwrap();
            if id % 2 == 0 {
                assert!(registry.take(&job).is_some());
                assert!(registry.take(&job).is_none(), "removed once only");
            }
            removals.push(&registry, &graveyard, &job);
        }
        removals.flush(&registry, &graveyard);
        assert_eq!(registry.len(), 0);
        assert!(registry.snapshot().is_empty());
        graveyard.free_all();
        // The emptied block is reused for the next ids.
        assert!(registry.insert_unless(job(65), &open).is_ok());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn closing_refuses_inserts() {
        let registry = Registry::new();
        let closing = AtomicBool::new(true);
        assert!(registry.insert_unless(job(1), &closing).is_err());
        assert_eq!(registry.len(), 0);
    }
}
