//! Memory given back: after 20,000 detached tasks that each carried 16 KiB
//! have run and the manager has idled, it holds less than 1 MiB of them.
//! A counting global allocator (per binary, hence this file) measures the
//! live bytes; the two tests take turns so their counts do not mix.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::watchdog;
use taskwarden::TaskManager;

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

/// The two tests run one at a time, so each sees only its own bytes.
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
