//! [`lend_slot`]: a wait on something outside the manager that lends the
//! waiting task's slot, as the manager's own waits do.

use crate::engine::current_engine;

/// Runs `f` with this task's slot lent: while `f` runs (a blocking read, a
/// wait on a channel, a socket or another manager), the task counts as
/// parked, not running, and another worker thread may run a queued task in
/// its slot. When `f` returns the task resumes at once, without waiting
/// for a slot (so `running()` may briefly exceed `max_tasks`, until the
/// lent slot's task finishes). `current_task()` and `is_cancelled()` still
/// speak of this task inside `f`. Outside a task it just runs `f`.
///
/// A task parked here stays counted by drains and closes (they wait for it,
/// may list it as abandoned, and `close_now` flags it), like a task waiting
/// on particular tasks. Lending costs a thread start the first time no idle
/// thread can take the slot; keep `f` to real waits.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use taskwarden::TaskManager;
///
/// let manager = TaskManager::new(1); // one slot
/// let (tx, rx) = mpsc::channel();
/// let waiter = manager
///     .spawn(move || taskwarden::lend_slot(|| rx.recv().unwrap()))
///     .unwrap();
/// // The only slot is lent while the waiter blocks: this task still runs.
/// let sender = manager.spawn(move || tx.send("hello").unwrap()).unwrap();
/// sender.join().unwrap();
/// assert_eq!(waiter.join(), Ok("hello"));
/// ```
pub fn lend_slot<R>(f: impl FnOnce() -> R) -> R {
    match current_engine() {
        Some(engine) => engine.lending(f),
        None => f(),
    }
}
