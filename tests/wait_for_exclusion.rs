//! Drains and closes called from inside a task leave out the tasks that
//! wait for their caller (issue 22's first defect, and API.md part three:
//! a drain, close or close_now called from inside task T leaves out every
//! task parked in a wait on particular tasks that waits, directly or
//! through other parked tasks, for T), for joins, chains, task sets and
//! maps.

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{watchdog, LIMIT};
use taskwarden::TaskManager;

/// Defect 1: a drain from a child, while its parent is parked joining it, does not
/// wait for the parent (which waits for the drain's caller).
#[test]
fn a_drain_does_not_wait_for_the_task_that_joins_its_caller() {
    watchdog(|| {
        let m = Arc::new(TaskManager::new(2));
        let weak = Arc::downgrade(&m);
        let parent = m
            .spawn(move || {
                let inner = weak.clone();
                let child = taskwarden::current_spawner()
                    .unwrap()
                    .spawn(move || inner.upgrade().unwrap().drain_timeout(LIMIT))
                    .unwrap();
                // The child starts on the other worker.
                thread::sleep(Duration::from_millis(20));
                child.join()
            })
            .unwrap();
        assert_eq!(
            parent.join(),
            Ok(Ok(true)),
            "the child's drain waited for its own waiter"
        );
    });
}

/// The same through a chain: a grandparent joins a parent that joins a
/// child that closes. Neither the parent nor the grandparent is waited for
/// or listed.
#[test]
fn a_close_does_not_wait_for_a_chain_that_waits_for_its_caller() {
    watchdog(|| {
        let m = Arc::new(TaskManager::new(3));
        let weak = Arc::downgrade(&m);
        let (ids_tx, ids_rx) = mpsc::channel();
        let grandparent = m
            .spawn(move || {
                let spawner = taskwarden::current_spawner().unwrap();
                let inner = weak.clone();
                let ids_tx = ids_tx.clone();
                let parent = spawner
                    .spawn(move || {
                        let spawner = taskwarden::current_spawner().unwrap();
                        let child = spawner
                            .spawn(move || {
                                thread::sleep(Duration::from_millis(30));
                                let started = Instant::now();
                                let report = inner
                                    .upgrade()
                                    .unwrap()
                                    .close_timeout(Duration::from_secs(20));
                                (report, started.elapsed())
                            })
                            .unwrap();
                        ids_tx.send(taskwarden::current_task().unwrap()).unwrap();
                        child.join()
                    })
                    .unwrap();
                parent.join()
            })
            .unwrap();
        let parent_id = ids_rx.recv_timeout(LIMIT).unwrap();
        let (report, took) = grandparent.join().unwrap().unwrap().unwrap();
        assert!(
            took < Duration::from_secs(10),
            "the close waited for its waiters: {took:?}"
        );
        assert!(!report.abandoned.contains(&parent_id), "{report:?}");
        assert!(report.is_clean(), "{report:?}");
    });
}

/// A task set's owner parked in `join_next`, and a map's caller parked in
/// `next`, both wait for the task that drains: neither is waited for.
#[test]
fn a_drain_does_not_wait_for_a_set_or_a_map_waiting_for_its_caller() {
    watchdog(|| {
        let m = Arc::new(TaskManager::new(3));
        let weak = Arc::downgrade(&m);
        let through_set = m
            .spawn(move || {
                let inner = weak.clone();
                let manager = inner.upgrade().unwrap();
                let mut set = manager.task_set();
                drop(manager);
                set.spawn(move || {
                    thread::sleep(Duration::from_millis(50));
                    inner.upgrade().unwrap().drain_timeout(LIMIT)
                })
                .unwrap();
                // The member starts on another worker, not inline here.
                thread::sleep(Duration::from_millis(20));
                set.join_next().map(|(_, result)| result)
            })
            .unwrap();
        assert_eq!(through_set.join(), Ok(Some(Ok(true))));

        let weak = Arc::downgrade(&m);
        let through_map = m
            .spawn(move || {
                let manager = weak.upgrade().unwrap();
                let inner = weak.clone();
                let items = manager.map([50_u64], move |ms| {
                    thread::sleep(Duration::from_millis(ms));
                    inner.upgrade().unwrap().drain_timeout(LIMIT)
                });
                // The item starts on another worker, not inline here.
                thread::sleep(Duration::from_millis(20));
                items.collect::<Vec<_>>()
            })
            .unwrap();
        assert_eq!(through_map.join(), Ok(vec![Ok(true)]));
    });
}

/// The chain again, with the parent run inline on the grandparent's thread
/// (one slot: the grandparent's join hands it its own slot): the
/// grandparent is parked below the parent, not in a wait of its own that
/// anyone sees, and still waits for the child's drain. It is left out too.
#[test]
fn a_drain_does_not_wait_for_a_task_parked_below_its_waiter() {
    watchdog(|| {
        let m = Arc::new(TaskManager::new(1));
        let weak = Arc::downgrade(&m);
        let grandparent = m
            .spawn(move || {
                let spawner = taskwarden::current_spawner().unwrap();
                let inner = weak.clone();
                let parent = spawner
                    .spawn(move || {
                        let spawner = taskwarden::current_spawner().unwrap();
                        let (started_tx, started) = mpsc::channel();
                        let child = spawner
                            .spawn(move || {
                                started_tx.send(()).unwrap();
                                thread::sleep(Duration::from_millis(30));
                                inner.upgrade().unwrap().drain_timeout(LIMIT)
                            })
                            .unwrap();
                        // Lend the only slot until the child runs elsewhere.
                        taskwarden::lend_slot(|| started.recv_timeout(LIMIT).unwrap());
                        child.join()
                    })
                    .unwrap();
                parent.join()
            })
            .unwrap();
        assert_eq!(
            grandparent.join(),
            Ok(Ok(Ok(true))),
            "the child's drain waited for the task parked below its waiter"
        );
    });
}
