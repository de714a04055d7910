//! [`quiet_task_panics`]: an opt-in panic hook that leaves task panics to
//! taskwarden's own error log.

use std::sync::Once;

/// Installs a process-wide panic hook that stays silent for panics on
/// taskwarden's worker threads, and forwards every other panic to the hook
/// that was installed before.
///
/// A task's panic is always caught, logged at error level with the task id
/// and message, and returned by `join`; the standard hook prints it to
/// stderr as well (with a backtrace under `RUST_BACKTRACE=1`), as it does
/// for any thread. Call this once, early in `main`, if the error log is
/// enough. The library never installs a hook by itself; calling this more
/// than once installs it once.
///
/// Panics on other threads (the main thread, your own threads) are printed
/// as before.
///
/// # Examples
///
/// ```
/// taskwarden::quiet_task_panics();
/// let manager = taskwarden::TaskManager::new(1);
/// let outcome = manager.spawn(|| -> () { panic!("logged, not printed") }).unwrap().join();
/// assert!(outcome.is_err());
/// ```
pub fn quiet_task_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::engine::on_worker_thread() {
                previous(info);
            }
        }));
    });
}
