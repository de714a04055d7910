//! The manager's counters: how many tasks are accepted, queued and settled.
//!
//! `active` (accepted and not yet settled: queued plus running) is what
//! `drain` and `close` wait on. It is never stored: it is `issued` (task ids
//! handed out, written by spawners: the same read-modify-write gives a task
//! its id and counts it) minus `withdrawn` (ids of spawns that were then
//! rejected, rare) minus `settled` (written by whoever settles a task).
//! `issued` and `settled` sit on separate cache lines, so that a spawner and
//! a worker do not write the same line for every task.
//!
//! A reader loads `settled` first (acquire), then `withdrawn`, then
//! `issued`. Every task counted as settled or withdrawn was issued before, so
//! that order can only over-count `active`, never under-count it: a waiter
//! never wakes while work is left (in particular not while a finishing task
//! has just spawned a child).
//!
//! `queued` (accepted, not yet started or cancelled) is kept exactly only
//! for a bounded queue, where spawn needs it. With an unbounded queue,
//! starting a task touches no shared counter (`stats()` derives the queued
//! count from the per-worker counters).
//!
//! The waits on these counts live in the engine (`engine::wait`); the one
//! ordering rule they rely on is documented at [`Counts::sync_with_settlers`].

use crate::padded::Padded;
use crate::slots::Slots;
use crate::sync::{AtomicU64, Ordering};

/// The queue is at its capacity.
pub(crate) struct Full;

#[derive(Default)]
struct SettledLine {
    settled: AtomicU64,
    slots: Slots,
}

/// The counts of accepted, queued and settled tasks.
#[derive(Default)]
pub(crate) struct Counts {
    issued: Padded<AtomicU64>,
    withdrawn: AtomicU64,
    /// Settled tasks, beside the slots held: a worker writes both for
    /// every task (a release, then the settle's count), so they share one
    /// cache line rather than move two between cores.
    settled: Padded<SettledLine>,
    /// Kept only when `bounded`.
    queued: Padded<AtomicU64>,
    bounded: bool,
}

impl Counts {
    pub(crate) fn new(bounded: bool) -> Counts {
        Counts {
            bounded,
            ..Counts::default()
        }
    }

    /// The slots held by running tasks (see `slots`).
    pub(crate) fn slots(&self) -> &Slots {
        &self.settled.slots
    }

    /// Tasks accepted and not yet settled (see the module docs for why
    /// this never under-counts).
    pub(crate) fn active(&self) -> usize {
        let settled = self.settled.settled.load(Ordering::Acquire);
        self.active_given(settled)
    }

    /// `active`, given a count of settled tasks just read or written.
    pub(crate) fn active_given(&self, settled: u64) -> usize {
        let withdrawn = self.withdrawn.load(Ordering::Acquire);
        let issued = self.issued.load(Ordering::Acquire);
        issued.saturating_sub(withdrawn).saturating_sub(settled) as usize
    }

    /// The highest id handed out so far (0 before the first).
    pub(crate) fn issued(&self) -> u64 {
        self.issued.load(Ordering::Acquire)
    }

    /// Accepted tasks: ids handed out minus spawns taken back.
    pub(crate) fn accepted(&self) -> u64 {
        let withdrawn = self.withdrawn.load(Ordering::Acquire);
        self.issued().saturating_sub(withdrawn)
    }

    /// Tasks waiting for a slot; `None` when the queue is unbounded (and
    /// the count is not kept).
    pub(crate) fn queued(&self) -> Option<usize> {
        self.bounded
            .then(|| self.queued.load(Ordering::Acquire) as usize)
    }

    /// Whether a bounded queue has room for one more.
    pub(crate) fn has_space(&self, capacity: usize) -> bool {
        (self.queued.load(Ordering::Acquire) as usize) < capacity
    }

    /// Counts one more task, unless `capacity` tasks are queued already, and
    /// returns its id (ids start at 1).
    pub(crate) fn try_reserve(&self, capacity: Option<usize>) -> Result<u64, Full> {
        if let Some(capacity) = capacity {
            let mut current = self.queued.load(Ordering::Relaxed);
            loop {
                if current as usize >= capacity {
                    return Err(Full);
                }
                match self.queued.compare_exchange_weak(
                    current,
                    current + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => current = now,
                }
            }
        }
        // Relaxed: the task reaches a worker through the channel, which
        // orders this before the worker's settle.
        Ok(self.issued.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Uses up an id for a task that is refused at once (it counts neither
    /// as accepted nor as active).
    pub(crate) fn burn_id(&self) -> u64 {
        // Issued first: a reader may then over-count `active` for a moment,
        // never under-count it (see the module docs).
        let id = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        self.withdrawn.fetch_add(1, Ordering::AcqRel);
        id
    }

    /// Takes back a reservation whose task was never accepted (its id stays
    /// used); returns the settled count to test waiters against.
    pub(crate) fn unreserve(&self) -> u64 {
        self.withdrawn.fetch_add(1, Ordering::AcqRel);
        self.leave_queue();
        self.sync_with_settlers()
    }

    /// A queued task started running. True if a bounded queue gained room.
    pub(crate) fn started(&self) -> bool {
        self.leave_queue()
    }

    /// A task is settled: it will never run again, its closure is dropped,
    /// and its result handed over or dropped. Returns the new settled count.
    pub(crate) fn settled(&self) -> u64 {
        self.settled.settled.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// A queued task was cancelled: it leaves the queue (settling follows).
    pub(crate) fn left_queue_cancelled(&self) -> bool {
        self.leave_queue()
    }

    fn leave_queue(&self) -> bool {
        if self.bounded {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// The read-modify-write an idle waiter makes after it registers, and
    /// before it tests `active`: settling has no fence on its hot path, and
    /// RMWs on one atomic are totally ordered. If the settler's RMW comes
    /// first, this one reads its count; if this one comes first, the
    /// settler's reads from it and acquires the waiter's registration, so
    /// the settler sees the waiter and wakes it.
    pub(crate) fn sync_with_settlers(&self) -> u64 {
        self.settled.settled.fetch_add(0, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_start_settle_round_trip() {
        let counts = Counts::new(true);
        assert!(counts.try_reserve(Some(10)).is_ok());
        assert!(counts.try_reserve(Some(10)).is_ok());
        assert_eq!((counts.queued(), counts.active()), (Some(2), 2));
        counts.started();
        assert_eq!((counts.queued(), counts.active()), (Some(1), 2));
        counts.left_queue_cancelled();
        counts.settled();
        counts.settled();
        assert_eq!((counts.queued(), counts.active()), (Some(0), 0));
        assert_eq!(counts.issued(), 2);
    }

    #[test]
    fn capacity_is_respected() {
        let counts = Counts::new(true);
        assert!(counts.try_reserve(Some(1)).is_ok());
        assert!(counts.try_reserve(Some(1)).is_err());
        assert!(!counts.has_space(1));
        counts.started();
        assert!(counts.try_reserve(Some(1)).is_ok());
    }

    #[test]
    fn unbounded_counts_no_queue() {
        let counts = Counts::new(false);
        let _ = counts.try_reserve(None);
        counts.started();
        assert_eq!((counts.queued(), counts.active()), (None, 1));
        counts.settled();
        assert_eq!(counts.active(), 0);
        let _ = counts.try_reserve(None);
        counts.unreserve();
        assert_eq!(counts.active(), 0);
        assert_eq!(counts.accepted(), 1);
    }
}
