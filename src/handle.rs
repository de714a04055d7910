//! [`TaskHandle`] and [`ScopedHandle`]: a task's id, a way to cancel it,
//! and its result.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{Awaited, Engine, Park};
use crate::error::TaskError;
use crate::task::cell::{JobRef, TaskRef};
use crate::task::{CancelReason, TaskId};

/// What [`TaskHandle`] and [`ScopedHandle`] share: the typed task, and the
/// engine it belongs to (to cancel it, and to wait helpfully).
pub(crate) struct HandleCore<'a, T> {
    /// `None` only once `join` has taken the result (there is nothing left
    /// to detach). An `Option` rather than a flag: it costs no space (the
    /// reference is never null), so a handle is two words.
    task: Option<TaskRef<T>>,
    engine: Arc<Engine>,
    /// What the task's closure may borrow for (a scope's lifetime).
    _borrow: PhantomData<&'a ()>,
}

impl<T> HandleCore<'_, T> {
    pub(crate) fn new(task: TaskRef<T>, engine: Arc<Engine>) -> Self {
        HandleCore {
            task: Some(task),
            engine,
            _borrow: PhantomData,
        }
    }

    fn task(&self) -> &TaskRef<T> {
        self.task
            .as_ref()
            .expect("a handle holds its task until `join` consumes it")
    }

    /// The task, as the engine sees it.
    pub(crate) fn job(&self) -> &JobRef {
        self.task().job()
    }

    pub(crate) fn id(&self) -> TaskId {
        self.task().header().id()
    }

    pub(crate) fn cancel(&self) -> bool {
        self.engine
            .cancel_job(self.task().job(), CancelReason::Requested)
    }

    /// Cancels the task if it has not started; leaves a running one alone.
    pub(crate) fn cancel_if_queued(&self) {
        self.engine
            .cancel_if_queued(self.task().job(), CancelReason::Requested, |_| ());
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.task().header().is_done()
    }

    /// Waits until the result is published or `deadline` passes. From
    /// inside a task of the same manager, the wait lends its slot, and a
    /// task that has not started yet may run on this thread (see
    /// `engine::wait`).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let header = self.task().header();
        self.engine.wait_until(
            Park::Tasks,
            deadline,
            &mut |sleeping| {
                if sleeping {
                    header.announce_waiter()
                } else {
                    header.is_done()
                }
            },
            &mut OneTask {
                job: self.task().job(),
            },
        )
    }

    pub(crate) fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait(Instant::now().checked_add(timeout))
    }

    pub(crate) fn join(mut self) -> Result<T, TaskError> {
        self.wait(None);
        let task = self
            .task
            .take()
            .expect("a handle holds its task until `join` consumes it");
        // Handed over to this handle: the worker left the registry entry
        // to it (see `Engine::forget`).
        self.engine.forget(task.job());
        // SAFETY: this is the task's one handle (handles are not `Clone`),
        // the wait saw FINISHED (after PUBLISHED), and with the task taken
        // out, `Drop` does not detach it.
        unsafe { task.take(self.engine.messages()) }
    }

    pub(crate) fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Drop for HandleCore<'_, T> {
    fn drop(&mut self) {
        let Some(task) = &self.task else {
            return; // joined: the result was taken
        };
        // SAFETY: the one handle, detaching once; it never touches the
        // result again.
        if let Err(message) = unsafe { task.detach(self.engine.messages()) } {
            self.engine
                .result_drop_panicked(task.header().id(), &message);
        }
        // Published before the detach (never after it): the worker left
        // the registry entry to this handle (see `Engine::forget`).
        if Engine::FORGETS && task.header().is_published() {
            self.engine.forget(task.job());
        }
    }
}

/// An owned handle to a spawned task: its id, a way to cancel it, and its
/// result.
///
/// Dropping the handle detaches the task: it still runs, and its result is
/// dropped when it finishes (a panic in that drop is caught and logged).
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
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.core.id()
    }

    /// Asks the task to stop; true if it was still queued or running (as
    /// [`TaskManager::cancel`](crate::TaskManager::cancel)).
    ///
    /// A task that has not started never starts: its closure is dropped
    /// now, on this thread, and [`join`](Self::join) returns
    /// [`TaskError::Cancelled`]. A running task sees
    /// [`is_cancelled`](crate::is_cancelled) turn true and decides itself
    /// when to return. Cancelling a finished task does nothing.
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
    /// assert!(handle.cancel());
    /// // Either it stopped cooperatively, or it was cancelled before it began.
    /// let outcome = handle.join();
    /// assert!(outcome == Ok("stopped") || outcome == Err(taskwarden::TaskError::Cancelled));
    /// ```
    pub fn cancel(&self) -> bool {
        self.core.cancel()
    }

    /// Whether the task's result is ready: it returned, panicked, or was
    /// cancelled before it started.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| ()).unwrap();
    /// let _ = handle.wait_timeout(std::time::Duration::from_secs(5));
    /// assert!(handle.is_finished());
    /// ```
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Waits up to `timeout` for the task to finish; true once it has
    /// finished (or will never run, having been cancelled).
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only this task, if it is still queued, never
    /// another one.
    ///
    /// From inside a task of the same manager, a task that has not started
    /// yet is run on the calling thread (so the wait may return late by its
    /// run time).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let handle = manager.spawn(|| std::thread::sleep(Duration::from_millis(10))).unwrap();
    /// assert!(handle.wait_timeout(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core.wait_timeout(timeout)
    }

    /// Waits for the task and returns what it returned.
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only this task, if it is still queued, never
    /// another one.
    ///
    /// Called from inside a task of the same manager on a task that has not
    /// started yet, `join` runs that task on the calling thread rather than
    /// wait for a free slot, so a parent joining its child cannot deadlock
    /// the manager; while it waits for a task running elsewhere, it runs
    /// other queued tasks (see "From inside a task" in the crate docs).
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

/// A handle to a task spawned in a [`Scope`](crate::Scope); it cannot
/// outlive the scope.
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
    #[must_use]
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
    ///     let _ = h.cancel();
    /// });
    /// ```
    pub fn cancel(&self) -> bool {
        self.core.cancel()
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
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Waits up to `timeout` for the task to finish; see
    /// [`TaskHandle::wait_timeout`].
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only this task, if it is still queued, never
    /// another one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// taskwarden::TaskManager::scope(1, |s| {
    ///     let h = s.spawn(|| 1);
    ///     assert!(h.wait_timeout(Duration::from_secs(5)));
    /// });
    /// ```
    #[must_use]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core.wait_timeout(timeout)
    }

    /// Waits for the task and returns what it returned.
    ///
    /// From inside a task of this manager, the wait lends the task's slot; it
    /// runs on its own thread only this task, if it is still queued, never
    /// another one.
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

/// The one task a handle waits for: the handle's own reference to it, so
/// that running it inline needs no lookup by id.
struct OneTask<'a> {
    job: &'a JobRef,
}

impl Awaited for OneTask<'_> {
    fn claimable(&mut self) -> Option<JobRef> {
        self.job.header().is_claimable().then(|| self.job.clone())
    }

    fn ids(&mut self, out: &mut Vec<TaskId>) {
        out.push(self.job.header().id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_two_words() {
        let word = std::mem::size_of::<usize>();
        assert_eq!(std::mem::size_of::<TaskHandle<()>>(), 2 * word);
        assert_eq!(std::mem::size_of::<TaskHandle<String>>(), 2 * word);
        assert_eq!(std::mem::size_of::<ScopedHandle<'_, [u8; 64]>>(), 2 * word);
        assert_eq!(std::mem::size_of::<Option<TaskHandle<u8>>>(), 2 * word);
    }
}
