//! [`TaskOptions`]: per-task deadlines and delays.

use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskOptions {
    pub(crate) cancel_after: Option<Duration>,
    pub(crate) cancel_at: Option<Instant>,
    pub(crate) start_after: Option<Duration>,
    pub(crate) start_at: Option<Instant>,
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

    /// The start time for a task spawned at `now` (`None`: at once).
    pub(crate) fn start(&self, now: Instant) -> Option<Instant> {
        let after = self.start_after.and_then(|d| now.checked_add(d));
        match (after, self.start_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
        .filter(|at| *at > now)
    }

    /// Whether these options need the timer at all.
    pub(crate) fn is_plain(&self) -> bool {
        *self == TaskOptions::default()
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
