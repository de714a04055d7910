//! The thread-local record of which task this thread is running, behind
//! [`is_cancelled`](crate::is_cancelled) and [`current_task`](crate::current_task).

use std::cell::RefCell;
use std::sync::Arc;

use crate::task::{Job, TaskId};

struct Current {
    job: Arc<dyn Job>,
    /// The address of the manager's shared state: tells a task of this
    /// manager from a task of another one.
    manager: usize,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Marks this thread as running `job` until the guard is dropped; the task
/// that was current before (a parent running its child inline) comes back.
pub(crate) fn enter(job: Arc<dyn Job>, manager: usize) -> Entered {
    let previous = CURRENT.with(|current| current.replace(Some(Current { job, manager })));
    Entered { previous }
}

pub(crate) struct Entered {
    previous: Option<Current>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ours = CURRENT.with(|current| current.replace(previous));
        // Our task's reference is released here, after the slot is restored.
        drop(ours);
    }
}

/// The task this thread is running for the manager at `manager`, if any.
pub(crate) fn task_of(manager: usize) -> Option<TaskId> {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .filter(|current| current.manager == manager)
            .map(|current| current.job.header().id())
    })
}

/// Whether the task running on this thread has been asked to stop.
///
/// Cancellation is cooperative: a long task should call this now and then
/// and return early once it is true. Outside a task it is always false.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let manager = taskwarden::TaskManager::new(1);
/// let handle = manager
///     .spawn(|| {
///         let mut rounds = 0_u64;
///         while !taskwarden::is_cancelled() {
///             rounds += 1;
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         rounds
///     })
///     .unwrap();
/// while manager.running().is_empty() {
///     std::thread::yield_now();
/// }
/// handle.cancel();
/// assert!(handle.join().is_ok());
/// assert!(!taskwarden::is_cancelled());
/// ```
pub fn is_cancelled() -> bool {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .is_some_and(|current| current.job.header().cancel_requested())
    })
}

/// The id of the task running on this thread; `None` outside a task.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(1);
/// let handle = manager.spawn(taskwarden::current_task).unwrap();
/// let id = handle.id();
/// assert_eq!(handle.join(), Ok(Some(id)));
/// assert_eq!(taskwarden::current_task(), None);
/// ```
pub fn current_task() -> Option<crate::TaskId> {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .map(|current| current.job.header().id())
    })
}
