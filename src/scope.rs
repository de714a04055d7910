//! Scopes: tasks that borrow from the caller's stack.
//!
//! [`TaskManager::scoped`] runs a scope on a manager's own threads, limit,
//! names and hooks, shared with its other work; [`TaskManager::scope`] is
//! the same on a private manager made for the call.
//!
//! # Why borrowing is sound
//!
//! The run queue and the registry hold tasks as `JobRef`s, which have no
//! lifetime, while a scoped task's closure and result may borrow for
//! `'scope`: [`erase`] makes the token (`Erase::scoped`) that lets such a
//! task become a `JobRef`, and is the one lifetime `unsafe` of the crate.
//! It is sound because of one rule and one count:
//!
//! - *A task settles only after its closure has been run or dropped, and
//!   its result handed to its handle or dropped* (see `task::cell`): after
//!   it settles, the task's cell holds no borrowed data (its state word
//!   says the cell is empty, so freeing it drops nothing), and its sink is
//!   `'static` (`JobRef::new` requires it).
//! - Every task spawned in a scope is counted in the scope's tracker, and
//!   counted out by its sink when it settles. `scoped` does not return, or
//!   resume a panic of its body, until that count is zero: it waits whatever
//!   happens meanwhile, a close included (a close cancels the scope's queued
//!   tasks, which settles them, and never abandons a running one without
//!   the scope still waiting for it).
//!
//! So every use of borrowed data (running the closure, dropping it,
//! dropping an unwanted result) happens before `scoped` returns. What
//! outlives the scope is the engine's `'static` copies of settled tasks,
//! whose drop touches nothing borrowed; and a published result lives in a
//! [`ScopedHandle`], which cannot outlive `'scope` (a handle leaked with
//! `mem::forget` keeps its task, result included, alive forever: a leak,
//! never a use after the scope).

use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::engine::{Blocking, Engine, Handle, NoTasks, Park};
use crate::error::{SpawnErrorKind, TaskError};
use crate::handle::{HandleCore, ScopedHandle};
use crate::manager::TaskManager;
use crate::map::{Draw, Map, MapCore, MapUnordered};
use crate::options::TaskOptions;
use crate::submit::{submit, submit_with};
use crate::sync::{AtomicUsize, Ordering};
use crate::task::cell::{Erase, Inline, Sink};
use crate::task::TaskId;
use crate::task_set::SetCore;

/// A scope in which tasks may borrow from the enclosing stack; see
/// [`TaskManager::scope`] and [`TaskManager::scoped`].
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
    engine: Arc<Engine>,
    tracker: Arc<Tracker>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// Counts a scope's tasks that have not settled.
struct Tracker {
    pending: AtomicUsize,
    engine: std::sync::Weak<Engine>,
}

/// The sink of a scoped task: counts it out when it settles.
#[derive(Clone)]
struct ScopeSink(Arc<Tracker>);

impl Sink for ScopeSink {
    fn settled(&self, _id: TaskId) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the scope may be waiting for it.
            if let Some(engine) = self.0.engine.upgrade() {
                engine.wake_waiters();
            }
        }
    }
}

impl TaskManager {
    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller's
    /// stack, on a private manager of at most `max_tasks` worker threads,
    /// and returns only after every task spawned in it has finished (and
    /// the private manager's threads have exited).
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
        let manager = TaskManager::new(max_tasks);
        let result = catch_unwind(AssertUnwindSafe(|| manager.scoped(f)));
        // Every task has settled: this close only joins the threads.
        manager.close_timeout(std::time::Duration::MAX);
        match result {
            Ok(value) => value,
            Err(payload) => resume_unwind(payload),
        }
    }

    /// Runs `f` with a [`Scope`] on this manager's own threads, limit,
    /// names and hooks, shared with its other work, and returns only after
    /// every task spawned in it has finished, also when `f` panics (then it
    /// resumes the panic).
    ///
    /// Called from inside a task of this manager, the wait at the end lends the
    /// task's slot and runs nothing on its thread.
    ///
    /// If the manager closes while the scope is open, the scope's queued
    /// tasks are cancelled as in any close, and the scope still waits for
    /// its running ones. `s.spawn` on a closed manager returns a handle
    /// whose `join` gives [`TaskError::Cancelled`](crate::TaskError::Cancelled).
    /// Called from inside one of the manager's tasks, the final wait runs
    /// queued tasks on the calling thread, so it never deadlocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(4);
    /// let data = vec![1, 2, 3, 4, 5, 6];
    /// let sum: i32 = manager.scoped(|s| {
    ///     let halves: Vec<_> = data.chunks(3).map(|c| s.spawn(move || c.iter().sum::<i32>())).collect();
    ///     halves.into_iter().map(|h| h.join().unwrap()).sum()
    /// });
    /// assert_eq!(sum, 21);
    /// ```
    pub fn scoped<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            engine: Arc::clone(self.engine()),
            tracker: Arc::new(Tracker {
                pending: AtomicUsize::new(0),
                engine: Arc::downgrade(self.engine()),
            }),
            scope: PhantomData,
            env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        scope.wait_for_tasks();
        match result {
            Ok(value) => value,
            Err(payload) => resume_unwind(payload),
        }
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a task that may borrow from outside the scope.
    ///
    /// With a bounded queue it waits for room. On a closed manager the task
    /// never runs: its closure is dropped, and the handle's `join` gives
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled).
    ///
    /// # Panics
    ///
    /// If the manager has no worker thread and the OS refuses to start one.
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
        self.spawn_with(TaskOptions::new(), f)
    }

    /// Spawns a task that may borrow from outside the scope, with
    /// [`TaskOptions`] (a timeout, a delay, a token, a name). The scope
    /// still waits for it: a `cancel_after` flags it, it does not cut it
    /// short, and a `cancel_at` that passes while it is queued means it
    /// never runs (`Err(TimedOut)`).
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskwarden::TaskOptions;
    /// let lines = vec!["a", "b", "c"];
    /// let counted = taskwarden::TaskManager::scope(2, |s| {
    ///     let options = TaskOptions::new().cancel_after(Duration::from_millis(20)).name("count");
    ///     s.spawn_with(options, || {
    ///         let mut seen = 0;
    ///         for _line in &lines {
    ///             if taskwarden::is_cancelled() {
    ///                 break;
    ///             }
    ///             seen += 1;
    ///         }
    ///         seen
    ///     })
    ///     .join()
    /// });
    /// assert_eq!(counted, Ok(3));
    /// ```
    pub fn spawn_with<F, T>(&'scope self, options: TaskOptions, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.tracker.pending.fetch_add(1, Ordering::AcqRel);
        let sink = ScopeSink(Arc::clone(&self.tracker));
        let task = match submit_with(
            &self.engine,
            options,
            f,
            sink.clone(),
            Blocking::Wait,
            Handle::Kept,
            erase(),
        ) {
            Ok((_, task)) => task.expect("a task with a handle"),
            Err(error) if error.kind() == SpawnErrorKind::Closed => {
                self.engine
                    .cancelled_task(Inline(error.into_inner()), sink, erase())
            }
            Err(error) => {
                self.tracker.pending.fetch_sub(1, Ordering::AcqRel);
                panic!("taskwarden: could not spawn a scoped task: {error}")
            }
        };
        ScopedHandle::new(HandleCore::new(task, Arc::clone(&self.engine)))
    }

    /// Applies `f` to every item on the scope's manager and yields the
    /// results in input order: [`TaskManager::map`] for borrowed items and
    /// a borrowing `f` (rayon's `par_iter().map()`, with ids, limits and
    /// cancellation).
    ///
    /// # Examples
    ///
    /// ```
    /// let words = vec![String::from("alpha"), String::from("be")];
    /// let suffix = String::from("!");
    /// let shouted: Vec<String> = taskwarden::TaskManager::scope(2, |s| {
    ///     s.map(&words, |w| format!("{w}{suffix}")).map(Result::unwrap).collect()
    /// });
    /// assert_eq!(shouted, ["alpha!", "be!"]);
    /// ```
    pub fn map<I, F, T>(
        &'scope self,
        items: I,
        f: F,
    ) -> impl Iterator<Item = Result<T, TaskError>> + 'scope
    where
        I: IntoIterator,
        I::IntoIter: Send + 'scope,
        I::Item: Send + 'scope,
        F: Fn(I::Item) -> T + Send + Sync + 'scope,
        T: Send + 'scope,
    {
        Map::from_core(self.map_core(items, f))
    }

    /// Like [`map`](Self::map), but yields `(input index, result)` as the
    /// items finish.
    ///
    /// # Examples
    ///
    /// ```
    /// let numbers = [3_u64, 1, 2];
    /// let total: u64 = taskwarden::TaskManager::scope(2, |s| {
    ///     s.map_unordered(&numbers, |n| n * 2).map(|(_, r)| r.unwrap()).sum()
    /// });
    /// assert_eq!(total, 12);
    /// ```
    pub fn map_unordered<I, F, T>(
        &'scope self,
        items: I,
        f: F,
    ) -> impl Iterator<Item = (usize, Result<T, TaskError>)> + 'scope
    where
        I: IntoIterator,
        I::IntoIter: Send + 'scope,
        I::Item: Send + 'scope,
        F: Fn(I::Item) -> T + Send + Sync + 'scope,
        T: Send + 'scope,
    {
        MapUnordered::from_core(self.map_core(items, f))
    }

    fn map_core<I, F, T>(&'scope self, items: I, f: F) -> MapCore<'scope, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'scope,
        I::Item: Send + 'scope,
        F: Fn(I::Item) -> T + Send + Sync + 'scope,
        T: Send + 'scope,
    {
        let engine = Arc::clone(&self.engine);
        let tracker = Arc::clone(&self.tracker);
        let f = Arc::new(f);
        let mut items = items.into_iter();
        let draw: Draw<'scope, T> = Box::new(move |set: &mut SetCore<'scope, T>| {
            let item = items.next()?;
            let f = Arc::clone(&f);
            let job = move || f(item);
            tracker.pending.fetch_add(1, Ordering::AcqRel);
            let sink = (ScopeSink(Arc::clone(&tracker)), set.sink());
            Some(
                match submit(&engine, job, sink, Blocking::Wait, Handle::Kept, erase()) {
                    Ok((id, task)) => {
                        set.insert(id, task.expect("a task with a handle"));
                        Ok(id)
                    }
                    Err(_refused) => {
                        tracker.pending.fetch_sub(1, Ordering::AcqRel);
                        Err(())
                    }
                },
            )
        });
        MapCore::new(SetCore::new(&self.engine), draw)
    }

    /// Waits until every task of the scope has settled.
    fn wait_for_tasks(&self) {
        let pending = &self.tracker.pending;
        self.engine.wait_until(
            Park::Tasks,
            None,
            &mut |_| pending.load(Ordering::Acquire) == 0,
            &mut NoTasks,
        );
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("manager", &self.engine.config.thread_name)
            .field("pending", &self.tracker.pending.load(Ordering::Relaxed))
            .finish()
    }
}

/// The token that lets a scoped task's references outlive `'scope` in the
/// run queue and the registry, which hold tasks without a lifetime.
fn erase<'scope>() -> Erase<'scope> {
    // SAFETY: every use of a scoped task's borrowed data (its closure, its
    // value when no handle takes it) happens before the task settles, and
    // the scope does not return before every one of its tasks has settled
    // (the module docs give the whole argument). What the references may do
    // later, freeing an empty task and dropping its sink (which borrows
    // nothing), touches no borrowed data.
    unsafe { Erase::scoped() }
}
