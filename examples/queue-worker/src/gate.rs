//! A counting gate: one permit per job in flight, `max_tasks` permits in
//! all. The intake takes a permit before it pops a job from Redis, and the
//! job's task holds it until its closure is dropped (it returned, or it was
//! cancelled before it ran), so the worker never holds a job that it could
//! not start at once.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One slot's worth of intake; dropping it gives the slot back.
pub struct Permit(Arc<Gate>);

impl Gate {
    pub fn new(permits: usize) -> Arc<Gate> {
        Arc::new(Gate {
            free: Mutex::new(permits),
            freed: Condvar::new(),
        })
    }

    /// A permit, or `None` if none was free within `timeout` (bounded, so
    /// that the caller gets to look at its stop flag).
    pub fn acquire_timeout(self: &Arc<Self>, timeout: Duration) -> Option<Permit> {
        let deadline = Instant::now() + timeout;
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            let left = deadline.checked_duration_since(Instant::now())?;
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *free -= 1;
        Some(Permit(Arc::clone(self)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}
