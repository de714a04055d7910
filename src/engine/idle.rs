//! How idle workers wait for work, and who wakes them.
//!
//! An idle worker first *searches*: it polls the run queue for a short
//! while, yielding its core between looks (`wait::spin`).
//! Then it *sleeps* on this module's condvar until it is woken or its
//! `keep_alive` runs out. A sender wakes a sleeper only when no worker is
//! searching (a searcher will take the message), and a searcher that finds
//! work while more waits wakes one sleeper to search after it. Work thus
//! reaches idle threads one at a time, as fast as they take it, instead of
//! every send waking a thread of its own: with many more threads than cores
//! (35 by default), waking one per task made the spawner pay a system call
//! per task and set sleepers fighting the spawner for a core (see
//! `docs/perf-notes.md`).
//!
//! # No lost wake-up
//!
//! A sender sends, then (after a `SeqCst` fence) reads `searching` and
//! `sleeping`. A worker going to sleep counts itself sleeping and no longer
//! searching (`SeqCst` read-modify-writes), then (after a fence) looks at the
//! queue once more. Either the sender's reads come after the worker's
//! counts, so it sees a sleeper and no searcher and wakes one, or the
//! worker's look comes after the send and finds the message. A sender that
//! sees another searcher leaves the message to it: that searcher either
//! takes a message, or goes to sleep through the same look and finds it.
//!
//! A wake-up is a *permit*: the waker moves one sleeper from `sleeping` to
//! `searching` under the lock, so that senders that come before the sleeper
//! runs again see a searcher and do not wake a second thread for the same
//! message. Any sleeper may take a permit (not only the one the condvar
//! woke); each looks for one under the lock before it waits again and
//! before it leaves, so a permit never outlives the sleepers.

use std::time::Instant;

use crate::sync::{fence, AtomicUsize, Condvar, Mutex, Ordering, Receiver};

use super::spin::{busy, spin, BUSY_ROUNDS, SPIN_ROUNDS};
use super::Message;

/// How many threads search at once; more go to sleep at once.
const SEARCHERS: usize = 2;

#[derive(Default)]
pub(crate) struct Idle {
    /// Workers polling the queue (and sleepers woken to, not yet running).
    searching: AtomicUsize,
    /// Sleepers without a permit.
    sleeping: AtomicUsize,
    sleepers: Mutex<Sleepers>,
    cond: Condvar,
}

#[derive(Default)]
struct Sleepers {
    /// Threads inside `sleep`.
    count: usize,
    /// Wake-ups granted and not yet taken; never more than `count`.
    permits: usize,
}

/// What an idle worker got.
pub(crate) enum Next {
    Message(Message),
    /// Deferred work is ready (see `Engine::defer`): look there.
    Deferred,
    /// `keep_alive` ran out with the queue empty.
    TimedOut,
}

/// How a sleep ended.
enum Slept {
    /// Woken, or work seen: searching again.
    Searching,
    /// The deadline passed: neither searching nor sleeping.
    TimedOut,
}

impl Idle {
    /// Called after every send: wakes a sleeper if no one searches.
    pub(crate) fn notify_work(&self) {
        fence(Ordering::SeqCst);
        if self.searching.load(Ordering::SeqCst) == 0 && self.sleeping.load(Ordering::SeqCst) > 0 {
            self.wake(1);
        }
    }

    /// Wakes every sleeper (close and resizing send messages that each
    /// worker must see).
    pub(crate) fn wake_all(&self) {
        self.wake(usize::MAX);
    }

    fn wake(&self, most: usize) {
        let mut sleepers = self.sleepers.lock();
        let woken = (sleepers.count - sleepers.permits).min(most);
        if woken == 0 {
            return;
        }
        sleepers.permits += woken;
        self.searching.fetch_add(woken, Ordering::SeqCst);
        self.sleeping.fetch_sub(woken, Ordering::SeqCst);
        if woken == 1 {
            self.cond.notify_one();
        } else {
            self.cond.notify_all();
        }
    }

    /// Workers searching now (a hint).
    pub(crate) fn searching(&self) -> usize {
        self.searching.load(Ordering::Relaxed)
    }

    /// The next message for an idle worker: searches, then sleeps until
    /// `deadline` (none: until woken).
    ///
    /// `deferred` says whether deferred work is ready; it is looked at as
    /// the queue is (a slot freed while this worker sleeps wakes it through
    /// `Engine::slot_freed`). `running` is how many tasks run now: when
    /// none runs and no other worker searches, the manager is handing out
    /// one task at a time, and the search begins with a short busy-wait (a
    /// worker that busy-waits while others run would hold the core a
    /// spawner needs: measured in `docs/perf-notes.md`).
    pub(crate) fn next(
        &self,
        receiver: &Receiver<Message>,
        deadline: impl Fn() -> Option<Instant>,
        deferred: &dyn Fn() -> bool,
        running: impl Fn() -> usize,
    ) -> Next {
        if let Ok(message) = receiver.try_recv() {
            return Next::Message(message);
        }
        let others = self.searching.fetch_add(1, Ordering::SeqCst);
        let mut rounds = if others >= SEARCHERS { 0 } else { SPIN_ROUNDS };
        if rounds > 0 && others == 0 && running() == 0 {
            for round in 0..BUSY_ROUNDS {
                if let Ok(message) = receiver.try_recv() {
                    self.found_work(receiver);
                    return Next::Message(message);
                }
                busy(round);
            }
        }
        loop {
            for round in 0..=rounds {
                if let Ok(message) = receiver.try_recv() {
                    self.found_work(receiver);
                    return Next::Message(message);
                }
                if deferred() {
                    self.found_work(receiver);
                    return Next::Deferred;
                }
                if round < rounds {
                    spin();
                }
            }
            match self.sleep(receiver, deadline(), deferred) {
                Slept::Searching => rounds = SPIN_ROUNDS,
                Slept::TimedOut => return Next::TimedOut,
            }
        }
    }

    /// A searcher took a message: it stops searching, and if it was the
    /// last searcher and more work waits, wakes a sleeper to search next.
    fn found_work(&self, receiver: &Receiver<Message>) {
        let before = self.searching.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && !receiver.is_empty() && self.sleeping.load(Ordering::SeqCst) > 0 {
            self.wake(1);
        }
    }

    /// Sleeps (entered searching) until woken, work is seen, or `deadline`.
    fn sleep(
        &self,
        receiver: &Receiver<Message>,
        deadline: Option<Instant>,
        deferred: &dyn Fn() -> bool,
    ) -> Slept {
        let mut sleepers = self.sleepers.lock();
        sleepers.count += 1;
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        self.searching.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let ended = loop {
            if sleepers.permits > 0 {
                // Woken: the waker counted this thread searching already.
                sleepers.permits -= 1;
                sleepers.count -= 1;
                return Slept::Searching;
            }
            if !receiver.is_empty() || deferred() {
                break Slept::Searching;
            }
            match deadline {
                None => self.cond.wait(&mut sleepers),
                Some(at) => {
                    if self.cond.wait_until(&mut sleepers, at).timed_out() && sleepers.permits == 0
                    {
                        break Slept::TimedOut;
                    }
                }
            }
        };
        // Both ways out of the loop saw no permit, under the lock.
        sleepers.count -= 1;
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
        if let Slept::Searching = ended {
            self.searching.fetch_add(1, Ordering::SeqCst);
        }
        ended
    }
}
