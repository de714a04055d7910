//! The parking gate, and the waits that every blocking call of the crate is
//! built on: they *lend* their slot, and never run a stranger.
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
//! - new work and waiters that may run what they wait for: SeqCst on both
//!   sides, and such waiters never sleep longer than [`HELPER_NAP`];
//! - everything rare (close begins, the excluded set or the wait-for
//!   relation changes, a bounded queue gains room): a fence, or an
//!   unconditional wake.
//!
//! # Waits lend their slot
//!
//! A wait called from inside one of the engine's own tasks *parks* its task:
//! the task stops counting as running, and its slot (`slots`) is lent, so
//! that another worker thread, started if none is idle, runs the queue
//! meanwhile (the compensation of Java's `ForkJoinPool`; the manager may
//! then have more threads than `max_tasks`, at most one more per lent
//! slot). On its own thread a parked task runs only a task it waits for by
//! id (a joined child, a set's member, a map's item), and only while it is
//! still queued: it hands it its own slot if the limit allows, or claims a
//! slot as a worker would. It never runs a stranger, so a task that holds a
//! lock while it waits cannot deadlock on a stranger taking the same lock
//! (rayon's issue 592), and a close keeps its deadline from inside a task.
//! When the wait is over, the task resumes at once, without waiting for a
//! slot. Inline runs nest only while a quarter of the thread's stack is
//! left (`worker::stack_allows_inline`); deeper, the waiting task lends its
//! slot instead, so a chain of 10,000 joins needs no big stack.
//!
//! # Who is left out
//!
//! A task parked in `drain` or `close` (and every task below it on the same
//! thread) is *excluded*: other drains and closes neither wait for it nor
//! list it, since it is itself waiting for them. A task parked waiting on
//! particular tasks stays counted: it will resume its own work, except
//! that a drain or close called from inside task T also leaves out every
//! task parked waiting, directly or through other parked tasks, for T (the
//! *wait-for* relation, kept in [`Parking`] while such tasks sleep).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::slot::{own_slot, stack_allows_inline, Slot};
use super::spin::{busy, cores, spin, BUSY_ROUNDS, SPIN_ROUNDS, TASK_WAIT_SPIN, WAIT_SPIN};
use super::{Engine, StatCounters};
use crate::current;
use crate::padded::Padded;
use crate::sync::{fence, AtomicUsize, Condvar, Mutex, Ordering};
use crate::task::cell::JobRef;
use crate::task::TaskId;

/// The longest a waiter that may run what it waits for sleeps without
/// looking again: a safety net under the SeqCst pairing with spawners.
const HELPER_NAP: Duration = Duration::from_millis(50);

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
    /// Waiting for particular tasks (`join`, `wait_all`, a set, a map, the
    /// end of `scoped`), or `lend_slot`.
    Tasks,
}

impl Park {
    fn excludes(self) -> bool {
        matches!(self, Park::Drain | Park::Close)
    }
}

/// The tasks a wait is for, as far as the engine needs to know them.
pub(crate) trait Awaited {
    /// One of them that may still be queued (a parked task may run it on
    /// its own thread); `None` when none may.
    fn claimable(&mut self) -> Option<JobRef>;
    /// Adds their ids to `out`, for the wait-for relation.
    fn ids(&mut self, out: &mut Vec<TaskId>);
}

/// A wait for no task in particular (drain, close, room in the queue).
pub(crate) struct NoTasks;

impl Awaited for NoTasks {
    fn claimable(&mut self) -> Option<JobRef> {
        None
    }

    fn ids(&mut self, _out: &mut Vec<TaskId>) {}
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
    /// Parked tasks that may run what they wait for once it is queued.
    helpers: AtomicUsize,
    /// Tasks parked in drain or close, and those below them.
    excluded: Mutex<Vec<TaskId>>,
    excluded_count: AtomicUsize,
    /// The wait-for relation: tasks asleep in a wait on particular tasks,
    /// with the ids they wait for.
    waits: Mutex<Vec<(TaskId, Vec<TaskId>)>>,
    waits_count: AtomicUsize,
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
    /// Its slot is lent (a wait nested in `lend_slot` finds it so).
    lent: bool,
}

crate::sync::thread_local_cell! {
    /// The tasks parked on this thread, outermost first.
    static PARKED: RefCell<Vec<ParkedEntry>> = RefCell::new(Vec::new());
}

/// A task parked in a wait; undone when dropped.
struct Parked<'a> {
    engine: &'a Engine,
    me: TaskId,
    slot: Arc<Padded<Slot>>,
    previous: u64,
    excluded: Vec<TaskId>,
    marked: Vec<usize>,
    /// Its slot is lent (it no longer holds one).
    lent: bool,
    /// It lent the slot itself (and takes it back when the wait ends); a
    /// wait nested in `lend_slot` finds the slot lent already.
    lends: bool,
    /// It is in the wait-for relation.
    waiting: bool,
    /// The waiters of the entries it put there: itself, and the tasks
    /// below it on its thread.
    registered: Vec<TaskId>,
    /// It marked its task parked (a wait nested in `lend_slot` finds it
    /// marked already, and leaves the mark to the outer one).
    marked_parked: bool,
}

impl Parked<'_> {
    /// Lends this task's slot, once: another thread may run the queue.
    fn lend(&mut self) {
        if self.lent {
            return;
        }
        self.lent = true;
        self.lends = true;
        PARKED.with(|parked| {
            if let Some(entry) = parked.borrow_mut().last_mut() {
                entry.lent = true;
            }
        });
        let engine = self.engine;
        engine.lent.fetch_add(1, Ordering::SeqCst);
        engine.counts.slots().release();
        engine.slot_freed();
    }

    /// Enters the wait-for relation (before sleeping on particular tasks).
    fn wait_for(&mut self, awaited: &mut dyn Awaited) {
        if self.waiting {
            return;
        }
        let mut ids = Vec::new();
        awaited.ids(&mut ids);
        if ids.is_empty() {
            return;
        }
        self.waiting = true;
        // The tasks parked below this one on its thread (a parent whose
        // wait runs this task inline) wait for it as surely as it waits for
        // `ids`: they enter the relation with it, and leave with it.
        let key = self.engine.key();
        let me = self.me;
        let mut entries = vec![(me, ids)];
        PARKED.with(|parked| {
            for entry in parked.borrow().iter() {
                if entry.key == key && entry.id != me {
                    entries.push((entry.id, vec![me]));
                }
            }
        });
        self.registered = entries.iter().map(|(waiter, _)| *waiter).collect();
        let parking = &self.engine.parking;
        parking.waits.lock().extend(entries);
        parking
            .waits_count
            .fetch_add(self.registered.len(), Ordering::SeqCst);
        // A drain's condition may depend on it.
        parking.notify_all();
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        let engine = self.engine;
        PARKED.with(|parked| {
            let mut parked = parked.borrow_mut();
            parked.pop();
            for &at in &self.marked {
                parked[at].excluded = false;
            }
        });
        if self.waiting {
            let parking = &engine.parking;
            let mut waits = parking.waits.lock();
            let me = self.me;
            // Its own entry, and those of the tasks below it that wait for
            // it: one each, as they were put there.
            for &waiter in &self.registered {
                let ours = |(id, on): &(TaskId, Vec<TaskId>)| {
                    *id == waiter && (waiter == me || on.as_slice() == [me])
                };
                if let Some(at) = waits.iter().position(ours) {
                    waits.swap_remove(at);
                }
            }
            drop(waits);
            parking
                .waits_count
                .fetch_sub(self.registered.len(), Ordering::SeqCst);
        }
        if !self.excluded.is_empty() {
            let parking = &engine.parking;
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
        if self.marked_parked {
            current::with_task(engine.key(), |header| header.set_parked(false));
        }
        if self.lends {
            // Back at once, over the limit if need be; a thread started
            // for the lent slot is surplus once its task is done.
            engine.counts.slots().resume();
            engine.lent.fetch_sub(1, Ordering::SeqCst);
            engine.retire_surplus();
        }
        self.slot.current.store(self.previous, Ordering::Release);
    }
}

impl Engine {
    /// Tasks that every drain and close waits for are all settled. `roots`:
    /// the caller's own tasks (its thread's stack), whose waiters are left
    /// out too.
    pub(super) fn idle_reached(&self, roots: &[TaskId]) -> bool {
        let active = self.counts.active();
        let excluded = self.parking.excluded_count.load(Ordering::Acquire);
        if active <= excluded {
            return true;
        }
        if roots.is_empty() || self.parking.waits_count.load(Ordering::Acquire) == 0 {
            return false;
        }
        active <= excluded + self.waiting_on(roots).len()
    }

    /// The tasks asleep waiting, directly or through other such tasks, for
    /// one of `roots`, that are not excluded already.
    pub(super) fn waiting_on(&self, roots: &[TaskId]) -> Vec<TaskId> {
        if roots.is_empty() || self.parking.waits_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let waits = self.parking.waits.lock();
        let mut reached: Vec<TaskId> = roots.to_vec();
        let mut added = Vec::new();
        loop {
            let before = added.len();
            for (waiter, on) in waits.iter() {
                if !reached.contains(waiter) && on.iter().any(|id| reached.contains(id)) {
                    reached.push(*waiter);
                    added.push(*waiter);
                }
            }
            if added.len() == before {
                break;
            }
        }
        drop(waits);
        let excluded = self.parking.excluded.lock();
        added.retain(|id| !excluded.contains(id));
        added
    }

    /// After a task settled (`settled` is the count its RMW returned):
    /// wakes idle waiters if their condition may hold now.
    pub(super) fn after_settle(&self, settled: u64) {
        let parking = &self.parking;
        if parking.idle_waiters.load(Ordering::Relaxed) > 0
            && self.counts.active_given(settled)
                <= parking.excluded_count.load(Ordering::Acquire)
                    + parking.waits_count.load(Ordering::Acquire)
        {
            parking.notify_all();
        }
    }

    /// After a task joined the run queue: wakes parked waiters (it may be
    /// one they wait for), and starts a thread if threads retired meanwhile.
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
            &mut NoTasks,
        );
        !self.is_closing()
    }

    /// `drain` and `drain_timeout`.
    pub(crate) fn drain(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let roots = self.thread_stack();
        self.wait_until(
            Park::Drain,
            deadline,
            &mut |_| self.idle_reached(&roots),
            &mut NoTasks,
        )
    }

    /// Waits until `ready` holds or `deadline` passes; returns `ready`.
    ///
    /// `ready(sleeping)` is asked again under the gate's mutex just before
    /// each sleep, with `sleeping` true: a wait on particular tasks
    /// announces itself on them then. From inside one of this engine's
    /// tasks the wait parks and lends its slot (see the module docs), and
    /// may run a task of `awaited` that is still queued.
    pub(crate) fn wait_until(
        &self,
        park: Park,
        deadline: Option<Instant>,
        ready: &mut dyn FnMut(bool) -> bool,
        awaited: &mut dyn Awaited,
    ) -> bool {
        if ready(false) {
            return true;
        }
        self.wait_parked(park, deadline, &mut || (), ready, awaited)
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
        awaited: &mut dyn Awaited,
    ) -> bool {
        let mut parked = current::task_of(self.key()).and_then(|me| self.park(me, park));
        on_parked();
        let helping = parked.is_some() && park == Park::Tasks;
        let mut spins = 0;
        // A wait for particular tasks spins a little longer: from outside
        // the manager `WAIT_SPIN`, from inside a task `TASK_WAIT_SPIN`;
        // the end is set at the first look at the clock.
        let long_spin = parked.is_none() && park == Park::Tasks;
        let spin_for = match park {
            Park::Tasks if long_spin => WAIT_SPIN,
            Park::Tasks => TASK_WAIT_SPIN,
            _ => Duration::ZERO,
        };
        let mut spin_until: Option<Instant> = None;
        // With a core to itself (the running tasks and searching workers
        // leave one), it busy-waits first (see `BUSY_ROUNDS`). Never under
        // loom, where the two reads would be branches of every model.
        let mut busy_round = if BUSY_ROUNDS > 0
            && long_spin
            && self.counts.slots().held() + self.idle.searching() < cores()
        {
            0
        } else {
            BUSY_ROUNDS
        };
        loop {
            if ready(false) {
                return true;
            }
            if busy_round < BUSY_ROUNDS {
                busy(busy_round);
                busy_round += 1;
                continue;
            }
            if let Some(parked) = parked.as_mut() {
                if let Some(job) = awaited.claimable() {
                    if self.run_awaited(job, parked) {
                        continue;
                    }
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return ready(false);
            }
            if !spin_for.is_zero() && spin_until.is_none() {
                spin_until = now.checked_add(spin_for);
            }
            if spins < SPIN_ROUNDS || spin_until.is_some_and(|until| now < until) {
                spin();
                spins += 1;
                continue;
            }
            if let Some(parked) = parked.as_mut() {
                parked.lend();
                if park == Park::Tasks {
                    parked.wait_for(awaited);
                }
            }
            let mut guard = self.parking.lock.lock();
            let _registered = Registered {
                counters: [
                    self.parking.counter(park),
                    helping.then_some(&self.parking.helpers),
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
            if helping {
                let nap_end = now + HELPER_NAP;
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

    /// Runs `job`, a task the parked task waits for, on this thread if it
    /// is still queued, enough stack is left, and a slot is had: the
    /// parked task's own, handed over while the limit allows, or one
    /// claimed as a worker claims. False if it did not run it.
    fn run_awaited(&self, job: JobRef, parked: &mut Parked<'_>) -> bool {
        if !stack_allows_inline() {
            // Too deep to nest: another thread runs it.
            parked.lend();
            return false;
        }
        // A slot for `job`: a claimed one when this task's is lent, else
        // this task's own, handed over while the limit allows.
        let claimed = parked.lent;
        if claimed {
            if !self.counts.slots().try_claim(self.limit()) {
                return false;
            }
        } else if !self.counts.slots().transfer(self.limit()) {
            // Over the limit (a parked task resumed, or the limit fell):
            // this task must not hold a slot while it waits.
            parked.lend();
            return false;
        }
        let header = job.header();
        let Some(claim) = header.try_start() else {
            if claimed {
                self.counts.slots().release();
                self.slot_freed();
            }
            return false;
        };
        let slot = &parked.slot;
        let previous = slot.current.load(Ordering::Acquire);
        // As in the worker loop: counted as started (and out of a bounded
        // queue) before it shows.
        StatCounters::add(&slot.counters.started, false);
        if self.counts.started() {
            self.space_freed();
        }
        slot.current.store(header.id().raw(), Ordering::Release);
        self.execute(&job, claim, slot, None, previous);
        if claimed {
            self.counts.slots().release();
            self.slot_freed();
        }
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
        let mut lent = false;
        PARKED.with(|parked| {
            let mut parked = parked.borrow_mut();
            // A wait inside `lend_slot` (the same task, parked already):
            // the slot is lent already.
            lent = parked
                .last()
                .is_some_and(|entry| entry.key == key && entry.id == me && entry.lent);
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
                lent,
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
        let marked_parked =
            current::with_task(key, |header| !header.set_parked(true)).unwrap_or(false);
        Some(Parked {
            engine: self,
            me,
            slot,
            previous,
            excluded,
            marked,
            lent,
            lends: false,
            waiting: false,
            registered: Vec::new(),
            marked_parked,
        })
    }

    /// Runs `f` with the calling task parked and its slot lent at once
    /// (`lend_slot`); outside one of this engine's tasks, just runs `f`.
    /// The task resumes when `f` returns or unwinds.
    pub(crate) fn lending<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(mut parked) =
            current::task_of(self.key()).and_then(|me| self.park(me, Park::Tasks))
        else {
            return f();
        };
        parked.lend();
        let result = f();
        drop(parked);
        result
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
        ids.dedup();
        ids
    }

    /// Tasks parked in drain or close now, and those below them.
    pub(super) fn excluded_now(&self) -> Vec<TaskId> {
        self.parking.excluded.lock().clone()
    }
}
