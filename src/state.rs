//! The manager's counters and the waits built on them.
//!
//! # Counting
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
//! Waiters only ever wait for `active` to fall to 0 or 1, so a settler
//! wakes them only when its own count brings `active` to 1 or less: a
//! `drain` does not wake for every task that finishes.
//!
//! `queued` (accepted, not yet started or cancelled) is kept only for a
//! bounded queue, where spawn needs it exactly. With an unbounded queue,
//! starting a task touches no shared counter, and `stats()` derives the
//! queued count from `active` and the busy workers.
//!
//! # Waiting
//!
//! Two waits sit on these counts, each with its own mutex and condition
//! variable so that neither is on the hot path:
//!
//! - *idle*: `drain`, `drain_timeout` and `close` wait until `active` falls
//!   to a target (0, or 1 when the waiter is itself a task of the manager).
//! - *space*: a blocking `spawn` on a bounded queue waits until `queued`
//!   falls below the capacity, or until close begins.
//!
//! A waiter registers in a waiter count, then re-checks under its mutex
//! before sleeping; a writer changes its count, then looks at the waiter
//! count and, only if someone waits, takes the mutex to notify. On both
//! sides a `SeqCst` fence separates the write from the read that follows:
//! without it the writer could miss the new waiter while the waiter misses
//! the new count (the store-buffer outcome), and the wake-up would be lost.
//! (Fences rather than `SeqCst` accesses: the two are equivalent here, but
//! loom only models the fences, and the loom models check this protocol.)

use std::time::Instant;

use crate::padded::Padded;
use crate::sync::{fence, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};

/// The queue is at its capacity.
pub(crate) struct Full;

#[derive(Default)]
struct Gate {
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Gate {
    /// Wakes the waiters after a count changed, if there are any.
    fn notify(&self, all: bool) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            let _guard = self.lock.lock();
            if all {
                self.cond.notify_all();
            } else {
                self.cond.notify_one();
            }
        }
    }

    /// Waits until `done()` holds or `deadline` passes; returns `done()`.
    fn wait_until(&self, deadline: Option<Instant>, mut done: impl FnMut() -> bool) -> bool {
        let mut guard = self.lock.lock();
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let result = loop {
            if done() {
                break true;
            }
            match deadline {
                None => self.cond.wait(&mut guard),
                Some(deadline) => {
                    if Instant::now() >= deadline
                        || self.cond.wait_until(&mut guard, deadline).timed_out()
                    {
                        break done();
                    }
                }
            }
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// The largest `active` any waiter waits for (a task of the manager waits
/// for itself to be the last one).
const WAKE_AT: u64 = 1;

/// The counts of queued and active tasks, and the waits on them.
#[derive(Default)]
pub(crate) struct Counts {
    issued: Padded<AtomicU64>,
    withdrawn: AtomicU64,
    settled: Padded<AtomicU64>,
    /// Kept only when `bounded`.
    queued: Padded<AtomicU64>,
    bounded: bool,
    idle: Padded<Gate>,
    space: Padded<Gate>,
}

impl Counts {
    pub(crate) fn new(bounded: bool) -> Counts {
        Counts {
            bounded,
            ..Counts::default()
        }
    }

    /// Tasks accepted and not yet settled (see the module docs for why
    /// this never under-counts).
    pub(crate) fn active(&self) -> usize {
        let settled = self.settled.load(Ordering::Acquire);
        self.active_given(settled) as usize
    }

    fn active_given(&self, settled: u64) -> u64 {
        let withdrawn = self.withdrawn.load(Ordering::Acquire);
        let issued = self.issued.load(Ordering::Acquire);
        issued.saturating_sub(withdrawn).saturating_sub(settled)
    }

    /// Tasks waiting for a slot; `None` when the queue is unbounded (and
    /// the count is not kept).
    pub(crate) fn queued(&self) -> Option<usize> {
        self.bounded
            .then(|| self.queued.load(Ordering::Acquire) as usize)
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

    /// Takes back a reservation whose task was never accepted (its id stays
    /// used).
    pub(crate) fn unreserve(&self) {
        self.withdrawn.fetch_add(1, Ordering::AcqRel);
        self.leave_queue();
        if self.active_given(self.settled.load(Ordering::Acquire)) <= WAKE_AT {
            self.idle.notify(true);
        }
    }

    /// A queued task started running.
    pub(crate) fn started(&self) {
        self.leave_queue();
    }

    /// A task is settled: it will never run again, and its closure and
    /// (unless a handle will take it) its result are dropped.
    pub(crate) fn settled(&self) {
        let settled = self.settled.fetch_add(1, Ordering::AcqRel) + 1;
        // Only a waiter can care, and only once `active` is down to 1: the
        // loads of the other counters (other threads' lines) happen only
        // while someone waits.
        //
        // No fence here, on the path every task takes: an idle waiter makes
        // a read-modify-write on `settled` itself after it registers (see
        // `wait_active_at_most`). RMWs on one atomic are totally ordered: if
        // ours comes first, the waiter's reads our count; if the waiter's
        // comes first, ours reads from it and acquires its registration.
        if self.idle.waiters.load(Ordering::Relaxed) > 0 && self.active_given(settled) <= WAKE_AT {
            self.idle.notify(true);
        }
    }

    /// A queued task was cancelled and is settled.
    pub(crate) fn cancelled_queued(&self) {
        self.leave_queue();
        self.settled();
    }

    fn leave_queue(&self) {
        if self.bounded {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.space.notify(false);
        }
    }

    /// Waits until at most `target` (0 or 1) tasks are active, or
    /// `deadline` passes.
    pub(crate) fn wait_active_at_most(&self, target: usize, deadline: Option<Instant>) -> bool {
        debug_assert!(target as u64 <= WAKE_AT);
        self.idle.wait_until(deadline, || {
            // The RMW `settled` relies on (see there): orders this check
            // against every settle without a fence on the settle side.
            self.settled.fetch_add(0, Ordering::AcqRel);
            self.active() <= target
        })
    }

    /// Waits until fewer than `capacity` tasks are queued or `closing` is
    /// set; returns false if it returned because of `closing`.
    pub(crate) fn wait_for_space(&self, capacity: usize, closing: &AtomicBool) -> bool {
        self.space.wait_until(None, || {
            closing.load(Ordering::SeqCst) || self.queued.load(Ordering::Acquire) < capacity as u64
        });
        !closing.load(Ordering::SeqCst)
    }

    /// Wakes every blocked spawner, so that it can see that close began.
    pub(crate) fn wake_spawners(&self) {
        let _guard = self.space.lock.lock();
        self.space.cond.notify_all();
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
        counts.cancelled_queued();
        counts.settled();
        assert_eq!((counts.queued(), counts.active()), (Some(0), 0));
    }

    #[test]
    fn capacity_is_respected() {
        let counts = Counts::new(true);
        assert!(counts.try_reserve(Some(1)).is_ok());
        assert!(counts.try_reserve(Some(1)).is_err());
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
    }

    #[test]
    fn idle_wait_times_out_then_succeeds() {
        let counts = Counts::new(false);
        let _ = counts.try_reserve(None);
        let soon = Instant::now() + std::time::Duration::from_millis(5);
        assert!(!counts.wait_active_at_most(0, Some(soon)));
        assert!(counts.wait_active_at_most(1, Some(soon)));
        counts.unreserve();
        assert!(counts.wait_active_at_most(0, None));
    }
}
