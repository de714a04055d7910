//! The timer forgets: memory held for timed tasks is proportional to the
//! timed tasks still pending, never to all that ever were. 20,000 tasks
//! with a far `cancel_after` that finish at once, and 20,000 far-delayed
//! tasks that are cancelled, leave the manager holding next to nothing of
//! them before it closes. A counting global allocator (per binary, hence
//! this file) measures the live bytes; the tests take turns. Also: a close
//! never waits for user code on the timer thread.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{mpsc, Mutex};
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
/// What the manager may still hold of 20,000 settled timed tasks: the
/// timer sweeps once settled tasks are half its heap, and never below 64
/// events (with the registry's lazy removal, some tens of kilobytes);
/// before, 1.3 MB and 5.8 MB.
const ALLOWED: isize = 256 << 10;

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
            held < ALLOWED,
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
            held < ALLOWED,
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
        assert_eq!(timed.join(), Err(TaskError::Cancelled));
    });
}
