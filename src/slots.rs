//! The reservation that keeps `max_tasks` exact: how many tasks hold a
//! slot, and whether close has stopped every claim.
//!
//! A task may start only by *claiming* a slot, and a claim is one atomic
//! step that checks and takes together: a compare-and-swap that raises the
//! count only while it is below the limit. So however many threads race to
//! start tasks (workers, waiting tasks claiming what they wait for, a
//! limit that changes meanwhile), no task starts while `limit` or more hold
//! a slot.
//!
//! Who holds a slot: every task that runs and is not parked. A task that
//! parks in a wait *lends* its slot ([`Slots::release`]); when its wait
//! ends it *resumes* at once ([`Slots::resume`]), without waiting for a
//! slot, so the count may exceed the limit until the lent slot's task
//! finishes; no claim succeeds meanwhile. A waiting task that runs a task it
//! waits for on its own thread hands it its own slot ([`Slots::transfer`]),
//! which is allowed only while the count is within the limit.
//!
//! Close stops claims first ([`Slots::stop`]), then sweeps what is left:
//! every task it finds running held its slot before the deadline, so the
//! report's `abandoned` names only tasks that were running at it.

use crate::sync::{AtomicU64, Ordering};

/// Set once close has stopped every claim.
const STOPPED: u64 = 1 << 63;
/// The count of slots held.
const HELD: u64 = (1 << 32) - 1;

/// See the module docs.
#[derive(Default)]
pub(crate) struct Slots {
    word: AtomicU64,
}

impl Slots {
    /// Takes a slot if fewer than `limit` are held and claims are not
    /// stopped. Acquire-release: a claim that sees a released slot sees
    /// everything its holder did before releasing it.
    #[inline]
    pub(crate) fn try_claim(&self, limit: usize) -> bool {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if current & STOPPED != 0 || (current & HELD) as usize >= limit {
                return false;
            }
            match self.word.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// A waiting task hands its own slot to a task it waits for: allowed
    /// while no more than `limit` slots are held (its own among them) and
    /// claims are not stopped. A read-modify-write that changes nothing, so
    /// that it is ordered with every claim as a claim would be.
    #[inline]
    pub(crate) fn transfer(&self, limit: usize) -> bool {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if current & STOPPED != 0 || (current & HELD) as usize > limit {
                return false;
            }
            match self.word.compare_exchange_weak(
                current,
                current,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Gives a slot back (its task settled, or parked). SeqCst: paired with
    /// an idle worker's look at the slots before it sleeps (see `idle`).
    #[inline]
    pub(crate) fn release(&self) {
        let before = self.word.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before & HELD != 0, "a slot released twice");
    }

    /// A parked task takes its slot back at once, over the limit if need
    /// be.
    pub(crate) fn resume(&self) {
        self.word.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops every claim from now on (close, at its deadline).
    pub(crate) fn stop(&self) {
        self.word.fetch_or(STOPPED, Ordering::SeqCst);
    }

    /// Whether a claim could succeed now under `limit` (a hint: it may
    /// change at once).
    pub(crate) fn has_room(&self, limit: usize) -> bool {
        let current = self.word.load(Ordering::SeqCst);
        current & STOPPED == 0 && ((current & HELD) as usize) < limit
    }

    /// Whether close has stopped every claim.
    pub(crate) fn is_stopped(&self) -> bool {
        self.word.load(Ordering::Acquire) & STOPPED != 0
    }

    /// How many slots are held now (a hint: it may change at once).
    pub(crate) fn held(&self) -> usize {
        (self.word.load(Ordering::Acquire) & HELD) as usize
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_at_the_limit_and_resume_may_exceed_it() {
        let slots = Slots::default();
        assert!(slots.try_claim(2));
        assert!(slots.try_claim(2));
        assert!(!slots.try_claim(2), "the third claim under a limit of 2");
        slots.release(); // a task parks
        assert!(slots.try_claim(2), "its lent slot is taken");
        slots.resume(); // the parked task comes back
        assert_eq!(slots.held(), 3);
        assert!(!slots.transfer(2), "no hand-over while over the limit");
        slots.release();
        assert!(slots.transfer(2), "within the limit again");
        assert!(!slots.try_claim(2));
        slots.release();
        assert!(slots.has_room(2));
        slots.stop();
        assert!(!slots.try_claim(2) && !slots.transfer(2) && !slots.has_room(2));
        assert_eq!(slots.held(), 1);
    }
}
