//! The thread-local record of which task this thread is running, behind
//! [`is_cancelled`](crate::is_cancelled) and [`current_task`](crate::current_task).

use std::cell::Cell;
use std::ptr::NonNull;

use crate::task::{CancelReason, Header, TaskId};

#[derive(Clone, Copy)]
struct Current {
    /// The running task's header. A pointer, not an `Arc`: setting it must
    /// not cost two atomic reference-count updates per task.
    header: NonNull<Header>,
    /// The address of the manager's shared state: tells a task of this
    /// manager from a task of another one.
    manager: usize,
}

crate::sync::thread_local_cell! {
    static CURRENT: Cell<Option<Current>> = Cell::new(None);
}

/// Marks this thread as running the task whose header is `header` until the
/// guard is dropped; the task that was current before (a parent running its
/// child inline) comes back.
///
/// The caller must keep the task alive until the guard is dropped (it holds
/// an `Arc` to it for the whole run).
pub(crate) fn enter(header: &Header, manager: usize) -> Entered<'_> {
    let current = Current {
        header: NonNull::from(header),
        manager,
    };
    let previous = CURRENT.with(|slot| slot.replace(Some(current)));
    Entered {
        previous,
        _task: std::marker::PhantomData,
    }
}

/// Restores the previous record when dropped; borrows the header so that
/// the task cannot be released while it is recorded.
pub(crate) struct Entered<'a> {
    previous: Option<Current>,
    _task: std::marker::PhantomData<&'a Header>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        CURRENT.with(|slot| slot.set(self.previous));
    }
}

/// Runs `f` on the header of the task this thread is running, if any.
fn with_current<R>(f: impl FnOnce(&Header, usize) -> R) -> Option<R> {
    let current = CURRENT.with(Cell::get)?;
    // SAFETY: a record is only present between `enter` and the drop of its
    // guard, which borrows the header: the task is alive.
    let header = unsafe { current.header.as_ref() };
    Some(f(header, current.manager))
}

/// Runs `f` on the header of the task this thread is running for the
/// manager at `manager`, if any.
pub(crate) fn with_task<R>(manager: usize, f: impl FnOnce(&Header) -> R) -> Option<R> {
    with_current(|header, owner| (owner == manager).then(|| f(header))).flatten()
}

/// The task this thread is running for the manager at `manager`, if any.
pub(crate) fn task_of(manager: usize) -> Option<TaskId> {
    with_current(|header, owner| (owner == manager).then(|| header.id())).flatten()
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
    with_current(|header, _| header.cancel_requested()).unwrap_or(false)
}

/// Why the cancel flag of the task running on this thread is set; `None`
/// while it is not, and outside a task. The first reason to set the flag
/// is the one kept.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::CancelReason;
/// let manager = taskwarden::TaskManager::new(1);
/// let handle = manager
///     .spawn(|| {
///         while !taskwarden::is_cancelled() {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         taskwarden::cancel_reason()
///     })
///     .unwrap();
/// while manager.running().is_empty() {
///     std::thread::yield_now();
/// }
/// handle.cancel();
/// assert_eq!(handle.join(), Ok(Some(CancelReason::Requested)));
/// assert_eq!(taskwarden::cancel_reason(), None);
/// ```
#[must_use]
pub fn cancel_reason() -> Option<CancelReason> {
    with_current(|header, _| header.cancel_reason()).flatten()
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
    with_current(|header, _| header.id())
}
