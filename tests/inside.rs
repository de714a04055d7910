//! Close, drain and the last drop called from inside one of the manager's
//! own tasks: none may deadlock.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::{hold_slot, spawn_sleepers, watchdog, Gate};
use taskwarden::TaskManager;

#[test]
fn close_from_inside_a_task_does_not_wait_for_itself() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(3));
        let done = spawn_sleepers(&manager, 4, Duration::from_millis(10));
        let m = manager.clone();
        let closer = manager
            .spawn(move || {
                let report = m.close();
                (report, taskwarden::current_task().unwrap())
            })
            .unwrap();
        let (report, me) = closer.join().unwrap();
        assert!(
            report.is_clean(),
            "others finished, and the caller is not abandoned: {report:?}"
        );
        assert!(!report.abandoned.contains(&me));
        assert_eq!(
            done.load(Ordering::SeqCst),
            4,
            "it waited for the other tasks"
        );
        assert!(manager.is_closed());
    });
}

#[test]
fn drain_from_inside_a_task_does_not_wait_for_itself() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let (m, d) = (manager.clone(), done.clone());
        let drainer = manager
            .spawn(move || {
                for _ in 0..5 {
                    let d = d.clone();
                    m.spawn(move || d.fetch_add(1, Ordering::SeqCst)).unwrap();
                }
                m.drain();
                d.load(Ordering::SeqCst)
            })
            .unwrap();
        assert_eq!(drainer.join(), Ok(5));
        assert!(manager.drain_timeout(common::LIMIT));
    });
}

#[test]
fn dropping_the_last_reference_inside_a_task_does_not_deadlock() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let (tx, rx) = mpsc::channel();
        let gate = Gate::new();
        let g = gate.clone();
        let m = manager.clone();
        manager
            .spawn(move || {
                g.wait();
                let closed_here = Arc::strong_count(&m) == 1;
                drop(m); // the last reference: Drop closes from inside
                tx.send(closed_here).unwrap();
            })
            .unwrap();
        drop(manager);
        gate.open();
        assert!(
            rx.recv_timeout(common::LIMIT).unwrap(),
            "the task held the last reference"
        );
    });
}

#[test]
fn close_from_inside_with_others_still_running_abandons_them_at_the_deadline() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let (release, stubborn) = hold_slot(&manager);
        let m = manager.clone();
        let closer = manager
            .spawn(move || m.close_timeout(Duration::from_millis(50)))
            .unwrap();
        let report = closer.join().unwrap();
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        release.open();
        stubborn.join().unwrap();
    });
}
