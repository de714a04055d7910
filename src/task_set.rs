//! [`TaskSet`]: results as they finish, and [`SetSpawner`]: feeding a set
//! from other threads.
//!
//! Each task of a set carries the set's sink in its type: when the task
//! settles, the sink pushes its id onto the set's completion queue. Taking
//! the next result is a pop from that queue and a lookup of the task's
//! handle, whatever the set's size; plain `spawn` carries the unit sink and
//! pays nothing for this.
//!
//! A `SetSpawner` spawns with the same sink and hands the task's handle to
//! the set through the *feed*, a list the set drains into its members
//! before it looks at the completion queue. A task may settle before its
//! handle reaches the feed: its id then waits among the *orphans* until it
//! does, so no result is lost and none is looked for by scanning.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::dense::DenseMap;
use crate::engine::{Awaited, Blocking, Engine, Handle, Park};
use crate::error::{SpawnError, SpawnErrorKind, TaskError};
use crate::handle::HandleCore;
use crate::manager::TaskManager;
use crate::options::TaskOptions;
use crate::submit::submit_with;
use crate::sync::Mutex;
use crate::task::cell::{Erase, JobRef, Sink, TaskRef};
use crate::task::TaskId;

/// A set's completion queue: ids of its tasks that have settled, in the
/// order they did.
pub(crate) struct Completed {
    state: Mutex<CompletedState>,
    engine: Weak<Engine>,
}

struct CompletedState {
    done: VecDeque<TaskId>,
    /// The set's owner is about to sleep (or sleeps) on the parking gate.
    waiting: bool,
    /// Live `SetSpawner`s: an empty set's `join_next` waits while any is.
    spawners: usize,
    /// A `SetSpawner` put a handle in the feed since the set last drained it.
    arrived: bool,
    /// The set is gone: its spawners refuse, and cancel what they fed late.
    closed: bool,
}

/// Handles spawned by `SetSpawner`s, on their way to the set.
pub(crate) struct Feed<T> {
    incoming: Mutex<Vec<(TaskId, TaskRef<T>)>>,
}

/// The sink of a set's tasks.
#[derive(Clone)]
pub(crate) struct SetSink(Arc<Completed>);

impl Sink for SetSink {
    fn settled(&self, id: TaskId) {
        let waiting = {
            let mut state = self.0.state.lock();
            state.done.push_back(id);
            state.waiting
        };
        if waiting {
            if let Some(engine) = self.0.engine.upgrade() {
                engine.wake_waiters();
            }
        }
    }
}

/// Two sinks in one (a scope's map: the scope counts, the set collects).
impl<A: Sink, B: Sink> Sink for (A, B) {
    fn settled(&self, id: TaskId) {
        self.1.settled(id);
        self.0.settled(id);
    }
}

/// The machinery of a set, for `TaskSet` and the maps (which may borrow:
/// `'a`).
pub(crate) struct SetCore<'a, T> {
    engine: Arc<Engine>,
    completed: Arc<Completed>,
    members: DenseMap<TaskId, HandleCore<'a, T>>,
    /// Members in spawn order, some of which may not have started: what a
    /// wait from inside a task runs first.
    unstarted: VecDeque<TaskId>,
    /// Settled members taken from the completion queue, not yet yielded:
    /// the queue is emptied in one lock, not one lock per result.
    taken: VecDeque<TaskId>,
    /// The feed, once a `SetSpawner` was made.
    feed: OnceLock<Arc<Feed<T>>>,
    /// Settled tasks of `SetSpawner`s whose handles are not in the feed
    /// yet.
    orphans: Vec<TaskId>,
}

impl<'a, T> SetCore<'a, T> {
    pub(crate) fn new(engine: &Arc<Engine>) -> Self {
        SetCore {
            engine: Arc::clone(engine),
            completed: Arc::new(Completed {
                state: Mutex::new(CompletedState {
                    done: VecDeque::new(),
                    waiting: false,
                    spawners: 0,
                    arrived: false,
                    closed: false,
                }),
                engine: Arc::downgrade(engine),
            }),
            members: DenseMap::default(),
            unstarted: VecDeque::new(),
            taken: VecDeque::new(),
            feed: OnceLock::new(),
            orphans: Vec::new(),
        }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub(crate) fn sink(&self) -> SetSink {
        SetSink(Arc::clone(&self.completed))
    }

    /// Takes in a task spawned with this set's sink.
    pub(crate) fn insert(&mut self, id: TaskId, task: TaskRef<T>) {
        self.members
            .insert(id, HandleCore::new(task, Arc::clone(&self.engine)));
        self.unstarted.push_back(id);
        if self.unstarted.len() > 2 * self.members.len() + 64 {
            let members = &self.members;
            self.unstarted.retain(|id| members.contains_key(id));
        }
    }

    pub(crate) fn len(&self) -> usize {
        let fed = self.feed.get().map_or(0, |feed| feed.incoming.lock().len());
        self.members.len() + fed
    }

    /// Takes the handles `SetSpawner`s fed in as members, and queues the
    /// orphans whose handles came with them.
    fn absorb(&mut self) {
        let Some(feed) = self.feed.get() else {
            return;
        };
        self.completed.state.lock().arrived = false;
        let incoming = std::mem::take(&mut *feed.incoming.lock());
        for (id, task) in incoming {
            self.insert(id, task);
        }
        if !self.orphans.is_empty() {
            let members = &self.members;
            let (found, still): (Vec<TaskId>, Vec<TaskId>) =
                self.orphans.iter().partition(|id| members.contains_key(id));
            self.orphans = still;
            for id in found.into_iter().rev() {
                self.taken.push_front(id);
            }
        }
    }

    /// The next finished member's result, if one is ready.
    pub(crate) fn try_next(&mut self) -> Option<(TaskId, Result<T, TaskError>)> {
        self.absorb();
        loop {
            if self.taken.is_empty() {
                let mut state = self.completed.state.lock();
                std::mem::swap(&mut self.taken, &mut state.done);
            }
            let id = self.taken.pop_front()?;
            if let Some(core) = self.members.remove(&id) {
                return Some((id, core.join()));
            }
            if self.feed.get().is_some() {
                // A fed task that settled before its handle reached the
                // feed: the handle comes soon.
                self.orphans.push(id);
            }
            // Otherwise a member detached meanwhile: skipped.
        }
    }

    /// Waits until a member finishes or `deadline` passes. With `follow`,
    /// an empty set waits while a `SetSpawner` lives (`join_next`).
    pub(crate) fn next_until(
        &mut self,
        deadline: Option<Instant>,
        follow: bool,
    ) -> Option<(TaskId, Result<T, TaskError>)> {
        loop {
            // Read before `try_next` drains the feed: a spawner feeds the
            // set before it goes, so once none is left, everything fed is
            // in the feed that `try_next` drains next.
            let feeding = follow && self.completed.state.lock().spawners > 0;
            if let Some(next) = self.try_next() {
                return Some(next);
            }
            let empty = self.members.is_empty() && self.orphans.is_empty();
            if empty && !feeding {
                return None;
            }
            let completed = &self.completed;
            let engine = &self.engine;
            let unstarted = &mut self.unstarted;
            let members = &self.members;
            let ready = engine.wait_until(
                Park::Tasks,
                deadline,
                &mut |sleeping| {
                    let mut state = completed.state.lock();
                    let ready =
                        !state.done.is_empty() || state.arrived || (empty && state.spawners == 0);
                    state.waiting = sleeping && !ready;
                    ready
                },
                &mut Members { unstarted, members },
            );
            completed.state.lock().waiting = false;
            if !ready {
                return self.try_next();
            }
        }
    }

    /// Cancels the queued members first, then flags the running ones, so
    /// that a slot freed by a member that stops on its flag never picks up
    /// a member this call was about to cancel (as `TaskManager::cancel_all`).
    pub(crate) fn cancel_all(&self) {
        for core in self.members.values() {
            core.cancel_if_queued();
        }
        for core in self.members.values() {
            core.cancel();
        }
    }

    pub(crate) fn detach_all(&mut self) {
        self.members.clear();
        self.unstarted.clear();
        self.taken.clear();
        self.completed.state.lock().done.clear();
    }
}

impl<T> SetCore<'_, T> {
    /// Nothing held, nothing on its way, and no spawner that could feed
    /// more.
    fn is_drained(&self) -> bool {
        self.len() == 0 && self.orphans.is_empty() && self.completed.state.lock().spawners == 0
    }
}

/// What [`TaskSet::join_next_deadline`] found.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use taskwarden::JoinNext;
/// let manager = taskwarden::TaskManager::new(1);
/// let mut set = manager.task_set::<u8>();
/// assert_eq!(set.join_next_deadline(Instant::now() + Duration::from_secs(1)), JoinNext::Empty);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum JoinNext<T> {
    /// A task of the set finished: its id and result.
    Finished(TaskId, Result<T, TaskError>),
    /// The set holds no task, and no `SetSpawner` of it lives.
    Empty,
    /// The deadline passed before a task finished.
    TimedOut,
}

/// The members a set waits for.
struct Members<'s, 'a, T> {
    unstarted: &'s mut VecDeque<TaskId>,
    members: &'s DenseMap<TaskId, HandleCore<'a, T>>,
}

impl<T> Awaited for Members<'_, '_, T> {
    /// The first member, in spawn order, that may still be queued.
    fn claimable(&mut self) -> Option<JobRef> {
        while let Some(&id) = self.unstarted.front() {
            // The member's own reference: no lookup by id.
            if let Some(job) = self.members.get(&id).map(HandleCore::job) {
                if job.header().is_claimable() {
                    return Some(job.clone());
                }
            }
            self.unstarted.pop_front();
        }
        None
    }

    fn ids(&mut self, out: &mut Vec<TaskId>) {
        out.extend(self.members.keys().copied());
    }
}

impl<T> Drop for SetCore<'_, T> {
    fn drop(&mut self) {
        // From now on a spawner cancels what it feeds (see `SetSpawner`).
        self.completed.state.lock().closed = true;
        self.absorb();
        self.cancel_all();
    }
}

/// A set of tasks whose results are taken as they finish: Python's
/// `as_completed`, tokio's `JoinSet`.
///
/// The set spawns on its manager, under the same limit, queue and close
/// rules as [`TaskManager::spawn`], and owns its tasks' results.
/// [`join_next`](Self::join_next) returns the result of whichever task
/// finishes first, each exactly once. A task cancelled before it ran comes
/// back as `Err(Cancelled)`, one that panicked as `Err(Panicked(..))`; after
/// a close, the tasks it dropped come back at once as `Err(Cancelled)`, and
/// tasks still running are still waited for. Dropping the set cancels the
/// tasks it still holds, without waiting for them.
///
/// Taking a result costs the same whatever the set's size: finished tasks
/// queue themselves; nothing scans the set. [`join_all`](Self::join_all)
/// takes every result, [`try_join_all`](Self::try_join_all) stops at the
/// first failure, and [`spawner`](Self::spawner) lets other threads feed
/// the set while this one takes results.
///
/// A set is `#[must_use]`: dropping it at once would cancel its tasks.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let manager = taskwarden::TaskManager::new(2);
/// manager.task_set::<u32>(); // error: unused `TaskSet` that must be used
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let manager = taskwarden::TaskManager::new(4);
/// let mut set = manager.task_set();
/// for ms in [30_u64, 10, 20] {
///     set.spawn(move || {
///         std::thread::sleep(Duration::from_millis(ms));
///         ms
///     })
///     .unwrap();
/// }
/// let mut order = Vec::new();
/// while let Some((_id, result)) = set.join_next() {
///     order.push(result.unwrap());
/// }
/// order.sort();
/// assert_eq!(order, [10, 20, 30]);
/// ```
#[must_use = "a task set cancels its tasks when dropped"]
pub struct TaskSet<T> {
    core: SetCore<'static, T>,
}

impl TaskManager {
    /// An empty [`TaskSet`] spawning on this manager.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set::<u32>();
    /// assert!(set.is_empty());
    /// set.spawn(|| 1).unwrap();
    /// assert_eq!(set.join_next().map(|(_, r)| r), Some(Ok(1)));
    /// ```
    pub fn task_set<T: Send + 'static>(&self) -> TaskSet<T> {
        TaskSet {
            core: SetCore::new(self.engine()),
        }
    }
}

impl<T: Send + 'static> TaskSet<T> {
    fn submit<F>(
        &mut self,
        options: TaskOptions,
        f: F,
        blocking: Blocking,
    ) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let engine = Arc::clone(self.core.engine());
        let (id, task) = submit_with(
            &engine,
            options,
            f,
            self.core.sink(),
            blocking,
            Handle::Kept,
            Erase::STATIC,
        )?;
        self.core.insert(id, task.expect("a task with a handle"));
        Ok(id)
    }

    /// Spawns `f` into the set; as [`TaskManager::spawn`], it waits for room
    /// in a bounded queue.
    ///
    /// # Errors
    ///
    /// As [`TaskManager::spawn`]; the closure is handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// let id = set.spawn(|| "done").unwrap();
    /// assert_eq!(set.join_next(), Some((id, Ok("done"))));
    /// ```
    pub fn spawn<F>(&mut self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(TaskOptions::default(), f, Blocking::Wait)
    }

    /// Spawns `f` into the set with [`TaskOptions`] (see
    /// [`TaskManager::spawn_with`]).
    ///
    /// # Errors
    ///
    /// As [`TaskManager::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// set.spawn_with(TaskOptions::default().start_after(Duration::from_millis(20)), || "late").unwrap();
    /// set.spawn(|| "early").unwrap();
    /// assert_eq!(set.join_next().unwrap().1, Ok("early"));
    /// assert_eq!(set.join_next().unwrap().1, Ok("late"));
    /// ```
    pub fn spawn_with<F>(&mut self, options: TaskOptions, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(options, f, Blocking::Wait)
    }

    /// Like [`spawn`](Self::spawn), but never blocks.
    ///
    /// # Errors
    ///
    /// As [`TaskManager::try_spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// set.try_spawn(|| 1).unwrap();
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn try_spawn<F>(&mut self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(TaskOptions::default(), f, Blocking::Never)
    }
}

impl<T> TaskSet<T> {
    /// How many tasks' results have not been taken yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// set.spawn(|| ()).unwrap();
    /// set.spawn(|| ()).unwrap();
    /// assert_eq!(set.len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// True when every result has been taken (or the set was detached).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set::<()>();
    /// assert!(set.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// Waits for the next task of the set to finish and returns its id and
    /// result; `None` once the set is empty. From inside a task of the same
    /// manager it runs the set's queued tasks on the calling thread.
    ///
    /// From inside a task of the set's manager, the wait lends the task's slot;
    /// it runs on its own thread only the set's members that are still queued,
    /// never another task.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// set.spawn(|| 7).unwrap();
    /// assert_eq!(set.join_next().unwrap().1, Ok(7));
    /// assert!(set.join_next().is_none());
    /// ```
    pub fn join_next(&mut self) -> Option<(TaskId, Result<T, TaskError>)> {
        self.core.next_until(None, true)
    }

    /// The next finished task's result if one is ready now; never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawn(|| 1).unwrap();
    /// manager.drain();
    /// assert_eq!(set.try_join_next().unwrap().1, Ok(1));
    /// ```
    pub fn try_join_next(&mut self) -> Option<(TaskId, Result<T, TaskError>)> {
        self.core.try_next()
    }

    /// Like [`join_next`](Self::join_next), but gives up after `timeout`.
    /// `None` both when the set is empty and when the time ran out;
    /// [`is_empty`](Self::is_empty) tells which, and
    /// [`join_next_deadline`](Self::join_next_deadline) says it in one call.
    ///
    /// From inside a task of the set's manager, the wait lends the task's slot;
    /// it runs on its own thread only the set's members that are still queued,
    /// never another task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawn(|| std::thread::sleep(Duration::from_millis(200))).unwrap();
    /// assert!(set.join_next_timeout(Duration::from_millis(1)).is_none());
    /// assert!(!set.is_empty(), "it timed out; the task is still in the set");
    /// assert!(set.join_next_timeout(Duration::from_secs(5)).is_some());
    /// ```
    pub fn join_next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<(TaskId, Result<T, TaskError>)> {
        self.core
            .next_until(Instant::now().checked_add(timeout), false)
    }

    /// Like [`join_next`](Self::join_next), but gives up at `deadline`, and
    /// says which of the three happened: a task finished
    /// ([`JoinNext::Finished`]), the set is empty and no
    /// [`SetSpawner`] of it lives ([`JoinNext::Empty`]), or the deadline
    /// passed first ([`JoinNext::TimedOut`]). Like `join_next`, an empty
    /// set with a live `SetSpawner` waits (until the deadline) for the next
    /// task. [`join_next_timeout`](Self::join_next_timeout) stays as it
    /// was: `None` for both "empty" and "time ran out".
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use taskwarden::JoinNext;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawn(|| std::thread::sleep(Duration::from_millis(200))).unwrap();
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert_eq!(set.join_next_deadline(soon), JoinNext::TimedOut);
    /// let later = Instant::now() + Duration::from_secs(30);
    /// assert!(matches!(set.join_next_deadline(later), JoinNext::Finished(_, Ok(()))));
    /// assert_eq!(set.join_next_deadline(later), JoinNext::Empty);
    /// ```
    pub fn join_next_deadline(&mut self, deadline: Instant) -> JoinNext<T> {
        match self.core.next_until(Some(deadline), true) {
            Some((id, result)) => JoinNext::Finished(id, result),
            None if self.core.is_drained() => JoinNext::Empty,
            None => JoinNext::TimedOut,
        }
    }

    /// Cancels every task the set still holds (as
    /// [`TaskManager::cancel`]): queued ones never run and come back as
    /// `Err(Cancelled)`, running ones see their flag.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawn(|| while !taskwarden::is_cancelled() { std::thread::yield_now() }).unwrap();
    /// set.spawn(|| ()).unwrap();
    /// set.cancel_all();
    /// while let Some((_, result)) = set.join_next() {
    ///     let _ = result; // Ok(()) if it ran, Err(Cancelled) if it never started
    /// }
    /// ```
    pub fn cancel_all(&self) {
        self.core.cancel_all();
    }

    /// Lets every task run on without the set, which is empty afterwards;
    /// their results are dropped when they finish.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawn(|| ()).unwrap();
    /// set.detach_all();
    /// assert!(set.is_empty());
    /// manager.drain(); // the task still ran
    /// assert_eq!(manager.stats().completed, 1);
    /// ```
    pub fn detach_all(&mut self) {
        self.core.detach_all();
    }
}

impl<T: Send + 'static> TaskSet<T> {
    /// A [`SetSpawner`] that feeds this set from any thread (Java's
    /// `CompletionService`): tasks it spawns are members of this set, and
    /// while any `SetSpawner` of the set lives, [`join_next`](Self::join_next)
    /// on an empty set waits for the next one instead of returning `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// let feeder = set.spawner();
    /// let producer = std::thread::spawn(move || {
    ///     for n in 0..10_u64 {
    ///         feeder.spawn(move || n * n).unwrap();
    ///     }
    ///     // dropping the last spawner ends `join_next` once the set is empty
    /// });
    /// let mut sum = 0;
    /// while let Some((_id, result)) = set.join_next() {
    ///     sum += result.unwrap();
    /// }
    /// producer.join().unwrap();
    /// assert_eq!(sum, 285);
    /// ```
    #[must_use]
    pub fn spawner(&self) -> SetSpawner<T> {
        self.core.completed.state.lock().spawners += 1;
        SetSpawner {
            engine: Arc::clone(self.core.engine()),
            completed: Arc::clone(&self.core.completed),
            feed: Arc::clone(self.core.feed()),
        }
    }
}

impl<'a, T> SetCore<'a, T> {
    /// The set's feed, made on first use.
    fn feed(&self) -> &Arc<Feed<T>> {
        self.feed.get_or_init(|| {
            Arc::new(Feed {
                incoming: Mutex::new(Vec::new()),
            })
        })
    }
}

impl<T> TaskSet<T> {
    /// Waits for every task of the set (and, like `join_next`, for the
    /// tasks still to come through a live [`SetSpawner`]) and returns every
    /// result, ascending by id (spawn order).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let mut set = manager.task_set();
    /// for ms in [30_u64, 10, 20] {
    ///     set.spawn(move || { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }).unwrap();
    /// }
    /// let results: Vec<u64> = set.join_all().into_iter().map(|(_, r)| r.unwrap()).collect();
    /// assert_eq!(results, [30, 10, 20]);
    /// ```
    #[must_use]
    pub fn join_all(mut self) -> Vec<(TaskId, Result<T, TaskError>)> {
        let mut all = Vec::with_capacity(self.len());
        while let Some(next) = self.join_next() {
            all.push(next);
        }
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }
}

impl<U, E> TaskSet<Result<U, E>>
where
    E: From<TaskError>,
{
    /// Fail-fast: takes results as they finish and, at the first failure
    /// (a task's `Err(e)`, or a [`TaskError`] converted with `E::from`),
    /// cancels the rest of the set without waiting for them and returns
    /// that failure. If none fails, returns every value in spawn order.
    /// Like `join_next`, it waits for the tasks still to come through a
    /// live [`SetSpawner`].
    ///
    /// # Errors
    ///
    /// The first failure to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use taskwarden::TaskError;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Failure { BadInput(u32), Task(TaskError) }
    /// impl From<TaskError> for Failure {
    ///     fn from(error: TaskError) -> Self { Failure::Task(error) }
    /// }
    ///
    /// let manager = taskwarden::TaskManager::new(4);
    /// let mut set = manager.task_set();
    /// for n in 0..4_u32 {
    ///     set.spawn(move || {
    ///         if n == 2 {
    ///             return Err(Failure::BadInput(n));
    ///         }
    ///         taskwarden::sleep(Duration::from_secs(30)); // the others would run long
    ///         Ok(n)
    ///     })
    ///     .unwrap();
    /// }
    /// let started = Instant::now();
    /// assert_eq!(set.try_join_all(), Err(Failure::BadInput(2)));
    /// assert!(started.elapsed() < Duration::from_secs(30));
    /// ```
    pub fn try_join_all(mut self) -> Result<Vec<U>, E> {
        let mut values = Vec::with_capacity(self.len());
        while let Some((id, result)) = self.join_next() {
            match result {
                Ok(Ok(value)) => values.push((id, value)),
                Ok(Err(failure)) => {
                    self.cancel_all();
                    return Err(failure);
                }
                Err(error) => {
                    self.cancel_all();
                    return Err(E::from(error));
                }
            }
        }
        values.sort_unstable_by_key(|(id, _)| *id);
        Ok(values.into_iter().map(|(_, value)| value).collect())
    }
}

/// Feeds a [`TaskSet`] from any thread; from [`TaskSet::spawner`].
///
/// Its spawns are the set's, with `&self`: one thread (or many) spawns
/// while another takes results (Java's `CompletionService`). While any
/// `SetSpawner` of a set lives, the set's `join_next` on an empty set waits
/// for the next task, as a channel's receiver waits while a sender lives;
/// `try_join_next` and `join_next_timeout` still return `None` on an empty
/// set, and the set's `len()` counts the tasks spawned through it. Once the
/// set is dropped, its spawns return the closed error with the closure
/// handed back. Taking a result costs the same however many threads feed
/// the set.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let mut set = manager.task_set::<u32>();
/// let feeder = set.spawner();
/// let id = feeder.spawn(|| 7).unwrap();
/// assert_eq!(set.join_next(), Some((id, Ok(7))));
/// drop(set);
/// assert!(feeder.spawn(|| 8).unwrap_err().is_closed());
/// ```
pub struct SetSpawner<T> {
    engine: Arc<Engine>,
    completed: Arc<Completed>,
    feed: Arc<Feed<T>>,
}

impl<T: Send + 'static> SetSpawner<T> {
    fn submit<F>(
        &self,
        options: TaskOptions,
        f: F,
        blocking: Blocking,
    ) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        if self.completed.state.lock().closed {
            return Err(SpawnError::from_parts(SpawnErrorKind::Closed, f, None));
        }
        let (id, task) = submit_with(
            &self.engine,
            options,
            f,
            SetSink(Arc::clone(&self.completed)),
            blocking,
            Handle::Kept,
            Erase::STATIC,
        )?;
        self.feed
            .incoming
            .lock()
            .push((id, task.expect("a task with a handle")));
        let (closed, waiting) = {
            let mut state = self.completed.state.lock();
            state.arrived = true;
            (state.closed, state.waiting)
        };
        if closed {
            // The set went away meanwhile: what it did not take in is
            // cancelled, as the set would have.
            let late = std::mem::take(&mut *self.feed.incoming.lock());
            for (_, task) in late {
                HandleCore::new(task, Arc::clone(&self.engine)).cancel();
            }
        } else if waiting {
            self.engine.wake_waiters();
        }
        Ok(id)
    }

    /// As [`TaskSet::spawn`], from any thread.
    ///
    /// # Errors
    ///
    /// As [`TaskSet::spawn`], and closed once the set is dropped; the
    /// closure is handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawner().spawn(|| 1).unwrap();
    /// assert_eq!(set.join_next().unwrap().1, Ok(1));
    /// ```
    pub fn spawn<F>(&self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(TaskOptions::default(), f, Blocking::Wait)
    }

    /// As [`TaskSet::try_spawn`]: never blocks.
    ///
    /// # Errors
    ///
    /// As [`TaskSet::try_spawn`], and closed once the set is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawner().try_spawn(|| 1).unwrap();
    /// assert_eq!(set.len(), 1);
    /// # set.join_next();
    /// ```
    pub fn try_spawn<F>(&self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(TaskOptions::default(), f, Blocking::Never)
    }

    /// As [`TaskSet::spawn_with`].
    ///
    /// # Errors
    ///
    /// As [`TaskSet::spawn`], and closed once the set is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let mut set = manager.task_set();
    /// set.spawner().spawn_with(TaskOptions::new().name("fed"), || 1).unwrap();
    /// assert_eq!(set.join_next().unwrap().1, Ok(1));
    /// ```
    pub fn spawn_with<F>(&self, options: TaskOptions, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(options, f, Blocking::Wait)
    }
}

impl<T> Clone for SetSpawner<T> {
    fn clone(&self) -> Self {
        self.completed.state.lock().spawners += 1;
        SetSpawner {
            engine: Arc::clone(&self.engine),
            completed: Arc::clone(&self.completed),
            feed: Arc::clone(&self.feed),
        }
    }
}

impl<T> Drop for SetSpawner<T> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.completed.state.lock();
            state.spawners -= 1;
            state.waiting
        };
        if waiting {
            self.engine.wake_waiters();
        }
    }
}

impl<T> fmt::Debug for SetSpawner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.completed.state.lock();
        f.debug_struct("SetSpawner")
            .field("set_dropped", &state.closed)
            .field("spawners", &state.spawners)
            .finish()
    }
}

impl<T> fmt::Debug for TaskSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet").field("len", &self.len()).finish()
    }
}

/// The results of a [`TaskSet`] in completion order, each waited for in
/// turn; from [`TaskSet::into_iter`].
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let mut set = manager.task_set();
/// for n in 0..3 { set.spawn(move || n).unwrap(); }
/// let mut all: Vec<i32> = set.into_iter().map(|(_, r)| r.unwrap()).collect();
/// all.sort();
/// assert_eq!(all, [0, 1, 2]);
/// ```
pub struct IntoIter<T> {
    set: TaskSet<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = (TaskId, Result<T, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        self.set.join_next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.set.len(), Some(self.set.len()))
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter").field("set", &self.set).finish()
    }
}

impl<T> IntoIterator for TaskSet<T> {
    type Item = (TaskId, Result<T, TaskError>);
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { set: self }
    }
}
