//! Spawning: the concurrency limit, lazy threads, names, results, ids,
//! panics, stats and `running()`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{scaled, wait_for, watchdog, Concurrency, Gate};
use taskwarden::{TaskError, TaskManager};

#[test]
fn limit_is_reached_and_never_exceeded() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        let seen = Concurrency::default();
        // Four tasks meet at a barrier: they can only all arrive if four run
        // at once, so the limit is reached (or the watchdog fires).
        let barrier = Arc::new(Barrier::new(4));
        let mut handles = Vec::new();
        for _ in 0..4 {
            let (barrier, seen) = (barrier.clone(), seen.clone());
            handles.push(
                manager
                    .spawn(move || {
                        let _in = seen.enter();
                        barrier.wait();
                    })
                    .unwrap(),
            );
        }
        for _ in 0..scaled(200) {
            let seen = seen.clone();
            handles.push(
                manager
                    .spawn(move || {
                        let _in = seen.enter();
                        std::thread::sleep(Duration::from_micros(200));
                    })
                    .unwrap(),
            );
        }
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(seen.max(), 4);
        assert!(manager.stats().threads <= 4);
    });
}

#[test]
fn threads_start_lazily() {
    watchdog(|| {
        let manager = TaskManager::new(8);
        assert_eq!(manager.stats().threads, 0, "no work, no thread");
        for n in 0..20 {
            assert_eq!(manager.spawn(move || n).unwrap().join(), Ok(n));
        }
        // One task at a time never needs a second thread.
        assert_eq!(manager.stats().threads, 1);
        let gate = Gate::new();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let gate = gate.clone();
                manager.spawn(move || gate.wait()).unwrap()
            })
            .collect();
        wait_for("three tasks running", || manager.running().len() == 3);
        assert_eq!(manager.stats().threads, 3);
        gate.open();
        for handle in handles {
            handle.join().unwrap();
        }
    });
}

#[test]
fn unused_manager_starts_no_thread() {
    watchdog(|| {
        let manager = TaskManager::new(32);
        assert_eq!(manager.stats().threads, 0, "no work, no thread");
        let report = manager.close();
        assert!(report.is_clean());
        assert_eq!(manager.stats().threads, 0);
    });
}

#[test]
fn threads_are_named_with_the_prefix() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(3)
            .thread_name("crawler")
            .start()
            .unwrap();
        let gate = Gate::new();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let gate = gate.clone();
                manager
                    .spawn(move || {
                        gate.wait();
                        std::thread::current().name().unwrap().to_owned()
                    })
                    .unwrap()
            })
            .collect();
        wait_for("three running", || manager.running().len() == 3);
        gate.open();
        let names: HashSet<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let expected: HashSet<String> = (0..3).map(|n| format!("crawler-{n}")).collect();
        assert_eq!(names, expected);
    });
}

#[test]
fn join_returns_each_value() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let handles: Vec<_> = (0..50_u64)
            .map(|n| manager.spawn(move || (n, format!("value {n}"))).unwrap())
            .collect();
        for (n, handle) in (0..50_u64).zip(handles) {
            assert_eq!(handle.join().unwrap(), (n, format!("value {n}")));
        }
    });
}

#[test]
fn ids_are_unique_increasing_and_start_at_one() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(4));
        let first = manager.spawn(|| ()).unwrap();
        assert_eq!(first.id().get(), 1);
        assert_eq!(first.id().to_string(), "task-1");
        let mut last = first.id();
        for _ in 0..scaled(100) {
            let id = manager.spawn(|| ()).unwrap().id();
            assert!(id > last, "{id} after {last}");
            last = id;
        }
        // From several threads at once: still unique.
        let spawners: Vec<_> = (0..4)
            .map(|_| {
                let manager = manager.clone();
                std::thread::spawn(move || {
                    (0..scaled(500))
                        .map(|_| manager.spawn(|| ()).unwrap().id())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for spawner in spawners {
            let ids = spawner.join().unwrap();
            assert!(
                ids.windows(2).all(|pair| pair[0] < pair[1]),
                "increasing per thread"
            );
            for id in ids {
                assert!(all.insert(id), "duplicate {id}");
            }
        }
        assert_eq!(all.len(), 4 * scaled(500));
    });
}

#[test]
fn panics_are_caught_reported_counted_and_survived() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let by_str = manager
            .spawn(|| -> u32 { panic!("plain message") })
            .unwrap();
        let by_string = manager
            .spawn(|| -> u32 { panic!("formatted {}", 7) })
            .unwrap();
        let by_value = manager
            .spawn(|| -> u32 { std::panic::panic_any(42_i64) })
            .unwrap();
        assert_eq!(
            by_str.join(),
            Err(TaskError::Panicked("plain message".into()))
        );
        assert_eq!(
            by_string.join(),
            Err(TaskError::Panicked("formatted 7".into()))
        );
        match by_value.join() {
            Err(TaskError::Panicked(message)) => {
                assert!(message.contains("non-string"), "{message}")
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        assert_eq!(manager.stats().panicked, 3);
        // The manager goes on.
        let ok: Vec<_> = (0..10).map(|n| manager.spawn(move || n).unwrap()).collect();
        assert_eq!(ok.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 45);
        assert_eq!(manager.stats().completed, 10);
    });
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

#[test]
fn panic_in_a_captured_value_drop_is_caught() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let bomb = PanicOnDrop("captured value exploded");
        let handle = manager
            .spawn(move || {
                let _keep = &bomb;
                5
            })
            .unwrap();
        // The closure's captures drop as it returns: inside the boundary.
        assert_eq!(
            handle.join(),
            Err(TaskError::Panicked("captured value exploded".into()))
        );
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

#[test]
fn panic_in_a_detached_result_drop_is_caught() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let handle = manager
            .spawn(move || {
                g.wait();
                PanicOnDrop("result exploded")
            })
            .unwrap();
        drop(handle); // detached: the worker drops the result
        gate.open();
        manager.drain();
        assert_eq!(manager.stats().panicked, 1);
        assert_eq!(manager.spawn(|| 2).unwrap().join(), Ok(2));
    });
}

#[test]
fn stats_and_running_describe_the_manager() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let gate = Gate::new();
        let running: Vec<_> = (0..2)
            .map(|_| {
                let gate = gate.clone();
                manager.spawn(move || gate.wait()).unwrap()
            })
            .collect();
        let queued: Vec<_> = (0..3).map(|_| manager.spawn(|| ()).unwrap()).collect();
        wait_for("two running", || manager.running().len() == 2);
        let ids: Vec<_> = running.iter().map(|h| h.id()).collect();
        assert_eq!(manager.running(), ids, "ascending ids of the running tasks");
        let stats = manager.stats();
        assert_eq!((stats.running, stats.queued, stats.threads), (2, 3, 2));
        queued[0].cancel();
        gate.open();
        for handle in running {
            handle.join().unwrap();
        }
        manager.drain();
        let stats = manager.stats();
        assert_eq!((stats.running, stats.queued), (0, 0));
        assert_eq!(
            (stats.completed, stats.cancelled, stats.panicked),
            (4, 1, 0)
        );
        assert!(manager.running().is_empty());
    });
}

#[test]
fn handles_report_finished_and_wait() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let handle = manager.spawn(move || g.wait()).unwrap();
        assert!(!handle.is_finished());
        assert!(!handle.wait_timeout(Duration::from_millis(20)));
        gate.open();
        assert!(handle.wait_timeout(common::LIMIT));
        assert!(handle.is_finished());
        let text = format!("{handle:?}");
        assert!(
            text.contains("TaskHandle") && text.contains("finished: true"),
            "{text}"
        );
    });
}

#[test]
fn detached_tasks_still_run() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let ran = ran.clone();
            drop(
                manager
                    .spawn(move || ran.fetch_add(1, Ordering::SeqCst))
                    .unwrap(),
            );
        }
        manager.drain();
        assert_eq!(ran.load(Ordering::SeqCst), 100);
    });
}

#[test]
fn tasks_may_spawn_on_their_own_manager() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let (m, d) = (manager.clone(), done.clone());
        manager
            .spawn(move || {
                for _ in 0..10 {
                    let d = d.clone();
                    m.spawn(move || d.fetch_add(1, Ordering::SeqCst)).unwrap();
                }
            })
            .unwrap();
        manager.drain();
        assert_eq!(done.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn a_parent_joining_its_child_with_every_slot_busy_does_not_hang() {
    watchdog(|| {
        // One slot: the parent holds it, so the child can only run inline.
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let child = m.spawn(taskwarden::current_task).unwrap();
                let child_id = child.id();
                let ran_as = child.join().unwrap();
                (child_id, ran_as)
            })
            .unwrap();
        let (child_id, ran_as) = parent.join().unwrap();
        assert_eq!(ran_as, Some(child_id), "the child sees its own id inline");
        assert_eq!(manager.stats().completed, 2);
    });
}

/// Also checks the record of the thread that ran a child inline: the
/// parent must read its own id and flag again once the child returned.
#[test]
fn outside_a_task_there_is_no_current_task() {
    watchdog(|| {
        assert_eq!(taskwarden::current_task(), None);
        assert!(!taskwarden::is_cancelled());
        // One slot, held by the parent: its child can only run inline.
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let (started, flagged) = (Gate::new(), Gate::new());
        let (s, f) = (started.clone(), flagged.clone());
        let parent = manager
            .spawn(move || {
                s.open();
                f.wait();
                let before = (taskwarden::current_task(), taskwarden::is_cancelled());
                let child = m
                    .spawn(|| (taskwarden::current_task(), taskwarden::is_cancelled()))
                    .unwrap();
                let child_id = child.id();
                let in_child = child.join().unwrap();
                let after = (taskwarden::current_task(), taskwarden::is_cancelled());
                (before, child_id, in_child, after)
            })
            .unwrap();
        started.wait();
        parent.cancel(); // the parent is flagged, its child is not
        flagged.open();
        let parent_id = parent.id();
        let (before, child_id, in_child, after) = parent.join().unwrap();
        assert_eq!(before, (Some(parent_id), true));
        assert_eq!(in_child, (Some(child_id), false), "the child's own record");
        assert_eq!(
            after,
            (Some(parent_id), true),
            "the parent's record restored"
        );
        assert_eq!(taskwarden::current_task(), None);
        assert!(!taskwarden::is_cancelled());
    });
}

/// API.md part two: a caller parked in `join` while it runs the child
/// inline counts toward neither `running()` nor `stats().running`.
#[test]
fn running_lists_the_inline_child_but_not_its_parked_parent() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let release = Gate::new();
        let r = release.clone();
        let (tx, child_running) = std::sync::mpsc::channel();
        let parent = manager
            .spawn(move || {
                let child = m
                    .spawn(move || {
                        tx.send(taskwarden::current_task().unwrap()).unwrap();
                        r.wait();
                    })
                    .unwrap();
                child.join().unwrap();
            })
            .unwrap();
        let child = child_running.recv_timeout(common::LIMIT).unwrap();
        assert_eq!(manager.running(), vec![child], "parent {}", parent.id());
        assert_eq!(manager.stats().running, 1);
        release.open();
        parent.join().unwrap();
    });
}
