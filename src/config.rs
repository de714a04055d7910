//! The settings a manager runs with, as the engine reads them, and the
//! checks they share with `set_max_tasks`. The public [`Builder`](crate::Builder)
//! fills them in.

use std::time::Duration;

use crate::hooks::Hooks;

/// The largest `max_tasks` and `queue_capacity`: a bound that keeps every
/// count far from overflow, and any real machine far below.
pub(crate) const LIMIT: usize = u32::MAX as usize / 2;

/// Checks a `max_tasks` value (for the builder and `set_max_tasks`).
pub(crate) fn check_max_tasks(n: usize) -> Result<(), String> {
    if n == 0 {
        Err("must be at least 1, got 0".to_owned())
    } else if n > LIMIT {
        Err(format!("must be at most {LIMIT}, got {n}"))
    } else {
        Ok(())
    }
}

/// The validated settings a manager runs with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_tasks: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) hooks: Hooks,
}
