//! The parking gate, and the helping wait that every blocking call of the
//! crate is built on.
//!
//! # One gate
//!
//! Every wait (drain, close, a spawn on a full queue, `join`, `wait_all`,
//! task sets, maps, scopes) sleeps on the engine's one [`Parking`] gate: a
//! mutex, a condition variable, and counters that say who is asleep. A
//! waiter takes the mutex, registers, re-checks what it waits for, and only
//! then sleeps; whoever changes what a waiter may be waiting for looks at
//! the counters afterwards and, if anyone waits, takes the mutex and wakes
//! everyone (each re-checks its own condition). Between the change and the
//! look, and between the registration and the re-check, an ordering rule
//! keeps a wake-up from being lost; each pair has its own, chosen so that
//! the per-task hot path pays nothing:
//!
//! - settling and `drain`/`close`: an RMW on the settled counter by the
//!   waiter (`Counts::sync_with_settlers`);
//! - a task's hand-over and `join`: RMWs on the task's state word
//!   (`Header::announce_waiter`);
//! - new work and helpers asleep: SeqCst on both sides (the channel's send
//!   and emptiness test are SeqCst, and so are the helper count's accesses);
//!   helpers also never sleep longer than [`HELPER_NAP`];
//! - everything rare (close begins, the excluded set changes, a bounded
//!   queue gains room): a fence, or an unconditional wake.
//!
//! # Waits that help
//!
//! A wait called from inside one of the engine's own tasks must not sleep
//! while the work it waits for sits in the queue behind it: with every slot
//! taken by waiting tasks, nothing would ever run. So such a wait *parks*
//! its task (the task stops counting as running, and its slot is lent) and,
//! while fewer tasks run than the limit allows, claims queued tasks and runs
//! them on its own thread: first the ones it waits for (a joined child, a
//! task set's members), then the oldest in the queue. The task ids and
//! `current_task()` nest; when the wait is over, the task resumes at once.
//!
//! A task parked in `drain` or `close` (and every task below it on the same
//! thread) is *excluded*: other drains and closes neither wait for it nor
//! list it, since it is itself waiting for them. A task parked waiting on
//! particular tasks stays counted: it will resume its own work.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::worker::{own_slot, Slot};
use super::{Engine, Opened, StatCounters};
use crate::current;
use crate::padded::Padded;
use crate::sync::{fence, AtomicUsize, Condvar, Mutex, Ordering};
use crate::task::cell::JobRef;
use crate::task::TaskId;

/// The longest a helping waiter sleeps without looking at the queue again:
/// a safety net under the SeqCst pairing with spawners.
const HELPER_NAP: Duration = Duration::from_millis(50);

/// How many rounds a wait spins before it sleeps on the gate (and an idle
/// worker before it sleeps on the idle condvar, `idle`): most waits for a
/// short task end within a few microseconds, and a sleep and wake-up costs
/// more than that. None under loom, where every spin would be a branch of
/// the model.
pub(super) const SPIN_ROUNDS: u32 = if cfg!(loom) { 0 } else { 10 };

/// One round of a spin: gives the core away (`yield_now`) rather than
/// busy-waiting on it. A pool nearly always has more threads than cores
/// (the spawner besides the workers; up to 35 workers with the default
/// `max_tasks`), and the thread a spinner waits for (the spawner that will
/// send the next task, the worker that will finish the awaited one) may be
/// waiting for that very core: a busy-wait holds it for its whole spin.
/// rayon's idle workers yield the same way. Measured in
/// `docs/perf-notes.md`.
pub(super) fn spin() {
    std::thread::yield_now();
}

/// What a wait is for: decides which counters it registers in, and whether
/// its task is excluded from other drains and closes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Park {
    /// `drain`: waits for every other task to settle; excluded.
    Drain,
    /// `close` (running one or waiting for one); excluded.
    Close,
    /// A spawn waiting for room in a bounded queue.
    Space,
    /// Waiting for particular tasks (`join`, `wait_all`, a set, a map).
    Tasks,
}

impl Park {
    fn excludes(self) -> bool {
        matches!(self, Park::Drain | Park::Close)
    }
}

/// Where every wait of an engine sleeps; see the module docs.
#[derive(Default)]
pub(crate) struct Parking {
    lock: Mutex<()>,
    cond: Condvar,
    /// Waiting for `active` to fall (drain, close).
    idle_waiters: AtomicUsize,
    /// Waiting for room in a bounded queue.
    space_waiters: AtomicUsize,
    /// Tasks parked in a wait, which take new work.
    helpers: AtomicUsize,
    /// Tasks parked in drain or close, and those below them.
    excluded: Mutex<Vec<TaskId>>,
    excluded_count: AtomicUsize,
}

impl Parking {
    /// Wakes every waiter; each re-checks what it waits for.
    pub(crate) fn notify_all(&self) {
        let _guard = self.lock.lock();
        self.cond.notify_all();
    }

    fn counter(&self, park: Park) -> Option<&AtomicUsize> {
        match park {
            Park::Drain | Park::Close => Some(&self.idle_waiters),
            Park::Space => Some(&self.space_waiters),
            Park::Tasks => None,
        }
    }
}

/// One registration on the gate, undone when dropped.
struct Registered<'a> {
    counters: [Option<&'a AtomicUsize>; 2],
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        for counter in self.counters.iter().flatten() {
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

struct ParkedEntry {
    key: usize,
    id: TaskId,
    excluded: bool,
}

crate::sync::thread_local_cell! {
    /// The tasks parked on this thread, outermost first.
    static PARKED: RefCell<Vec<ParkedEntry>> = RefCell::new(Vec::new());
}

/// A task parked in a wait; undone when dropped.
struct Parked<'a> {
    engine: &'a Engine,
    slot: Arc<Padded<Slot>>,
    previous: u64,
    excluded: Vec<TaskId>,
    marked: Vec<usize>,
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        PARKED.with(|parked| {
            let mut parked = parked.borrow_mut();
            parked.pop();
            for &at in &self.marked {
                parked[at].excluded = false;
            }
        });
        if !self.excluded.is_empty() {
            let parking = &self.engine.parking;
            let mut list = parking.excluded.lock();
            for id in &self.excluded {
                if let Some(at) = list.iter().position(|x| x == id) {
                    list.swap_remove(at);
                }
            }
            parking
                .excluded_count
                .fetch_sub(self.excluded.len(), Ordering::SeqCst);
        }
        self.slot.current.store(self.previous, Ordering::Release);
    }
}

/// What the oldest message in the queue turned out to be.
enum Taken {
    Job(JobRef),
    /// A control message for a worker, put back: nothing to run now.
    Control,
    Nothing,
}

impl Engine {
    /// Tasks that every drain and close waits for are all settled.
    pub(super) fn idle_reached(&self) -> bool {
        self.counts.active() <= self.parking.excluded_count.load(Ordering::Acquire)
    }

    /// After a task settled (`settled` is the count its RMW returned):
    /// wakes idle waiters if their condition may hold now.
    pub(super) fn after_settle(&self, settled: u64) {
        let parking = &self.parking;
        if parking.idle_waiters.load(Ordering::Relaxed) > 0
            && self.counts.active_given(settled) <= parking.excluded_count.load(Ordering::Acquire)
        {
            parking.notify_all();
        }
    }

    /// After a task joined the run queue: wakes parked helpers (they may
    /// run it), and starts a thread if threads retired meanwhile.
    pub(super) fn after_enqueue(self: &Arc<Self>) {
        if self.parking.helpers.load(Ordering::SeqCst) > 0 {
            self.parking.notify_all();
        }
        if self.threads_alive.load(Ordering::SeqCst) == 0 {
            let _ = self.grow();
        } else if self.config.keep_alive.is_some() {
            // A thread counted by the spawn's `ensure_threads` may have
            // timed out and retired before the send. Paired with
            // `try_retire`: this send is SeqCst before the thread count is
            // read again, and a retiring thread lowers the count before it
            // looks at the queue, so either it sees this task and stays, or
            // this sees it gone and starts another.
            let _ = self.ensure_threads();
        }
    }

    /// A bounded queue gained room: wakes blocked spawners.
    pub(super) fn space_freed(&self) {
        fence(Ordering::SeqCst);
        if self.parking.space_waiters.load(Ordering::Relaxed) > 0 {
            self.parking.notify_all();
        }
    }

    /// Waits for room in a bounded queue; false if close began instead.
    pub(super) fn wait_for_space(&self) -> bool {
        let capacity = self.config.queue_capacity.unwrap_or(usize::MAX);
        self.wait_until(
            Park::Space,
            None,
            &mut |_| self.is_closing() || self.counts.has_space(capacity),
            &mut || None,
        );
        !self.is_closing()
    }

    /// `drain` and `drain_timeout`.
    pub(crate) fn drain(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        self.wait_until(
            Park::Drain,
            deadline,
            &mut |_| self.idle_reached(),
            &mut || None,
        )
    }

    /// Waits until `ready` holds or `deadline` passes; returns `ready`.
    ///
    /// `ready(sleeping)` is asked again under the gate's mutex just before
    /// each sleep, with `sleeping` true: a wait on particular tasks
    /// announces itself on them then. From inside one of this engine's
    /// tasks the wait helps (see the module docs): `targets` offers the
    /// tasks it waits for that may still be queued.
    pub(crate) fn wait_until(
        &self,
        park: Park,
        deadline: Option<Instant>,
        ready: &mut dyn FnMut(bool) -> bool,
        targets: &mut dyn FnMut() -> Option<JobRef>,
    ) -> bool {
        if ready(false) {
            return true;
        }
        self.wait_parked(park, deadline, &mut || (), ready, targets)
    }

    /// `wait_until` without its first look, with `on_parked` run once the
    /// calling task (if it is one of this engine's) is parked, before the
    /// wait begins: what it sets in motion sees the caller parked (and
    /// excluded, for a close), never still running.
    pub(crate) fn wait_parked(
        &self,
        park: Park,
        deadline: Option<Instant>,
        on_parked: &mut dyn FnMut(),
        ready: &mut dyn FnMut(bool) -> bool,
        targets: &mut dyn FnMut() -> Option<JobRef>,
    ) -> bool {
        let parked = current::task_of(self.key()).and_then(|me| self.park(me, park));
        on_parked();
        let helping = parked.as_ref().map(|parked| Arc::clone(&parked.slot));
        let mut spins = 0;
        loop {
            if ready(false) {
                return true;
            }
            let mut bounced = false;
            if let Some(slot) = &helping {
                if self.may_help() {
                    if let Some(job) = targets() {
                        if self.run_here(job, slot) {
                            continue;
                        }
                    }
                    match self.take_oldest() {
                        Taken::Job(job) => {
                            self.run_here(job, slot);
                            continue;
                        }
                        Taken::Control => bounced = true,
                        Taken::Nothing => {}
                    }
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return ready(false);
            }
            if spins < SPIN_ROUNDS {
                spin();
                spins += 1;
                continue;
            }
            let mut guard = self.parking.lock.lock();
            let _registered = Registered {
                counters: [
                    self.parking.counter(park),
                    helping.as_ref().map(|_| &self.parking.helpers),
                ],
            };
            for counter in _registered.counters.iter().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            match park {
                Park::Drain | Park::Close => {
                    self.counts.sync_with_settlers();
                }
                Park::Space => fence(Ordering::SeqCst),
                Park::Tasks => {}
            }
            if ready(true) {
                return true;
            }
            let mut until = deadline;
            if helping.is_some() {
                if !bounced && !self.receiver.is_empty() && self.may_help() {
                    continue;
                }
                let nap = if bounced {
                    Duration::from_millis(1)
                } else {
                    HELPER_NAP
                };
                let nap_end = now + nap;
                until = Some(until.map_or(nap_end, |until| until.min(nap_end)));
            }
            match until {
                None => self.parking.cond.wait(&mut guard),
                Some(until) => {
                    let _ = self.parking.cond.wait_until(&mut guard, until);
                }
            }
        }
    }

    /// Whether a parked task may run another now: fewer tasks run than the
    /// limit (parked ones not counted), and close is not stopping.
    fn may_help(&self) -> bool {
        if self.stopping.load(Ordering::Acquire) {
            return false;
        }
        // With no surplus thread, every other thread runs at most one task
        // and this one runs none: there is room by construction.
        self.threads_alive.load(Ordering::Acquire) <= self.limit()
            || self.running_count() < self.limit()
    }

    /// The oldest message in the run queue, if it is a task still queued.
    fn take_oldest(&self) -> Taken {
        loop {
            match self.receiver.try_recv() {
                Ok(message) => match message.open() {
                    Opened::Run(job) => {
                        if job.header().is_queued() {
                            return Taken::Job(job);
                        }
                    }
                    other => {
                        // Meant for a worker: put it back for one.
                        self.post(other.into());
                        return Taken::Control;
                    }
                },
                Err(_) => return Taken::Nothing,
            }
        }
    }

    /// Claims `job` and runs it on this (parked) thread; false if someone
    /// else claimed it first.
    fn run_here(&self, job: JobRef, slot: &Slot) -> bool {
        let header = job.header();
        let previous = slot.current.load(Ordering::Acquire);
        let Some(claim) = header.try_start() else {
            return false;
        };
        // As in the worker loop: counted as started (and out of a bounded
        // queue) before it shows.
        StatCounters::add(&slot.counters.started, false);
        if self.counts.started() {
            self.space_freed();
        }
        slot.current.store(header.id().raw(), Ordering::Release);
        self.execute(&job, claim, slot, None, previous);
        true
    }

    /// Parks the task `me` running on this thread for a wait of kind
    /// `park`; `None` if this thread is not one of this engine's workers.
    fn park(&self, me: TaskId, park: Park) -> Option<Parked<'_>> {
        let key = self.key();
        let slot = own_slot(key)?;
        let previous = slot.current.swap(0, Ordering::AcqRel);
        let mut excluded = Vec::new();
        let mut marked = Vec::new();
        PARKED.with(|parked| {
            let mut parked = parked.borrow_mut();
            if park.excludes() {
                for (at, entry) in parked.iter_mut().enumerate() {
                    if entry.key == key && !entry.excluded {
                        entry.excluded = true;
                        marked.push(at);
                        excluded.push(entry.id);
                    }
                }
                excluded.push(me);
            }
            parked.push(ParkedEntry {
                key,
                id: me,
                excluded: park.excludes(),
            });
        });
        if !excluded.is_empty() {
            self.parking.excluded.lock().extend_from_slice(&excluded);
            self.parking
                .excluded_count
                .fetch_add(excluded.len(), Ordering::SeqCst);
            // Waiters' condition depends on the excluded count.
            self.parking.notify_all();
        }
        Some(Parked {
            engine: self,
            slot,
            previous,
            excluded,
            marked,
        })
    }

    /// The ids of this engine's tasks on this thread: the running one and
    /// those parked below it.
    pub(super) fn thread_stack(&self) -> Vec<TaskId> {
        let key = self.key();
        let mut ids: Vec<TaskId> = PARKED.with(|parked| {
            parked
                .borrow()
                .iter()
                .filter(|entry| entry.key == key)
                .map(|entry| entry.id)
                .collect()
        });
        ids.extend(current::task_of(key));
        ids
    }

    /// Tasks parked in drain or close now, and those below them.
    pub(super) fn excluded_now(&self) -> Vec<TaskId> {
        self.parking.excluded.lock().clone()
    }
}
