//! The worker threads: how they start (lazily), what each does with a job,
//! and how they stop.
//!
//! A worker pulls [`Message`]s from the manager's channel. For a job it
//! first claims the task (QUEUED → RUNNING; a task that was cancelled, or
//! already run by a joining parent, is skipped), publishes the task's id in
//! its [`Slot`], runs the closure inside the `catch_unwind` boundary, and
//! settles the task. Idle workers block in the channel's `recv`, which parks
//! the thread: nothing spins.
//!
//! Threads start as work arrives: a spawn that finds fewer threads than
//! active tasks starts one more, up to `max_tasks`, so that there are always
//! at least `min(active, max_tasks)` threads. Every non-running thread is
//! then either blocked in `recv` (and woken by the channel for the next job)
//! or on its way there, so no queued task waits while a slot is free.
//!
//! What a worker does per task stays on its own cache lines where it can:
//! its slot holds its counters (summed by `stats()`), and it removes settled
//! tasks from the registry in batches (see `registry`).
//!
//! Close stops the workers with one [`Message::Exit`] per thread, sent after
//! every task has been settled or claimed. A worker whose task is still
//! running takes its exit message when the task returns.

use std::io;
use std::sync::Arc;

use crate::current;
use crate::manager::{Shared, StatCounters};
use crate::padded::Padded;
use crate::registry::Removals;
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{AtomicU64, Ordering};
use crate::task::{Job, Outcome, TaskId};

/// What travels through the manager's channel.
pub(crate) enum Message {
    Run(Arc<dyn Job>),
    Exit,
}

/// One worker's view to the outside: the task it runs now (0 when none),
/// for `running()` and for close; and its counters, for `stats()`.
pub(crate) struct Slot {
    current: AtomicU64,
    pub(crate) counters: StatCounters,
}

impl Slot {
    pub(crate) fn task(&self) -> Option<TaskId> {
        TaskId::new(self.current.load(Ordering::Acquire))
    }
}

struct Entry {
    thread: JoinHandle<()>,
    slot: Arc<Padded<Slot>>,
}

/// The manager's threads. Guarded by a mutex that only thread start, close,
/// `running()` and `stats()` take.
#[derive(Default)]
pub(crate) struct Workers {
    threads: Vec<Entry>,
    /// Every slot ever started (at most `max_tasks`), kept after its thread
    /// is joined so that its counters still count.
    slots: Vec<Arc<Padded<Slot>>>,
    /// Set by close: no thread starts after it.
    stopped: bool,
}

impl Workers {
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.slots.iter().map(|slot| &slot.0)
    }
}

/// Decrements the live-thread count when a worker thread ends, however it
/// ends.
struct ThreadCount<'a>(&'a Shared);

impl Drop for ThreadCount<'_> {
    fn drop(&mut self) {
        self.0.threads_alive.fetch_sub(1, Ordering::Release);
    }
}

impl Shared {
    /// Starts one more worker unless there are enough for `active` tasks, or
    /// close stopped the workers. Fails only if the OS refused the thread.
    pub(crate) fn grow(self: &Arc<Self>, active: usize) -> io::Result<()> {
        let mut workers = self.workers.lock();
        let wanted = active.min(self.config.max_tasks);
        if workers.stopped || workers.slots.len() >= wanted {
            return Ok(());
        }
        let index = workers.slots.len();
        let slot = Arc::new(Padded(Slot {
            current: AtomicU64::new(0),
            counters: StatCounters::default(),
        }));
        let mut builder =
            thread::Builder::new().name(format!("{}-{}", self.config.thread_name, index));
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let shared = Arc::clone(self);
        let worker_slot = Arc::clone(&slot);
        self.threads_alive.fetch_add(1, Ordering::AcqRel);
        match builder.spawn(move || shared.work(&worker_slot)) {
            Ok(thread) => {
                workers.threads.push(Entry {
                    thread,
                    slot: Arc::clone(&slot),
                });
                workers.slots.push(slot);
                self.threads_started
                    .store(workers.slots.len(), Ordering::Release);
                log::trace!(
                    "started worker thread {}-{}",
                    self.config.thread_name,
                    index
                );
                Ok(())
            }
            Err(error) => {
                self.threads_alive.fetch_sub(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }

    /// The body of a worker thread.
    fn work(&self, slot: &Slot) {
        let _count = ThreadCount(self);
        let mut removals = Removals::new();
        // Straight into a blocking `recv`: a `try_recv` first, to tidy up
        // before sleeping, cost a third more per task when workers idle often.
        while let Ok(Message::Run(job)) = self.receiver.recv() {
            self.process(job, slot, &mut removals);
        }
        removals.flush(&self.registry, &self.graveyard);
    }

    /// Claims and runs one job taken from the channel.
    fn process(&self, job: Arc<dyn Job>, slot: &Slot, removals: &mut Removals) {
        let header = job.header();
        if !header.is_queued() {
            return; // cancelled, or already run by a joining parent
        }
        // The slot is written before the claim, and the claim is a release:
        // whoever reads the task as RUNNING (close) then finds it in a slot.
        slot.current.store(header.id().get(), Ordering::Relaxed);
        if !header.try_start() {
            slot.current.store(0, Ordering::Release);
            return;
        }
        self.counts.started();
        self.execute(job, Some((slot, removals)));
    }

    /// Runs a task whose claim this thread won, then settles it: counters,
    /// slot, registry, the active count, and last the result.
    ///
    /// A result nobody will take is dropped before the task stops counting
    /// as active (a scoped result may borrow from the scope). A result a
    /// handle will take is published after, so that a caller who joined the
    /// task and then reads the stats sees the task counted and no longer
    /// running.
    pub(crate) fn execute(&self, job: Arc<dyn Job>, worker: Option<(&Slot, &mut Removals)>) {
        let id = job.header().id();
        log::trace!("{id} started");
        let mut outcome = {
            let _entered = current::enter(job.header(), self.key());
            job.run()
        };
        let detached = job.header().mark_finished();
        if detached && !job.drop_orphaned_result() {
            outcome = Outcome::Panicked;
        }
        log::trace!("{id} finished: {outcome:?}");
        match worker {
            Some((slot, removals)) => {
                slot.counters.record_own(outcome);
                slot.current.store(0, Ordering::Release);
                removals.push(&self.registry, &self.graveyard, id);
            }
            None => {
                self.stats.record(outcome);
                self.registry.remove(id);
            }
        }
        self.counts.settled();
        if !detached && !job.publish(&self.join_signal) {
            // The handle was dropped just as the task finished, and
            // dropping the result it left behind panicked.
            self.stats.record(Outcome::Panicked);
        }
    }

    /// Settles a task whose cancellation this thread won: drops its closure,
    /// counts it, and publishes `Cancelled`.
    pub(crate) fn settle_cancelled(&self, job: &dyn Job) {
        let id = job.header().id();
        let outcome = job.discard();
        self.stats.record(outcome);
        self.registry.remove(id);
        log::trace!("{id} cancelled before it started");
        self.counts.cancelled_queued();
        job.publish(&self.join_signal);
    }

    /// Stops every worker: marks them stopped, sends each an exit message,
    /// and joins those that are not running one of `leave_running`. Those
    /// stay listed and exit on their own when their task returns.
    pub(crate) fn stop_workers(&self, leave_running: &[TaskId]) {
        let me = thread::current().id();
        let to_join = {
            let mut workers = self.workers.lock();
            workers.stopped = true;
            for _ in &workers.threads {
                // The receiver lives in `self`, so the channel cannot be
                // disconnected and an unbounded send cannot fail.
                let _ = self.sender.send(Message::Exit);
            }
            let (keep, join): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut workers.threads)
                .into_iter()
                .partition(|entry| {
                    entry.thread.thread().id() == me
                        || entry
                            .slot
                            .task()
                            .is_some_and(|id| leave_running.contains(&id))
                });
            workers.threads = keep;
            join
        };
        for entry in to_join {
            if entry.thread.join().is_err() {
                log::error!(
                    "a worker thread of {} ended with a panic",
                    self.config.thread_name
                );
            }
        }
    }
}
