//! [`TaskManager::map`], [`TaskManager::map_unordered`] and
//! [`TaskManager::try_map`] (their `_with` forms take per-item options; the
//! same on a [`Spawner`](crate::Spawner), and `map`/`map_unordered` on a
//! [`Scope`](crate::Scope)): a function over an iterator, on the manager,
//! in a bounded window.
//!
//! A map is a task set plus a feed: the input iterator, turned into one
//! closure per item. It draws input on the caller's thread (when it is made,
//! and as results are taken), keeps at most `2 × max_tasks` items submitted
//! but not yet yielded, and stops drawing once the manager is closed.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::dense::DenseMap;
use crate::engine::{Blocking, Engine, Handle};
use crate::error::TaskError;
use crate::manager::TaskManager;
use crate::options::TaskOptions;
use crate::spawner::Spawner;
use crate::submit::submit_with;
use crate::task::cell::Erase;
use crate::task::TaskId;
use crate::task_set::SetCore;

/// Draws the next input item and spawns it into the set: `None` when the
/// input is exhausted, `Err` when the manager refused the spawn (closed).
/// A manager's map and a scope's differ only in this (lifetime and sink).
pub(crate) type Draw<'a, T> =
    Box<dyn FnMut(&mut SetCore<'a, T>) -> Option<Result<TaskId, ()>> + Send + 'a>;

/// What both maps share.
pub(crate) struct MapCore<'a, T> {
    set: SetCore<'a, T>,
    /// `None` once the input is exhausted or the manager closed.
    draw: Option<Draw<'a, T>>,
    /// Input index of the next item drawn.
    drawn: usize,
    index_of: DenseMap<TaskId, usize>,
    /// Submitted (or rejected) and not yet yielded.
    in_flight: usize,
    /// Items whose spawn was refused by a close: `Err(Cancelled)`.
    refused: VecDeque<usize>,
}

impl<'a, T> MapCore<'a, T> {
    pub(crate) fn new(set: SetCore<'a, T>, draw: Draw<'a, T>) -> Self {
        let mut core = MapCore {
            set,
            draw: Some(draw),
            drawn: 0,
            index_of: DenseMap::default(),
            in_flight: 0,
            refused: VecDeque::new(),
        };
        core.refill();
        core
    }

    /// Draws and submits items until the window is full, the input ends,
    /// or the manager is closed.
    fn refill(&mut self) {
        let window = 2 * self.set.engine().limit();
        while self.in_flight < window {
            // Also once the manager is closed: the next item, if the input
            // has one, is refused and comes back as `Err(Cancelled)`, so
            // the map never ends with input unaccounted for.
            let Some(draw) = self.draw.as_mut() else {
                return;
            };
            let Some(spawned) = draw(&mut self.set) else {
                self.draw = None;
                return;
            };
            let index = self.drawn;
            self.drawn += 1;
            self.in_flight += 1;
            match spawned {
                Ok(id) => {
                    self.index_of.insert(id, index);
                }
                Err(()) => {
                    self.refused.push_back(index);
                    self.draw = None;
                }
            }
        }
    }

    /// The next result to finish, with its input index; `None` at the end.
    /// It stays counted in the window until the caller yields it.
    fn next_finished(&mut self) -> Option<(usize, Result<T, TaskError>)> {
        self.refill();
        if let Some(index) = self.refused.pop_front() {
            return Some((index, Err(TaskError::Cancelled)));
        }
        let (id, result) = self.set.next_until(None, false)?;
        let index = self
            .index_of
            .remove(&id)
            .expect("every task of a map has an index");
        Some((index, result))
    }
}

impl<T> fmt::Debug for MapCore<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("drawn", &self.drawn)
            .field("in_flight", &self.in_flight)
            .field("input_done", &self.draw.is_none())
            .finish()
    }
}

/// Results of a map in input order; see [`TaskManager::map`].
///
/// Dropping it cancels the items still in flight. It is `#[must_use]`: an
/// unused map would run only its first window.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let manager = taskwarden::TaskManager::new(2);
/// manager.map(1..=100, |n: u32| n * 2); // error: unused `Map` that must be used
/// ```
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(4);
/// let squares: Vec<u64> = manager.map(1..=5_u64, |n| n * n).map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// ```
#[must_use = "a map runs only its first window until it is iterated"]
pub struct Map<'a, T> {
    core: MapCore<'a, T>,
    /// Results that finished ahead of their turn, from `next_index` on.
    ahead: VecDeque<Option<Result<T, TaskError>>>,
    next_index: usize,
    _manager: PhantomData<&'a ()>,
}

impl<'a, T> Map<'a, T> {
    pub(crate) fn from_core(core: MapCore<'a, T>) -> Self {
        Map {
            core,
            ahead: VecDeque::new(),
            next_index: 0,
            _manager: PhantomData,
        }
    }
}

impl<T> Iterator for Map<'_, T> {
    type Item = Result<T, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(Some(_)) = self.ahead.front() {
                self.next_index += 1;
                self.core.in_flight -= 1;
                return self.ahead.pop_front().flatten();
            }
            let (index, result) = self.core.next_finished()?;
            let at = index - self.next_index;
            if self.ahead.len() <= at {
                self.ahead.resize_with(at + 1, || None);
            }
            self.ahead[at] = Some(result);
        }
    }
}

impl<T> fmt::Debug for Map<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

/// Results of a map as they finish, with their input index; see
/// [`TaskManager::map_unordered`].
///
/// Dropping it cancels the items still in flight. It is `#[must_use]`, as
/// [`Map`] is.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let manager = taskwarden::TaskManager::new(2);
/// manager.map_unordered(1..=100, |n: u32| n * 2); // error: unused `MapUnordered`
/// ```
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(4);
/// let mut seen: Vec<(usize, u32)> = manager
///     .map_unordered(vec![10_u32, 20, 30], |n| n + 1)
///     .map(|(index, result)| (index, result.unwrap()))
///     .collect();
/// seen.sort();
/// assert_eq!(seen, [(0, 11), (1, 21), (2, 31)]);
/// ```
#[must_use = "a map runs only its first window until it is iterated"]
pub struct MapUnordered<'a, T> {
    core: MapCore<'a, T>,
    _manager: PhantomData<&'a ()>,
}

impl<'a, T> MapUnordered<'a, T> {
    pub(crate) fn from_core(core: MapCore<'a, T>) -> Self {
        MapUnordered {
            core,
            _manager: PhantomData,
        }
    }
}

impl<T> Iterator for MapUnordered<'_, T> {
    type Item = (usize, Result<T, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.core.next_finished()?;
        self.core.in_flight -= 1;
        Some(next)
    }
}

impl<T> fmt::Debug for MapUnordered<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl TaskManager {
    /// Applies `f` to every item on this manager and yields the results in
    /// input order, like Python's `Executor.map`.
    ///
    /// The first window of items is submitted before `map` returns, so the
    /// work overlaps whatever the caller does next; then the window is
    /// refilled as results are taken. At most `2 × max_tasks` items are
    /// submitted but not yet yielded, so an endless or huge input works in
    /// bounded memory. The input is advanced on the calling thread. A panic
    /// in `f` is that item's `Err(Panicked)`; the others go on. Once the
    /// manager is closed no more input is drawn: an item whose spawn was
    /// refused comes back as `Err(Cancelled)`, items already submitted
    /// yield their results, then the iterator ends. Dropping the iterator
    /// cancels the items in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(4);
    /// let lengths: Vec<usize> = manager
    ///     .map(vec!["a", "bb", "ccc"], |s: &str| s.len())
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    pub fn map<'a, I, F, T>(&'a self, items: I, f: F) -> Map<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        Map::from_core(map_core(self.engine(), None, items, f))
    }

    /// Like [`map`](Self::map), but yields `(input index, result)` as the
    /// items finish.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let total: u32 = manager
    ///     .map_unordered(1..=4_u32, |n| n * 10)
    ///     .map(|(_index, result)| result.unwrap())
    ///     .sum();
    /// assert_eq!(total, 100);
    /// ```
    pub fn map_unordered<'a, I, F, T>(&'a self, items: I, f: F) -> MapUnordered<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        MapUnordered::from_core(map_core(self.engine(), None, items, f))
    }
}

/// The feed of a manager's (or a spawner's) map: `f` over `items`, each
/// item spawned with `options` (cloned per item: a name is shared, not
/// copied) or plainly.
fn map_core<'a, I, F, T>(
    engine: &Arc<Engine>,
    options: Option<TaskOptions>,
    items: I,
    f: F,
) -> MapCore<'a, T>
where
    I: IntoIterator,
    I::IntoIter: Send + 'a,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let spawn_on = Arc::clone(engine);
    let f = Arc::new(f);
    let mut items = items.into_iter();
    let draw: Draw<'a, T> = Box::new(move |set: &mut SetCore<'a, T>| {
        let item = items.next()?;
        let f = Arc::clone(&f);
        let job = move || f(item);
        let options = options.clone().unwrap_or_default();
        Some(
            match submit_with(
                &spawn_on,
                options,
                job,
                set.sink(),
                Blocking::Wait,
                Handle::Kept,
                Erase::STATIC,
            ) {
                Ok((id, task)) => {
                    set.insert(id, task.expect("a task with a handle"));
                    Ok(id)
                }
                Err(_refused) => Err(()),
            },
        )
    });
    MapCore::new(SetCore::new(engine), draw)
}

/// The results of a fallible map in input order, until the first failure;
/// see [`TaskManager::try_map`].
///
/// It yields `Ok(u)` for each item in input order until the first failure,
/// yields that failure as `Err(e)` (a [`TaskError`] converted with
/// `E::from`), and ends, cancelling what it still has in flight (without
/// waiting for it). Dropping it cancels the items in flight. It is
/// `#[must_use]`, as [`Map`] is.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let manager = taskwarden::TaskManager::new(2);
/// manager.try_map(1..=100, |n: u32| Ok::<u32, taskwarden::TaskError>(n)); // error: unused `TryMap`
/// ```
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// let manager = taskwarden::TaskManager::new(2);
/// let parsed: Result<Vec<u8>, Box<dyn Error + Send + Sync>> = manager
///     .try_map(["1", "2", "x", "4"], |s: &str| Ok(s.parse::<u8>()?))
///     .collect();
/// assert_eq!(parsed.unwrap_err().to_string(), "invalid digit found in string");
/// ```
#[must_use = "a map runs only its first window until it is iterated"]
pub struct TryMap<'a, U, E> {
    /// `None` once it yielded a failure (the rest was cancelled).
    inner: Option<Map<'a, Result<U, E>>>,
}

impl<U, E: From<TaskError>> Iterator for TryMap<'_, U, E> {
    type Item = Result<U, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.inner.as_mut()?.next()?;
        let failure = match next {
            Ok(Ok(value)) => return Some(Ok(value)),
            Ok(Err(failure)) => failure,
            Err(error) => E::from(error),
        };
        // Dropping the map cancels what it has in flight, without waiting.
        self.inner = None;
        Some(Err(failure))
    }
}

impl<U, E> fmt::Debug for TryMap<'_, U, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(map) => f.debug_tuple("TryMap").field(map).finish(),
            None => f.write_str("TryMap(ended at a failure)"),
        }
    }
}

/// The maps of a manager and of a spawner, written once.
macro_rules! map_methods {
    ($engine:expr, $($who:literal),+) => {
        /// Like `map`, with `options` applied to every item (a per-item
        /// `cancel_after`, a name, a token); a panicking, cancelled or
        /// timed-out item is that item's `Err`.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::time::Duration;
        /// use taskwarden::{TaskError, TaskOptions};
        $(#[doc = $who])+
        /// let options = TaskOptions::new().name("fetch").cancel_after(Duration::from_millis(20));
        /// let results: Vec<_> = maps
        ///     .map_with(options, [1_u64, 60_000], |ms| taskwarden::sleep(Duration::from_millis(ms)))
        ///     .collect();
        /// assert_eq!(results, vec![Ok(true), Ok(false)], "the second was flagged at 20 ms");
        /// ```
        pub fn map_with<'a, I, F, T>(&'a self, options: TaskOptions, items: I, f: F) -> Map<'a, T>
        where
            I: IntoIterator,
            I::IntoIter: Send + 'a,
            I::Item: Send + 'static,
            F: Fn(I::Item) -> T + Send + Sync + 'static,
            T: Send + 'static,
        {
            Map::from_core(map_core($engine(self), Some(options), items, f))
        }

        /// Like `map_unordered`, with `options` applied to every item.
        ///
        /// # Examples
        ///
        /// ```
        /// use taskwarden::TaskOptions;
        $(#[doc = $who])+
        /// let total: u32 = maps
        ///     .map_unordered_with(TaskOptions::new().name("square"), 1..=3_u32, |n| n * n)
        ///     .map(|(_index, result)| result.unwrap())
        ///     .sum();
        /// assert_eq!(total, 14);
        /// ```
        pub fn map_unordered_with<'a, I, F, T>(
            &'a self,
            options: TaskOptions,
            items: I,
            f: F,
        ) -> MapUnordered<'a, T>
        where
            I: IntoIterator,
            I::IntoIter: Send + 'a,
            I::Item: Send + 'static,
            F: Fn(I::Item) -> T + Send + Sync + 'static,
            T: Send + 'static,
        {
            MapUnordered::from_core(map_core($engine(self), Some(options), items, f))
        }

        /// `map` for a fallible `f`: yields `Ok(u)` in input order until the
        /// first failure, yields that failure (a [`TaskError`] converted with
        /// `E::from`) and ends, cancelling what it still has in flight, so
        /// that `.collect::<Result<Vec<_>, E>>()` works directly. The window
        /// is `map`'s.
        ///
        /// # Examples
        ///
        /// ```
        $(#[doc = $who])+
        /// type Failure = Box<dyn std::error::Error + Send + Sync>;
        /// let sizes: Result<Vec<usize>, Failure> = maps
        ///     .try_map(["Cargo.toml", "src/lib.rs"], |path: &str| -> Result<usize, Failure> {
        ///         Ok(std::fs::read(path)?.len())
        ///     })
        ///     .collect();
        /// assert_eq!(sizes.unwrap().len(), 2);
        /// ```
        pub fn try_map<'a, I, F, U, E>(&'a self, items: I, f: F) -> TryMap<'a, U, E>
        where
            I: IntoIterator,
            I::IntoIter: Send + 'a,
            I::Item: Send + 'static,
            F: Fn(I::Item) -> Result<U, E> + Send + Sync + 'static,
            U: Send + 'static,
            E: Send + From<TaskError> + 'static,
        {
            TryMap {
                inner: Some(Map::from_core(map_core($engine(self), None, items, f))),
            }
        }
    };
}

impl TaskManager {
    map_methods!(
        TaskManager::engine,
        " let maps = taskwarden::TaskManager::new(2);"
    );
}

impl Spawner {
    map_methods!(
        Spawner::engine,
        " let manager = taskwarden::TaskManager::new(2);",
        " let maps = manager.spawner();"
    );

    /// As [`TaskManager::map`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let spawner = manager.spawner();
    /// let doubled: Vec<u32> = spawner.map(1..=3_u32, |n| n * 2).map(Result::unwrap).collect();
    /// assert_eq!(doubled, [2, 4, 6]);
    /// ```
    pub fn map<'a, I, F, T>(&'a self, items: I, f: F) -> Map<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        Map::from_core(map_core(self.engine(), None, items, f))
    }

    /// As [`TaskManager::map_unordered`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(2);
    /// let spawner = manager.spawner();
    /// assert_eq!(spawner.map_unordered(1..=3_u32, |n| n).count(), 3);
    /// ```
    pub fn map_unordered<'a, I, F, T>(&'a self, items: I, f: F) -> MapUnordered<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        MapUnordered::from_core(map_core(self.engine(), None, items, f))
    }
}
