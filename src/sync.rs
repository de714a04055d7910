//! The synchronisation primitives the crate is built on, in one place, so
//! that the whole manager also compiles against [loom] under `cfg(loom)`
//! and its models (`src/loom_models.rs`) exercise the real code.
//!
//! Normally these are `std`'s atomics, `parking_lot`'s `Mutex` and
//! `Condvar`, `std::thread`, `std::cell::UnsafeCell` and an unbounded
//! `crossbeam_channel`. Under loom:
//!
//! - atomics, `Mutex`, `Condvar`, threads, thread-locals and `UnsafeCell`
//!   are loom's (wrapped to keep `parking_lot`'s guard-by-reference API), so
//!   loom explores their interleavings and checks the cell's access rules;
//! - the channel is a stand-in, a loom `Mutex<VecDeque>` with a `Condvar`:
//!   loom cannot see inside crossbeam, and only the FIFO hand-over matters
//!   to the protocols modelled here;
//! - a timed wait cannot be modelled (loom has no clock): a deadline that
//!   has passed returns at once, any other wait is untimed. Models use only
//!   `Duration::ZERO` and `Duration::MAX`;
//! - `Arc` stays `std`'s (loom's cannot coerce to trait objects), and
//!   thread names and stack sizes are ignored.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(loom)]
pub(crate) use self::model::{Condvar, Mutex};

#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use self::model::thread;

#[cfg(not(loom))]
pub(crate) use crossbeam_channel::{unbounded as channel, Receiver, Sender};

#[cfg(loom)]
pub(crate) use self::model::{channel, Receiver, Sender};

/// A cell whose access the caller synchronises; `with_mut` is the only way
/// in, so that loom can check every access.
#[cfg(not(loom))]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Declares a thread-local: `std`'s, or loom's under loom (its threads are
/// simulated, so `std`'s would be shared between them).
macro_rules! thread_local_cell {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$attr])* static $name: $ty = $init; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$attr])* static $name: $ty = $init; }
    };
}
pub(crate) use thread_local_cell;

#[cfg(loom)]
#[allow(dead_code)] // parts of the stand-ins that only the non-loom build uses
mod model {
    use std::collections::VecDeque;
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    pub(crate) use loom::thread;

    /// `parking_lot`'s API over loom's mutex.
    #[derive(Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().expect("loom mutex poisoned")))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard held")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard held")
        }
    }

    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    #[derive(Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.0.take().expect("guard held");
            guard.0 = Some(self.0.wait(inner).expect("loom mutex poisoned"));
        }

        /// No clock under loom: a passed deadline times out at once, any
        /// other wait is untimed.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> WaitTimeoutResult {
            if Instant::now() >= deadline {
                return WaitTimeoutResult(true);
            }
            self.wait(guard);
            WaitTimeoutResult(false)
        }

        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }

        pub(crate) fn notify_all(&self) -> usize {
            self.0.notify_all();
            0
        }
    }

    struct Queue<T> {
        items: Mutex<VecDeque<T>>,
    }

    /// The stand-in for crossbeam's unbounded channel: FIFO, never
    /// disconnected (the manager never disconnects it), and no blocking
    /// receive (idle workers sleep in `engine::idle`, not in the channel).
    pub(crate) struct Sender<T>(std::sync::Arc<Queue<T>>);
    pub(crate) struct Receiver<T>(std::sync::Arc<Queue<T>>);

    pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let queue = std::sync::Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
        });
        (Sender(queue.clone()), Receiver(queue))
    }

    impl<T> Sender<T> {
        pub(crate) fn send(&self, item: T) -> Result<(), T> {
            self.0.items.lock().push_back(item);
            Ok(())
        }
    }

    impl<T> Receiver<T> {
        pub(crate) fn try_recv(&self) -> Result<T, ()> {
            self.0.items.lock().pop_front().ok_or(())
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.items.lock().is_empty()
        }
    }
}
