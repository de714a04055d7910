//! Memory given back: after 20,000 detached tasks that each carried 16 KiB
//! have run and the manager has idled, it holds less than 1 MiB of them;
//! and the timer forgets: 20,000 tasks with a far `cancel_after` that
//! finish at once, and 20,000 far-delayed tasks that are cancelled, leave
//! next to nothing of them before the manager closes (the memory timers
//! hold follows the timed tasks still pending). Also: a close never waits
//! for user code on the timer thread. A counting global allocator (per
//! binary, hence this file) measures the live bytes; the tests take turns
//! so their counts do not mix.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{hold_slot, scaled, watchdog, LIMIT};
use taskwarden::{TaskError, TaskManager, TaskOptions};

/// Live heap bytes of the whole test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; the counter only
// observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests run one at a time, so each sees only its own bytes.
static TURN: Mutex<()> = Mutex::new(());

const TASKS: usize = 20_000;
const PAYLOAD: usize = 16 * 1024;
const ALLOWED: isize = 1 << 20;

fn memory_is_given_back(spawn_one: fn(&TaskManager, u8)) {
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let manager = TaskManager::new(2);
    // Warm up: both worker threads started, one task run on each.
    let both = Arc::new(Barrier::new(2));
    for _ in 0..2 {
        let both = both.clone();
        manager.spawn_detached(move || both.wait()).unwrap();
    }
    manager.drain();
    drop(both);
    let before = LIVE.load(Ordering::SeqCst);
    for n in 0..common::scaled(TASKS) {
        spawn_one(&manager, n as u8);
    }
    manager.drain();
    std::thread::sleep(Duration::from_millis(300)); // the idle period itself
    let held = LIVE.load(Ordering::SeqCst) - before;
    assert!(
        held < ALLOWED,
        "the manager still holds {held} bytes after {TASKS} tasks of {PAYLOAD} bytes"
    );
    drop(manager);
}

#[test]
fn detached_tasks_capturing_a_16_kib_vec_give_their_memory_back() {
    watchdog(|| {
        memory_is_given_back(|manager, n| {
            let payload = vec![n; PAYLOAD];
            manager
                .spawn_detached(move || {
                    black_box(&payload);
                })
                .unwrap();
        })
    });
}

#[test]
fn detached_tasks_capturing_a_16_kib_array_give_their_memory_back() {
    watchdog(|| {
        memory_is_given_back(|manager, n| {
            let payload = [n; PAYLOAD];
            manager
                .spawn_detached(move || {
                    let payload = payload; // the whole array, by value
                    black_box(&payload);
                })
                .unwrap();
        })
    });
}

/// What the manager may still hold of 20,000 settled timed tasks: the
/// timer sweeps once settled tasks are half its heap, and never below 64
/// events (with the registry's lazy removal, some tens of kilobytes);
/// before, 1.3 MB and 5.8 MB.
const TIMER_ALLOWED: isize = 256 << 10;

const HOUR: Duration = Duration::from_secs(3_600);

#[test]
fn finished_tasks_with_a_far_cancel_after_leave_the_timer() {
    watchdog(|| {
        let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let manager = TaskManager::new(2);
        // Warm up: threads started, the timer thread started.
        manager
            .spawn_with(TaskOptions::new().cancel_after(HOUR), || ())
            .unwrap()
            .join()
            .unwrap();
        manager.drain();
        let before = LIVE.load(Ordering::SeqCst);
        for _ in 0..scaled(TASKS) {
            manager
                .spawn_with(TaskOptions::new().cancel_after(HOUR), || ())
                .unwrap();
        }
        manager.drain();
        let held = LIVE.load(Ordering::SeqCst) - before;
        assert!(
            held < TIMER_ALLOWED,
            "the manager still holds {held} bytes of finished timed tasks"
        );
        assert!(manager.close().is_clean());
    });
}

#[test]
fn cancelled_far_delayed_tasks_leave_the_timer() {
    watchdog(|| {
        let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let manager = TaskManager::new(2);
        manager
            .spawn_with(TaskOptions::new().start_after(HOUR), || ())
            .unwrap()
            .cancel();
        manager.drain();
        let before = LIVE.load(Ordering::SeqCst);
        for _ in 0..scaled(TASKS) {
            let payload = [7_u8; 64];
            manager
                .spawn_with(TaskOptions::new().start_after(HOUR), move || payload.len())
                .unwrap();
        }
        let cancelled = manager.cancel_all();
        assert_eq!(cancelled.len(), scaled(TASKS));
        drop(cancelled);
        manager.drain();
        let held = LIVE.load(Ordering::SeqCst) - before;
        assert!(
            held < TIMER_ALLOWED,
            "the manager still holds {held} bytes of cancelled delayed tasks"
        );
        assert!(manager.close().is_clean());
    });
}

/// A queued task whose `cancel_at` passes has its closure dropped on the
/// timer thread; a slow `Drop` there does not hold the close past its
/// deadline.
#[test]
fn a_slow_drop_on_the_timer_thread_does_not_hold_close() {
    struct SlowDrop(mpsc::Sender<()>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
            thread::sleep(Duration::from_millis(1_500));
        }
    }
    watchdog(|| {
        let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let manager = TaskManager::new(1);
        let (gate, held) = hold_slot(&manager);
        let (began_tx, began) = mpsc::channel();
        let slow = SlowDrop(began_tx);
        let timed = manager
            .spawn_with(
                TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(20)),
                move || {
                    let _keep = &slow;
                },
            )
            .unwrap();
        began.recv_timeout(LIMIT).expect("the timer began the drop");
        gate.open();
        let started = Instant::now();
        let report = manager.close_timeout(Duration::from_millis(100));
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1_000),
            "close waited {took:?} for the timer thread's user code"
        );
        assert!(
            report.timed_out,
            "the deadline passed with a task settling: {report:?}"
        );
        held.join().unwrap();
        assert_eq!(
            timed.join(),
            Err(TaskError::TimedOut),
            "its cancel_at passed in the queue"
        );
    });
}
