//! `manager.scoped`: a scope on a configured manager's own threads, limit
//! and names; waiting, borrowing, panics, a close while the scope is open;
//! `Scope::map` and `map_unordered` over borrowed items.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{wait_for, watchdog, Concurrency, Gate};
use taskwarden::{TaskError, TaskManager, TaskState};

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_string()
}

#[test]
fn scoped_tasks_run_on_the_managers_own_threads() {
    watchdog(|| {
        let starts = Arc::new(AtomicUsize::new(0));
        let st = starts.clone();
        let manager = TaskManager::builder()
            .max_tasks(2)
            .thread_name("mine")
            .on_thread_start(move || {
                st.fetch_add(1, Ordering::SeqCst);
            })
            .start()
            .unwrap();
        let names = manager.scoped(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(thread_name)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(names.len(), 4);
        for name in &names {
            assert!(name.starts_with("mine-"), "{name}");
        }
        let threads = starts.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&threads),
            "the manager's hooks ran: {threads}"
        );
        assert!(manager
            .spawn(thread_name)
            .unwrap()
            .join()
            .unwrap()
            .starts_with("mine-"));
    });
}

#[test]
fn scoped_tasks_share_the_limit_and_do_not_wait_for_other_work() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let seen = Concurrency::default();
        let outside = seen.clone();
        let gate = Gate::new();
        let g = gate.clone();
        let other = manager
            .spawn(move || {
                let _in = outside.enter();
                g.wait();
            })
            .unwrap();
        wait_for("the other task running", || manager.running().len() == 1);
        let done = AtomicUsize::new(0);
        manager.scoped(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let _in = seen.enter();
                    thread::yield_now();
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        // The other task is still held: the scope waited for its own only.
        assert_eq!(done.load(Ordering::SeqCst), 6);
        assert!(!other.is_finished());
        assert_eq!(seen.max(), 2, "one slot held, one for the scope");
        gate.open();
        other.join().unwrap();
    });
}

#[test]
fn scoped_returns_after_every_task_including_nested_ones_and_borrows() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let data: Vec<u64> = (1..=1000).collect();
        let mut partial = [0_u64; 10];
        let nested = AtomicUsize::new(0);
        let value = manager.scoped(|s| {
            for (chunk, slot) in data.chunks(100).zip(partial.iter_mut()) {
                s.spawn(|| {
                    s.spawn(|| nested.fetch_add(1, Ordering::SeqCst));
                    *slot = chunk.iter().sum();
                });
            }
            "body value"
        });
        assert_eq!(value, "body value");
        assert_eq!(partial.iter().sum::<u64>(), 500_500);
        assert_eq!(nested.load(Ordering::SeqCst), 10);
        // The manager stays open and usable.
        assert!(!manager.is_closed());
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

#[test]
fn a_panicking_body_waits_for_its_tasks_then_resumes_the_panic() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let finished = AtomicUsize::new(0);
        let gate = Gate::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            manager.scoped(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        gate.wait();
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
                let g = gate.clone();
                // Opened from another thread, in no order with the panic.
                thread::spawn(move || g.open());
                panic!("body failed");
            })
        }));
        let payload = result.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"body failed"));
        assert_eq!(finished.load(Ordering::SeqCst), 3, "tasks finished first");
        assert!(!manager.is_closed());
    });
}

#[test]
fn a_close_while_the_scope_is_open_cancels_queued_tasks_and_the_scope_waits_for_running_ones() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let finished = AtomicBool::new(false);
        let (body_done, body_done_rx) = mpsc::channel::<()>();
        let g = gate.clone();
        let opener = thread::spawn(move || {
            body_done_rx.recv().unwrap();
            g.open();
        });
        let ran = AtomicBool::new(false);
        manager.scoped(|s| {
            let running = s.spawn(|| {
                gate.wait();
                finished.store(true, Ordering::SeqCst);
            });
            wait_for("the scoped task running", || {
                manager.running() == vec![running.id()]
            });
            let queued = s.spawn(|| ran.store(true, Ordering::SeqCst));
            let report = manager.close_timeout(Duration::from_millis(50));
            assert_eq!(report.cancelled, vec![queued.id()]);
            assert!(queued.is_finished());
            assert_eq!(queued.join(), Err(TaskError::Cancelled));
            assert!(!running.is_finished());
            // Let the running task finish only after the body returned.
            body_done.send(()).unwrap();
        });
        assert!(
            finished.load(Ordering::SeqCst),
            "the scope waited for its running task"
        );
        assert!(!ran.load(Ordering::SeqCst));
        opener.join().unwrap();
    });
}

#[test]
fn spawning_in_a_scope_on_a_closed_manager_gives_a_cancelled_handle() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        manager.close();
        let ran = AtomicBool::new(false);
        manager.scoped(|s| {
            let handle = s.spawn(|| ran.store(true, Ordering::SeqCst));
            let id = handle.id();
            assert_eq!(
                manager.state(id),
                Some(TaskState::Finished),
                "it used up an id"
            );
            assert!(handle.is_finished());
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        });
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn scope_map_takes_borrowed_items_and_a_borrowing_function() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let words: Vec<String> = ["alpha", "beta", "gamma", "pi"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let offset = 100;
        let prefix = String::from("x-");
        let (lengths, mut tagged) = manager.scoped(|s| {
            let lengths: Vec<_> = s.map(words.iter(), |w| w.len() + offset).collect();
            let tagged: Vec<_> = s
                .map_unordered(&words, |w: &String| format!("{prefix}{w}"))
                .collect();
            (lengths, tagged)
        });
        assert_eq!(lengths, vec![Ok(105), Ok(104), Ok(105), Ok(102)]);
        tagged.sort_by_key(|(i, _)| *i);
        let expected: Vec<_> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (i, Ok(format!("x-{w}"))))
            .collect();
        assert_eq!(tagged, expected);

        // The same on a plain `TaskManager::scope`.
        let total: usize = TaskManager::scope(2, |s| {
            s.map(&words, |w: &String| w.len() * offset)
                .map(Result::unwrap)
                .sum()
        });
        assert_eq!(total, 1600);
    });
}

#[test]
fn scope_map_keeps_order_bounds_the_window_and_isolates_panics() {
    watchdog(|| {
        let max = 2;
        let manager = TaskManager::new(max);
        let pulled = AtomicUsize::new(0);
        let items: Vec<u32> = (0..30).collect();
        manager.scoped(|s| {
            let input = items.iter().inspect(|_| {
                pulled.fetch_add(1, Ordering::SeqCst);
            });
            let mut results = s.map(input, |x: &u32| {
                if *x == 5 {
                    panic!("item {x}");
                }
                *x * 2
            });
            assert!(
                pulled.load(Ordering::SeqCst) > 0,
                "the first window is submitted"
            );
            let mut yielded = 0;
            for result in results.by_ref() {
                if yielded == 5 {
                    assert_eq!(result, Err(TaskError::Panicked("item 5".into())));
                } else {
                    assert_eq!(result, Ok(yielded * 2));
                }
                yielded += 1;
                let in_flight = pulled.load(Ordering::SeqCst) - yielded as usize;
                assert!(in_flight <= 2 * max, "{in_flight} in flight");
            }
            assert_eq!(yielded, 30);
        });
    });
}
