//! The manager's counters and the waits built on them.
//!
//! # Counting
//!
//! One atomic word holds two counts: `queued` (accepted, not yet started or
//! cancelled) in the high half and `active` (accepted, not yet settled:
//! queued plus running) in the low half. A spawn adds to both with one
//! read-modify-write; starting a task takes one from `queued`; settling a
//! task takes one from `active`; cancelling a queued task takes one from
//! each at once. Keeping both in one word means a reader never sees a task
//! counted as queued that is not active.
//!
//! `queued` is only kept for a bounded queue, where spawn needs it. With an
//! unbounded queue, starting a task touches no shared counter at all, and
//! `stats()` derives the queued count from `active` and the busy workers.
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
//! A waiter registers in a waiter count, then re-checks the count under its
//! mutex before sleeping; a writer changes the count, then looks at the
//! waiter count and, only if someone waits, takes the mutex to notify. Both
//! sides use `SeqCst` for that pair of accesses: with weaker orderings the
//! writer could miss the new waiter while the waiter misses the new count
//! (the classic store-buffer outcome), and the wake-up would be lost.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::padded::Padded;

const ACTIVE_ONE: u64 = 1;
const QUEUED_ONE: u64 = 1 << 32;
const HALF: u64 = (1 << 32) - 1;

fn queued_of(word: u64) -> usize {
    (word >> 32) as usize
}

fn active_of(word: u64) -> usize {
    (word & HALF) as usize
}

/// A snapshot of the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) queued: usize,
    pub(crate) active: usize,
}

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
        if self.waiters.load(Ordering::SeqCst) > 0 {
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
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if done() {
                break true;
            }
            match deadline {
                None => self.cond.wait(&mut guard),
                Some(deadline) => {
                    if self.cond.wait_until(&mut guard, deadline).timed_out() {
                        break done();
                    }
                }
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// The counts of queued and active tasks, and the waits on them.
#[derive(Default)]
pub(crate) struct Counts {
    word: Padded<AtomicU64>,
    /// `QUEUED_ONE` when the queue is bounded (and `queued` is kept), else 0.
    queued_one: u64,
    idle: Padded<Gate>,
    space: Padded<Gate>,
}

impl Counts {
    pub(crate) fn new(bounded: bool) -> Counts {
        Counts {
            queued_one: if bounded { QUEUED_ONE } else { 0 },
            ..Counts::default()
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let word = self.word.load(Ordering::SeqCst);
        Snapshot {
            queued: queued_of(word),
            active: active_of(word),
        }
    }

    /// Counts one more queued task, unless `capacity` tasks are queued
    /// already. Returns the counts as they were before.
    pub(crate) fn try_reserve(&self, capacity: Option<usize>) -> Result<Snapshot, Full> {
        let before = match capacity {
            None => self.word.fetch_add(self.queued_one + ACTIVE_ONE, Ordering::SeqCst),
            Some(capacity) => {
                let mut current = self.word.load(Ordering::Relaxed);
                loop {
                    if queued_of(current) >= capacity {
                        return Err(Full);
                    }
                    match self.word.compare_exchange_weak(
                        current,
                        current + self.queued_one + ACTIVE_ONE,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(before) => break before,
                        Err(now) => current = now,
                    }
                }
            }
        };
        debug_assert!(active_of(before) < HALF as usize, "too many tasks at once");
        Ok(Snapshot {
            queued: queued_of(before),
            active: active_of(before),
        })
    }

    /// Takes back a reservation whose task was never accepted.
    pub(crate) fn unreserve(&self) {
        self.leave_queue(ACTIVE_ONE);
    }

    /// A queued task started running.
    pub(crate) fn started(&self) {
        if self.queued_one != 0 {
            self.leave_queue(0);
        }
    }

    /// A queued task was cancelled and is settled.
    pub(crate) fn cancelled_queued(&self) {
        self.leave_queue(ACTIVE_ONE);
    }

    /// A running task is settled.
    pub(crate) fn finished(&self) {
        self.word.fetch_sub(ACTIVE_ONE, Ordering::SeqCst);
        self.idle.notify(true);
    }

    fn leave_queue(&self, also: u64) {
        self.word.fetch_sub(self.queued_one + also, Ordering::SeqCst);
        if self.queued_one != 0 {
            self.space.notify(false);
        }
        if also != 0 {
            self.idle.notify(true);
        }
    }

    /// Waits until at most `target` tasks are active, or `deadline` passes.
    pub(crate) fn wait_active_at_most(&self, target: usize, deadline: Option<Instant>) -> bool {
        self.idle
            .wait_until(deadline, || self.snapshot().active <= target)
    }

    /// Waits until fewer than `capacity` tasks are queued or `closing` is
    /// set; returns false if it returned because of `closing`.
    pub(crate) fn wait_for_space(&self, capacity: usize, closing: &AtomicBool) -> bool {
        self.space.wait_until(None, || {
            closing.load(Ordering::SeqCst) || self.snapshot().queued < capacity
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
    fn reserve_start_finish_round_trip() {
        let counts = Counts::new(true);
        assert_eq!(counts.try_reserve(None).ok().unwrap().active, 0);
        assert_eq!(counts.try_reserve(None).ok().unwrap().queued, 1);
        assert_eq!(
            counts.snapshot(),
            Snapshot {
                queued: 2,
                active: 2
            }
        );
        counts.started();
        assert_eq!(
            counts.snapshot(),
            Snapshot {
                queued: 1,
                active: 2
            }
        );
        counts.cancelled_queued();
        counts.finished();
        assert_eq!(
            counts.snapshot(),
            Snapshot {
                queued: 0,
                active: 0
            }
        );
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
    fn unbounded_counts_only_active() {
        let counts = Counts::new(false);
        let _ = counts.try_reserve(None);
        counts.started();
        assert_eq!(counts.snapshot(), Snapshot { queued: 0, active: 1 });
        counts.finished();
        assert_eq!(counts.snapshot(), Snapshot { queued: 0, active: 0 });
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
