//! [`TaskManager::scope`]: tasks that borrow from the caller's stack.
//!
//! A scope owns a private manager. Its tasks may borrow anything that
//! outlives the scope (`'env`), because `scope` does not return, or unwind,
//! until every task spawned in it has settled: it drains the manager (which
//! counts tasks spawned by tasks), then closes it without a deadline, which
//! joins every worker thread. A task settles only after its closure, its
//! captured values, and (if its handle is gone) its result have been
//! dropped, so nothing that borrows from `'scope` is touched after the
//! scope returns.
//!
//! This is the crate's one `unsafe`: the channel and the registry hold jobs
//! as `Arc<dyn Job + 'static>`, and a scoped job's true lifetime is
//! `'scope`. [`erase`] states why that is sound.

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::manager::TaskManager;
use crate::task::{Completion, HandleCore, Job, ScopedHandle};

/// A scope in which tasks may borrow from the enclosing stack; see
/// [`TaskManager::scope`].
///
/// Like `std::thread::Scope`, it is invariant in both lifetimes, and the
/// borrow checker holds scoped tasks to the same rules as threads. Two
/// tasks cannot both borrow the same data mutably:
///
/// ```compile_fail
/// let mut data = vec![1];
/// taskwarden::TaskManager::scope(2, |s| {
///     s.spawn(|| data.push(2));
///     s.spawn(|| data.push(3));
/// });
/// ```
///
/// and a handle cannot outlive its scope:
///
/// ```compile_fail
/// let handle = taskwarden::TaskManager::scope(1, |s| s.spawn(|| 1));
/// ```
///
/// nor can a task borrow something that dies before the scope ends:
///
/// ```compile_fail
/// taskwarden::TaskManager::scope(1, |s| {
///     let short_lived = String::from("gone");
///     s.spawn(|| short_lived.len());
/// });
/// ```
///
/// # Examples
///
/// ```
/// let mut totals = vec![0_u64; 4];
/// let data: Vec<u64> = (1..=100).collect();
/// taskwarden::TaskManager::scope(4, |s| {
///     for (chunk, total) in data.chunks(25).zip(totals.iter_mut()) {
///         s.spawn(move || *total = chunk.iter().sum());
///     }
/// });
/// assert_eq!(totals.iter().sum::<u64>(), 5050);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    manager: TaskManager,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl TaskManager {
    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller's
    /// stack, on at most `max_tasks` worker threads, and returns only after
    /// every task spawned in it has finished.
    ///
    /// A panicking task is logged and reported by its handle; the scope
    /// still returns normally. If `f` itself panics, the scope first waits
    /// for its tasks, then resumes the panic.
    ///
    /// # Panics
    ///
    /// If `max_tasks` is 0, and when `f` panics (after the tasks finish).
    ///
    /// # Examples
    ///
    /// ```
    /// let names = vec!["ada".to_string(), "grace".to_string()];
    /// let mut lengths = Vec::new();
    /// taskwarden::TaskManager::scope(2, |s| {
    ///     let handles: Vec<_> = names.iter().map(|n| s.spawn(move || n.len())).collect();
    ///     lengths = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// });
    /// assert_eq!(lengths, [3, 5]);
    /// ```
    pub fn scope<'env, F, R>(max_tasks: usize, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            manager: TaskManager::new(max_tasks),
            scope: PhantomData,
            env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        scope.manager.drain();
        // Nothing is active and nothing can spawn any more: this close only
        // joins the workers. No deadline, so it can never abandon a task.
        scope.manager.close_timeout(Duration::MAX);
        match result {
            Ok(value) => value,
            Err(payload) => resume_unwind(payload),
        }
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a task that may borrow from outside the scope.
    ///
    /// # Panics
    ///
    /// If the scope has no worker thread and the OS refuses to start one.
    ///
    /// # Examples
    ///
    /// ```
    /// let counter = std::sync::atomic::AtomicUsize::new(0);
    /// taskwarden::TaskManager::scope(2, |s| {
    ///     for _ in 0..5 {
    ///         s.spawn(|| counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    ///     }
    /// });
    /// assert_eq!(counter.into_inner(), 5);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let shared = self.manager.shared();
        let task = match shared.submit(f, true, false, |task| erase(task as Arc<dyn Job + 'scope>))
        {
            Ok((_, task)) => task.expect("a task with a handle"),
            Err(error) => panic!("taskwarden: could not spawn a scoped task: {error}"),
        };
        let task: Arc<dyn Completion<T> + 'scope> = task;
        ScopedHandle::new(HandleCore::new(task, Arc::clone(shared)))
    }
}

/// Extends a scoped job's lifetime to `'static` so that the channel and the
/// registry can carry it.
fn erase<'scope>(job: Arc<dyn Job + 'scope>) -> Arc<dyn Job + 'static> {
    // SAFETY: only the lifetime bound of the trait object changes; layout and
    // vtable are the same. The job's closure and result borrow at most
    // `'scope`, and `TaskManager::scope` does not return before every job of
    // the scope is settled (drain), and every worker is joined (close with
    // no deadline). Settling a job drops its closure, and its result when no
    // handle is left to take it; a live handle is bounded by `'scope`. After
    // that, the only `'static` copies left (a cancelled job still in the
    // channel, a registry entry) hold an empty cell, whose drop touches no
    // borrowed data. Every run, discard and publish of the job happens
    // before the scope returns.
    unsafe { std::mem::transmute::<Arc<dyn Job + 'scope>, Arc<dyn Job + 'static>>(job) }
}
