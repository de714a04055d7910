//! `TaskManager::scope`: borrowing, waiting, panics in tasks and in the body.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{watchdog, Concurrency};
use taskwarden::{TaskError, TaskManager};

#[test]
fn tasks_borrow_from_the_stack() {
    watchdog(|| {
        let data: Vec<u64> = (1..=1000).collect();
        let mut partial = [0_u64; 10];
        TaskManager::scope(3, |s| {
            for (chunk, slot) in data.chunks(100).zip(partial.iter_mut()) {
                s.spawn(move || *slot = chunk.iter().sum());
            }
        });
        assert_eq!(partial.iter().sum::<u64>(), 500_500);
    });
}

#[test]
fn the_scope_waits_for_every_task_including_nested_ones() {
    watchdog(|| {
        let done = AtomicUsize::new(0);
        let seen = Concurrency::default();
        TaskManager::scope(2, |s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let _in = seen.enter();
                    std::thread::sleep(Duration::from_millis(5));
                    s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(5));
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(
            done.load(Ordering::SeqCst),
            8,
            "nested spawns are waited for"
        );
        assert!(seen.max() <= 2);
    });
}

#[test]
fn the_scope_returns_the_body_value_and_joins_results() {
    watchdog(|| {
        let words = ["alpha", "beta", "gamma"];
        let lengths = TaskManager::scope(2, |s| {
            let handles: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(lengths, [5, 4, 5]);
    });
}

#[test]
fn a_panicking_task_is_reported_and_the_scope_returns_normally() {
    watchdog(|| {
        let survivors = AtomicUsize::new(0);
        let outcome = TaskManager::scope(2, |s| {
            let bad = s.spawn(|| -> u8 { panic!("scoped boom") });
            for _ in 0..5 {
                s.spawn(|| survivors.fetch_add(1, Ordering::SeqCst));
            }
            bad.join()
        });
        assert_eq!(outcome, Err(TaskError::Panicked("scoped boom".into())));
        assert_eq!(survivors.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn a_panicking_body_waits_for_its_tasks_then_resumes_the_panic() {
    watchdog(|| {
        let finished = AtomicUsize::new(0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            TaskManager::scope(2, |s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(20));
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                panic!("body failed");
            })
        }));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"body failed"));
        assert_eq!(
            finished.load(Ordering::SeqCst),
            4,
            "tasks finished before the panic resumed"
        );
    });
}

#[test]
fn a_scoped_result_dropped_unjoined_is_dropped_before_the_scope_returns() {
    watchdog(|| {
        let log = Mutex::new(Vec::new());
        struct Noisy<'a>(&'a Mutex<Vec<&'static str>>);
        impl Drop for Noisy<'_> {
            fn drop(&mut self) {
                self.0.lock().unwrap().push("result dropped");
            }
        }
        TaskManager::scope(1, |s| {
            drop(s.spawn(|| Noisy(&log)));
        });
        log.lock().unwrap().push("scope returned");
        assert_eq!(*log.lock().unwrap(), ["result dropped", "scope returned"]);
    });
}

#[test]
fn scoped_handles_cancel_and_report() {
    watchdog(|| {
        TaskManager::scope(1, |s| {
            let spinner = s.spawn(|| {
                while !taskwarden::is_cancelled() {
                    std::thread::sleep(Duration::from_micros(100));
                }
                1
            });
            let queued = s.spawn(|| 2);
            queued.cancel();
            assert!(queued.is_finished());
            assert!(format!("{queued:?}").contains("ScopedHandle"));
            assert_eq!(queued.join(), Err(TaskError::Cancelled));
            spinner.cancel();
            let outcome = spinner.join();
            assert!(outcome == Ok(1) || outcome == Err(TaskError::Cancelled));
        });
    });
}

#[test]
#[should_panic(expected = "max_tasks")]
fn a_scope_of_zero_tasks_panics_naming_the_setting() {
    watchdog(|| TaskManager::scope(0, |_| ()));
}
