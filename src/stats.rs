//! [`Stats`]: a snapshot of a manager's counters.

/// A snapshot of a manager's counters, from
/// [`TaskManager::stats`](crate::TaskManager::stats).
///
/// The fields are read at slightly different moments while tasks move, so
/// a snapshot of a busy manager is approximate; once the manager is idle it
/// is exact.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// manager.spawn(|| ()).unwrap().join().unwrap();
/// let stats = manager.stats();
/// assert_eq!(stats.completed, 1);
/// assert_eq!((stats.running, stats.queued, stats.panicked, stats.cancelled), (0, 0, 0, 0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks running now (a task parked in a wait does not count; a task it
    /// runs meanwhile does).
    pub running: usize,
    /// Tasks accepted and not started: waiting for a slot, or delayed.
    pub queued: usize,
    /// Worker threads alive now (a timer thread is not counted).
    pub threads: usize,
    /// Tasks whose closure returned.
    pub completed: u64,
    /// Panics caught: in a task, in the drop of its captured values or of
    /// its result.
    pub panicked: u64,
    /// Tasks cancelled before they started (they never ran).
    pub cancelled: u64,
}
