//! [`Spawner`]: spawning, asking and stopping without keeping the manager
//! open, and [`current_spawner`] for the code inside a task.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{current_engine, Blocking, CloseMode, Engine};
use crate::error::{CloseReport, SpawnError};
use crate::handle::TaskHandle;
use crate::info::TaskInfo;
use crate::manager::{spawn_detached, spawn_handle, spawn_handle_with, TaskManager};
use crate::options::TaskOptions;
use crate::stats::Stats;
use crate::task::TaskId;
use crate::task::TaskState;

/// A handle to a manager that does not keep it open: it spawns, asks,
/// cancels, closes and stops.
///
/// It spawns like the manager itself (same limit, queue and close rules),
/// cancels (`cancel`, `cancel_all`), answers `state`, `stats` and `tasks`,
/// and can close the manager (`close_timeout`) or stop it now
/// (`close_now`), so a signal handler or a watchdog thread can hold a `'static`
/// handle to a manager that its owner still drops normally. Dropping it
/// never closes the manager. Once the manager is closed (or dropped), its
/// spawns return the closed error with the closure handed back, and the
/// rest answers as the closed manager would (the close's report, the final
/// stats). Inside a task, [`current_spawner`] gives the spawner of the
/// task's own manager, so tasks that spawn children need no
/// `Arc<TaskManager>`.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let spawner = manager.spawner();
/// let handle = spawner.spawn(|| 40 + 2).unwrap();
/// assert_eq!(handle.join(), Ok(42));
/// drop(manager); // closes, whatever spawners are left
/// assert!(spawner.is_closed());
/// assert!(spawner.spawn(|| ()).unwrap_err().is_closed());
/// ```
#[derive(Clone)]
pub struct Spawner {
    engine: Arc<Engine>,
}

impl TaskManager {
    /// A [`Spawner`] for this manager.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// std::thread::spawn(move || spawner.spawn_detached(|| ()).unwrap()).join().unwrap();
    /// manager.drain();
    /// ```
    #[must_use]
    pub fn spawner(&self) -> Spawner {
        Spawner {
            engine: Arc::clone(self.engine()),
        }
    }
}

/// The spawner of the manager running the current task; `None` outside a
/// task.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let parent = manager
///     .spawn(|| {
///         let spawner = taskwarden::current_spawner().expect("inside a task");
///         spawner.spawn(|| "child").unwrap().join()
///     })
///     .unwrap();
/// assert_eq!(parent.join(), Ok(Ok("child")));
/// assert!(taskwarden::current_spawner().is_none());
/// ```
#[must_use]
pub fn current_spawner() -> Option<Spawner> {
    current_engine().map(|engine| Spawner { engine })
}

impl Spawner {
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// As [`TaskManager::spawn`].
    ///
    /// # Errors
    ///
    /// As [`TaskManager::spawn`]: closed (the closure handed back), or no
    /// thread could start.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert_eq!(manager.spawner().spawn(|| 1).unwrap().join(), Ok(1));
    /// ```
    pub fn spawn<F, T>(&self, f: F) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_handle(&self.engine, f, Blocking::Wait)
    }

    /// As [`TaskManager::try_spawn`]: never blocks.
    ///
    /// # Errors
    ///
    /// As [`TaskManager::try_spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert_eq!(manager.spawner().try_spawn(|| 1).unwrap().join(), Ok(1));
    /// ```
    pub fn try_spawn<F, T>(&self, f: F) -> Result<TaskHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_handle(&self.engine, f, Blocking::Never)
    }

    /// As [`TaskManager::spawn_detached`].
    ///
    /// # Errors
    ///
    /// As [`TaskManager::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let id = manager.spawner().spawn_detached(|| ()).unwrap();
    /// manager.wait_all([id]);
    /// ```
    pub fn spawn_detached<F, T>(&self, f: F) -> Result<TaskId, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_detached(&self.engine, f)
    }

    /// As [`TaskManager::spawn_with`].
    ///
    /// # Errors
    ///
    /// As [`TaskManager::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let options = taskwarden::TaskOptions::default().start_after(Duration::from_millis(5));
    /// assert_eq!(manager.spawner().spawn_with(options, || 3).unwrap().join(), Ok(3));
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

    /// As [`TaskManager::cancel`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// let handle = spawner.spawn(|| ()).unwrap();
    /// let id = handle.id();
    /// handle.join().unwrap();
    /// assert!(!spawner.cancel(id));
    /// ```
    pub fn cancel(&self, id: TaskId) -> bool {
        self.engine.cancel(id)
    }

    /// As [`TaskManager::cancel_all`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert!(manager.spawner().cancel_all().is_empty());
    /// ```
    pub fn cancel_all(&self) -> Vec<TaskId> {
        self.engine.cancel_all()
    }

    /// As [`TaskManager::state`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskState;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// let handle = spawner.spawn(|| ()).unwrap();
    /// let id = handle.id();
    /// handle.join().unwrap();
    /// drop(manager);
    /// assert_eq!(spawner.state(id), Some(TaskState::Finished));
    /// ```
    #[must_use]
    pub fn state(&self, id: TaskId) -> Option<TaskState> {
        self.engine.state(id)
    }

    /// As [`TaskManager::stats`]; after the manager is dropped, the final
    /// counts.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// spawner.spawn(|| ()).unwrap().join().unwrap();
    /// drop(manager);
    /// assert_eq!(spawner.stats().completed, 1);
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// As [`TaskManager::tasks`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert!(manager.spawner().tasks().is_empty());
    /// ```
    #[must_use]
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.engine.tasks()
    }

    /// As [`TaskManager::close_timeout`]: closes the manager (or, once it
    /// is closed, returns the close's report).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// let report = spawner.close_timeout(Duration::from_secs(1));
    /// assert!(report.is_clean() && manager.is_closed());
    /// ```
    pub fn close_timeout(&self, timeout: Duration) -> CloseReport {
        self.engine.close(timeout, CloseMode::Deadline)
    }

    /// As [`TaskManager::close_now`]: what a Ctrl-C handler calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// let task = manager.spawn(|| taskwarden::sleep(Duration::from_secs(30))).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// let watchdog = std::thread::spawn(move || spawner.close_now(Duration::from_secs(5)));
    /// let report = watchdog.join().unwrap();
    /// assert_eq!(report.stopped, vec![task.id()]);
    /// assert_eq!(manager.close(), report, "the manager's own close returns the same report");
    /// ```
    pub fn close_now(&self, grace: Duration) -> CloseReport {
        self.engine.close(grace, CloseMode::Now)
    }

    /// True once the manager's close has begun (or it was dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// let spawner = manager.spawner();
    /// assert!(!spawner.is_closed());
    /// manager.close();
    /// assert!(spawner.is_closed());
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.engine.is_closing()
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("manager", &self.engine.config.thread_name)
            .field("closed", &self.is_closed())
            .finish()
    }
}
