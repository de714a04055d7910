//! Cancellation that reaches a blocked task: [`sleep`] and
//! [`cancel_token`], for the code inside a task.

use std::time::Duration;

use crate::engine::current_engine;
use crate::token::CancelToken;

/// A token that is cancelled when the current task's cancel flag is set
/// (before the call that set it returns); `None` outside a task.
///
/// Hand it to code that runs outside the task (another thread, a library
/// callback) to let it see, wait for, or cause the task's cancellation:
/// cancelling the token flags the task, with
/// [`CancelReason::Token`](crate::CancelReason::Token). Spawn children with
/// `TaskOptions::new().cancel_with(&token)` to stop them with their parent.
/// Every call in one task gives a clone of one token; the task leaves it
/// when it settles.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::{TaskManager, TaskOptions};
///
/// let manager = TaskManager::new(2);
/// let parent = manager
///     .spawn(|| {
///         let mine = taskwarden::cancel_token().expect("inside a task");
///         let spawner = taskwarden::current_spawner().unwrap();
///         let child = spawner
///             .spawn_with(TaskOptions::new().cancel_with(&mine), || {
///                 taskwarden::sleep(Duration::from_secs(30))
///             })
///             .unwrap();
///         mine.wait_timeout(Duration::from_secs(30));
///         child.join()
///     })
///     .unwrap();
/// while manager.running().len() < 2 {
///     std::thread::yield_now();
/// }
/// parent.cancel(); // the parent wakes, and its child with it
/// assert_eq!(parent.join(), Ok(Ok(false)));
/// assert!(taskwarden::cancel_token().is_none());
/// ```
#[must_use]
pub fn cancel_token() -> Option<CancelToken> {
    current_engine()?.own_token()
}

/// Sleeps up to `d`, waking early when the current task is cancelled;
/// true if it slept the whole `d`.
///
/// It returns within a few milliseconds of the task's cancel flag being
/// set, whatever sets it (`cancel`, `close_now`, a deadline, a token), and
/// at once if the flag is set already. The task keeps its slot while it
/// sleeps (`lend_slot(|| sleep(d))` lends it). Outside a task it is a plain
/// `std::thread::sleep` and returns true.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// let manager = taskwarden::TaskManager::new(1);
/// let handle = manager.spawn(|| taskwarden::sleep(Duration::from_secs(30))).unwrap();
/// while manager.running().is_empty() {
///     std::thread::yield_now();
/// }
/// let asked = Instant::now();
/// let report = manager.close_now(Duration::from_secs(5));
/// assert_eq!(report.stopped, vec![handle.id()]);
/// assert_eq!(handle.join(), Ok(false));
/// assert!(asked.elapsed() < Duration::from_secs(5));
/// assert!(taskwarden::sleep(Duration::from_millis(1)));
/// ```
pub fn sleep(d: Duration) -> bool {
    match cancel_token() {
        Some(token) => !token.wait_timeout(d),
        None => {
            std::thread::sleep(d);
            true
        }
    }
}
