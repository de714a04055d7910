//! The worker threads: how they start (lazily), what each does with a job,
//! and how they retire or stop.
//!
//! A worker pulls [`Message`]s from the run queue. For a job it first claims
//! a slot (`slots`; without one the job is deferred, kept ahead of the
//! queue), then the task (QUEUED → RUNNING; a task that was cancelled, or
//! already run by a waiting task, is skipped), shows the task's id in its
//! [`Slot`], runs the closure inside the catch boundary, and settles the
//! task. An idle
//! worker polls the queue for a moment, then sleeps until a sender wakes it
//! (see `idle`).
//!
//! Threads start as work arrives: a spawn that finds fewer threads than
//! active tasks starts one more, up to the limit, so that there are always
//! at least `min(active, limit)` threads, and every thread that is not busy
//! is asleep in `idle` or on its way there.
//!
//! A thread leaves in one of three ways: close sends one exit message
//! per thread; with `keep_alive` an idle thread retires when its receive
//! times out (unless work arrived meanwhile); after `set_max_tasks` lowered
//! the limit, a surplus thread retires before it takes its next task, and
//! idle surplus threads are woken with wake message to do so.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::task::Header;

use super::idle::Next;
use super::slot::{
    enter_worker, leave_worker, worker_stack_size, Slot, WorkerRecord, BUSY, FINISHING,
    INLINE_SHARE_DENOMINATOR, INLINE_SHARE_NUMERATOR, SETTLING,
};
use super::{Engine, Message, Opened, StatCounters};
use crate::current;
use crate::hooks::{Hooks, PanicReport};
use crate::padded::Padded;
use crate::panic::log_safely;
use crate::registry::Removals;
use crate::stats::Stats;
use crate::sync::thread::{self, JoinHandle};
use crate::sync::Ordering;
use crate::task::cell::{Context, JobRef, Messages, Outcome};
use crate::task::{Claim, TaskId};

/// How many times `threads_wanted` retakes a snapshot that changed.
const SNAPSHOT_TRIES: usize = 16;

struct Entry {
    thread: JoinHandle<()>,
    slot: Arc<Padded<Slot>>,
    index: usize,
}

/// The engine's threads. Guarded by a mutex that only thread start and
/// exit, close, `running()` and `stats()` take.
#[derive(Default)]
pub(crate) struct Workers {
    threads: Vec<Entry>,
    /// The slots of live threads and of threads close stopped, kept so that
    /// their counters still count.
    slots: Vec<Arc<Padded<Slot>>>,
    /// The counters of threads that retired.
    retired: StatCounters,
    /// Scratch space for `threads_wanted`, kept to spare an allocation.
    marks: Vec<u64>,
    /// Set by close: no thread starts after it.
    stopped: bool,
}

impl Workers {
    pub(super) fn add_to(&self, stats: &mut Stats, started: &mut u64, discarded: &mut u64) {
        for slot in &self.slots {
            slot.counters.add_to(stats, started, discarded);
            stats.running += usize::from(slot.current.load(Ordering::Acquire) != 0);
        }
        self.retired.add_to(stats, started, discarded);
    }

    /// The lowest thread number not in use, so names stay in `0..limit`.
    fn free_index(&self) -> usize {
        (0..)
            .find(|n| self.threads.iter().all(|entry| entry.index != *n))
            .expect("a free index")
    }
}

/// Why a thread may retire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// `keep_alive` passed without work.
    Idle,
    /// More threads than the limit.
    Surplus,
}

/// How a running task reports back to the engine, on the worker's thread.
struct RunCx<'a> {
    engine: &'a Engine,
    slot: &'a Slot,
    /// What the slot showed before this task (0, or a parked parent's 0).
    previous: u64,
}

impl Context for RunCx<'_> {
    fn panicked(&self, header: &Header, message: &str, payload: &(dyn std::any::Any + Send)) {
        let engine = self.engine;
        log_safely!(Error, "{} panicked: {message}", engine.label(header));
        let hooks = &engine.config.hooks;
        if hooks.on_panic.is_some() {
            let name = engine.name_of(header);
            hooks.panic_hook(&PanicReport::new(
                header.id(),
                name.as_deref(),
                message,
                payload,
            ));
        }
    }

    fn drop_panicked(&self, header: &Header, what: &str, message: &str) {
        log_safely!(
            Error,
            "{}: dropping {what} panicked: {message}",
            self.engine.label(header)
        );
        StatCounters::add(&self.slot.counters.panicked, false);
    }

    fn finishing(&self, _id: TaskId, outcome: Outcome) {
        StatCounters::add(self.slot.counters.counter(outcome), false);
        self.slot.current.store(self.previous, Ordering::Release);
    }

    fn released(&self, header: &Header, outcome: Outcome, extra: bool) {
        self.engine.task_ended(header, outcome, extra);
        self.slot.advance_to(FINISHING);
    }

    fn settled(&self) {
        // The count is bracketed by two moves of the mark, so a spawn that
        // reads the mark unchanged around its read of the count knows on
        // which side of the count it was (see `threads_wanted`).
        self.slot.advance_to(SETTLING);
        self.engine.count_settled();
        self.slot.advance_to(BUSY);
    }

    fn wake_waiters(&self) {
        self.engine.parking.notify_all();
    }

    fn forget_timers(&self) {
        self.engine.timer.forget_settled();
    }

    fn messages(&self) -> &Messages {
        self.engine.messages()
    }
}

/// How a cancelled task reports back, on whatever thread cancelled it.
struct CancelCx<'a>(&'a Engine);

impl Context for CancelCx<'_> {
    fn panicked(&self, header: &Header, message: &str, _payload: &(dyn std::any::Any + Send)) {
        log_safely!(Error, "{} panicked: {message}", self.0.label(header));
    }

    fn drop_panicked(&self, header: &Header, what: &str, message: &str) {
        log_safely!(
            Error,
            "{} was cancelled and dropping {what} panicked: {message}",
            self.0.label(header)
        );
        StatCounters::add(&self.0.stats.panicked, true);
    }

    fn finishing(&self, _id: TaskId, outcome: Outcome) {
        StatCounters::add(&self.0.stats.discarded, true);
        StatCounters::add(self.0.stats.counter(outcome), true);
    }

    fn released(&self, header: &Header, outcome: Outcome, extra: bool) {
        self.0.task_ended(header, outcome, extra);
    }

    fn settled(&self) {
        self.0.count_settled();
    }

    fn wake_waiters(&self) {
        self.0.parking.notify_all();
    }

    fn forget_timers(&self) {
        self.0.timer.forget_settled();
    }

    fn messages(&self) -> &Messages {
        self.0.messages()
    }
}

/// How a spawn refused by a closed engine reports its cancellation: the
/// task was never accepted, so it counts only as cancelled.
pub(super) struct RefusedCx<'a>(pub(super) &'a Engine);

impl Context for RefusedCx<'_> {
    fn panicked(&self, header: &Header, message: &str, _payload: &(dyn std::any::Any + Send)) {
        log_safely!(Error, "{} panicked: {message}", header.id());
    }

    fn drop_panicked(&self, header: &Header, what: &str, message: &str) {
        log_safely!(
            Error,
            "{} was refused and dropping {what} panicked: {message}",
            header.id()
        );
        StatCounters::add(&self.0.stats.panicked, true);
    }

    fn finishing(&self, _id: TaskId, outcome: Outcome) {
        StatCounters::add(self.0.stats.counter(outcome), true);
    }

    fn released(&self, _: &Header, _: Outcome, _: bool) {}

    /// A refused task was never counted as active.
    fn settled(&self) {}

    fn wake_waiters(&self) {
        self.0.parking.notify_all();
    }

    fn messages(&self) -> &Messages {
        self.0.messages()
    }
}

impl Engine {
    /// Starts one more worker unless there are enough for the active tasks,
    /// or close stopped the workers. Fails only if the OS refused.
    pub(super) fn grow(self: &Arc<Self>) -> io::Result<()> {
        let name = {
            let mut workers = self.workers.lock();
            let wanted = self.threads_wanted(&mut workers);
            if workers.stopped || self.threads_alive.load(Ordering::Acquire) >= wanted {
                return Ok(());
            }
            self.start_thread(&mut workers)?
        };
        log_safely!(Trace, "started worker thread {name}");
        Ok(())
    }

    /// How many threads the active tasks need, under the limit.
    ///
    /// A thread whose task is finishing is as good as free: a parent that
    /// joined its child and spawns at once needs no second thread. Such a
    /// task must be subtracted exactly when it is still counted in
    /// `active`. Its thread moves the mark to SETTLING before it counts the
    /// task settled and to BUSY after, so a mark read unchanged around the
    /// read of `active` says which side of the count that read was on:
    /// FINISHING, still counted (subtract it); BUSY, running (the thread is
    /// taken) or counted settled already. A mark that moved, or SETTLING,
    /// leaves it unsure: the snapshot is taken again (a bounded number of
    /// times; then an answer that may start one thread too many, never one
    /// too few).
    fn threads_wanted(&self, workers: &mut Workers) -> usize {
        let Workers { slots, marks, .. } = workers;
        for _ in 0..SNAPSHOT_TRIES {
            marks.clear();
            marks.extend(
                slots
                    .iter()
                    .map(|slot| slot.finishing.load(Ordering::Acquire)),
            );
            let active = self.counts.active();
            let mut finishing = 0;
            let mut sure = true;
            for (slot, before) in slots.iter().zip(marks.iter()) {
                let after = slot.finishing.load(Ordering::Acquire);
                match (after == *before, after % 3) {
                    (true, FINISHING) => finishing += 1,
                    (true, BUSY) => {}
                    _ => sure = false,
                }
            }
            if sure {
                return active.saturating_sub(finishing).min(self.thread_cap());
            }
            // A thread is between two adjacent stores: let it move on.
            thread::yield_now();
        }
        self.counts.active().min(self.thread_cap())
    }

    fn start_thread(self: &Arc<Self>, workers: &mut Workers) -> io::Result<String> {
        let index = workers.free_index();
        let name = format!("{}-{}", self.config.thread_name, index);
        let slot = Arc::new(Padded(Slot::default()));
        let stack_size = worker_stack_size(self.config.stack_size);
        let builder = thread::Builder::new()
            .name(name.clone())
            .stack_size(stack_size);
        let engine = Arc::clone(self);
        let worker_slot = Arc::clone(&slot);
        self.threads_alive.fetch_add(1, Ordering::SeqCst);
        match builder.spawn(move || engine.work(worker_slot, stack_size)) {
            Ok(thread) => {
                workers.threads.push(Entry {
                    thread,
                    slot: Arc::clone(&slot),
                    index,
                });
                workers.slots.push(slot);
                Ok(name)
            }
            Err(error) => {
                self.threads_alive.fetch_sub(1, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    /// Starts threads until there are enough for the active tasks under
    /// the limit (after the limit was raised).
    pub(crate) fn grow_to_limit(self: &Arc<Self>) {
        loop {
            let before = self.threads_alive.load(Ordering::Acquire);
            if self.grow().is_err() || self.threads_alive.load(Ordering::Acquire) == before {
                return;
            }
        }
    }

    /// The body of a worker thread.
    fn work(self: Arc<Self>, slot: Arc<Padded<Slot>>, stack_size: usize) {
        let top = std::hint::black_box(0_u8);
        let top = std::ptr::addr_of!(top) as usize;
        let usable = stack_size / INLINE_SHARE_DENOMINATOR * INLINE_SHARE_NUMERATOR;
        enter_worker(WorkerRecord {
            key: self.key(),
            slot: Arc::clone(&slot),
            engine: Arc::downgrade(&self),
            stack_floor: top.saturating_sub(usable),
        });
        Hooks::thread_hook(&self.config.hooks.on_thread_start, "on_thread_start");
        let mut removals = Removals::new();
        let mut retired = false;
        loop {
            // Deferred tasks are older than anything in the queue.
            if self.deferred_ready() {
                if let Some(job) = self.take_deferred() {
                    self.process(job, &slot, &mut removals, true);
                    continue;
                }
            }
            let keep_alive = self.config.keep_alive;
            let next = self.idle.next(
                &self.receiver,
                || keep_alive.and_then(|idle| Instant::now().checked_add(idle)),
                &|| self.deferred_ready(),
                || self.counts.slots().held(),
            );
            match next {
                Next::Deferred => {}
                Next::TimedOut => {
                    removals.flush(&self.registry, &self.graveyard);
                    if self.try_retire(Retire::Idle, &slot) {
                        retired = true;
                        break;
                    }
                }
                Next::Message(message) => match message.open() {
                    Opened::Run(job) => {
                        if self.is_surplus() && self.try_retire(Retire::Surplus, &slot) {
                            // Hand the job on to a thread that stays.
                            self.enqueue(job);
                            retired = true;
                            break;
                        }
                        self.process(job, &slot, &mut removals, false);
                    }
                    Opened::Wake => {
                        if self.is_surplus() && self.try_retire(Retire::Surplus, &slot) {
                            retired = true;
                            break;
                        }
                    }
                    Opened::Exit => break,
                },
            }
        }
        removals.flush(&self.registry, &self.graveyard);
        Hooks::thread_hook(&self.config.hooks.on_thread_stop, "on_thread_stop");
        leave_worker();
        if !retired {
            self.threads_alive.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// More threads than the limit plus the slots lent by parked tasks.
    pub(super) fn is_surplus(&self) -> bool {
        self.threads_alive.load(Ordering::Acquire) > self.thread_cap()
    }

    /// How many threads may live now: the limit, plus one per lent slot.
    pub(super) fn thread_cap(&self) -> usize {
        self.limit() + self.lent.load(Ordering::Acquire)
    }

    /// Lets this thread go, unless close is stopping the threads (it will
    /// send an exit), the thread is not surplus after all, or (for an idle
    /// thread) work arrived meanwhile.
    fn try_retire(&self, why: Retire, slot: &Arc<Padded<Slot>>) -> bool {
        let mut workers = self.workers.lock();
        if workers.stopped {
            return false;
        }
        match why {
            Retire::Surplus => {
                if !self.is_surplus() {
                    return false;
                }
                self.threads_alive.fetch_sub(1, Ordering::SeqCst);
            }
            Retire::Idle => {
                // Paired with `after_enqueue`: a spawner sends, then reads
                // the thread count; this thread lowers the count, then looks
                // at the queue. All SeqCst (crossbeam's send and `is_empty`
                // are), so one of the two sees the other.
                self.threads_alive.fetch_sub(1, Ordering::SeqCst);
                if !self.receiver.is_empty() {
                    self.threads_alive.fetch_add(1, Ordering::SeqCst);
                    return false;
                }
            }
        }
        if let Some(at) = workers
            .threads
            .iter()
            .position(|entry| Arc::ptr_eq(&entry.slot, slot))
        {
            // Dropping the join handle detaches this (exiting) thread.
            drop(workers.threads.swap_remove(at));
        }
        if let Some(at) = workers.slots.iter().position(|s| Arc::ptr_eq(s, slot)) {
            let slot = workers.slots.swap_remove(at);
            workers.retired.absorb(&slot.counters);
        }
        true
    }

    /// Claims a slot for one job taken from the queue (or deferred, then
    /// `again`), and runs it. Without a free slot the job is deferred: kept
    /// ahead of the queue for the next thread that has one.
    fn process(&self, job: JobRef, slot: &Slot, removals: &mut Removals, again: bool) {
        let header = job.header();
        if !header.is_queued() {
            return; // cancelled, or already run by a waiting task
        }
        if !self.counts.slots().try_claim(self.limit()) {
            if self.counts.slots().is_stopped() {
                return; // close sweeps what is left
            }
            self.defer(job, again);
            return;
        }
        let id = header.id().raw();
        // `occupied` is written before the claim, and the claim is a
        // release: a close that reads the task as RUNNING finds its thread
        // occupied (and does not wait to join it). `current` is written
        // after the start is counted, in the stats and in a bounded queue's
        // count, so that `running()` and `stats()` never show a task that
        // is still counted as queued, and a spawner that sees the task
        // running finds its place in the queue free.
        slot.occupied.store(id, Ordering::Relaxed);
        let Some(claim) = header.try_start() else {
            slot.occupied.store(0, Ordering::Release);
            self.counts.slots().release();
            return;
        };
        StatCounters::add(&slot.counters.started, false);
        if self.counts.started() {
            self.space_freed();
        }
        slot.current.store(id, Ordering::Release);
        self.execute(&job, claim, slot, Some(removals), 0);
        slot.occupied.store(0, Ordering::Release);
        // This thread looks for work next: no wake-up needed.
        self.counts.slots().release();
    }

    /// Runs a task whose claim this thread won, on `slot`, then settles it:
    /// the result is handed over or dropped (inside `run`), then the
    /// registry entry goes, then the task counts as settled.
    pub(super) fn execute(
        &self,
        job: &JobRef,
        claim: Claim<'_>,
        slot: &Slot,
        removals: Option<&mut Removals>,
        previous: u64,
    ) {
        let header = job.header();
        log_safely!(Trace, "{} started", self.label(header));
        let outcome = {
            let _entered = current::enter(header, self.key());
            self.task_starting(header);
            let cx = RunCx {
                engine: self,
                slot,
                previous,
            };
            job.run(claim, &cx)
        };
        log_safely!(Trace, "{} finished: {outcome:?}", self.label(header));
        // A task whose handle was still there when its result was handed
        // over leaves the registry with that handle, at its join or its
        // drop (`Engine::forget`); only the others are removed here. The
        // hand-over never publishes to a handle that detached first, so a
        // handle that sees its task published removes it, and this sees it
        // detached.
        if !Engine::FORGETS || header.is_detached() {
            match removals {
                Some(removals) => removals.push(&self.registry, &self.graveyard, job),
                None => self.registry.remove(job),
            }
        }
    }

    /// Counts a task as settled and wakes idle waiters if that was the
    /// last one they waited for.
    fn count_settled(&self) {
        let settled = self.counts.settled();
        self.after_settle(settled);
    }

    /// Settles a task whose cancellation this thread won: drops its
    /// closure, counts it, and hands `Cancelled` over.
    pub(super) fn settle_cancelled(&self, job: &JobRef, claim: Claim<'_>) {
        if self.counts.left_queue_cancelled() {
            self.space_freed();
        }
        log_safely!(
            Trace,
            "{} cancelled before it started",
            self.label(job.header())
        );
        job.discard(claim, &CancelCx(self));
        self.registry.remove(job);
    }

    /// The ids of the tasks running now, ascending.
    pub(crate) fn running(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .workers
            .lock()
            .slots
            .iter()
            .filter_map(|slot| TaskId::from_raw(slot.current.load(Ordering::Acquire)))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Changes the concurrency limit: raising starts threads for queued
    /// work at once; lowering wakes idle surplus threads to retire.
    pub(crate) fn set_limit(self: &Arc<Self>, limit: usize) {
        let before = self.limit.swap(limit, Ordering::AcqRel);
        if limit > before {
            self.grow_to_limit();
            // Deferred tasks may have room now.
            self.slot_freed();
        } else if limit < before {
            // Under the lock a thread start in progress is counted (it
            // read the old limit): one wake per thread now surplus.
            let _workers = self.workers.lock();
            let alive = self.threads_alive.load(Ordering::Acquire);
            self.post_to_every(alive.saturating_sub(limit), Message::wake);
        }
    }

    /// Stops every worker: marks them stopped, sends each an exit message,
    /// and joins those that are idle. Occupied threads (a task still runs
    /// or is parked on them) and the caller's own thread stay listed and
    /// exit on their own when their task returns.
    pub(super) fn stop_workers(&self) {
        let me = thread::current().id();
        let to_join = {
            let mut workers = self.workers.lock();
            workers.stopped = true;
            self.post_to_every(workers.threads.len(), Message::exit);
            let (keep, join): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut workers.threads)
                .into_iter()
                .partition(|entry| {
                    // A thread whose task has settled and is only handing
                    // its result over will be free in a moment: join it.
                    entry.thread.thread().id() == me
                        || TaskId::from_raw(entry.slot.occupied.load(Ordering::Acquire))
                            .and_then(|id| self.registry.get(id))
                            .is_some_and(|job| job.header().is_running())
                });
            workers.threads = keep;
            join
        };
        for entry in to_join {
            if entry.thread.join().is_err() {
                log_safely!(
                    Error,
                    "a worker thread of {} ended with a panic",
                    self.config.thread_name
                );
            }
        }
    }
}
