//! taskwarden: a synchronous task manager. A bounded set of OS worker
//! threads runs `FnOnce` jobs, tracks each one by id, cancels cooperatively,
//! and shuts down within a deadline. No async runtime.
//!
//! # Spawning and joining
//!
//! A [`TaskManager`] runs at most `max_tasks` closures at once. Threads
//! start lazily as work arrives. [`TaskManager::spawn`] returns a
//! [`TaskHandle`] whose [`join`](TaskHandle::join) gives the closure's
//! result, or the message of its panic.
//!
//! ```
//! use taskwarden::TaskManager;
//!
//! let manager = TaskManager::new(3);
//! let handles: Vec<_> = (1..=5).map(|n| manager.spawn(move || n * 10).unwrap()).collect();
//! let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(total, 150);
//! ```
//!
//! # Cancelling
//!
//! Cancellation is cooperative. A queued task that is cancelled never runs;
//! a running task sees [`is_cancelled`] turn true and returns when it likes.
//!
//! ```
//! use std::time::Duration;
//! use taskwarden::{TaskError, TaskManager};
//!
//! let manager = TaskManager::new(1);
//! let worker = manager
//!     .spawn(|| {
//!         while !taskwarden::is_cancelled() {
//!             std::thread::sleep(Duration::from_millis(1));
//!         }
//!         "stopped politely"
//!     })
//!     .unwrap();
//! let waiting = manager.spawn(|| "never runs").unwrap();
//! while manager.running().is_empty() {
//!     std::thread::yield_now();
//! }
//! waiting.cancel();
//! manager.cancel(worker.id());
//! assert_eq!(waiting.join(), Err(TaskError::Cancelled));
//! assert_eq!(worker.join(), Ok("stopped politely"));
//! ```
//!
//! # Closing on time
//!
//! [`TaskManager::close_timeout`] stops intake, waits for the work against
//! one deadline, drops what never started, flags what still runs, and says
//! so in a [`CloseReport`]. Dropping the manager closes it with the
//! configured timeout.
//!
//! ```
//! use std::time::Duration;
//! use taskwarden::TaskManager;
//!
//! let manager = TaskManager::new(2);
//! for _ in 0..4 {
//!     manager.spawn(|| std::thread::sleep(Duration::from_millis(5))).unwrap();
//! }
//! let report = manager.close_timeout(Duration::from_secs(5));
//! assert!(report.is_clean());
//! assert!(manager.spawn(|| ()).unwrap_err().is_closed());
//! ```
//!
//! # Back-pressure, fire-and-forget, and a look inside
//!
//! A bounded queue ([`Builder::queue_capacity`]) makes [`TaskManager::spawn`]
//! wait for room and [`TaskManager::try_spawn`] hand the closure back when
//! there is none. [`TaskManager::spawn_detached`] queues a task without a
//! handle. [`TaskManager::running`] and [`TaskManager::stats`] show what the
//! manager is doing.
//!
//! ```
//! use taskwarden::TaskManager;
//!
//! let manager = TaskManager::builder().max_tasks(2).queue_capacity(8).start().unwrap();
//! for n in 0..20_u64 {
//!     match manager.try_spawn(move || n * 2) {
//!         Ok(_detached_by_drop) => {}
//!         Err(full) => {
//!             assert!(full.is_full());
//!             manager.spawn_detached(full.into_inner()).unwrap(); // waits for room
//!         }
//!     }
//! }
//! manager.drain();
//! assert_eq!(manager.stats().completed, 20);
//! ```
//!
//! # Borrowing from the stack
//!
//! [`TaskManager::scope`] runs tasks that borrow local data and returns once
//! they have all finished.
//!
//! ```
//! let mut data = vec![1, 2, 3, 4];
//! taskwarden::TaskManager::scope(2, |s| {
//!     for x in data.iter_mut() {
//!         s.spawn(move || *x *= 10);
//!     }
//! });
//! assert_eq!(data, [10, 20, 30, 40]);
//! ```
//!
//! # Results as they finish, and maps
//!
//! A [`TaskSet`] yields its tasks' results in the order they finish;
//! [`TaskManager::map`] and [`TaskManager::map_unordered`] apply a function
//! to an iterator in a bounded window (at most `2 × max_tasks` items in
//! flight), drawing input on the caller's thread.
//!
//! ```
//! let manager = taskwarden::TaskManager::new(4);
//! let mut set = manager.task_set();
//! for n in 1..=3_u64 {
//!     set.spawn(move || n * 100).unwrap();
//! }
//! let mut total = 0;
//! while let Some((_id, result)) = set.join_next() {
//!     total += result.unwrap();
//! }
//! assert_eq!(total, 600);
//!
//! let doubled: Vec<u64> = manager.map(1..=4_u64, |n| n * 2).map(Result::unwrap).collect();
//! assert_eq!(doubled, [2, 4, 6, 8]);
//! ```
//!
//! # Time, threads and stopping now
//!
//! [`TaskOptions`] give a task a delayed start or a cancel deadline
//! ([`TaskManager::spawn_with`]); the [`Builder`] sets a keep-alive for idle
//! threads and hooks for thread start, stop and task panics;
//! [`TaskManager::set_max_tasks`] resizes at run time;
//! [`TaskManager::close_now`] cancels the queue, flags what runs, and says
//! which tasks stopped in time.
//!
//! ```
//! use std::time::Duration;
//! use taskwarden::{TaskManager, TaskOptions};
//!
//! let manager = TaskManager::new(2);
//! let watchdogged = manager
//!     .spawn_with(TaskOptions::default().cancel_after(Duration::from_millis(20)), || {
//!         while !taskwarden::is_cancelled() {
//!             std::thread::sleep(Duration::from_millis(1));
//!         }
//!     })
//!     .unwrap();
//! watchdogged.join().unwrap();
//! let report = manager.close_now(Duration::from_secs(1));
//! assert!(report.is_clean());
//! ```
//!
//! # From inside a task
//!
//! Every wait may be called from inside one of the manager's own tasks
//! without deadlocking, whatever `max_tasks` and the queue capacity:
//! `drain`, `close`, `close_now`, `wait_all`, `join`, a task set's
//! `join_next`, a map's `next`, the end of `scoped`, a `spawn` waiting for
//! room, and [`lend_slot`] for waits on anything else. The waiting task is
//! *parked*: it stops counting as running and *lends* its slot to another
//! worker thread (started if none is idle), which runs the queue meanwhile.
//! On its own thread it runs only a still-queued task it waits for, never
//! a stranger, so a task that holds a lock while it waits cannot deadlock
//! on a stranger that takes the same lock. Tasks parked in `drain` or
//! `close` are not waited for by other drains and closes. Inside a task,
//! [`current_spawner`] spawns on the task's own manager.
//!
//! ```
//! use std::sync::Arc;
//! let manager = Arc::new(taskwarden::TaskManager::new(1)); // one slot only
//! let m = manager.clone();
//! let parent = manager
//!     .spawn(move || {
//!         let child = m.spawn(|| "child ran").unwrap();
//!         m.drain(); // lends the only slot: another thread runs the child
//!         child.join()
//!     })
//!     .unwrap();
//! assert_eq!(parent.join(), Ok(Ok("child ran")));
//! ```
//!
//! # Panics
//!
//! A panic in a task, in the drop of its captured values, or in the drop
//! of its result is caught, logged at error level with the task id, counted
//! in [`Stats::panicked`], and reported by `join`; the manager never stops
//! because of a task. The standard panic hook still prints the panic to
//! stderr, as for any thread: [`quiet_task_panics`] installs (opt-in) a hook
//! that leaves task panics to the error log.
//!
//! # Logging
//!
//! taskwarden logs through the [`log`] facade and never installs a logger:
//! debug for start and close, error for task panics (with the task id and
//! message), warn when a close reaches its deadline, trace per task. A
//! logger that panics, or that spawns on the manager it logs for, cannot
//! break the manager: its panics are swallowed, and a record produced while
//! the logger runs on that thread is not logged again.

#![warn(missing_docs)]
#![warn(missing_debug_implementations)]

// Layers, lowest first; a module uses only modules of its own layer listed
// before it, or of lower layers. `scripts/check-layers` holds the list and
// checks every `crate::` and `super::` path against it (CI runs it).
// Primitives:
mod dense;
mod padded;
mod panic;
mod sync;
// One task, and its errors:
mod error;
mod task;
// Bookkeeping:
mod config;
mod counts;
mod current;
mod display;
mod extras;
mod graveyard;
mod hooks;
mod info;
mod lane;
mod options;
mod registry;
mod slots;
mod stats;
mod token;
// The engine:
mod engine;
// The public types:
mod builder;
mod handle;
mod lend;
mod manager;
mod map;
mod quiet;
mod reach;
mod scope;
mod spawner;
mod submit;
mod task_set;

#[cfg(all(test, loom))]
mod loom_models;

pub use builder::{BuildError, Builder};
pub use current::{cancel_reason, current_task, is_cancelled};
pub use error::{CloseReport, SpawnError, SpawnErrorKind, TaskError};
pub use handle::{ScopedHandle, TaskHandle};
pub use hooks::{PanicReport, TaskEnd, TaskOutcome, TaskStart};
pub use info::TaskInfo;
pub use lend::lend_slot;
pub use manager::TaskManager;
pub use map::{Map, MapUnordered, TryMap};
pub use options::TaskOptions;
pub use quiet::quiet_task_panics;
pub use reach::{cancel_token, sleep};
pub use scope::Scope;
pub use spawner::{current_spawner, Spawner};
pub use stats::Stats;
pub use task::{CancelReason, TaskId, TaskState};
pub use task_set::{IntoIter, JoinNext, SetSpawner, TaskSet};
pub use token::CancelToken;
