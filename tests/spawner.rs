//! `Spawner` and `current_spawner()`: spawning from anywhere without keeping
//! the manager open.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{wait_for, watchdog, Concurrency};
use taskwarden::{SpawnErrorKind, Spawner, TaskError, TaskManager, TaskOptions};

#[test]
fn a_spawner_spawns_on_its_manager_like_the_manager_itself() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        assert!(!spawner.is_closed());
        let handle = spawner.spawn(taskwarden::current_task).unwrap();
        let id = handle.id();
        assert_eq!(handle.join(), Ok(Some(id)));
        assert_eq!(spawner.try_spawn(|| 2).unwrap().join(), Ok(2));
        let detached = spawner.spawn_detached(|| ()).unwrap();
        assert!(detached > id, "ids come from the manager's sequence");
        manager.wait_all([detached]);
        assert_eq!(
            manager.state(detached),
            Some(taskwarden::TaskState::Finished)
        );
        let delayed = spawner
            .spawn_with(
                TaskOptions::default().start_after(Duration::from_millis(5)),
                || 4,
            )
            .unwrap();
        assert_eq!(delayed.join(), Ok(4));
        wait_for("four completions", || manager.stats().completed == 4);
        assert!(!format!("{spawner:?}").is_empty());
    });
}

#[test]
fn spawners_are_cloned_and_shared_across_threads_under_the_limit() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let seen = Concurrency::default();
        let done = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let spawner: Spawner = spawner.clone();
                let (seen, done) = (seen.clone(), done.clone());
                s.spawn(move || {
                    for _ in 0..25 {
                        let (seen, done) = (seen.clone(), done.clone());
                        spawner
                            .spawn_detached(move || {
                                let _in = seen.enter();
                                std::thread::yield_now();
                                done.fetch_add(1, Ordering::SeqCst);
                            })
                            .unwrap();
                    }
                });
            }
        });
        manager.drain();
        assert_eq!(done.load(Ordering::SeqCst), 100);
        assert!(seen.max() <= 2, "saw {} at once", seen.max());
    });
}

#[test]
fn a_spawner_does_not_keep_the_manager_open() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let other = spawner.clone();
        drop(manager); // closes, although two spawners exist
        assert!(spawner.is_closed() && other.is_closed());
        let error = spawner.spawn(|| "handed back").unwrap_err();
        assert!(error.is_closed());
        assert_eq!(error.kind(), SpawnErrorKind::Closed);
        assert_eq!(error.into_inner()(), "handed back");
        assert_eq!(spawner.try_spawn(|| 1).unwrap_err().into_inner()(), 1);
        assert_eq!(other.spawn_detached(|| 2).unwrap_err().into_inner()(), 2);
        let error = other.spawn_with(TaskOptions::default(), || 3).unwrap_err();
        assert!(error.is_closed());
        assert_eq!(error.into_inner()(), 3);
    });
}

#[test]
fn a_spawner_sees_an_explicit_close() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let spawner = manager.spawner();
        manager.close();
        assert!(spawner.is_closed());
        let error = spawner.spawn(|| 9).unwrap_err();
        assert!(error.is_closed() && !error.is_full());
        assert_eq!(error.into_inner()(), 9);
    });
}

#[test]
fn current_spawner_is_none_outside_a_task_and_some_inside() {
    watchdog(|| {
        assert!(taskwarden::current_spawner().is_none());
        let manager = TaskManager::new(1);
        let inside = manager
            .spawn(|| taskwarden::current_spawner().is_some())
            .unwrap();
        assert_eq!(inside.join(), Ok(true));
        assert!(taskwarden::current_spawner().is_none());
    });
}

#[test]
fn tasks_spawn_children_through_current_spawner() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let parent = manager
            .spawn(move || {
                let spawner = taskwarden::current_spawner().expect("inside a task");
                let handles: Vec<_> = (1..=3_u32)
                    .map(|i| spawner.spawn(move || i * 10).unwrap())
                    .collect();
                for _ in 0..5 {
                    let d = d.clone();
                    spawner
                        .spawn_detached(move || d.fetch_add(1, Ordering::SeqCst))
                        .unwrap();
                }
                handles
                    .into_iter()
                    .map(|h| h.join())
                    .collect::<Result<Vec<_>, TaskError>>()
            })
            .unwrap();
        assert_eq!(parent.join(), Ok(Ok(vec![10, 20, 30])));
        manager.drain();
        assert_eq!(done.load(Ordering::SeqCst), 5, "detached children ran");
        wait_for("nine completions", || manager.stats().completed == 9);
    });
}

#[test]
fn the_spawner_of_a_task_does_not_keep_its_manager_alive() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (tx, rx) = mpsc::channel();
        manager
            .spawn(move || tx.send(taskwarden::current_spawner().unwrap()).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let spawner = rx.recv().unwrap();
        assert!(!spawner.is_closed(), "the same manager, still open");
        drop(manager);
        assert!(spawner.is_closed());
        assert_eq!(spawner.spawn(|| 5).unwrap_err().into_inner()(), 5);
    });
}

#[test]
fn current_spawner_belongs_to_the_manager_running_the_task() {
    watchdog(|| {
        let first = TaskManager::new(1);
        let second = TaskManager::new(1);
        let spawner = second
            .spawn(|| taskwarden::current_spawner().unwrap())
            .unwrap()
            .join()
            .unwrap();
        first.close();
        assert!(!spawner.is_closed(), "the second manager is open");
        let child = spawner.spawn(|| ()).unwrap();
        let id = child.id();
        child.join().unwrap();
        assert_eq!(second.state(id), Some(taskwarden::TaskState::Finished));
        second.close();
        assert!(spawner.is_closed());
    });
}
