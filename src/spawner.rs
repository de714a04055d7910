//! [`Spawner`]: spawning without keeping the manager open, and
//! [`current_spawner`] for the code inside a task.

use std::fmt;
use std::sync::Arc;

use crate::engine::{current_engine, Blocking, Engine};
use crate::error::SpawnError;
use crate::handle::TaskHandle;
use crate::manager::{spawn_detached, spawn_handle, spawn_handle_with, TaskManager};
use crate::options::TaskOptions;
use crate::task::TaskId;

/// A handle for spawning on a manager that does not keep it open.
///
/// It spawns like the manager itself (same limit, queue and close rules),
/// but dropping it never closes the manager, and once the manager is
/// closed (or dropped), its spawns return the closed error with the
/// closure handed back. Inside a task, [`current_spawner`] gives the
/// spawner of the task's own manager, so tasks that spawn children need no
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
