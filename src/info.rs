//! [`TaskInfo`]: one line of [`tasks()`](crate::TaskManager::tasks), what a
//! status page or a debugger sees of a task.

use crate::task::{CancelReason, TaskId, TaskState};

/// A task that was accepted and has not finished, as
/// [`TaskManager::tasks`](crate::TaskManager::tasks) saw it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::{TaskManager, TaskOptions, TaskState};
///
/// let manager = TaskManager::new(1);
/// let options = TaskOptions::new().name("long job");
/// let handle = manager
///     .spawn_with(options, || taskwarden::sleep(Duration::from_secs(30)))
///     .unwrap();
/// while manager.running().is_empty() {
///     std::thread::yield_now();
/// }
/// let tasks = manager.tasks();
/// assert_eq!(tasks[0].id, handle.id());
/// assert_eq!(tasks[0].name.as_deref(), Some("long job"));
/// assert_eq!(tasks[0].state, TaskState::Running);
/// handle.cancel();
/// assert_eq!(handle.join(), Ok(false));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it was spawned with one.
    pub name: Option<String>,
    /// `Queued` or `Running` (a task parked in a wait reads `Running`).
    pub state: TaskState,
    /// Whether it waits inside a wait (`join`, `drain`, a task set...) or
    /// [`lend_slot`](crate::lend_slot), with its slot lent.
    pub parked: bool,
    /// Why its cancel flag is set, if it is.
    pub cancel_reason: Option<CancelReason>,
}
