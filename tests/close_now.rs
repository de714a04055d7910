//! `close_now(grace)`: queued work cancelled at once, running work flagged,
//! `stopped` versus `abandoned`, escalating a close in progress, one report
//! for every call, and a call from inside a task.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Gate};
use taskwarden::{CloseReport, TaskError, TaskId, TaskManager};

/// Generous bound for "late": a loaded 2-core machine may deschedule us.
const SLACK: Duration = Duration::from_millis(500);

fn sorted(ids: &[TaskId]) -> Vec<TaskId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

fn assert_same_report(a: &CloseReport, b: &CloseReport) {
    assert_eq!(a.cancelled, b.cancelled, "{a:?} vs {b:?}");
    assert_eq!(a.abandoned, b.abandoned, "{a:?} vs {b:?}");
    assert_eq!(a.stopped, b.stopped, "{a:?} vs {b:?}");
    assert_eq!(a.timed_out, b.timed_out, "{a:?} vs {b:?}");
    assert_eq!(a.elapsed, b.elapsed, "{a:?} vs {b:?}");
}

fn assert_consistent(report: &CloseReport) {
    assert_eq!(
        report.timed_out,
        !report.abandoned.is_empty(),
        "timed_out is exactly `abandoned` not empty: {report:?}"
    );
}

/// A task that returns as soon as it sees its cancel flag.
fn cooperative() -> &'static str {
    wait_for("the cancel flag", taskwarden::is_cancelled);
    "stopped"
}

#[test]
fn queued_tasks_are_cancelled_at_once_and_running_ones_flagged() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let polite = manager.spawn(cooperative).unwrap();
        let gate = Gate::new();
        let (g, (tx, rx)) = (gate.clone(), mpsc::channel());
        let stubborn = manager
            .spawn(move || {
                g.wait(); // ignores the flag until released
                tx.send(taskwarden::is_cancelled()).unwrap();
                "late"
            })
            .unwrap();
        wait_for("both running", || manager.running().len() == 2);
        let ran = Arc::new(AtomicBool::new(false));
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let ran = ran.clone();
                manager
                    .spawn(move || {
                        ran.store(true, Ordering::SeqCst);
                        "never"
                    })
                    .unwrap()
            })
            .collect();
        let queued_ids: Vec<_> = queued.iter().map(|h| h.id()).collect();

        let grace = Duration::from_millis(150);
        let started = Instant::now();
        let report = manager.close_now(grace);
        let took = started.elapsed();

        assert_eq!(sorted(&report.cancelled), queued_ids);
        assert_eq!(report.stopped, vec![polite.id()]);
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert!(report.timed_out);
        assert_consistent(&report);
        assert!(
            took >= grace,
            "waited the grace for the stubborn task: {took:?}"
        );
        assert!(took <= grace + SLACK, "returned late: {took:?}");
        assert!(report.elapsed >= grace);
        assert!(manager.is_closed());

        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        assert_eq!(polite.join(), Ok("stopped"));
        gate.open();
        assert!(
            rx.recv_timeout(common::LIMIT).unwrap(),
            "the stubborn task was flagged"
        );
        assert_eq!(stubborn.join(), Ok("late"));
        assert!(!ran.load(Ordering::SeqCst), "cancelled tasks never ran");
    });
}

#[test]
fn tasks_that_stop_within_the_grace_are_stopped_and_it_returns_early() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let handles: Vec<_> = (0..3)
            .map(|_| manager.spawn(cooperative).unwrap())
            .collect();
        wait_for("all running", || manager.running().len() == 3);
        let queued = manager.spawn(|| "never").unwrap();
        let grace = Duration::from_secs(20);
        let started = Instant::now();
        let report = manager.close_now(grace);
        assert!(started.elapsed() < grace, "it waits only until they stop");
        let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
        assert_eq!(sorted(&report.stopped), ids);
        assert_eq!(report.cancelled, vec![queued.id()]);
        assert!(report.abandoned.is_empty());
        assert!(!report.timed_out);
        assert_consistent(&report);
        for handle in handles {
            assert_eq!(handle.join(), Ok("stopped"));
        }
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn close_now_on_an_idle_manager_is_clean_and_rejects_later_spawns() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        manager.spawn(|| ()).unwrap().join().unwrap();
        let report = manager.close_now(Duration::from_secs(1));
        assert!(report.is_clean(), "{report:?}");
        assert!(report.stopped.is_empty() && !report.timed_out);
        let error = manager.spawn(|| 1).unwrap_err();
        assert!(error.is_closed());
        assert_eq!(error.into_inner()(), 1);
        assert!(manager.try_spawn(|| ()).unwrap_err().is_closed());
        assert!(manager.spawn_detached(|| ()).unwrap_err().is_closed());
    });
}

#[test]
fn close_now_escalates_a_close_in_progress_and_both_get_one_report() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let polite = manager.spawn(cooperative).unwrap();
        wait_for("the slot taken", || manager.running().len() == 1);
        let queued = manager.spawn(|| "never").unwrap();
        let m = manager.clone();
        let closer = std::thread::spawn(move || {
            let report = m.close_timeout(Duration::from_secs(30));
            (report, Instant::now())
        });
        wait_for("the close to begin", || manager.is_closed());
        let grace = Duration::from_secs(20);
        let escalated = Instant::now();
        let report = manager.close_now(grace);
        let (first, first_returned) = closer.join().unwrap();
        assert!(
            first_returned - escalated < grace,
            "the first close ends once the flagged task stops"
        );
        assert_same_report(&first, &report);
        assert_eq!(
            report.cancelled,
            vec![queued.id()],
            "queued work cancelled at once"
        );
        assert_eq!(report.stopped, vec![polite.id()], "stopped is filled");
        assert!(report.abandoned.is_empty());
        assert!(!report.timed_out);
        assert_consistent(&report);
        assert_eq!(polite.join(), Ok("stopped"));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn an_escalated_close_ends_by_the_grace_with_stubborn_tasks_abandoned() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let gate = Gate::new();
        let g = gate.clone();
        let stubborn = manager
            .spawn(move || {
                g.wait();
                taskwarden::is_cancelled()
            })
            .unwrap();
        wait_for("the slot taken", || manager.running().len() == 1);
        let m = manager.clone();
        let closer = std::thread::spawn(move || {
            let report = m.close_timeout(Duration::from_secs(30));
            (report, Instant::now())
        });
        wait_for("the close to begin", || manager.is_closed());
        let grace = Duration::from_millis(100);
        let escalated = Instant::now();
        let report = manager.close_now(grace);
        let took = escalated.elapsed();
        let (first, first_returned) = closer.join().unwrap();
        assert!(took >= grace, "close_now returned early: {took:?}");
        assert!(took <= grace + SLACK, "close_now returned late: {took:?}");
        let first_took = first_returned - escalated;
        assert!(
            first_took <= grace + SLACK,
            "the first close ends by now + grace: {first_took:?}"
        );
        assert_same_report(&first, &report);
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert!(report.stopped.is_empty());
        assert!(report.timed_out);
        assert_consistent(&report);
        gate.open();
        assert_eq!(stubborn.join(), Ok(true), "the stubborn task was flagged");
    });
}

#[test]
fn every_later_call_of_either_kind_returns_the_first_report() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let polite = manager.spawn(cooperative).unwrap();
        wait_for("the slot taken", || manager.running().len() == 1);
        let queued = manager.spawn(|| ()).unwrap();
        let report = manager.close_now(Duration::from_secs(20));
        assert_eq!(report.stopped, vec![polite.id()]);
        assert_eq!(report.cancelled, vec![queued.id()]);
        assert_same_report(&manager.close(), &report);
        assert_same_report(&manager.close_timeout(Duration::from_millis(1)), &report);
        assert_same_report(&manager.close_now(Duration::from_millis(1)), &report);
        assert_same_report(&manager.close_now(Duration::from_secs(5)), &report);
    });
}

#[test]
fn a_later_close_now_after_a_plain_close_returns_the_plain_report() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        manager.spawn(|| ()).unwrap().join().unwrap();
        let report = manager.close();
        assert!(report.is_clean());
        let again = manager.close_now(Duration::from_secs(1));
        assert_same_report(&again, &report);
        assert!(again.stopped.is_empty());
    });
}

#[test]
fn close_and_close_timeout_alone_leave_stopped_empty() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let polite = manager.spawn(cooperative).unwrap();
        wait_for("the slot taken", || manager.running().len() == 1);
        let report = manager.close_timeout(Duration::from_millis(50));
        assert!(report.stopped.is_empty(), "{report:?}");
        assert_eq!(report.abandoned, vec![polite.id()]);
        assert!(report.timed_out);
        assert_eq!(polite.join(), Ok("stopped"));

        let manager = TaskManager::new(2);
        for _ in 0..4 {
            manager.spawn(|| ()).unwrap();
        }
        let report = manager.close();
        assert!(report.is_clean() && report.stopped.is_empty(), "{report:?}");
    });
}

#[test]
fn close_now_from_inside_a_task_flags_the_caller_but_neither_waits_for_nor_lists_it() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let other = manager.spawn(cooperative).unwrap();
        let go = Gate::new();
        let (m, g) = (manager.clone(), go.clone());
        let caller = manager
            .spawn(move || {
                g.wait();
                let report = m.close_now(Duration::from_secs(20));
                let me = taskwarden::current_task().unwrap();
                (report, me, taskwarden::is_cancelled())
            })
            .unwrap();
        wait_for("both running", || manager.running().len() == 2);
        let queued = manager.spawn(|| ()).unwrap();
        go.open();
        let (report, me, flagged) = caller.join().unwrap();
        assert!(flagged, "close_now flags its caller too");
        assert!(!report.stopped.contains(&me), "{report:?}");
        assert!(!report.abandoned.contains(&me), "{report:?}");
        assert!(!report.cancelled.contains(&me), "{report:?}");
        assert_eq!(report.stopped, vec![other.id()]);
        assert_eq!(report.cancelled, vec![queued.id()]);
        assert!(report.abandoned.is_empty());
        assert_consistent(&report);
        assert_eq!(other.join(), Ok("stopped"));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}
