//! The engine: everything that moves a task from the queue to settled.
//!
//! One [`Engine`] per manager, shared (in an `Arc`) by the public facade
//! (`TaskManager`, `Spawner`, handles, scopes, task sets) and by the worker
//! threads. Its parts, one file each:
//!
//! - this file: the shared state, submission (`submit`), cancellation and
//!   the questions the facade asks (`state`, `queued`, `running`, `stats`);
//! - `worker`: lazy thread start, the worker loop, running and settling a
//!   task, retiring and stopping threads;
//! - `wait`: the parking gate every wait sleeps on, and the *lending wait*:
//!   a wait called from inside one of the engine's own tasks lends its slot
//!   to another thread, and runs on its own only the tasks it waits for;
//! - `slot`, `spin`, `idle`, `timer`: a worker's own record, spinning,
//!   idle workers, and the timer thread;
//! - `close`: the close state machine (`close`, `close_now`).
//!
//! # Submission and close agree
//!
//! A spawner checks the `closing` flag inside the registry shard lock that
//! guards its insert; close sets the flag first and then takes every shard
//! lock once (see `registry`). Either the insert happened before close took
//! that shard's lock (close sees the task), or the spawner sees the flag and
//! hands the closure back: no task slips in unseen.

mod close;
mod idle;
mod reach;
mod slot;
mod spin;
mod timer;
mod wait;
mod worker;

use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::config::Config;
use crate::counts::{Counts, Full};
use crate::error::SpawnErrorKind;
use crate::extras::{Extra, Extras};
use crate::graveyard::Graveyard;
use crate::padded::Padded;
use crate::panic::log_safely;
use crate::registry::{self, Registry};
use crate::stats::Stats;
use crate::sync::{channel, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, Receiver, Sender};
use crate::task::cell::{Erase, Head, JobRef, Messages, Outcome, Sink, Task, TaskRef, Work};
use crate::task::{CancelReason, IdSpace, TaskId, TaskState};

pub(crate) use close::CloseMode;
pub(crate) use slot::{current_engine, on_worker_thread};
pub(crate) use timer::Event;
pub(crate) use wait::{Awaited, NoTasks, Park};

use self::close::CloseState;
use self::idle::Idle;
use self::timer::Timer;
use self::wait::Parking;
use self::worker::Workers;

/// What travels through the run queue, in one word (a queued task costs
/// the channel a pointer): a task's own pointer, or one of two addresses no
/// task can have (tasks are aligned to 8) for the two orders.
pub(crate) struct Message(NonNull<Head>);

/// A message opened by the worker that received it.
pub(crate) enum Opened {
    /// A task to claim and run (skipped if it left the queue already).
    Run(JobRef),
    /// Close: the worker that takes this exits.
    Exit,
    /// Resize: a worker that takes this retires if it is surplus.
    Wake,
}

const EXIT_TAG: usize = 1;
const WAKE_TAG: usize = 2;

// SAFETY: a message is a `JobRef` (which is `Send`) or a plain tag.
unsafe impl Send for Message {}

impl Message {
    pub(crate) fn run(job: JobRef) -> Message {
        Message(job.into_raw())
    }

    pub(crate) fn exit() -> Message {
        Message::tag(EXIT_TAG)
    }

    pub(crate) fn wake() -> Message {
        Message::tag(WAKE_TAG)
    }

    fn tag(tag: usize) -> Message {
        Message(NonNull::new(std::ptr::without_provenance_mut(tag)).expect("tags are not zero"))
    }

    pub(crate) fn open(self) -> Opened {
        let this = ManuallyDrop::new(self);
        match this.0.as_ptr().addr() {
            EXIT_TAG => Opened::Exit,
            WAKE_TAG => Opened::Wake,
            // SAFETY: any other address came from `JobRef::into_raw` in
            // `run`, and `this` is not dropped: the reference moves out once.
            _ => Opened::Run(unsafe { JobRef::from_raw(this.0) }),
        }
    }
}

impl From<Opened> for Message {
    fn from(opened: Opened) -> Message {
        match opened {
            Opened::Run(job) => Message::run(job),
            Opened::Exit => Message::exit(),
            Opened::Wake => Message::wake(),
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // A message dropped unopened (the channel going away with the
        // engine) gives its task reference back.
        let this = Message(self.0);
        drop(this.open());
    }
}

/// Whether a spawn may wait for room in a bounded queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocking {
    Wait,
    Never,
}

/// Whether the spawner keeps a handle (and so a reference to the task).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handle {
    Kept,
    Detached,
}

/// A spawn the engine did not accept, with the closure handed back.
pub(crate) struct Rejected<W> {
    pub(crate) kind: SpawnErrorKind,
    pub(crate) work: W,
    pub(crate) source: Option<io::Error>,
}

/// An accepted task: its id, and the typed reference for the handle
/// (`None` when detached).
pub(crate) type Accepted<T> = (TaskId, Option<TaskRef<T>>);

/// Completed, panicked and cancelled counts, and how many tasks started and
/// were discarded (for `stats().queued`). Each worker has its own (in its
/// slot); the engine has one more for what happens elsewhere.
#[derive(Default)]
pub(crate) struct StatCounters {
    pub(super) started: AtomicU64,
    discarded: AtomicU64,
    completed: AtomicU64,
    pub(super) panicked: AtomicU64,
    cancelled: AtomicU64,
}

impl StatCounters {
    pub(super) fn counter(&self, outcome: Outcome) -> &AtomicU64 {
        match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Panicked => &self.panicked,
            Outcome::Cancelled => &self.cancelled,
        }
    }

    /// Counts from any thread. Relaxed: statistics, read as a snapshot,
    /// ordering nothing else.
    pub(super) fn add(counter: &AtomicU64, shared: bool) {
        if shared {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            // Only the owning thread writes: a load and a store, no locked
            // read-modify-write.
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    pub(super) fn add_to(&self, stats: &mut Stats, started: &mut u64, discarded: &mut u64) {
        stats.completed += self.completed.load(Ordering::Relaxed);
        stats.panicked += self.panicked.load(Ordering::Relaxed);
        stats.cancelled += self.cancelled.load(Ordering::Relaxed);
        *started += self.started.load(Ordering::Relaxed);
        *discarded += self.discarded.load(Ordering::Relaxed);
    }

    pub(super) fn absorb(&self, other: &StatCounters) {
        for (mine, theirs) in [
            (&self.started, &other.started),
            (&self.discarded, &other.discarded),
            (&self.completed, &other.completed),
            (&self.panicked, &other.panicked),
            (&self.cancelled, &other.cancelled),
        ] {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Everything a manager's facade, workers and handles share.
///
/// Aligned so that the `Arc`'s reference counts (which every handle
/// touches) sit on cache lines of their own; the fields written per task
/// are padded.
#[repr(align(128))]
pub(crate) struct Engine {
    pub(crate) config: Config,
    /// This engine, for the few places that start a thread from a `&self`.
    me: Weak<Engine>,
    /// This manager's ids (its tag).
    ids: IdSpace,
    /// Parked tasks whose slot is lent: the manager may have this many
    /// threads above the limit.
    lent: AtomicUsize,
    /// Tasks a worker took from the run queue when no slot was free (a
    /// parked task had resumed, or the limit fell): the oldest work there
    /// is, run before the queue's.
    deferred: Mutex<VecDeque<JobRef>>,
    deferred_len: AtomicUsize,
    /// The concurrency limit now in force (`set_max_tasks`).
    limit: Padded<AtomicUsize>,
    counts: Counts,
    registry: Registry,
    graveyard: Graveyard,
    sender: Sender<Message>,
    receiver: Receiver<Message>,
    workers: Mutex<Workers>,
    threads_alive: Padded<AtomicUsize>,
    /// Idle workers: who searches the queue, who sleeps (see `idle`).
    idle: Padded<Idle>,
    stats: StatCounters,
    parking: Parking,
    /// Close has begun: every spawn is rejected.
    closing: AtomicBool,
    /// Close has swept the queue and is stopping the threads: helpers claim
    /// nothing more, and no thread starts.
    stopping: AtomicBool,
    close: Mutex<CloseState>,
    timer: Timer,
    /// Panic messages waiting for their tasks' handles.
    messages: Messages,
    /// Names, tokens and hook times of the tasks that have them.
    extras: Extras,
    /// A per-task hook is set (every task gets an entry): read per spawn
    /// and per start, so kept as one byte.
    task_hooks: bool,
    /// The end hook is set: read per settle.
    end_hook: bool,
}

/// What a spawn asks beyond running the closure: a start time, and the
/// task's side-table entry (a name, a token).
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) start: Option<Instant>,
    /// Boxed: a plain spawn moves one null word, not the entry.
    pub(crate) extra: Option<Box<Extra>>,
}

impl Engine {
    pub(crate) fn new(config: Config) -> Arc<Engine> {
        let (sender, receiver) = channel();
        let bounded = config.queue_capacity.is_some();
        let limit = config.max_tasks;
        let task_hooks = config.hooks.per_task();
        let end_hook = config.hooks.on_task_end.is_some();
        Arc::new_cyclic(|me| Engine {
            config,
            me: me.clone(),
            ids: IdSpace::new(),
            lent: AtomicUsize::new(0),
            deferred: Mutex::new(VecDeque::new()),
            deferred_len: AtomicUsize::new(0),
            limit: Padded(AtomicUsize::new(limit)),
            counts: Counts::new(bounded),
            registry: Registry::new(),
            graveyard: Graveyard::new(),
            sender,
            receiver,
            workers: Mutex::new(Workers::default()),
            threads_alive: Padded(AtomicUsize::new(0)),
            idle: Padded(Idle::default()),
            stats: StatCounters::default(),
            parking: Parking::default(),
            closing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            close: Mutex::new(CloseState::Open),
            timer: Timer::default(),
            messages: Messages::default(),
            extras: Extras::default(),
            task_hooks,
            end_hook,
        })
    }

    /// Identifies this engine in the thread-local task record.
    pub(crate) fn key(&self) -> usize {
        self as *const Engine as usize
    }

    /// The concurrency limit now in force.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Reserves a place, registers the task and queues it; hands the
    /// closure back when the engine is closing, the queue is full (and
    /// `blocking` is `Never`), or no thread can run it. `erase` is the
    /// lifetime the closure may borrow for (see `Erase`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit<'a, W, S>(
        self: &Arc<Self>,
        work: W,
        sink: S,
        blocking: Blocking,
        handle: Handle,
        plan: Plan,
        erase: Erase<'a>,
    ) -> Result<Accepted<W::Output>, Rejected<W>>
    where
        W: Work + 'a,
        S: Sink + 'static,
    {
        let reject = |kind, work| Rejected {
            kind,
            work,
            source: None,
        };
        let Plan { start, extra } = plan;
        if self.closing.load(Ordering::Acquire) {
            return Err(reject(SpawnErrorKind::Closed, work));
        }
        let raw_id = loop {
            match self.counts.try_reserve(self.config.queue_capacity) {
                Ok(raw_id) => break raw_id,
                Err(Full) if blocking == Blocking::Never => {
                    return Err(reject(SpawnErrorKind::Full, work))
                }
                Err(Full) => {
                    if !self.wait_for_space() {
                        return Err(reject(SpawnErrorKind::Closed, work));
                    }
                }
            }
        };
        // Threads start lazily (a delayed task starts none until it is
        // due): while there are fewer than the limit, make sure there are
        // at least as many as active tasks. Once all are started this is
        // two loads of lines nobody writes.
        if start.is_none() {
            if let Err(error) = self.ensure_threads() {
                if self.threads_alive.load(Ordering::Acquire) == 0 {
                    self.withdraw();
                    return Err(Rejected {
                        kind: SpawnErrorKind::ThreadStart,
                        work,
                        source: Some(error),
                    });
                }
            }
        }
        // Free the memory of tasks the workers are done with here, on the
        // thread that allocates the next ones (see `graveyard`).
        self.graveyard.free_one();
        let id = self.ids.id(raw_id);
        let task = Task::new(
            id,
            work,
            sink,
            handle == Handle::Detached,
            registry::home_for(raw_id),
        );
        if start.is_some() {
            task.header().mark_delayed();
        }
        // The references the task starts with: the run queue's (or the
        // timer's), the registry's, and the handle's if there is one.
        let (job, registered, kept) = match handle {
            Handle::Detached => {
                let [job, registered] = JobRef::new_many(task, erase);
                (job, registered, None)
            }
            Handle::Kept => {
                let [job, registered, kept] = JobRef::new_many(task, erase);
                (job, registered, Some(kept))
            }
        };
        // Only tasks with a name, a token or a per-task hook have an entry
        // (and read the clock): a plain spawn skips all of this. The task
        // is not shared yet.
        let token = if extra.is_some() || self.task_hooks {
            self.register_extra(job.header(), extra)
        } else {
            None
        };
        if let Err(registered) = self.registry.insert_unless(registered, &self.closing) {
            drop((job, kept));
            if registered.header().has_extra() {
                self.unregister_extra(id);
            }
            self.withdraw();
            // SAFETY: the registry gave back the only reference left, to
            // the queued `Task<W, S>` made above.
            let work = unsafe { registered.reclaim::<W, S>() };
            return Err(reject(SpawnErrorKind::Closed, work));
        }
        log_safely!(Trace, "{id} queued");
        // SAFETY: the task was made from `W` above.
        let kept = kept.map(|kept| unsafe { TaskRef::from_job(kept) });
        // A token cancelled before the task could be found by id: the task
        // is finished here, on the spawning thread, and never queued. (A
        // cancel after this check finds it in the registry.)
        if token.is_some_and(|token| token.is_cancelled_now()) {
            self.cancel_if_queued(&job, CancelReason::Token, |_| ());
            return Ok((id, kept));
        }
        match start {
            None => self.enqueue(job),
            Some(at) => {
                if !self.timer.schedule(self, at, Event::Start(job.clone())) {
                    // The engine stopped meanwhile: it will never start.
                    self.cancel_if_queued(&job, CancelReason::Closing, |_| ());
                }
            }
        }
        Ok((id, kept))
    }

    /// Starts a thread if there are fewer than the active tasks (and the
    /// limit allows). Fails only if the OS refused a thread.
    pub(crate) fn ensure_threads(self: &Arc<Self>) -> io::Result<()> {
        let threads = self.threads_alive.load(Ordering::Acquire);
        // Below the limit, or below the limit plus the slots that parked
        // tasks lent (read only when the first test fails).
        if (threads < self.limit() || threads < self.thread_cap()) && self.counts.active() > threads
        {
            if let Err(error) = self.grow() {
                log_safely!(
                    Warn,
                    "could not start another worker thread, going on with fewer: {error}"
                );
                return Err(error);
            }
        }
        Ok(())
    }

    /// Schedules a timer event for a task (its `cancel_at` or
    /// `cancel_after`).
    pub(crate) fn schedule(self: &Arc<Self>, at: Instant, event: Event) {
        self.timer.schedule(self, at, event);
    }

    /// Puts an accepted, registered task at the back of the run queue, and
    /// makes sure someone will take it.
    pub(crate) fn enqueue(self: &Arc<Self>, job: JobRef) {
        self.post(Message::run(job));
        self.after_enqueue();
    }

    /// Sends a message to the workers, and wakes one if none is looking.
    fn post(&self, message: Message) {
        // The receiver lives in `self`: an unbounded send cannot fail.
        let _ = self.sender.send(message);
        self.idle.notify_work();
    }

    /// Sends one `message` per worker in `count`, and wakes every sleeper.
    fn post_to_every(&self, count: usize, message: impl Fn() -> Message) {
        for _ in 0..count {
            let _ = self.sender.send(message());
        }
        self.idle.wake_all();
    }

    /// A task refused because the engine is closed, settled at once as if
    /// a close had cancelled it (for a scope's `spawn`, which must return a
    /// handle): it uses up an id, its closure is dropped here, and its
    /// handle will see `Cancelled`.
    pub(crate) fn cancelled_task<'a, W: Work + 'a, S: Sink + 'static>(
        &self,
        work: W,
        sink: S,
        erase: Erase<'a>,
    ) -> TaskRef<W::Output> {
        let id = self.ids.id(self.counts.burn_id());
        let job = JobRef::new(
            Task::new(id, work, sink, false, registry::home_for(id.get())),
            erase,
        );
        if let Some(claim) = job.header().try_cancel() {
            job.discard(claim, &worker::RefusedCx(self));
        }
        // SAFETY: the task was made from `W` above.
        unsafe { TaskRef::from_job(job) }
    }

    /// A slot was given back by a thread that will not look for work
    /// itself (a task parked and lent it, a parked task's inline run
    /// ended, the limit rose): if work waits, wakes an idle worker, and
    /// starts one if there are fewer threads than the work needs (up to the
    /// limit plus the lent slots). SeqCst: paired with a worker that defers
    /// a task and then looks at the slots (see `worker`).
    pub(crate) fn slot_freed(&self) {
        if self.deferred_len.load(Ordering::SeqCst) > 0 || !self.receiver.is_empty() {
            self.idle.notify_work();
            if let Some(me) = self.me.upgrade() {
                let _ = me.grow();
            }
        }
    }

    /// More threads than the limit plus the lent slots: asks one to retire
    /// (after a parked task resumed).
    fn retire_surplus(&self) {
        if self.is_surplus() {
            self.post(Message::wake());
        }
    }

    /// Keeps a task that a worker took from the queue when no slot was
    /// free, ahead of the queue.
    fn defer(&self, job: JobRef, front: bool) {
        let mut deferred = self.deferred.lock();
        if front {
            deferred.push_front(job);
        } else {
            deferred.push_back(job);
        }
        self.deferred_len.fetch_add(1, Ordering::SeqCst);
    }

    /// The oldest deferred task, if any.
    fn take_deferred(&self) -> Option<JobRef> {
        if self.deferred_len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let job = self.deferred.lock().pop_front()?;
        self.deferred_len.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// Deferred work waits and a slot is free (for an idle worker).
    fn deferred_ready(&self) -> bool {
        self.deferred_len.load(Ordering::SeqCst) > 0 && self.counts.slots().has_room(self.limit())
    }

    /// Close stops every claim: the deferred tasks are left to its sweep.
    fn drop_deferred(&self) {
        let deferred = std::mem::take(&mut *self.deferred.lock());
        self.deferred_len.store(0, Ordering::SeqCst);
        drop(deferred);
    }

    /// Where panic messages wait for their handles.
    pub(crate) fn messages(&self) -> &Messages {
        &self.messages
    }

    /// Wakes every waiter (a task set or a scope saw one of its tasks
    /// settle).
    pub(crate) fn wake_waiters(&self) {
        self.parking.notify_all();
    }

    /// Dropping a result on its handle's thread panicked: log and count it.
    pub(crate) fn result_drop_panicked(&self, id: TaskId, message: &str) {
        log_safely!(Error, "{id}: dropping its result panicked: {message}");
        StatCounters::add(&self.stats.panicked, true);
    }

    /// A spawn gave its reservation back.
    fn withdraw(&self) {
        let settled = self.counts.unreserve();
        self.space_freed();
        self.after_settle(settled);
    }

    /// Cancels `job` if it is still queued: its closure is dropped here and
    /// its handle will see `Cancelled` (`TimedOut` for a deadline).
    /// `before_drop` runs once the cancel is won, before any user code (the
    /// closure's `Drop`) runs. True if this call cancelled it.
    pub(crate) fn cancel_if_queued(
        &self,
        job: &JobRef,
        reason: CancelReason,
        before_drop: impl FnOnce(TaskId),
    ) -> bool {
        let header = job.header();
        let Some(claim) = header.try_cancel() else {
            return false;
        };
        self.flag(header, reason);
        before_drop(header.id());
        self.settle_cancelled(job, claim);
        true
    }

    /// Asks a task to stop; cancels it outright if it has not started.
    /// True if it was still queued or running.
    pub(crate) fn cancel_job(&self, job: &JobRef, reason: CancelReason) -> bool {
        let header = job.header();
        // Judged before its token wakes it: it still counts as reached.
        self.flag_then(header, reason, || {
            self.cancel_if_queued(job, reason, |_| ()) || header.is_running()
        })
    }

    pub(crate) fn cancel(&self, id: TaskId) -> bool {
        match self.find(id) {
            Some(job) => self.cancel_job(&job, CancelReason::Requested),
            None => false,
        }
    }

    /// Cancels every queued task, then flags every running one (in that
    /// order, so that a slot freed by a task that stops on its flag never
    /// picks up a task this call was about to cancel). Returns the ids it
    /// reached, ascending.
    pub(crate) fn cancel_all(&self) -> Vec<TaskId> {
        let all = self.registry.snapshot();
        let mut reached = Vec::new();
        for job in &all {
            self.cancel_if_queued(job, CancelReason::Requested, |id| reached.push(id));
        }
        for job in &all {
            let header = job.header();
            if header.is_running() {
                self.flag(header, CancelReason::Requested);
                reached.push(header.id());
            }
        }
        reached.sort_unstable();
        reached.dedup();
        reached
    }

    /// `None` only for an id above every id used so far, or another
    /// manager's.
    pub(crate) fn state(&self, id: TaskId) -> Option<TaskState> {
        if !self.was_issued(id) {
            return None;
        }
        Some(match self.registry.get(id) {
            Some(job) => job.header().task_state(),
            None => TaskState::Finished,
        })
    }

    /// Whether a handle removes its settled task from the registry itself
    /// (`forget`). Not under loom: the entry of a settled task is only
    /// memory (everything that reads the registry checks the state), and
    /// one more lock on every join would multiply the models'
    /// interleavings; there the worker removes every task.
    pub(crate) const FORGETS: bool = !cfg!(loom);

    /// Removes a task that was handed over to its handle from the registry
    /// (called by that handle, at its join or its drop): on the handle's
    /// thread, as a rule the spawner, whose lane the entry is in, so the
    /// task is freed where it was allocated, not in a worker's batch.
    pub(crate) fn forget(&self, job: &JobRef) {
        if Self::FORGETS {
            self.registry.remove(job);
        }
    }

    /// The task registered under `id`, if it is this manager's and not
    /// settled and gone.
    pub(crate) fn find(&self, id: TaskId) -> Option<JobRef> {
        if !self.ids.owns(id) {
            return None;
        }
        self.registry.get(id)
    }

    /// Whether this manager issued `id`.
    pub(crate) fn owns(&self, id: TaskId) -> bool {
        self.ids.owns(id)
    }

    /// Whether `id` was ever handed out by this manager.
    pub(crate) fn was_issued(&self, id: TaskId) -> bool {
        self.ids.owns(id) && id.get() <= self.counts.issued()
    }

    /// Ids accepted and not started, ascending.
    pub(crate) fn queued(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .registry
            .snapshot()
            .iter()
            .map(|job| job.header())
            .filter(|header| header.is_queued())
            .map(|header| header.id())
            .collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        let (mut started, mut discarded) = (0, 0);
        self.workers
            .lock()
            .add_to(&mut stats, &mut started, &mut discarded);
        self.stats.add_to(&mut stats, &mut started, &mut discarded);
        stats.queued = match self.counts.queued() {
            Some(queued) => queued,
            None => self
                .counts
                .accepted()
                .saturating_sub(started)
                .saturating_sub(discarded) as usize,
        };
        stats.threads = self.threads_alive.load(Ordering::Acquire);
        stats
    }
}
