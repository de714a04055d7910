//! One task: its id, its state machine, and the single allocation that holds
//! its closure, its cancellation flag and its result slot.
//!
//! # The task state machine
//!
//! Every accepted task is in exactly one of four states, kept in one atomic
//! byte of its [`Header`]:
//!
//! ```text
//!             try_start (a worker, or a joining parent)
//!   QUEUED ───────────────────────────────▶ RUNNING ──finish──▶ FINISHED
//!      │
//!      └──try_cancel_queued (cancel, cancel_all, close)──▶ CANCELLED
//! ```
//!
//! Leaving `QUEUED` is a compare-and-swap, so exactly one party wins it: the
//! winner alone owns the closure (it runs it, or drops it), and a task is
//! therefore run at most once and settled exactly once. The cancellation flag
//! read by [`is_cancelled`](crate::is_cancelled) is separate from the state:
//! setting it on a running task only asks the task to stop.
//!
//! The result goes through the task's cell: `Pending(closure)`, then
//! `Done(result)` once the closure has returned (not yet visible), then
//! published (visible to [`TaskHandle::join`]), then `Taken`. Publication is the
//! last step of a task's life but one: the counters are settled first, so a
//! caller that joined a task then reads [`Stats`](crate::Stats) sees it counted.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::TaskError;
use crate::manager::Shared;
use crate::panic;

/// The id of a task, unique within its manager.
///
/// Ids increase in the order in which tasks are accepted, and the first task
/// of a manager is `task-1`.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let first = manager.spawn(|| ()).unwrap();
/// let second = manager.spawn(|| ()).unwrap();
/// assert_eq!(first.id().get(), 1);
/// assert!(first.id() < second.id());
/// assert_eq!(second.id().to_string(), "task-2");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    pub(crate) fn new(raw: u64) -> Option<TaskId> {
        NonZeroU64::new(raw).map(TaskId)
    }

    /// The number behind the id, starting at 1 for a manager's first task.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert_eq!(manager.spawn(|| ()).unwrap().id().get(), 1);
    /// ```
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}", self.0)
    }
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;
const FINISHED: u8 = 3;

/// What every task has whatever its closure and result types: its id, its
/// state and its cancellation flag.
pub(crate) struct Header {
    id: TaskId,
    state: AtomicU8,
    cancel_requested: AtomicBool,
}

impl Header {
    fn new(id: TaskId) -> Header {
        Header {
            id,
            state: AtomicU8::new(QUEUED),
            cancel_requested: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// QUEUED → RUNNING. `AcqRel`: on success the winner sees everything the
    /// spawner wrote into the task (the closure travelled through the
    /// channel, but a joining parent may win without the channel); a worker
    /// that stored its slot before this makes that store visible to whoever
    /// later reads `RUNNING` (see `worker::Worker::process`).
    pub(crate) fn try_start(&self) -> bool {
        self.transition(QUEUED, RUNNING)
    }

    /// QUEUED → CANCELLED. The winner owns the closure and must `discard` it.
    pub(crate) fn try_cancel_queued(&self) -> bool {
        self.transition(QUEUED, CANCELLED)
    }

    /// RUNNING → FINISHED, by the party that ran the task, once its closure
    /// has returned and its captured values are dropped.
    pub(crate) fn mark_finished(&self) {
        self.state.store(FINISHED, Ordering::Release);
    }

    fn transition(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.state.load(Ordering::Acquire) == QUEUED
    }

    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Sets the flag that `is_cancelled` reads. Relaxed is enough: the flag
    /// carries no data, and the task polls it.
    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::Relaxed);
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Relaxed)
    }
}

/// How a task ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Cancelled,
}

/// A task with its closure type erased: what the channel, the registry and
/// the workers hold.
pub(crate) trait Job: Send + Sync {
    fn header(&self) -> &Header;

    /// Runs the closure on this thread, catching a panic, and stores the
    /// result (unpublished). Only the winner of `Header::try_start` calls it.
    fn run(&self) -> Outcome;

    /// Drops the closure of a task that never started and stores
    /// `Cancelled` (unpublished). Only the winner of
    /// `Header::try_cancel_queued` calls it.
    fn discard(&self) -> Outcome;

    /// If the handle is gone already, drops the stored result now, before
    /// the task is counted as settled; false if that drop panicked.
    fn drop_orphaned_result(&self) -> bool;

    /// Makes the stored result visible to the handle and wakes its joiner.
    /// If the handle went away since `drop_orphaned_result`, drops the
    /// result here instead; false if that drop panicked.
    fn publish(&self) -> bool;
}

/// The typed side of a task: what its handle needs.
pub(crate) trait Completion<T>: Job {
    fn is_published(&self) -> bool;
    /// Waits until the result is published or `deadline` passes.
    fn wait(&self, deadline: Option<Instant>) -> bool;
    /// Takes the published result; panics if called twice.
    fn take(&self) -> Result<T, TaskError>;
    /// The handle is gone: nobody will take the result.
    fn detach(&self);
}

enum Stage<F, T> {
    Pending(F),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

struct Cell<F, T> {
    stage: Stage<F, T>,
    published: bool,
    detached: bool,
}

/// The one allocation per task: header, closure, result slot, and the
/// condition variable its joiner waits on.
pub(crate) struct Task<F, T> {
    header: Header,
    cell: Mutex<Cell<F, T>>,
    published: Condvar,
}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    pub(crate) fn new(id: TaskId, f: F) -> Task<F, T> {
        Task {
            header: Header::new(id),
            cell: Mutex::new(Cell {
                stage: Stage::Pending(f),
                published: false,
                detached: false,
            }),
            published: Condvar::new(),
        }
    }

    /// Takes the closure back out of a task that was never shared.
    pub(crate) fn into_closure(self) -> F {
        match self.cell.into_inner().stage {
            Stage::Pending(f) => f,
            _ => unreachable!("a task that was never shared still holds its closure"),
        }
    }

    fn take_closure(&self) -> F {
        let mut cell = self.cell.lock();
        match std::mem::replace(&mut cell.stage, Stage::Running) {
            Stage::Pending(f) => f,
            _ => unreachable!("only the winner of the task's state takes its closure"),
        }
    }

    fn store(&self, result: Result<T, TaskError>) {
        self.cell.lock().stage = Stage::Done(result);
    }
}

impl<F, T> Task<F, T> {
    /// Drops a result nobody will take, catching a panic in its drop.
    fn drop_result(&self, orphan: Option<Stage<F, T>>) -> bool {
        match orphan.map(panic::drop_caught) {
            Some(Err(message)) => {
                log::error!(
                    "{}: dropping its result panicked: {}",
                    self.header.id,
                    message
                );
                false
            }
            _ => true,
        }
    }
}

impl<F, T> Job for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(&self) -> Outcome {
        let f = self.take_closure();
        // Calling the closure consumes it, so its captured values are
        // dropped inside the boundary too.
        match panic::catch(f) {
            Ok(value) => {
                self.store(Ok(value));
                Outcome::Completed
            }
            Err(message) => {
                log::error!("{} panicked: {}", self.header.id, message);
                self.store(Err(TaskError::Panicked(message)));
                Outcome::Panicked
            }
        }
    }

    fn discard(&self) -> Outcome {
        let f = self.take_closure();
        let outcome = match panic::drop_caught(f) {
            Ok(()) => Outcome::Cancelled,
            Err(message) => {
                log::error!(
                    "{} was cancelled and its closure panicked while being dropped: {}",
                    self.header.id,
                    message
                );
                Outcome::Panicked
            }
        };
        self.store(Err(TaskError::Cancelled));
        outcome
    }

    fn drop_orphaned_result(&self) -> bool {
        let orphan = {
            let mut cell = self.cell.lock();
            if cell.detached {
                Some(std::mem::replace(&mut cell.stage, Stage::Taken))
            } else {
                None
            }
        };
        self.drop_result(orphan)
    }

    fn publish(&self) -> bool {
        let orphan = {
            let mut cell = self.cell.lock();
            cell.published = true;
            if cell.detached {
                Some(std::mem::replace(&mut cell.stage, Stage::Taken))
            } else {
                self.published.notify_all();
                None
            }
        };
        self.drop_result(orphan)
    }
}

impl<F, T> Completion<T> for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn is_published(&self) -> bool {
        self.cell.lock().published
    }

    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut cell = self.cell.lock();
        while !cell.published {
            match deadline {
                None => self.published.wait(&mut cell),
                Some(deadline) => {
                    if self.published.wait_until(&mut cell, deadline).timed_out() {
                        return cell.published;
                    }
                }
            }
        }
        true
    }

    fn take(&self) -> Result<T, TaskError> {
        let mut cell = self.cell.lock();
        debug_assert!(cell.published);
        match std::mem::replace(&mut cell.stage, Stage::Taken) {
            Stage::Done(result) => result,
            _ => unreachable!("a published task holds its result until it is taken"),
        }
    }

    fn detach(&self) {
        let result = {
            let mut cell = self.cell.lock();
            cell.detached = true;
            if cell.published {
                Some(std::mem::replace(&mut cell.stage, Stage::Taken))
            } else {
                None
            }
        };
        // Dropped on the caller's thread, outside the lock: it is the
        // caller's own value, and a panic in its drop is the caller's.
        drop(result);
    }
}

/// What [`TaskHandle`] and [`ScopedHandle`](crate::ScopedHandle) share: the
/// typed task, and the manager it belongs to (to settle a cancelled task).
pub(crate) struct HandleCore<'a, T> {
    task: Arc<dyn Completion<T> + 'a>,
    shared: Arc<Shared>,
    joined: bool,
}

impl<'a, T> HandleCore<'a, T> {
    pub(crate) fn new(task: Arc<dyn Completion<T> + 'a>, shared: Arc<Shared>) -> Self {
        HandleCore {
            task,
            shared,
            joined: false,
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.task.header().id()
    }

    pub(crate) fn cancel(&self) {
        let job: &dyn Job = &*self.task;
        self.shared.cancel_job(job);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_published()
    }

    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        self.task.wait(Instant::now().checked_add(timeout))
    }

    pub(crate) fn join(mut self) -> Result<T, TaskError> {
        if !self.task.is_published() {
            // A parent joining its own queued child would wait for a slot
            // that it occupies itself: run the child here instead.
            self.shared.help_run(self.id());
        }
        self.task.wait(None);
        self.joined = true;
        self.task.take()
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Drop for HandleCore<'_, T> {
    fn drop(&mut self) {
        if !self.joined {
            self.task.detach();
        }
    }
}

/// An owned handle to a spawned task: its id, a way to cancel it, and its
/// result.
///
/// Dropping the handle detaches the task: it still runs, and its result is
/// dropped when it finishes.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let handle = manager.spawn(|| 6 * 7).unwrap();
/// assert_eq!(handle.join(), Ok(42));
/// ```
pub struct TaskHandle<T> {
    core: HandleCore<'static, T>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(core: HandleCore<'static, T>) -> Self {
        TaskHandle { core }
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// assert_eq!(handle.id().to_string(), "task-1");
    /// ```
    pub fn id(&self) -> TaskId {
        self.core.id()
    }

    /// Asks the task to stop. A task that has not started never starts (its
    /// closure is dropped now, and [`join`](Self::join) returns
    /// [`TaskError::Cancelled`]); a running task sees
    /// [`is_cancelled`](crate::is_cancelled) turn true and decides itself when
    /// to return. Cancelling a finished task does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager
    ///     .spawn(|| {
    ///         while !taskwarden::is_cancelled() {
    ///             std::thread::sleep(Duration::from_millis(1));
    ///         }
    ///         "stopped"
    ///     })
    ///     .unwrap();
    /// handle.cancel();
    /// // Either it stopped cooperatively, or it was cancelled before it began.
    /// let outcome = handle.join();
    /// assert!(outcome == Ok("stopped") || outcome == Err(taskwarden::TaskError::Cancelled));
    /// ```
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// Whether the task's result is ready: it returned, panicked, or was
    /// cancelled before it started.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// handle.wait_timeout(std::time::Duration::from_secs(5));
    /// assert!(handle.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Waits up to `timeout` for the task to finish; true once it has
    /// finished (or will never run, having been cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| std::thread::sleep(Duration::from_millis(10))).unwrap();
    /// assert!(handle.wait_timeout(Duration::from_secs(5)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core.wait_timeout(timeout)
    }

    /// Waits for the task and returns what it returned.
    ///
    /// Called from inside a task of the same manager on a task that has not
    /// started yet, `join` runs that task on the calling thread rather than
    /// wait for a free slot, so a parent joining its child cannot deadlock
    /// the manager (the parent's slot is the one the child uses).
    ///
    /// # Errors
    ///
    /// [`TaskError::Panicked`] with the panic message if the task panicked;
    /// [`TaskError::Cancelled`] if it was cancelled before it started.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskError;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| -> u8 { panic!("boom") }).unwrap();
    /// assert_eq!(handle.join(), Err(TaskError::Panicked("boom".into())));
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        self.core.join()
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("TaskHandle", f)
    }
}

/// A handle to a task spawned in a [`Scope`](crate::Scope); it cannot outlive
/// the scope.
///
/// # Examples
///
/// ```
/// let words = vec!["a", "bb", "ccc"];
/// let total = taskwarden::TaskManager::scope(2, |s| {
///     let handles: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
/// });
/// assert_eq!(total, 6);
/// ```
pub struct ScopedHandle<'scope, T> {
    core: HandleCore<'scope, T>,
    _scope: PhantomData<&'scope ()>,
}

impl<'scope, T> ScopedHandle<'scope, T> {
    pub(crate) fn new(core: HandleCore<'scope, T>) -> Self {
        ScopedHandle {
            core,
            _scope: PhantomData,
        }
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// taskwarden::TaskManager::scope(1, |s| {
    ///     assert_eq!(s.spawn(|| ()).id().get(), 1);
    /// });
    /// ```
    pub fn id(&self) -> TaskId {
        self.core.id()
    }

    /// Asks the task to stop; see [`TaskHandle::cancel`].
    ///
    /// # Examples
    ///
    /// ```
    /// taskwarden::TaskManager::scope(1, |s| {
    ///     let h = s.spawn(|| while !taskwarden::is_cancelled() { std::thread::yield_now() });
    ///     h.cancel();
    /// });
    /// ```
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// Whether the task's result is ready.
    ///
    /// # Examples
    ///
    /// ```
    /// taskwarden::TaskManager::scope(1, |s| {
    ///     let h = s.spawn(|| 1);
    ///     while !h.is_finished() { std::thread::yield_now() }
    ///     assert_eq!(h.join(), Ok(1));
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Waits for the task and returns what it returned.
    ///
    /// # Errors
    ///
    /// As [`TaskHandle::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// let data = [1, 2, 3];
    /// let sum = taskwarden::TaskManager::scope(2, |s| s.spawn(|| data.iter().sum::<i32>()).join());
    /// assert_eq!(sum, Ok(6));
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        self.core.join()
    }
}

impl<T> fmt::Debug for ScopedHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt("ScopedHandle", f)
    }
}
