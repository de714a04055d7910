//! Producer *lanes*: each spawning thread is given one of a few lanes on its
//! first spawn, so that the registry's shards (and the graveyard's queues)
//! it writes are its own, not another producer's (see `registry`).

use crate::sync::thread_local_cell;

/// Producer lanes: a spawning thread inserts only into its lane's shards,
/// so that two producers never share a shard lock. (Fewer under loom, where
/// every lock is a branch point of the model.)
pub(crate) const LANES: usize = if cfg!(loom) { 1 } else { 8 };
/// Shards per lane: one producer's consecutive blocks go round them, so
/// that it fills one block while workers remove older ones elsewhere.
pub(crate) const SHARDS_PER_LANE: usize = if cfg!(loom) { 2 } else { 4 };

thread_local_cell! {
    /// This thread's lane, given out round the lanes on its first spawn.
    static LANE: std::cell::Cell<Option<u8>> = std::cell::Cell::new(None);
}

/// Lanes given out so far (for the next thread's).
static NEXT_LANE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// This thread's lane.
pub(crate) fn lane() -> usize {
    LANE.with(|lane| match lane.get() {
        Some(lane) => usize::from(lane),
        None => {
            let next = NEXT_LANE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % LANES;
            lane.set(Some(next as u8));
            next
        }
    })
}

/// The lane a shard belongs to.
pub(crate) fn lane_of(home: u8) -> usize {
    usize::from(home) / SHARDS_PER_LANE
}
