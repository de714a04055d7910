//! `taskwarden::lend_slot` (API.md part three): a wait on something outside
//! the manager lends the task's slot, then the task resumes at once.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{scaled, wait_for, watchdog, Concurrency, Gate, LIMIT};
use taskwarden::TaskManager;

#[test]
fn outside_a_task_it_just_runs() {
    assert_eq!(taskwarden::lend_slot(|| 7), 7);
}

#[test]
fn the_lent_slot_runs_another_task_and_the_task_stays_itself() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let (tx, rx) = mpsc::channel::<()>();
        let (inside_tx, inside) = mpsc::channel();
        let lender = manager
            .spawn(move || {
                let me = taskwarden::current_task();
                taskwarden::lend_slot(move || {
                    inside_tx.send(()).unwrap();
                    rx.recv_timeout(LIMIT).unwrap();
                    (me == taskwarden::current_task(), taskwarden::is_cancelled())
                })
            })
            .unwrap();
        inside.recv_timeout(LIMIT).unwrap();
        assert!(manager.running().is_empty(), "a lending task is parked");
        assert_eq!(manager.stats().running, 0);
        // The only slot is lent: another task runs meanwhile.
        let other = manager.spawn(|| "ran in the lent slot").unwrap();
        assert_eq!(other.join(), Ok("ran in the lent slot"));
        assert!(manager.stats().threads <= 2, "{:?}", manager.stats());
        tx.send(()).unwrap();
        assert_eq!(lender.join(), Ok((true, false)));
        assert!(manager.close().is_clean());
    });
}

/// The slot count stays balanced through waits nested in `lend_slot`, a
/// panic in `f`, and many rounds: afterwards a one-slot manager still runs
/// one task at a time.
#[test]
fn lending_leaves_the_limit_exact_afterwards() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let nested = manager
            .spawn(move || {
                taskwarden::lend_slot(|| {
                    let child = m.spawn(|| 5).unwrap();
                    child.join().unwrap() + taskwarden::lend_slot(|| 1)
                })
            })
            .unwrap();
        assert_eq!(nested.join(), Ok(6));
        let panicky = manager
            .spawn(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    taskwarden::lend_slot(|| panic!("inside lend_slot"))
                }))
                .is_err()
            })
            .unwrap();
        assert_eq!(panicky.join(), Ok(true));
        for _ in 0..scaled(200) {
            manager
                .spawn(|| taskwarden::lend_slot(|| ()))
                .unwrap()
                .join()
                .unwrap();
        }
        let at_once = Concurrency::default();
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let at_once = at_once.clone();
                manager
                    .spawn(move || {
                        let _in = at_once.enter();
                        thread::sleep(Duration::from_millis(1));
                    })
                    .unwrap()
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(
            at_once.max(),
            1,
            "the limit of 1 no longer holds after lending"
        );
        assert!(manager.close().is_clean());
    });
}

/// A task parked in `lend_slot` stays counted: a drain waits for it, a
/// close lists it as abandoned at its deadline, `close_now` flags it.
#[test]
fn drains_and_closes_count_a_lending_task() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let gate = Gate::new();
        let g = gate.clone();
        let lender = manager
            .spawn(move || {
                taskwarden::lend_slot(|| g.wait());
                taskwarden::is_cancelled()
            })
            .unwrap();
        let id = lender.id();
        // Parked, not merely not started yet (`running()` is empty then too).
        wait_for("the task to lend its slot", || {
            manager
                .tasks()
                .iter()
                .any(|task| task.id == id && task.parked)
        });
        assert!(manager.running().is_empty());
        assert!(
            !manager.drain_timeout(Duration::from_millis(30)),
            "the drain waits for it"
        );
        let report = manager.close_now(Duration::from_millis(30));
        assert_eq!(report.abandoned, vec![id], "{report:?}");
        gate.open();
        assert_eq!(lender.join(), Ok(true), "close_now flagged it");
    });
}
