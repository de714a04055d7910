//! Close: intake stops, one deadline, queued work dropped, running work
//! flagged, idempotence, Drop, and spawn racing close.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{hold_slot, spawn_sleepers, wait_for, watchdog, Concurrency, Gate};
use taskwarden::{SpawnErrorKind, TaskError, TaskManager};

/// Generous slack for "returns by the deadline": a loaded CI machine may
/// deschedule us, but a close that waits for its tasks would blow far past.
const SLACK: Duration = Duration::from_millis(750);

#[test]
fn spawn_after_close_hands_the_closure_back() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        assert!(!manager.is_closed());
        assert!(manager.close().is_clean());
        assert!(manager.is_closed());
        let message = String::from("not lost");
        let error = manager.spawn(move || message).unwrap_err();
        assert!(error.is_closed() && !error.is_full());
        assert_eq!(error.kind(), SpawnErrorKind::Closed);
        assert!(error.to_string().contains("closed"));
        assert!(format!("{error:?}").contains("Closed"));
        assert_eq!((error.into_inner())(), "not lost");
        let error = manager.try_spawn(|| 1).unwrap_err();
        assert!(error.is_closed());
    });
}

#[test]
fn close_waits_for_work_that_finishes_in_time() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let seen = Concurrency::default();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..30 {
            let (seen, done) = (seen.clone(), done.clone());
            manager
                .spawn(move || {
                    let _in = seen.enter();
                    std::thread::sleep(Duration::from_millis(2));
                    done.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        let report = manager.close_timeout(common::LIMIT);
        assert!(report.is_clean() && !report.timed_out, "{report:?}");
        assert_eq!(done.load(Ordering::SeqCst), 30, "everything ran");
        assert!(
            seen.max() <= 3,
            "the limit holds while closing: saw {}",
            seen.max()
        );
        assert_eq!(manager.stats().threads, 0, "idle threads are joined");
    });
}

#[test]
fn the_deadline_holds_against_a_task_that_ignores_cancellation() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let release = Gate::new();
        let saw_flag = Arc::new(AtomicBool::new(false));
        let (r, s) = (release.clone(), saw_flag.clone());
        let stubborn = manager
            .spawn(move || {
                r.wait(); // ignores cancellation entirely
                s.store(taskwarden::is_cancelled(), Ordering::SeqCst);
                "finished late"
            })
            .unwrap();
        wait_for("stubborn running", || manager.running().len() == 1);

        let timeout = Duration::from_millis(100);
        let start = Instant::now();
        let report = manager.close_timeout(timeout);
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "closed early: {elapsed:?}");
        assert!(elapsed < timeout + SLACK, "closed late: {elapsed:?}");
        assert!(report.timed_out);
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert!(report.cancelled.is_empty());
        assert!(!report.is_clean());
        assert!(report.elapsed >= timeout);

        // The abandoned task finishes on its own thread, flagged.
        assert_eq!(manager.running(), vec![stubborn.id()]);
        release.open();
        assert_eq!(stubborn.join(), Ok("finished late"));
        assert!(
            saw_flag.load(Ordering::SeqCst),
            "abandoned tasks are flagged"
        );
        wait_for("its thread to exit", || manager.stats().threads == 0);
    });
}

#[test]
fn queued_work_at_the_deadline_is_dropped_without_running() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, running) = hold_slot(&manager);
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let ran = ran.clone();
                manager
                    .spawn(move || ran.fetch_add(1, Ordering::SeqCst))
                    .unwrap()
            })
            .collect();
        let report = manager.close_timeout(Duration::from_millis(30));
        let queued_ids: Vec<_> = queued.iter().map(|h| h.id()).collect();
        assert_eq!(report.cancelled, queued_ids, "ascending, every queued task");
        assert_eq!(report.abandoned, vec![running.id()]);
        for handle in queued {
            assert!(handle.is_finished());
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        release.open();
        running.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "cancelled work never runs");
        assert_eq!(manager.stats().cancelled, 5);
    });
}

#[test]
fn close_is_idempotent() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, _held) = hold_slot(&manager);
        let first = manager.close_timeout(Duration::from_millis(10));
        release.open();
        let second = manager.close_timeout(common::LIMIT);
        let third = manager.close();
        assert_eq!(first, second);
        assert_eq!(first, third);
        assert!(first.timed_out);
    });
}

#[test]
fn concurrent_closes_wait_for_the_first_and_share_its_report() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let (release, _held) = hold_slot(&manager);
        let start = Arc::new(Barrier::new(5));
        let closers: Vec<_> = (0..4)
            .map(|_| {
                let (manager, start) = (manager.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    manager.close_timeout(Duration::from_millis(200))
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(Duration::from_millis(20));
        release.open();
        let reports: Vec<_> = closers.into_iter().map(|c| c.join().unwrap()).collect();
        assert!(
            reports.windows(2).all(|pair| pair[0] == pair[1]),
            "{reports:?}"
        );
        assert!(
            reports[0].is_clean(),
            "the task finished before the deadline"
        );
    });
}

#[test]
fn zero_timeout_closes_at_once_and_max_timeout_waits() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, running) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        let start = Instant::now();
        let report = manager.close_timeout(Duration::ZERO);
        assert!(start.elapsed() < SLACK);
        assert_eq!(report.abandoned, vec![running.id()]);
        assert_eq!(report.cancelled, vec![queued.id()]);
        release.open();

        let manager = TaskManager::new(2);
        let done = spawn_sleepers(&manager, 4, Duration::from_millis(20));
        assert!(manager.close_timeout(Duration::MAX).is_clean());
        assert_eq!(done.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn drop_closes_and_waits_for_the_work() {
    watchdog(|| {
        let done = {
            let manager = TaskManager::new(2);
            spawn_sleepers(&manager, 6, Duration::from_millis(10))
        };
        assert_eq!(done.load(Ordering::SeqCst), 6, "Drop waited for every task");
    });
}

#[test]
fn drop_uses_the_configured_deadline() {
    watchdog(|| {
        let release = Gate::new();
        let r = release.clone();
        let timeout = Duration::from_millis(80);
        let manager = TaskManager::builder()
            .close_timeout(timeout)
            .start()
            .unwrap();
        let handle = manager.spawn(move || r.wait()).unwrap();
        wait_for("running", || manager.running().len() == 1);
        let start = Instant::now();
        drop(manager);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= timeout && elapsed < timeout + SLACK,
            "{elapsed:?}"
        );
        release.open();
        handle.join().unwrap();
    });
}

/// Several threads spawn while another closes with a short deadline. Every
/// closure is accounted for exactly once: rejected and handed back, or
/// accepted and then either run or cancelled (never both, never lost).
#[test]
fn spawn_racing_close_loses_nothing() {
    watchdog(|| {
        for round in 0..20 {
            let manager = Arc::new(TaskManager::new(3));
            let ran = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(5));
            let spawners: Vec<_> = (0..4)
                .map(|_| {
                    let (manager, ran, start) = (manager.clone(), ran.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let (mut accepted, mut rejected) = (Vec::new(), 0);
                        for _ in 0..300 {
                            let ran = ran.clone();
                            match manager.spawn(move || {
                                ran.fetch_add(1, Ordering::SeqCst);
                            }) {
                                Ok(handle) => accepted.push(handle),
                                Err(error) => {
                                    assert!(error.is_closed());
                                    error.into_inner()(); // handed back: run it here
                                    rejected += 1;
                                }
                            }
                        }
                        (accepted, rejected)
                    })
                })
                .collect();
            start.wait();
            std::thread::sleep(Duration::from_micros(200 * (round % 5)));
            let report = manager.close_timeout(Duration::from_millis(5));
            let (mut ran_ok, mut cancelled, mut rejected) = (0, HashSet::new(), 0);
            for spawner in spawners {
                let (accepted, refused) = spawner.join().unwrap();
                rejected += refused;
                for handle in accepted {
                    let id = handle.id();
                    match handle.join() {
                        Ok(()) => ran_ok += 1,
                        Err(TaskError::Cancelled) => assert!(cancelled.insert(id)),
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            let report_cancelled: HashSet<_> = report.cancelled.iter().copied().collect();
            assert_eq!(
                cancelled, report_cancelled,
                "the report names exactly the cancelled tasks"
            );
            assert_eq!(
                ran.load(Ordering::SeqCst),
                ran_ok + rejected,
                "each closure ran at most once"
            );
            assert_eq!(ran_ok + cancelled.len() + rejected, 1200, "nothing lost");
        }
    });
}

#[test]
fn a_close_cancels_and_reports_detached_tasks() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let release = Gate::new();
        let (started, running) = std::sync::mpsc::channel();
        let r = release.clone();
        let stubborn = manager
            .spawn_detached(move || {
                started.send(()).unwrap();
                r.wait();
            })
            .unwrap();
        running.recv_timeout(common::LIMIT).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let ran = ran.clone();
                manager
                    .spawn_detached(move || ran.fetch_add(1, Ordering::SeqCst))
                    .unwrap()
            })
            .collect();
        let report = manager.close_timeout(Duration::from_millis(30));
        assert_eq!(report.cancelled, queued, "the queued detached tasks");
        assert_eq!(report.abandoned, vec![stubborn], "the running one");
        assert!(report.timed_out);
        release.open();
        wait_for("the stubborn task", || manager.stats().running == 0);
        assert_eq!(ran.load(Ordering::SeqCst), 0, "cancelled work never runs");
        assert_eq!(manager.stats().cancelled, 3);
    });
}

/// The text of a report. The duration's format is not pinned (it may
/// become a human one such as "2.00 s").
#[test]
fn a_close_report_displays_its_counts() {
    watchdog(|| {
        let clean = TaskManager::new(1).close();
        let text = clean.to_string();
        assert!(
            text.contains("0 cancelled") && text.contains("0 abandoned"),
            "{text}"
        );

        let manager = TaskManager::new(1);
        let (release, running) = hold_slot(&manager);
        let _queued = manager.spawn(|| ()).unwrap();
        let report = manager.close_timeout(Duration::from_millis(10));
        let text = report.to_string();
        assert!(
            text.contains("1 cancelled") && text.contains("1 abandoned"),
            "{text}"
        );
        release.open();
        running.join().unwrap();
    });
}
