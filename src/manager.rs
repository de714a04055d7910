//! [`TaskManager`]: the public face of the engine. Argument checks and
//! documentation live here; the mechanisms are in `engine`.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::builder::{BuildError, Builder};
use crate::config::Config;
use crate::engine::{Awaited, Blocking, CloseMode, Engine, Handle, Park};
use crate::error::{CloseReport, SpawnError};
use crate::handle::{HandleCore, TaskHandle};
use crate::info::TaskInfo;
use crate::options::TaskOptions;
use crate::stats::Stats;
use crate::submit::{submit, submit_with};
use crate::task::cell::{Erase, JobRef};
use crate::task::{TaskId, TaskState};

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
    engine: Arc<Engine>,
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
    #[must_use]
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
    #[must_use]
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_config(config: Config) -> TaskManager {
        crate::panic::log_safely!(
            Debug,
            "starting task manager {}: max_tasks {}, close timeout {:?}, queue capacity {:?}",
            config.thread_name,
            config.max_tasks,
            config.close_timeout,
            config.queue_capacity,
        );
        TaskManager {
            engine: Engine::new(config),
        }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Queues `f` and returns its handle. With a bounded queue
    /// ([`Builder::queue_capacity`]) it blocks while the queue is full;
    /// called from inside one of the manager's tasks it never deadlocks: a
    /// spawn that waits for room lends the task's slot (another thread runs
    /// the queue) and runs nothing on its own thread.
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
        spawn_handle(&self.engine, f, Blocking::Wait)
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
        spawn_handle(&self.engine, f, Blocking::Never)
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
        spawn_detached(&self.engine, f)
    }

    /// Like [`spawn`](Self::spawn), with [`TaskOptions`]: a delayed start
    /// (the task waits in a time-ordered queue, not on a worker, and counts
    /// as queued), a cancel deadline, or a cancel flag set some time after
    /// it starts.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::new(2);
    /// let spawned = Instant::now();
    /// let handle = manager
    ///     .spawn_with(TaskOptions::default().start_after(Duration::from_millis(30)), Instant::now)
    ///     .unwrap();
    /// let started = handle.join().unwrap();
    /// assert!(started >= spawned + Duration::from_millis(30), "never early");
    /// ```
    pub fn spawn_with<F, T>(
        &self,
        options: TaskOptions,
        f: F,
    ) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_handle_with(&self.engine, options, f, Blocking::Wait)
    }

    /// Like [`spawn_with`](Self::spawn_with), but never blocks: with a full
    /// bounded queue it returns a full error instead.
    ///
    /// # Errors
    ///
    /// As [`try_spawn`](Self::try_spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let options = taskwarden::TaskOptions::default().cancel_after(Duration::from_secs(60));
    /// assert_eq!(manager.try_spawn_with(options, || 5).unwrap().join(), Ok(5));
    /// ```
    pub fn try_spawn_with<F, T>(
        &self,
        options: TaskOptions,
        f: F,
    ) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_handle_with(&self.engine, options, f, Blocking::Never)
    }

    /// Cancels the task `id`: a queued task never starts (its closure is
    /// dropped on this thread before `cancel` returns), a running one sees
    /// [`is_cancelled`](crate::is_cancelled) turn true. Returns true if the
    /// task was still queued or running; false for another manager's id
    /// (ids know their manager: it never reaches a task of this one).
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
        self.engine.cancel(id)
    }

    /// Cancels every queued task and flags every running one (see
    /// [`cancel`](Self::cancel)); returns the ids it reached, ascending. The
    /// manager stays open.
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
    /// let reached = manager.cancel_all();
    /// assert!(reached.contains(&handle.id()));
    /// let _ = handle.join(); // Ok(()) if it had started, Err(Cancelled) if not
    /// assert!(manager.spawn(|| ()).is_ok());
    /// ```
    pub fn cancel_all(&self) -> Vec<TaskId> {
        self.engine.cancel_all()
    }

    /// The ids of the tasks running now, ascending. A task parked in a wait
    /// is not running; a task it runs meanwhile is.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// handle.join().unwrap();
    /// assert!(manager.running().is_empty());
    /// ```
    #[must_use]
    pub fn running(&self) -> Vec<TaskId> {
        self.engine.running()
    }

    /// The ids of the tasks accepted and not started (delayed ones too),
    /// ascending.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = manager.spawn(move || { g.wait(); }).unwrap();
    /// let waiting = manager.spawn(|| ()).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// assert_eq!(manager.queued(), vec![waiting.id()]);
    /// gate.wait();
    /// # busy.join().unwrap(); waiting.join().unwrap();
    /// ```
    #[must_use]
    pub fn queued(&self) -> Vec<TaskId> {
        self.engine.queued()
    }

    /// Every task accepted and not finished, ascending by id: its name,
    /// whether it is queued, running or parked in a wait, and why it was
    /// flagged if it was. A snapshot for a status page or a debugger: tasks
    /// may start or finish while it is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::{TaskOptions, TaskState};
    /// let manager = taskwarden::TaskManager::new(1);
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = manager.spawn_with(TaskOptions::new().name("busy"), move || { g.wait(); }).unwrap();
    /// let waiting = manager.spawn(|| ()).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// let tasks = manager.tasks();
    /// assert_eq!(tasks.len(), 2);
    /// assert_eq!((tasks[0].name.as_deref(), tasks[0].state), (Some("busy"), TaskState::Running));
    /// assert_eq!((tasks[1].id, tasks[1].state), (waiting.id(), TaskState::Queued));
    /// gate.wait();
    /// # busy.join().unwrap(); waiting.join().unwrap();
    /// ```
    #[must_use]
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.engine.tasks()
    }

    /// Where the task `id` is in its life; `None` only for an id above
    /// every id this manager has used, or another manager's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskState;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// let id = handle.id();
    /// handle.join().unwrap();
    /// assert_eq!(manager.state(id), Some(TaskState::Finished));
    /// ```
    #[must_use]
    pub fn state(&self, id: TaskId) -> Option<TaskState> {
        self.engine.state(id)
    }

    /// Waits until every listed task has finished (detached ones too).
    /// Another manager's id counts as finished (it is never this manager's
    /// task).
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only listed tasks that are still queued, never
    /// another one.
    ///
    /// # Panics
    ///
    /// If an id of this manager's is above every id it has used; the
    /// message names it.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let ids: Vec<_> = (0..4).map(|_| manager.spawn_detached(|| ()).unwrap()).collect();
    /// manager.wait_all(&ids);
    /// assert!(manager.running().is_empty());
    /// ```
    pub fn wait_all<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: Borrow<TaskId>,
    {
        if let Err(id) = self.wait_for(ids, None) {
            panic!("wait_all: {id} was never issued by this manager");
        }
    }

    /// Like [`wait_all`](Self::wait_all), but gives up after `timeout`;
    /// true once every listed task has finished. An id above every id this
    /// manager has used makes it return false at once.
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only listed tasks that are still queued, never
    /// another one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(2);
    /// let id = manager.spawn_detached(|| ()).unwrap();
    /// assert!(manager.wait_all_timeout([id], Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn wait_all_timeout<I>(&self, ids: I, timeout: Duration) -> bool
    where
        I: IntoIterator,
        I::Item: Borrow<TaskId>,
    {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_for(ids, Some(deadline)).unwrap_or(false)
    }

    /// `Err(id)` for an id never issued; else whether all finished.
    fn wait_for<I>(&self, ids: I, deadline: Option<Option<Instant>>) -> Result<bool, TaskId>
    where
        I: IntoIterator,
        I::Item: Borrow<TaskId>,
    {
        let engine = &self.engine;
        let mut pending: Vec<JobRef> = Vec::new();
        for id in ids {
            let id = *id.borrow();
            if !engine.owns(id) {
                // Another manager's task: never this one's, so nothing to
                // wait for here.
                continue;
            }
            if !engine.was_issued(id) {
                return Err(id);
            }
            if let Some(job) = engine.find(id) {
                if !job.header().is_done() {
                    pending.push(job);
                }
            }
        }
        let pending = std::cell::RefCell::new(pending);
        Ok(engine.wait_until(
            Park::Tasks,
            deadline.flatten(),
            &mut |sleeping| {
                let mut pending = pending.borrow_mut();
                if sleeping {
                    pending.iter().all(|job| job.header().announce_waiter())
                } else {
                    pending.retain(|job| !job.header().is_done());
                    pending.is_empty()
                }
            },
            &mut Listed(&pending),
        ))
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
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Blocks until no task is queued and none is running, counting tasks
    /// spawned while it waits. It does not close the manager.
    ///
    /// From inside a task of this manager, the drain lends the task's slot and
    /// runs nothing on its thread; it never deadlocks. It does not wait for
    /// the calling task (nor the tasks below it on its thread), nor for the
    /// tasks parked waiting, directly or through others, for it. Tasks
    /// parked in another `drain` or a `close` are not waited for either.
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
        self.engine.drain(None);
    }

    /// Like [`drain`](Self::drain), but gives up after `timeout`; true if
    /// everything finished in time.
    ///
    /// From inside a task of this manager, the drain lends the task's slot and
    /// runs nothing on its thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// manager.spawn(|| std::thread::sleep(Duration::from_millis(5))).unwrap();
    /// assert!(manager.drain_timeout(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn drain_timeout(&self, timeout: Duration) -> bool {
        self.engine.drain(Some(timeout))
    }

    /// Closes with the configured close timeout; see
    /// [`close_timeout`](Self::close_timeout).
    ///
    /// From inside a task of this manager, the close lends the task's slot and
    /// runs nothing on its thread, so it keeps its deadline.
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
        self.close_timeout(self.engine.config.close_timeout)
    }

    /// Stops intake and waits for the work, with one deadline `now + timeout`.
    ///
    /// From inside a task of this manager, the close lends the task's slot and
    /// runs nothing on its thread, so it keeps its deadline.
    ///
    /// From this call on every spawn is rejected. Queued and running tasks
    /// go on, still within `max_tasks`, until all have finished or the
    /// deadline passes. At the deadline every task still queued is dropped
    /// without running (reported in [`CloseReport::cancelled`]; its `join`
    /// returns `Cancelled`) and every task still running has its cancel flag
    /// set (reported in [`CloseReport::abandoned`]) and is left to finish on
    /// its own thread. Idle threads are joined, and a warning is logged if
    /// anything was cancelled or abandoned. It returns within `timeout` plus
    /// a small constant (plus the time to drop the closures it cancels, and,
    /// called from inside a task, the run time of a task it ran meanwhile).
    ///
    /// Close is idempotent: a later or concurrent call waits for the first
    /// one and returns its report. Called from inside one of the manager's
    /// tasks, it does not wait for, flag or report that task, and it runs
    /// queued tasks while it waits. `Duration::MAX` waits for every task
    /// however long it takes.
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
        self.engine.close(timeout, CloseMode::Deadline)
    }

    /// Stops now: rejects every spawn from this moment, cancels every queued
    /// task at once (in [`CloseReport::cancelled`]), sets the cancel flag of
    /// every running one, and waits up to `grace` for them. Those that
    /// return in time are listed in [`CloseReport::stopped`], the rest in
    /// [`CloseReport::abandoned`]; `timed_out` is true exactly when
    /// `abandoned` is not empty.
    ///
    /// From inside a task of this manager, the close lends the task's slot and
    /// runs nothing on its thread; it flags the calling task but neither waits
    /// for it nor lists it.
    ///
    /// Called while a close is in progress, it escalates that close: the
    /// queue is cancelled and running tasks flagged at once, and the close
    /// ends by `now + grace` at the latest; both calls return the one
    /// report. Called from inside one of the manager's tasks, it flags the
    /// caller too, but neither waits for it nor lists it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let polite = manager
    ///     .spawn(|| while !taskwarden::is_cancelled() { std::thread::sleep(Duration::from_millis(1)) })
    ///     .unwrap();
    /// let queued = manager.spawn(|| ()).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// let report = manager.close_now(Duration::from_secs(5));
    /// assert_eq!(report.stopped, vec![polite.id()]);
    /// assert_eq!(report.cancelled, vec![queued.id()]);
    /// assert!(!report.timed_out);
    /// ```
    pub fn close_now(&self, grace: Duration) -> CloseReport {
        self.engine.close(grace, CloseMode::Now)
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
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.engine.is_closing()
    }

    /// The concurrency limit now in force.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(4);
    /// assert_eq!(manager.max_tasks(), 4);
    /// ```
    #[must_use]
    pub fn max_tasks(&self) -> usize {
        self.engine.limit()
    }

    /// Changes the concurrency limit at run time.
    ///
    /// Raising it lets queued work start at once, starting threads as
    /// needed. Lowering it never stops a running task: no new task starts
    /// while `n` or more run, a surplus thread retires before it takes its
    /// next task, and idle surplus threads are woken to retire.
    ///
    /// # Panics
    ///
    /// If `n` is 0 or above 2³¹; the message names `max_tasks`.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// manager.set_max_tasks(8);
    /// assert_eq!(manager.max_tasks(), 8);
    /// ```
    pub fn set_max_tasks(&self, n: usize) {
        if let Err(problem) = crate::config::check_max_tasks(n) {
            panic!("set_max_tasks: invalid taskwarden setting `max_tasks`: {problem}");
        }
        self.engine.set_limit(n);
    }
}

/// Submits `f` with a handle.
pub(crate) fn spawn_handle<F, T>(
    engine: &Arc<Engine>,
    f: F,
    blocking: Blocking,
) -> Result<TaskHandle<T>, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (_, task) = submit(engine, f, (), blocking, Handle::Kept, Erase::STATIC)?;
    let task = task.expect("a task with a handle");
    Ok(TaskHandle::new(HandleCore::new(task, Arc::clone(engine))))
}

/// Submits `f` with a handle and options.
pub(crate) fn spawn_handle_with<F, T>(
    engine: &Arc<Engine>,
    options: TaskOptions,
    f: F,
    blocking: Blocking,
) -> Result<TaskHandle<T>, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (_, task) = submit_with(
        engine,
        options,
        f,
        (),
        blocking,
        Handle::Kept,
        Erase::STATIC,
    )?;
    let task = task.expect("a task with a handle");
    Ok(TaskHandle::new(HandleCore::new(task, Arc::clone(engine))))
}

/// Submits `f` without a handle.
pub(crate) fn spawn_detached<F, T>(engine: &Arc<Engine>, f: F) -> Result<TaskId, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (id, _) = submit(
        engine,
        f,
        (),
        Blocking::Wait,
        Handle::Detached,
        Erase::STATIC,
    )?;
    Ok(id)
}

impl Drop for TaskManager {
    /// Closes with the configured timeout, unless the manager is closed.
    fn drop(&mut self) {
        self.engine
            .close(self.engine.config.close_timeout, CloseMode::Deadline);
    }
}

impl fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskManager")
            .field("name", &self.engine.config.thread_name)
            .field("max_tasks", &self.max_tasks())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

/// The tasks a `wait_all` still waits for.
struct Listed<'a>(&'a std::cell::RefCell<Vec<JobRef>>);

impl Awaited for Listed<'_> {
    fn claimable(&mut self) -> Option<JobRef> {
        self.0
            .borrow()
            .iter()
            .find(|job| job.header().is_claimable())
            .cloned()
    }

    fn ids(&mut self, out: &mut Vec<TaskId>) {
        out.extend(self.0.borrow().iter().map(|job| job.header().id()));
    }
}

impl Builder {
    /// Checks the settings and starts the manager. No thread starts until
    /// the first task arrives.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting when `max_tasks` or
    /// `queue_capacity` is 0 or above 2³¹, `close_timeout` is zero, or the
    /// thread name is empty or holds a NUL byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = taskwarden::TaskManager::builder().max_tasks(0).start().unwrap_err();
    /// assert_eq!(error.setting(), "max_tasks");
    /// ```
    pub fn start(self) -> Result<TaskManager, BuildError> {
        Ok(TaskManager::from_config(self.validate()?))
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

    /// Every panic message kept for a handle is given back or dropped:
    /// taken by `join`, dropped with the handle (before or after the task
    /// finished), dropped with a task set, never kept for a detached task.
    #[test]
    fn panic_messages_are_not_kept_past_their_handles() {
        use std::sync::mpsc;
        use std::time::Duration;

        // A few of each: every panic prints a backtrace, which is slow
        // under the sanitizers.
        const N: usize = 4;
        let manager = TaskManager::new(1);
        // Hold the only slot, so that some handles go before their task runs.
        let (open, gate) = mpsc::channel::<()>();
        let blocker = manager
            .spawn(move || {
                let _ = gate.recv_timeout(Duration::from_secs(60));
            })
            .unwrap();
        let panicking = |label: &'static str, i: usize| {
            manager
                .spawn(move || -> u8 { panic!("{label} {i}") })
                .unwrap()
        };
        let joined: Vec<_> = (0..N).map(|i| panicking("joined", i)).collect();
        for i in 0..N {
            drop(panicking("dropped early", i));
            manager
                .spawn_detached(move || -> u8 { panic!("detached {i}") })
                .unwrap();
        }
        let late: Vec<_> = (0..N).map(|i| panicking("dropped late", i)).collect();
        let mut set = manager.task_set();
        for i in 0..N {
            set.spawn(move || -> u8 { panic!("in a set {i}") }).unwrap();
        }
        open.send(()).unwrap();
        assert!(manager.drain_timeout(Duration::from_secs(120)));
        assert_eq!(manager.engine().messages().len(), 3 * N);
        for (i, handle) in joined.into_iter().enumerate() {
            assert_eq!(
                handle.join(),
                Err(crate::TaskError::Panicked(format!("joined {i}")))
            );
        }
        drop(late);
        drop(set);
        assert_eq!(manager.engine().messages().len(), 0);
        assert_eq!(blocker.join(), Ok(()));
    }

    /// A task handed over to its handle leaves the registry with that
    /// handle (its join or its drop), not with its worker's next batch of
    /// 64: its memory goes back on the handle's thread at once (round
    /// trips without a slow one every 64 tasks).
    #[test]
    fn join_removes_the_task_from_the_registry() {
        // Every join waits with a deadline first: a broken engine fails
        // this test instead of hanging it.
        const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
        let manager = TaskManager::new(2);
        for n in 0..10_u64 {
            let handle = manager.spawn(move || n * 2).unwrap();
            let id = handle.id();
            assert!(handle.wait_timeout(LIMIT));
            assert_eq!(handle.join(), Ok(n * 2));
            assert!(
                manager.engine().find(id).is_none(),
                "task {n} still registered"
            );
            assert_eq!(manager.state(id), Some(crate::TaskState::Finished));
        }
        // Inside a task: the child runs inline or on the other worker, and
        // is gone once joined either way.
        let engine = Arc::clone(manager.engine());
        let left = manager
            .spawn(move || {
                let child = crate::current_spawner().unwrap().spawn(|| 7).unwrap();
                let id = child.id();
                assert!(child.wait_timeout(LIMIT));
                assert_eq!(child.join(), Ok(7));
                engine.find(id).is_none()
            })
            .unwrap();
        assert!(left.wait_timeout(LIMIT));
        assert_eq!(left.join(), Ok(true));
        // A handle dropped after its task finished removes it too; one
        // dropped before leaves it to the worker, which removes it with
        // its batch (at the latest when it exits).
        let kept = manager.spawn(|| 1).unwrap();
        let id = kept.id();
        assert!(kept.wait_timeout(LIMIT));
        assert!(manager.engine().find(id).is_some(), "left to its handle");
        drop(kept);
        assert!(manager.engine().find(id).is_none(), "removed by its drop");
    }
}
