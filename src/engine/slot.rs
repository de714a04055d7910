//! A worker thread's own record: its [`Slot`] (what it shows to
//! `running()` and `stats()`, and its counters), and the thread-local that
//! tells a thread it is a worker of an engine, of which slot, and how deep
//! its stack may go for inline runs. Both the worker loop (`worker`) and the
//! waits (`wait`) stand on it.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::{Engine, StatCounters};
use crate::current;
use crate::padded::Padded;
use crate::sync::{AtomicU64, Ordering};

/// One worker's view to the outside.
#[derive(Default)]
pub(crate) struct Slot {
    /// The task running on this thread now, innermost first: 0 when idle,
    /// and while the thread's task is parked in a wait with nothing inline.
    /// For `running()` and `stats().running`.
    pub(crate) current: AtomicU64,
    /// The outermost task on this thread (0 when idle): close leaves a
    /// thread that is occupied to finish on its own rather than join it.
    pub(super) occupied: AtomicU64,
    /// Where the thread's task is in its settling, as a count whose phase
    /// (`mark % 3`) is [`BUSY`], [`FINISHING`] or [`SETTLING`]: finishing
    /// once its result is handed over or dropped (the thread is about to be
    /// free), settling while it is being counted settled. A count, so that
    /// `threads_wanted` can tell whether it moved while read. Written only
    /// by the slot's thread.
    pub(super) finishing: AtomicU64,
    pub(super) counters: StatCounters,
}

/// Phases of `Slot::finishing`: running a task, or idle.
pub(super) const BUSY: u64 = 0;
/// The task's result is handed over or dropped; not yet counted settled.
pub(super) const FINISHING: u64 = 1;
/// The task is being counted settled.
pub(super) const SETTLING: u64 = 2;

impl Slot {
    /// Moves the finishing mark on to `phase` (a no-op if it is there).
    pub(super) fn advance_to(&self, phase: u64) {
        // Only this slot's thread writes the mark: no read-modify-write.
        let mark = self.finishing.load(Ordering::Relaxed);
        let steps = (phase + 3 - mark % 3) % 3;
        if steps != 0 {
            self.finishing.store(mark + steps, Ordering::Release);
        }
    }
}

/// What a worker thread knows about itself, for waits that help and for
/// `current_spawner()`.
pub(super) struct WorkerRecord {
    pub(super) key: usize,
    pub(super) slot: Arc<Padded<Slot>>,
    pub(super) engine: Weak<Engine>,
    /// Below this address the thread's stack is too short for another
    /// inline run (see `stack_allows_inline`).
    pub(super) stack_floor: usize,
}

crate::sync::thread_local_cell! {
    static WORKER: RefCell<Option<WorkerRecord>> = RefCell::new(None);
}

/// The engine whose task this thread is running, if any.
pub(crate) fn current_engine() -> Option<Arc<Engine>> {
    current::current_task()?;
    WORKER.with(|record| record.borrow().as_ref()?.engine.upgrade())
}

/// Whether this thread is a worker of some taskwarden engine (for the
/// quiet panic hook).
pub(crate) fn on_worker_thread() -> bool {
    WORKER.with(|record| record.borrow().is_some())
}

/// The stack size of a worker thread: the builder's, else what std would
/// give a new thread (`RUST_MIN_STACK`, else 2 MiB). Set explicitly on
/// every worker, so that `stack_allows_inline` knows it.
pub(super) fn worker_stack_size(configured: Option<usize>) -> usize {
    static DEFAULT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    configured.unwrap_or_else(|| {
        *DEFAULT.get_or_init(|| {
            std::env::var("RUST_MIN_STACK")
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(2 << 20)
        })
    })
}

/// How much of a worker's stack inline runs may use: while more than a
/// quarter of it is left, a waiting task may run a task it waits for on its
/// own stack; below that it lends its slot and another thread runs it. So a
/// chain of joins of any depth never overflows, and a task run inline still
/// has at least a quarter of the stack (512 KiB of the default 2 MiB).
pub(super) const INLINE_SHARE_NUMERATOR: usize = 3;
pub(super) const INLINE_SHARE_DENOMINATOR: usize = 4;

/// Whether this worker thread has stack enough left to run another task
/// inline (see `INLINE_SHARE_NUMERATOR`). Stacks grow down on every target
/// Rust threads run on here; under loom (whose threads have stacks of
/// their own) always.
pub(super) fn stack_allows_inline() -> bool {
    if cfg!(loom) {
        return true;
    }
    let here = std::hint::black_box(0_u8);
    let address = std::ptr::addr_of!(here) as usize;
    WORKER.with(|record| {
        record
            .borrow()
            .as_ref()
            .is_none_or(|record| address > record.stack_floor)
    })
}

/// This thread's slot, if it is a worker of the engine `key`.
pub(super) fn own_slot(key: usize) -> Option<Arc<Padded<Slot>>> {
    WORKER.with(|record| {
        record
            .borrow()
            .as_ref()
            .filter(|record| record.key == key)
            .map(|record| Arc::clone(&record.slot))
    })
}

/// Records this thread as a worker (at the start of its loop).
pub(super) fn enter_worker(record: WorkerRecord) {
    WORKER.with(|slot| *slot.borrow_mut() = Some(record));
}

/// This thread is no longer a worker (as it exits).
pub(super) fn leave_worker() {
    WORKER.with(|slot| slot.borrow_mut().take());
}
