//! The map from task id to task, for everything that finds a task by id or
//! needs to see them all: `cancel(id)`, `cancel_all` and `close`.
//!
//! It is split into shards, each behind its own mutex and on its own cache
//! line, chosen by the low bits of the id: consecutive ids land on different
//! shards, so a spawner inserting and a worker removing rarely meet on one
//! lock.
//!
//! The registry is also where close and spawn agree on who got in. A spawner
//! checks the `closing` flag *inside* the shard lock that guards its insert;
//! close sets the flag first and then takes every shard lock once
//! ([`Registry::barrier`]). Either the spawner's insert happened before close
//! took that shard's lock (close will see the task), or the spawner saw the
//! flag and backs out: no task slips in unseen.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::task::{Job, TaskId};

const SHARDS: usize = 32;

/// Hashes a task id by multiplying it by a large odd constant (Fibonacci
/// hashing): ids are already unique, they only need their bits spread.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Shard = HashMap<u64, Arc<dyn Job>, BuildHasherDefault<IdHasher>>;

/// Keeps one shard on its own cache lines (two, against adjacent-line
/// prefetching), so that two threads on two shards do not slow each other.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

pub(crate) struct Registry {
    shards: Box<[Padded]>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Padded(Mutex::default())).collect(),
        }
    }

    fn shard(&self, id: TaskId) -> &Mutex<Shard> {
        &self.shards[(id.get() as usize) % SHARDS].0
    }

    /// Inserts `job` unless `closing` is set; returns whether it did.
    pub(crate) fn insert_unless(&self, job: Arc<dyn Job>, closing: &AtomicBool) -> bool {
        let id = job.header().id();
        let mut shard = self.shard(id).lock();
        if closing.load(Ordering::Acquire) {
            return false;
        }
        shard.insert(id.get(), job);
        true
    }

    pub(crate) fn remove(&self, id: TaskId) {
        let removed = self.shard(id).lock().remove(&id.get());
        // Dropped outside the lock: this may be the task's last reference.
        drop(removed);
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        self.shard(id).lock().get(&id.get()).cloned()
    }

    /// Takes and releases every shard lock once (see the module docs).
    pub(crate) fn barrier(&self) {
        for shard in self.shards.iter() {
            drop(shard.0.lock());
        }
    }

    /// Every task registered now, in no particular order.
    pub(crate) fn snapshot(&self) -> Vec<Arc<dyn Job>> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            all.extend(shard.0.lock().values().cloned());
        }
        all
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.lock().len()).sum()
    }
}
