//! [`TaskManager`]: spawn, cancel, drain, close, and `Drop`.
//!
//! # The close state machine
//!
//! A manager is in one of three states, kept under one mutex:
//!
//! - **Open**: spawns are accepted.
//! - **Closing**: one caller, the *closer*, runs the close. It sets the
//!   `closing` flag (from now on every spawn is rejected, see
//!   `registry`), wakes spawners blocked on a full queue, waits until no
//!   task is active or the one deadline passes, then cancels what is still
//!   queued, flags what still runs, and stops the workers. Any other caller
//!   of `close` waits for the closer.
//! - **Closed**: the report is kept; every later `close` returns a copy.
//!
//! The report is published (Closing → Closed) *before* the cancelled
//! closures are dropped, so that a closure whose `Drop` calls `close` on its
//! own manager gets the report instead of waiting for itself.
//!
//! A close called from inside one of the manager's own tasks does not wait
//! for that task: it waits until only the caller is active, never reports
//! the caller as abandoned, and leaves the caller's thread to exit when the
//! task returns.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::builder::{Builder, Config};
use crate::current;
use crate::error::{CloseReport, SpawnError, SpawnErrorKind};
use crate::graveyard::Graveyard;
use crate::registry::Registry;
use crate::state::{Counts, Full};
use crate::sync::{
    channel, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, Receiver, Sender,
};
use crate::task::{Completion, HandleCore, Job, JoinSignal, Outcome, Task, TaskHandle, TaskId};
use crate::worker::{Message, Workers};

/// A snapshot of a manager's counters, from [`TaskManager::stats`].
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// manager.spawn(|| ()).unwrap().join().unwrap();
/// let stats = manager.stats();
/// assert_eq!(stats.completed, 1);
/// assert_eq!((stats.running, stats.queued, stats.panicked, stats.cancelled), (0, 0, 0, 0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Tasks running now.
    pub running: usize,
    /// Tasks accepted and waiting for a slot.
    pub queued: usize,
    /// Worker threads alive now.
    pub threads: usize,
    /// Tasks whose closure returned.
    pub completed: u64,
    /// Panics caught: in a task, in the drop of its captured values or of
    /// its result.
    pub panicked: u64,
    /// Tasks cancelled before they started (they never ran).
    pub cancelled: u64,
}

/// Completed, panicked and cancelled counts. Each worker has its own (in
/// its slot); the manager has one more for the tasks settled elsewhere
/// (cancelled, run by a joining parent). `stats()` adds them up.
#[derive(Default)]
pub(crate) struct StatCounters {
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
}

impl StatCounters {
    fn counter(&self, outcome: Outcome) -> &AtomicU64 {
        match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Panicked => &self.panicked,
            Outcome::Cancelled => &self.cancelled,
        }
    }

    /// Counts from any thread. Relaxed: the counters are statistics, read
    /// as a snapshot, and order nothing else.
    pub(crate) fn record(&self, outcome: Outcome) {
        self.counter(outcome).fetch_add(1, Ordering::Relaxed);
    }

    /// Counts from the one thread that owns these counters: a plain load
    /// and store, no locked read-modify-write.
    pub(crate) fn record_own(&self, outcome: Outcome) {
        let counter = self.counter(outcome);
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn add_to(&self, stats: &mut Stats) {
        stats.completed += self.completed.load(Ordering::Relaxed);
        stats.panicked += self.panicked.load(Ordering::Relaxed);
        stats.cancelled += self.cancelled.load(Ordering::Relaxed);
    }
}

enum CloseState {
    Open,
    Closing,
    Closed(CloseReport),
}

/// An accepted task: its id, and the task itself for its handle (`None`
/// for a detached spawn).
pub(crate) type Submitted<F, T> = (TaskId, Option<Arc<Task<F, T>>>);

/// Everything the manager, its workers and its handles share.
///
/// Aligned to 128 bytes so that the `Arc`'s reference counts (which every
/// handle touches) sit on cache lines of their own; the fields written per
/// task are padded (in `counts`).
#[repr(align(128))]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counts: Counts,
    pub(crate) join_signal: JoinSignal,
    pub(crate) registry: Registry,
    pub(crate) graveyard: Graveyard,
    pub(crate) sender: Sender<Message>,
    pub(crate) receiver: Receiver<Message>,
    pub(crate) workers: Mutex<Workers>,
    /// Threads started so far (never goes down): the spawn path's cheap
    /// test of whether another thread is wanted.
    pub(crate) threads_started: AtomicUsize,
    pub(crate) threads_alive: AtomicUsize,
    pub(crate) stats: StatCounters,
    closing: AtomicBool,
    close_state: Mutex<CloseState>,
    close_done: Condvar,
}

impl Shared {
    /// Identifies this manager in the thread-local task record.
    pub(crate) fn key(&self) -> usize {
        self as *const Shared as usize
    }

    /// Reserves a place, registers the task and queues it; hands the
    /// closure back when the manager is closed, the queue is full (and
    /// `block` is false), or no thread can run it. `erase` turns the task
    /// into the type-erased job the registry and the channel carry. Returns
    /// the task for its handle, or `None` when `detached` (no handle will
    /// ever exist: one reference fewer to count).
    pub(crate) fn submit<F, T>(
        self: &Arc<Self>,
        f: F,
        block: bool,
        detached: bool,
        erase: impl Fn(Arc<Task<F, T>>) -> Arc<dyn Job>,
    ) -> Result<Submitted<F, T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if self.closing.load(Ordering::Acquire) {
            return Err(SpawnError::new(SpawnErrorKind::Closed, f));
        }
        let raw_id = loop {
            match self.counts.try_reserve(self.config.queue_capacity) {
                Ok(raw_id) => break raw_id,
                Err(Full) if !block => return Err(SpawnError::new(SpawnErrorKind::Full, f)),
                Err(Full) => {
                    let capacity = self.config.queue_capacity.unwrap_or(usize::MAX);
                    if !self.counts.wait_for_space(capacity, &self.closing) {
                        return Err(SpawnError::new(SpawnErrorKind::Closed, f));
                    }
                }
            }
        };
        // Threads start lazily: while there are fewer than `max_tasks`, make
        // sure there are at least as many as active tasks. Once all are
        // started this is one load of a line nobody writes.
        let threads = self.threads_started.load(Ordering::Acquire);
        let active = if threads < self.config.max_tasks {
            self.counts.active()
        } else {
            0
        };
        if active > threads {
            if let Err(error) = self.grow(active) {
                if self.threads_started.load(Ordering::Acquire) == 0 {
                    self.counts.unreserve();
                    return Err(SpawnError::thread_start(f, error));
                }
                log::warn!("could not start another worker thread, going on with fewer: {error}");
            }
        }
        // Free the memory of tasks the workers are done with here, on the
        // thread that allocates the next ones (see `graveyard`).
        self.graveyard.free_one();
        let id = TaskId::new(raw_id).expect("task ids start at 1");
        let task = Arc::new(Task::new(id, f, detached));
        let registered = erase(Arc::clone(&task));
        if !self.registry.insert_unless(registered, &self.closing) {
            self.counts.unreserve();
            let task = Arc::try_unwrap(task)
                .ok()
                .expect("a rejected task is not shared");
            return Err(SpawnError::new(SpawnErrorKind::Closed, task.into_closure()));
        }
        log::trace!("{id} queued");
        let (queued, handle) = if detached {
            (erase(task), None)
        } else {
            (erase(Arc::clone(&task)), Some(task))
        };
        // The receiver lives in `self`: an unbounded send cannot fail.
        let _ = self.sender.send(Message::Run(queued));
        Ok((id, handle))
    }

    /// Asks a task to stop; cancels it outright if it has not started.
    /// True if it was still queued or running.
    pub(crate) fn cancel_job(&self, job: &dyn Job) -> bool {
        let header = job.header();
        header.request_cancel();
        if header.try_cancel_queued() {
            self.settle_cancelled(job);
            true
        } else {
            header.is_running()
        }
    }

    /// Called by `join` before it waits: from inside a task of this
    /// manager, runs the queued task `id` on this thread.
    pub(crate) fn help_run(&self, id: TaskId) {
        if current::task_of(self.key()).is_none() {
            return;
        }
        if let Some(job) = self.registry.get(id) {
            if job.header().try_start() {
                self.counts.started();
                self.execute(job, None);
            }
        }
    }

    /// How many active tasks a wait by this thread must leave: its own task,
    /// if it is one of ours.
    fn own_share(&self) -> usize {
        usize::from(current::task_of(self.key()).is_some())
    }

    pub(crate) fn drain(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        self.counts.wait_active_at_most(self.own_share(), deadline)
    }

    pub(crate) fn close(&self, timeout: Duration) -> CloseReport {
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        {
            let mut state = self.close_state.lock();
            loop {
                match &*state {
                    CloseState::Open => break *state = CloseState::Closing,
                    CloseState::Closing => self.close_done.wait(&mut state),
                    CloseState::Closed(report) => return report.clone(),
                }
            }
        }
        let me = current::task_of(self.key());
        log::debug!(
            "closing {} with a deadline of {timeout:?}",
            self.config.thread_name
        );
        self.closing.store(true, Ordering::SeqCst);
        self.registry.barrier();
        self.counts.wake_spawners();

        let finished = self
            .counts
            .wait_active_at_most(usize::from(me.is_some()), deadline);
        let mut cancelled = Vec::new();
        let mut abandoned = Vec::new();
        if !finished {
            for job in self.registry.snapshot() {
                let header = job.header();
                if Some(header.id()) == me {
                    continue;
                }
                header.request_cancel();
                if header.try_cancel_queued() {
                    cancelled.push(job);
                } else if header.is_running() {
                    abandoned.push(header.id());
                }
            }
        }
        cancelled.sort_by_key(|job| job.header().id());
        abandoned.sort();

        let mut leave_running = abandoned.clone();
        leave_running.extend(me);
        self.stop_workers(&leave_running);
        self.graveyard.free_all();

        // A deadline that passed just as the last task settled left nothing
        // behind: that close did not time out.
        let timed_out = !cancelled.is_empty() || !abandoned.is_empty();
        let report = CloseReport {
            cancelled: cancelled.iter().map(|job| job.header().id()).collect(),
            abandoned,
            timed_out,
            elapsed: started.elapsed(),
        };
        if report.timed_out {
            log::warn!(
                "close of {} reached its {timeout:?} deadline: cancelled {} queued task(s) [{}], abandoned {} running task(s) [{}]",
                self.config.thread_name,
                report.cancelled.len(),
                id_list(&report.cancelled),
                report.abandoned.len(),
                id_list(&report.abandoned),
            );
        }
        log::debug!("closed {}: {report}", self.config.thread_name);
        *self.close_state.lock() = CloseState::Closed(report.clone());
        self.close_done.notify_all();
        for job in cancelled {
            self.settle_cancelled(&*job);
        }
        report
    }
}

/// The job a `'static` task travels as.
fn erase_static<F, T>(task: Arc<Task<F, T>>) -> Arc<dyn Job>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    task
}

/// `task-1, task-2` for a log line.
fn id_list(ids: &[TaskId]) -> String {
    ids.iter()
        .map(TaskId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bounded set of worker threads that runs closures, tracks each by id,
/// cancels them cooperatively, and closes within a deadline.
///
/// `TaskManager` is `Send + Sync`: share it by reference, or in an `Arc`.
/// Threads start lazily as work arrives, up to `max_tasks`; at most
/// `max_tasks` tasks run at once, ever, including while closing. Dropping
/// the manager closes it with its configured timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::TaskManager;
///
/// let manager = TaskManager::builder()
///     .max_tasks(3)
///     .close_timeout(Duration::from_secs(1))
///     .start()
///     .unwrap();
/// let handles: Vec<_> = (0..10).map(|n| manager.spawn(move || n * n).unwrap()).collect();
/// let squares: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(squares[9], 81);
/// assert!(manager.close().is_clean());
/// ```
pub struct TaskManager {
    shared: Arc<Shared>,
}

impl TaskManager {
    /// A manager that runs at most `max_tasks` tasks at once, with the other
    /// settings at their defaults (see [`Builder`]).
    ///
    /// # Panics
    ///
    /// If `max_tasks` is 0 (or absurdly large); the message names
    /// `max_tasks`. Use [`TaskManager::builder`] to get an error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(4);
    /// assert_eq!(manager.spawn(|| "hi").unwrap().join(), Ok("hi"));
    /// ```
    pub fn new(max_tasks: usize) -> TaskManager {
        match TaskManager::builder().max_tasks(max_tasks).start() {
            Ok(manager) => manager,
            Err(error) => panic!("TaskManager::new: {error}"),
        }
    }

    /// A [`Builder`] with the default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().max_tasks(2).start().unwrap();
    /// # drop(manager);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_config(config: Config) -> TaskManager {
        let (sender, receiver) = channel();
        let bounded = config.queue_capacity.is_some();
        log::debug!(
            "starting task manager {}: max_tasks {}, close timeout {:?}, queue capacity {:?}",
            config.thread_name,
            config.max_tasks,
            config.close_timeout,
            config.queue_capacity,
        );
        TaskManager {
            shared: Arc::new(Shared {
                config,
                counts: Counts::new(bounded),
                join_signal: JoinSignal::default(),
                registry: Registry::new(),
                graveyard: Graveyard::new(),
                sender,
                receiver,
                workers: Mutex::new(Workers::default()),
                threads_started: AtomicUsize::new(0),
                threads_alive: AtomicUsize::new(0),
                stats: StatCounters::default(),
                closing: AtomicBool::new(false),
                close_state: Mutex::new(CloseState::Open),
                close_done: Condvar::new(),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn handle<F, T>(&self, task: Arc<Task<F, T>>) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task: Arc<dyn Completion<T>> = task;
        TaskHandle::new(HandleCore::new(task, Arc::clone(&self.shared)))
    }

    /// Queues `f` and returns its handle. With a bounded queue
    /// ([`Builder::queue_capacity`]) it blocks while the queue is full.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] holding `f` if close has begun (also while blocked
    /// on a full queue), or if the manager has no thread and the OS refuses
    /// to start one.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let handle = manager.spawn(|| 2 + 2).unwrap();
    /// assert_eq!(handle.join(), Ok(4));
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (_, task) = self.shared.submit(f, true, false, erase_static)?;
        Ok(self.handle(task.expect("a task with a handle")))
    }

    /// Like [`spawn`](Self::spawn), but never blocks: with a full bounded
    /// queue it returns a full error instead.
    ///
    /// # Errors
    ///
    /// As `spawn`, plus [`SpawnError::is_full`] when the queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().queue_capacity(10).start().unwrap();
    /// match manager.try_spawn(|| 1) {
    ///     Ok(handle) => assert_eq!(handle.join(), Ok(1)),
    ///     Err(full) => assert_eq!(full.into_inner()(), 1), // run it ourselves
    /// }
    /// ```
    pub fn try_spawn<F, T>(&self, f: F) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (_, task) = self.shared.submit(f, false, false, erase_static)?;
        Ok(self.handle(task.expect("a task with a handle")))
    }

    /// Queues `f` without a handle, like a thread pool's `execute`: the task
    /// still has an id, can be cancelled by id, and is waited for by
    /// [`drain`](Self::drain) and [`close`](Self::close); its result is
    /// dropped. Cheaper than `spawn` followed by dropping the handle.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let manager = taskwarden::TaskManager::new(2);
    /// let hits = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let hits = hits.clone();
    ///     manager.spawn_detached(move || { hits.fetch_add(1, Ordering::Relaxed); }).unwrap();
    /// }
    /// manager.drain();
    /// assert_eq!(hits.load(Ordering::Relaxed), 100);
    /// ```
    pub fn spawn_detached<F, T>(&self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (id, _) = self.shared.submit(f, true, true, erase_static)?;
        Ok(id)
    }

    /// Cancels the task `id`: a queued task never starts, a running one sees
    /// [`is_cancelled`](crate::is_cancelled) turn true. Returns true if the
    /// task was still queued or running.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// let id = handle.id();
    /// handle.join().unwrap();
    /// assert!(!manager.cancel(id)); // already finished
    /// ```
    pub fn cancel(&self, id: TaskId) -> bool {
        match self.shared.registry.get(id) {
            Some(job) => self.shared.cancel_job(&*job),
            None => false,
        }
    }

    /// Cancels every queued and running task (see [`cancel`](Self::cancel)).
    /// The manager stays open.
    ///
    /// Queued tasks are cancelled first, then running ones are flagged, so a
    /// slot freed by a task that stops on the flag never picks up a task
    /// that this call was about to cancel.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| while !taskwarden::is_cancelled() { std::thread::yield_now() }).unwrap();
    /// manager.cancel_all();
    /// let _ = handle.join(); // Ok(()) if it had started, Err(Cancelled) if not
    /// assert!(manager.spawn(|| ()).is_ok());
    /// ```
    pub fn cancel_all(&self) {
        let all = self.shared.registry.snapshot();
        for job in &all {
            if job.header().try_cancel_queued() {
                job.header().request_cancel();
                self.shared.settle_cancelled(&**job);
            }
        }
        for job in &all {
            job.header().request_cancel();
        }
    }

    /// The ids of the tasks running now, ascending.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let handle = manager.spawn(|| manager_is_busy()).unwrap();
    /// # fn manager_is_busy() {}
    /// handle.join().unwrap();
    /// assert!(manager.running().is_empty());
    /// ```
    pub fn running(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .shared
            .workers
            .lock()
            .slots()
            .filter_map(|slot| slot.task())
            .collect();
        ids.sort();
        ids
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let _ = manager.spawn(|| panic!("oops")).unwrap().join();
    /// assert_eq!(manager.stats().panicked, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let mut stats = Stats::default();
        {
            let workers = shared.workers.lock();
            for slot in workers.slots() {
                slot.counters.add_to(&mut stats);
                stats.running += usize::from(slot.task().is_some());
            }
        }
        shared.stats.add_to(&mut stats);
        stats.queued = match shared.counts.queued() {
            Some(queued) => queued,
            None => shared.counts.active().saturating_sub(stats.running),
        };
        stats.threads = shared.threads_alive.load(Ordering::Acquire);
        stats
    }

    /// Blocks until no task is queued and none is running, counting tasks
    /// spawned while it waits. It does not close the manager. Called from
    /// inside one of the manager's tasks, it does not wait for that task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let manager = taskwarden::TaskManager::new(3);
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..10 {
    ///     let done = done.clone();
    ///     manager.spawn(move || done.fetch_add(1, Ordering::SeqCst)).unwrap();
    /// }
    /// manager.drain();
    /// assert_eq!(done.load(Ordering::SeqCst), 10);
    /// ```
    pub fn drain(&self) {
        self.shared.drain(None);
    }

    /// Like [`drain`](Self::drain), but gives up after `timeout`; true if
    /// everything finished in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// manager.spawn(|| std::thread::sleep(Duration::from_millis(5))).unwrap();
    /// assert!(manager.drain_timeout(Duration::from_secs(5)));
    /// ```
    pub fn drain_timeout(&self, timeout: Duration) -> bool {
        self.shared.drain(Some(timeout))
    }

    /// Closes with the configured close timeout; see
    /// [`close_timeout`](Self::close_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// manager.spawn(|| ()).unwrap();
    /// let report = manager.close();
    /// assert!(report.is_clean() && manager.is_closed());
    /// ```
    pub fn close(&self) -> CloseReport {
        self.close_timeout(self.shared.config.close_timeout)
    }

    /// Stops intake and waits for the work, with one deadline `now + timeout`.
    ///
    /// From this call on every spawn is rejected. Queued and running tasks
    /// go on, still within `max_tasks`, until all have finished or the
    /// deadline passes. At the deadline every task still queued is dropped
    /// without running (reported in [`CloseReport::cancelled`]; its `join`
    /// returns `Cancelled`) and every task still running has its cancel flag
    /// set (reported in [`CloseReport::abandoned`]) and is left to finish on
    /// its own thread. Idle threads are joined, and a warning is logged if
    /// anything was cancelled or abandoned. It returns within `timeout` plus
    /// a small constant (plus the time to drop the closures it cancels).
    ///
    /// Close is idempotent: a later or concurrent call waits for the first
    /// one and returns its report. Called from inside one of the manager's
    /// tasks, it does not wait for that task. `Duration::MAX` waits for
    /// every task however long it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let stubborn = manager.spawn(|| std::thread::sleep(Duration::from_millis(300))).unwrap();
    /// let never = manager.spawn(|| ()).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// let report = manager.close_timeout(Duration::from_millis(20));
    /// assert!(report.timed_out);
    /// assert_eq!(report.abandoned, vec![stubborn.id()]);
    /// assert_eq!(report.cancelled, vec![never.id()]);
    /// assert_eq!(never.join(), Err(taskwarden::TaskError::Cancelled));
    /// ```
    pub fn close_timeout(&self, timeout: Duration) -> CloseReport {
        self.shared.close(timeout)
    }

    /// True once close has begun: from then on every spawn is rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert!(!manager.is_closed());
    /// manager.close();
    /// assert!(manager.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }
}

impl Drop for TaskManager {
    /// Closes with the configured timeout, unless the manager is closed.
    fn drop(&mut self) {
        self.shared.close(self.shared.config.close_timeout);
    }
}

impl fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskManager")
            .field("name", &self.shared.config.thread_name)
            .field("max_tasks", &self.shared.config.max_tasks)
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<TaskManager>();
        assert_send_sync::<TaskHandle<String>>();
        assert_send_sync::<Stats>();
        assert_send_sync::<CloseReport>();
    }

    #[test]
    fn registry_is_empty_after_work() {
        let manager = TaskManager::new(2);
        let tasks = if cfg!(miri) { 150 } else { 1000 };
        for n in 0..tasks {
            manager.spawn(move || n).unwrap();
        }
        manager.close();
        assert_eq!(
            manager.shared.registry.len(),
            0,
            "workers flush their removals before they exit"
        );
    }
}
