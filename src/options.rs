//! [`TaskOptions`]: per-task deadlines, delays, a token and a name.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant};

use crate::extras::Name;
use crate::token::CancelToken;

/// When a task may start and when it is asked to stop; for
/// [`TaskManager::spawn_with`](crate::TaskManager::spawn_with) and its
/// siblings.
///
/// - `cancel_after(d)`: `d` after the task starts, its cancel flag is set
///   (cooperative, like `cancel`: the task decides when to return).
/// - `cancel_at(at)`: at `at`, a queued task is cancelled (it never runs)
///   and a running one is flagged.
/// - `start_after(d)` / `start_at(at)`: the task does not start before
///   `now + d` (counted from the spawn) / `at`; when both are set the later
///   bound wins. A delayed task waits in a time-ordered queue, not on a
///   worker, counts as queued, and joins the back of the run queue when its
///   time comes (in id order among equal start times).
///
/// - `cancel_with(&token)`: the task is cancelled when the token is
///   (queued: it never runs; running: flagged), with reason `Token`.
/// - `name(..)`: shown in log lines, panic reports, `tasks()` and the
///   per-task hooks. A name is shared by the clones of the options (a map
///   applies one to every item without copying it).
///
/// Both cancel bounds apply when both are set; a setter called twice keeps
/// the last value. Timers fire never early, and normally within a few
/// milliseconds; all timers of a manager share one thread, started by the
/// first timed task.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::{TaskManager, TaskOptions};
///
/// let manager = TaskManager::new(2);
/// let options = TaskOptions::default()
///     .start_after(Duration::from_millis(20))
///     .cancel_after(Duration::from_millis(50));
/// let handle = manager
///     .spawn_with(options, || {
///         while !taskwarden::is_cancelled() {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         "timed out politely"
///     })
///     .unwrap();
/// assert_eq!(handle.join(), Ok("timed out politely"));
/// ```
#[derive(Clone, Default)]
pub struct TaskOptions {
    pub(crate) cancel_after: Option<Duration>,
    pub(crate) cancel_at: Option<Instant>,
    pub(crate) start_after: Option<Duration>,
    pub(crate) start_at: Option<Instant>,
    pub(crate) token: Option<CancelToken>,
    pub(crate) name: Option<Name>,
}

impl PartialEq for TaskOptions {
    /// Equal when every setting is; tokens compare by identity (clones of
    /// one token are equal).
    fn eq(&self, other: &Self) -> bool {
        let same_token = match (&self.token, &other.token) {
            (Some(a), Some(b)) => a.same(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        same_token
            && self.name == other.name
            && (
                self.cancel_after,
                self.cancel_at,
                self.start_after,
                self.start_at,
            ) == (
                other.cancel_after,
                other.cancel_at,
                other.start_after,
                other.start_at,
            )
    }
}

impl Eq for TaskOptions {}

impl fmt::Debug for TaskOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskOptions")
            .field("cancel_after", &self.cancel_after)
            .field("cancel_at", &self.cancel_at)
            .field("start_after", &self.start_after)
            .field("start_at", &self.start_at)
            .field("cancel_with", &self.token)
            .field("name", &self.name)
            .finish()
    }
}

impl TaskOptions {
    /// Options that change nothing (the same as `default()`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskwarden::TaskOptions::new(), taskwarden::TaskOptions::default());
    /// ```
    #[must_use]
    pub fn new() -> TaskOptions {
        TaskOptions::default()
    }

    /// Sets the task's cancel flag `d` after it starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = taskwarden::TaskOptions::default().cancel_after(Duration::from_secs(30));
    /// # let _ = options;
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn cancel_after(mut self, d: Duration) -> TaskOptions {
        self.cancel_after = Some(d);
        self
    }

    /// At `at`, cancels the task if it is still queued (it never runs), or
    /// sets its cancel flag if it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let deadline = Instant::now() + Duration::from_secs(60);
    /// let options = taskwarden::TaskOptions::default().cancel_at(deadline);
    /// # let _ = options;
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn cancel_at(mut self, at: Instant) -> TaskOptions {
        self.cancel_at = Some(at);
        self
    }

    /// Keeps the task out of the run queue until `d` after the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = taskwarden::TaskOptions::default().start_after(Duration::from_millis(100));
    /// # let _ = options;
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn start_after(mut self, d: Duration) -> TaskOptions {
        self.start_after = Some(d);
        self
    }

    /// Keeps the task out of the run queue until `at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let options = taskwarden::TaskOptions::default().start_at(Instant::now() + Duration::from_millis(5));
    /// # let _ = options;
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn start_at(mut self, at: Instant) -> TaskOptions {
        self.start_at = Some(at);
        self
    }

    /// Cancels the task when `token` is cancelled: a queued task never runs
    /// (its handle returns `Err(Cancelled)`), a running one is flagged,
    /// with [`CancelReason::Token`](crate::CancelReason::Token). A token
    /// cancelled before the spawn still lets it succeed, but the task is
    /// finished at once without running. To stop children with their
    /// parent, spawn them with the parent's
    /// [`cancel_token`](crate::cancel_token).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::{CancelToken, TaskError, TaskManager, TaskOptions};
    /// let manager = TaskManager::new(1);
    /// let token = CancelToken::new();
    /// token.cancel();
    /// let handle = manager
    ///     .spawn_with(TaskOptions::new().cancel_with(&token), || "never runs")
    ///     .unwrap();
    /// assert_eq!(handle.join(), Err(TaskError::Cancelled));
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn cancel_with(mut self, token: &CancelToken) -> TaskOptions {
        self.token = Some(token.clone());
        self
    }

    /// Names the task: its log lines say `task-7 (name)`, and the name is
    /// in [`PanicReport::name`](crate::PanicReport::name),
    /// [`tasks()`](crate::TaskManager::tasks) and the per-task hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::{TaskManager, TaskOptions};
    /// let manager = TaskManager::new(1);
    /// let handle = manager
    ///     .spawn_with(TaskOptions::new().name(format!("resize {}", "a.jpg")), || ())
    ///     .unwrap();
    /// handle.join().unwrap();
    /// ```
    #[must_use = "a TaskOptions setter returns the new options"]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> TaskOptions {
        self.name = Some(Name::from(name.into()));
        self
    }

    /// The start time for a task spawned at `now` (`None`: at once).
    pub(crate) fn start(&self, now: Instant) -> Option<Instant> {
        let after = self.start_after.and_then(|d| now.checked_add(d));
        match (after, self.start_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
        .filter(|at| *at > now)
    }

    /// Whether these options change nothing.
    pub(crate) fn is_plain(&self) -> bool {
        self.is_untimed() && self.token.is_none() && self.name.is_none()
    }

    /// Whether these options need no timer.
    pub(crate) fn is_untimed(&self) -> bool {
        self.cancel_after.is_none()
            && self.cancel_at.is_none()
            && self.start_after.is_none()
            && self.start_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_start_bound_wins() {
        let now = Instant::now();
        let late = now + Duration::from_secs(10);
        let options = TaskOptions::default()
            .start_after(Duration::from_secs(1))
            .start_at(late);
        assert_eq!(options.start(now), Some(late));
        let options = options.start_at(now + Duration::from_millis(1));
        assert_eq!(options.start(now), Some(now + Duration::from_secs(1)));
        assert_eq!(TaskOptions::default().start(now), None);
        assert!(TaskOptions::default().is_plain());
    }
}
