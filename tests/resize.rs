//! `set_max_tasks` and `max_tasks`: raising starts queued work at once,
//! lowering stops no running task but starts none while the limit is
//! reached, and surplus threads retire.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{wait_for, watchdog, Concurrency, Gate};
use taskwarden::{TaskManager, TaskState};

#[test]
fn max_tasks_reports_the_limit_in_force() {
    watchdog(|| {
        let manager = TaskManager::builder().max_tasks(3).start().unwrap();
        assert_eq!(manager.max_tasks(), 3);
        manager.set_max_tasks(5);
        assert_eq!(manager.max_tasks(), 5);
        manager.set_max_tasks(1);
        assert_eq!(manager.max_tasks(), 1);
        assert_eq!(TaskManager::new(7).max_tasks(), 7);
    });
}

#[test]
fn raising_the_limit_lets_queued_work_start_at_once() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                manager.spawn(move || g.wait()).unwrap()
            })
            .collect();
        wait_for("one running", || manager.running().len() == 1);
        assert_eq!(manager.queued().len(), 2);
        manager.set_max_tasks(3);
        wait_for("all three running while the first still runs", || {
            manager.running().len() == 3
        });
        assert!(manager.queued().is_empty());
        assert!(manager.stats().threads >= 3, "threads started as needed");
        assert!(manager.stats().threads <= 3);
        gate.open();
        for handle in handles {
            handle.join().unwrap();
        }
    });
}

#[test]
fn lowering_the_limit_stops_no_running_task_and_starts_none_while_n_run() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let active = Arc::new(AtomicUsize::new(0));
        let gates: Vec<_> = (0..3).map(|_| Gate::new()).collect();
        let held: Vec<_> = gates
            .iter()
            .map(|g| {
                let (g, active) = (g.clone(), active.clone());
                manager
                    .spawn(move || {
                        active.fetch_add(1, Ordering::SeqCst);
                        g.wait();
                        let flagged = taskwarden::is_cancelled();
                        active.fetch_sub(1, Ordering::SeqCst);
                        flagged
                    })
                    .unwrap()
            })
            .collect();
        wait_for("three running", || manager.running().len() == 3);
        let seen_at_start = Arc::new(Mutex::new(Vec::new()));
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let (active, seen) = (active.clone(), seen_at_start.clone());
                manager
                    .spawn(move || {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        seen.lock().unwrap().push(now);
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                    .unwrap()
            })
            .collect();
        manager.set_max_tasks(1);
        assert_eq!(manager.max_tasks(), 1);
        assert_eq!(manager.running().len(), 3, "no running task is stopped");
        assert!(manager.stats().threads <= 3, "never above the larger limit");

        gates[0].open();
        let first = held.into_iter().collect::<Vec<_>>();
        let mut first = first.into_iter();
        assert_eq!(first.next().unwrap().join(), Ok(false), "never flagged");
        // Two still run, which is at least the new limit: nothing starts.
        for q in &queued {
            assert_eq!(manager.state(q.id()), Some(TaskState::Queued));
        }
        gates[1].open();
        assert_eq!(first.next().unwrap().join(), Ok(false));
        for q in &queued {
            assert_eq!(manager.state(q.id()), Some(TaskState::Queued));
        }
        assert!(manager.stats().threads <= 3);
        gates[2].open();
        assert_eq!(first.next().unwrap().join(), Ok(false));
        for q in queued {
            q.join().unwrap();
        }
        assert_eq!(
            *seen_at_start.lock().unwrap(),
            vec![1, 1],
            "queued tasks ran one at a time, each alone"
        );
        wait_for("surplus threads to retire", || manager.stats().threads <= 1);
    });
}

#[test]
fn idle_surplus_threads_are_woken_to_retire() {
    watchdog(|| {
        let stops = Arc::new(AtomicUsize::new(0));
        let sp = stops.clone();
        let manager = TaskManager::builder()
            .max_tasks(4)
            .on_thread_stop(move || {
                sp.fetch_add(1, Ordering::SeqCst);
            })
            .start()
            .unwrap();
        let gate = Gate::new();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = gate.clone();
                manager.spawn(move || g.wait()).unwrap()
            })
            .collect();
        wait_for("four running", || manager.running().len() == 4);
        gate.open();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(
            manager.stats().threads,
            4,
            "idle, but alive without keep_alive"
        );
        manager.set_max_tasks(1);
        wait_for("idle surplus threads to retire", || {
            manager.stats().threads <= 1
        });
        wait_for("their stop hooks", || stops.load(Ordering::SeqCst) >= 3);
        assert_eq!(
            manager.spawn(|| 5).unwrap().join(),
            Ok(5),
            "one thread still works"
        );
    });
}

#[test]
fn the_new_limit_holds_for_later_work() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        manager.set_max_tasks(2);
        let seen = Concurrency::default();
        let handles: Vec<_> = (0..40)
            .map(|_| {
                let seen = seen.clone();
                manager
                    .spawn(move || {
                        let _in = seen.enter();
                        std::thread::yield_now();
                    })
                    .unwrap()
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(seen.max() <= 2, "saw {} at once", seen.max());
        assert!(manager.stats().threads <= 2);

        manager.set_max_tasks(3);
        let gate = Gate::new();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                manager.spawn(move || g.wait()).unwrap()
            })
            .collect();
        wait_for("three at once after raising", || {
            manager.running().len() == 3
        });
        gate.open();
        for handle in handles {
            handle.join().unwrap();
        }
    });
}

#[test]
#[should_panic(expected = "max_tasks")]
fn set_max_tasks_zero_panics_naming_max_tasks() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        manager.set_max_tasks(0);
    });
}
