//! One task: its id, its state machine, and the single allocation that holds
//! its closure, its flags and its result slot.
//!
//! # The task state word
//!
//! Everything a task's parties need to agree on is in one atomic `u32`: a
//! phase in the low two bits, and four flags.
//!
//! ```text
//!             try_start (a worker, or a joining parent)
//!   QUEUED ───────────────────────────────▶ RUNNING ──finish──▶ FINISHED
//!      │
//!      └──try_cancel_queued (cancel, cancel_all, close)──▶ CANCELLED
//!
//!   flags: CANCEL_REQUESTED  read by is_cancelled()
//!          PUBLISHED         the result may be taken
//!          DETACHED          the handle is gone
//!          JOIN_WAITING      a joiner sleeps on the manager's join signal
//! ```
//!
//! Leaving `QUEUED` is a compare-and-swap, so exactly one party, the *owner*,
//! wins it: the owner alone takes the closure out of the cell (to run it or
//! to drop it) and writes the result. A task is therefore run at most once
//! and settled exactly once.
//!
//! # Who may touch the cell
//!
//! The cell (closure, then result) is an `UnsafeCell` without a lock. Access
//! is handed over by the state word:
//!
//! 1. Before `PUBLISHED`, only the owner touches the cell.
//! 2. The owner sets `PUBLISHED` with a release RMW. From then on the cell
//!    belongs to the handle, which reads `PUBLISHED` with acquire before it
//!    takes the result.
//! 3. If the handle is dropped, it sets `DETACHED` with an RMW. The two RMWs
//!    on one atomic are totally ordered, so exactly one side sees the other's
//!    flag: a handle that sees `PUBLISHED` drops the result itself; an owner
//!    that sees `DETACHED` (in `drop_orphaned_result` or `publish`) drops it.
//!
//! Joiners sleep on one condition variable per manager (a task carries no
//! lock of its own): a joiner sets `JOIN_WAITING` under that mutex and
//! re-checks `PUBLISHED`; a publisher that sees `JOIN_WAITING` takes the
//! mutex and wakes everyone waiting, who each re-check their own task.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::manager::Shared;
use crate::panic;
use crate::sync::{AtomicU32, Condvar, Mutex, Ordering, UnsafeCell};

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

const PHASE: u32 = 0b11;
const QUEUED: u32 = 0;
const RUNNING: u32 = 1;
const CANCELLED: u32 = 2;
const FINISHED: u32 = 3;
const CANCEL_REQUESTED: u32 = 1 << 2;
const PUBLISHED: u32 = 1 << 3;
const DETACHED: u32 = 1 << 4;
const JOIN_WAITING: u32 = 1 << 5;

/// What every task has whatever its closure and result types: its id and
/// its state word.
pub(crate) struct Header {
    id: TaskId,
    state: AtomicU32,
}

impl Header {
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    fn phase(&self) -> u32 {
        self.state.load(Ordering::Acquire) & PHASE
    }

    /// QUEUED → RUNNING; true if this caller won and now owns the closure.
    /// Acquire on success: the owner sees the closure the spawner wrote
    /// (it may have come through the channel, or, for a joining parent,
    /// only through this word). Release: a worker's slot store made before
    /// is visible to whoever later reads `RUNNING` (close).
    pub(crate) fn try_start(&self) -> bool {
        self.leave_queue(RUNNING)
    }

    /// QUEUED → CANCELLED; true if this caller won and must `discard`.
    pub(crate) fn try_cancel_queued(&self) -> bool {
        self.leave_queue(CANCELLED)
    }

    fn leave_queue(&self, to: u32) -> bool {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if current & PHASE != QUEUED {
                return false;
            }
            // Other flags may change under us (a cancel request, a detach):
            // keep them, change only the phase.
            match self.state.compare_exchange_weak(
                current,
                current | to,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// RUNNING → FINISHED (one OR: FINISHED is RUNNING with one more bit), by
    /// the owner once the closure has returned. Returns whether the handle
    /// is gone (then nobody will ever look for the result: the owner drops
    /// it and need not publish).
    pub(crate) fn mark_finished(&self) -> bool {
        let now = self.state.load(Ordering::Acquire);
        debug_assert_eq!(now & PHASE, RUNNING);
        if now & DETACHED != 0 {
            // No handle: nobody will set DETACHED or JOIN_WAITING any more,
            // the phase is ours, and a CANCEL_REQUESTED racing in can be
            // lost now that the task has returned. A plain store will do.
            self.state.store(now | FINISHED, Ordering::Release);
            return true;
        }
        let before = self.state.fetch_or(RUNNING ^ FINISHED, Ordering::AcqRel);
        before & DETACHED != 0
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.phase() == QUEUED
    }

    pub(crate) fn is_running(&self) -> bool {
        self.phase() == RUNNING
    }

    /// Sets the flag that `is_cancelled` reads. Relaxed would do for the flag
    /// alone (it carries no data); it is an RMW on the shared word, so it
    /// never loses another party's flag.
    pub(crate) fn request_cancel(&self) {
        self.state.fetch_or(CANCEL_REQUESTED, Ordering::Relaxed);
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CANCEL_REQUESTED != 0
    }

    fn is_published(&self) -> bool {
        self.state.load(Ordering::Acquire) & PUBLISHED != 0
    }
}

/// How a task ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Cancelled,
}

/// Where joiners sleep: one per manager, shared by all its tasks.
#[derive(Default)]
pub(crate) struct JoinSignal {
    lock: Mutex<()>,
    cond: Condvar,
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
    /// the task is counted as settled; false if that drop panicked. Owner
    /// only, before `publish`.
    fn drop_orphaned_result(&self) -> bool;

    /// Makes the stored result visible to the handle and wakes its joiner.
    /// If the handle went away since `drop_orphaned_result`, drops the
    /// result here instead; false if that drop panicked. Owner only, once.
    fn publish(&self, signal: &JoinSignal) -> bool;
}

/// The typed side of a task: what its handle needs.
pub(crate) trait Completion<T>: Job {
    /// Waits until the result is published or `deadline` passes.
    fn wait(&self, signal: &JoinSignal, deadline: Option<Instant>) -> bool;
    /// Takes the published result. Handle only, once, after `wait`.
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

/// The one allocation per task: its header and its cell.
pub(crate) struct Task<F, T> {
    header: Header,
    cell: UnsafeCell<Stage<F, T>>,
}

// SAFETY: the cell is only ever accessed by one thread at a time, as the
// module docs lay out: the owner (the single winner of the QUEUED exit)
// before PUBLISHED, the handle after it, and whoever drops the result on a
// DETACHED/PUBLISHED race is decided by one RMW on the state word. The
// values that cross threads (the closure, the result) are `Send`.
unsafe impl<F: Send, T: Send> Sync for Task<F, T> {}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    /// A task holding `f`; `detached` when no handle will ever exist.
    pub(crate) fn new(id: TaskId, f: F, detached: bool) -> Task<F, T> {
        Task {
            header: Header {
                id,
                state: AtomicU32::new(if detached { DETACHED } else { QUEUED }),
            },
            cell: UnsafeCell::new(Stage::Pending(f)),
        }
    }

    /// Takes the closure back out of a task that was never shared.
    pub(crate) fn into_closure(self) -> F {
        match self.cell.into_inner() {
            Stage::Pending(f) => f,
            _ => unreachable!("a task that was never shared still holds its closure"),
        }
    }

    /// Replaces the stage, returning the old one.
    ///
    /// # Safety
    ///
    /// The caller must have exclusive access to the cell under the protocol
    /// of the module docs (be its owner before publication, its handle
    /// after, or the winner of the detach race).
    unsafe fn replace(&self, stage: Stage<F, T>) -> Stage<F, T> {
        // SAFETY: exclusive access is the caller's contract.
        self.cell
            .with_mut(|cell| unsafe { std::mem::replace(&mut *cell, stage) })
    }

    /// Owner only: takes the closure out.
    fn take_closure(&self) -> F {
        // SAFETY: only the winner of the QUEUED exit calls this, before
        // publication: it is the cell's only user.
        match unsafe { self.replace(Stage::Running) } {
            Stage::Pending(f) => f,
            _ => unreachable!("only the winner of the task's state takes its closure"),
        }
    }

    /// Owner only: stores the result.
    fn store(&self, result: Result<T, TaskError>) {
        // SAFETY: as in `take_closure`: the owner, before publication.
        unsafe { self.replace(Stage::Done(result)) };
    }

    /// Drops a result nobody will take, catching a panic in its drop.
    ///
    /// # Safety
    ///
    /// As `replace`: the caller won the right to drop the result.
    unsafe fn drop_result(&self) -> bool {
        // SAFETY: the caller's contract.
        let result = unsafe { self.replace(Stage::Taken) };
        match panic::drop_caught(result) {
            Ok(()) => true,
            Err(message) => {
                log::error!(
                    "{}: dropping its result panicked: {}",
                    self.header.id,
                    message
                );
                false
            }
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
        if self.header.state.load(Ordering::Acquire) & DETACHED == 0 {
            return true;
        }
        // SAFETY: DETACHED is set, so the handle is gone and will never touch
        // the cell again; before publication the owner (the caller) is its
        // only user.
        unsafe { self.drop_result() }
    }

    fn publish(&self, signal: &JoinSignal) -> bool {
        let before = self.header.state.fetch_or(PUBLISHED, Ordering::AcqRel);
        if before & DETACHED != 0 {
            // SAFETY: the handle detached before it could see PUBLISHED (our
            // RMW came after its one), so it left the result to us. If
            // `drop_orphaned_result` already dropped it, the stage is
            // `Taken` and this drops nothing.
            return unsafe { self.drop_result() };
        }
        if before & JOIN_WAITING != 0 {
            let _guard = signal.lock.lock();
            signal.cond.notify_all();
        }
        true
    }
}

impl<F, T> Completion<T> for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn wait(&self, signal: &JoinSignal, deadline: Option<Instant>) -> bool {
        if self.header.is_published() {
            return true;
        }
        let mut guard = signal.lock.lock();
        // Announced under the mutex, then re-checked: a publisher that comes
        // after this RMW sees JOIN_WAITING and must take the mutex, which it
        // can only get once we sleep.
        if self.header.state.fetch_or(JOIN_WAITING, Ordering::AcqRel) & PUBLISHED != 0 {
            return true;
        }
        loop {
            if self.header.is_published() {
                return true;
            }
            match deadline {
                None => signal.cond.wait(&mut guard),
                Some(deadline) => {
                    if signal.cond.wait_until(&mut guard, deadline).timed_out() {
                        return self.header.is_published();
                    }
                }
            }
        }
    }

    fn take(&self) -> Result<T, TaskError> {
        assert!(
            self.header.is_published(),
            "take before the result is published"
        );
        // SAFETY: PUBLISHED is set (acquire) and the handle, our caller, is
        // not detached: the owner is done with the cell and it is ours.
        match unsafe { self.replace(Stage::Taken) } {
            Stage::Done(result) => result,
            _ => unreachable!("a published task holds its result until it is taken"),
        }
    }

    fn detach(&self) {
        let before = self.header.state.fetch_or(DETACHED, Ordering::AcqRel);
        if before & PUBLISHED != 0 {
            // SAFETY: PUBLISHED came first, so the owner is done and will not
            // drop the result: it is ours to drop. Dropped on the caller's
            // thread: it is the caller's value, and so is a panic in its drop.
            let result = unsafe { self.replace(Stage::Taken) };
            drop(result);
        }
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
        self.task.header().is_published()
    }

    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        self.task.wait(
            &self.shared.join_signal,
            Instant::now().checked_add(timeout),
        )
    }

    pub(crate) fn join(mut self) -> Result<T, TaskError> {
        if !self.task.header().is_published() {
            // A parent joining its own queued child would wait for a slot
            // that it occupies itself: run the child here instead.
            self.shared.help_run(self.id());
        }
        self.task.wait(&self.shared.join_signal, None);
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
    /// Invariant in `'scope`, like the scope itself, so that a handle
    /// cannot be passed off as one with a shorter scope and escape it.
    _scope: PhantomData<&'scope mut &'scope ()>,
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
