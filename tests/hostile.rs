//! The hostile battery: the manager against tasks, closures, payloads and
//! callers that do their worst. Each case runs under a watchdog.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{hold_slot, scaled, spawn_sleepers, wait_for, watchdog, Gate};
use taskwarden::{SpawnErrorKind, TaskError, TaskManager};

#[test]
fn close_from_inside_a_task_while_others_run() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(4));
        let release = Gate::new();
        let others: Vec<_> = (0..2)
            .map(|_| {
                let release = release.clone();
                manager.spawn(move || release.wait()).unwrap()
            })
            .collect();
        wait_for("two running", || manager.running().len() == 2);
        let m = manager.clone();
        let r = release.clone();
        let closer = manager
            .spawn(move || {
                // Let the others finish a little after the close begins.
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    r.open();
                });
                m.close_timeout(common::LIMIT)
            })
            .unwrap();
        let report = closer.join().unwrap();
        assert!(report.is_clean(), "{report:?}");
        for other in others {
            other.join().unwrap();
        }
    });
}

/// The task provably holds the last `Arc` (it sees a strong count of 1),
/// and work is provably still queued when it drops it: a blocker holds
/// the other slot until the manager's strong count has reached zero.
#[test]
fn the_last_reference_dropped_inside_a_task_with_work_queued() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let (hold, blocker) = hold_slot(&manager);
        let go = Gate::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (m, g) = (manager.clone(), go.clone());
        manager
            .spawn(move || {
                g.wait();
                tx.send(Arc::strong_count(&m)).unwrap();
                drop(m); // the last reference: Drop closes from in here
                tx.send(0).unwrap();
            })
            .unwrap();
        // 100 ms of queued work: still queued when the check below runs.
        let ran = spawn_sleepers(&manager, 20, Duration::from_millis(5));
        let weak = Arc::downgrade(&manager);
        drop(manager);
        drop(blocker); // detached: the close waits for it
        go.open();
        assert_eq!(
            rx.recv_timeout(common::LIMIT),
            Ok(1),
            "the task held the last reference"
        );
        wait_for("the drop begun", || weak.strong_count() == 0);
        assert!(ran.load(Ordering::SeqCst) < 20, "work was still queued");
        hold.open();
        assert_eq!(rx.recv_timeout(common::LIMIT), Ok(0), "the drop returned");
        wait_for("the queued work", || ran.load(Ordering::SeqCst) == 20);
    });
}

/// A value captured by a closure that, when dropped, calls back into the
/// manager: spawns on it and closes it.
struct CallsBack {
    manager: Arc<TaskManager>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Drop for CallsBack {
    fn drop(&mut self) {
        let spawned = match self.manager.spawn(|| ()) {
            Ok(_) => "spawn accepted".to_owned(),
            Err(error) => format!("spawn {:?}", error.kind()),
        };
        let report = self.manager.close();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{spawned}; close timed_out={}", report.timed_out));
    }
}

#[test]
fn closures_that_call_back_into_a_closing_manager_from_their_drop() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let (release, _held) = hold_slot(&manager);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let guard = CallsBack {
                    manager: manager.clone(),
                    seen: seen.clone(),
                };
                manager
                    .spawn(move || {
                        let _guard = &guard;
                    })
                    .unwrap()
            })
            .collect();
        let report = manager.close_timeout(Duration::from_millis(30));
        assert_eq!(report.cancelled.len(), 3);
        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "every dropped closure called back");
        for line in seen {
            assert_eq!(line, "spawn Closed; close timed_out=true");
        }
        release.open();
    });
}

#[test]
fn a_closure_that_closes_its_manager_from_its_drop_while_running() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let guard = CallsBack {
            manager: manager.clone(),
            seen: seen.clone(),
        };
        // The closure runs and is consumed: its guard drops inside the task,
        // closing the manager from within.
        let handle = manager
            .spawn(move || {
                let _guard = guard;
                7
            })
            .unwrap();
        assert_eq!(handle.join(), Ok(7));
        assert!(manager.is_closed());
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["spawn accepted; close timed_out=false"]
        );
    });
}

struct PanicsWhenDropped;

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("the payload's own drop panics");
    }
}

#[test]
fn a_panic_payload_whose_drop_panics() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn(|| std::panic::panic_any(PanicsWhenDropped))
            .unwrap();
        match handle.join() {
            Err(TaskError::Panicked(message)) => {
                assert!(message.contains("non-string"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
        assert_eq!(manager.stats().threads, 1, "the worker survived");
    });
}

#[test]
fn a_thousand_panics_then_normal_work() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        // Each panic prints a backtrace: slow under a sanitizer.
        let panics = scaled(1000);
        for n in 0..panics {
            manager
                .spawn_detached(move || panic!("panic number {n}"))
                .unwrap();
        }
        manager.drain();
        assert_eq!(manager.stats().panicked, panics as u64);
        assert!(manager.stats().threads <= 4);
        let sum: u64 = (0..100_u64)
            .map(|n| manager.spawn(move || n).unwrap())
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn cancel_racing_completion_ten_thousand_times() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let ran = Arc::new(AtomicUsize::new(0));
        let (mut ok, mut cancelled) = (0, 0);
        for _ in 0..scaled(10_000) {
            let r = ran.clone();
            let handle = Arc::new(
                manager
                    .spawn(move || r.fetch_add(1, Ordering::SeqCst))
                    .unwrap(),
            );
            let canceller = {
                let handle = handle.clone();
                std::thread::spawn(move || handle.cancel())
            };
            canceller.join().unwrap();
            match Arc::try_unwrap(handle).unwrap().join() {
                Ok(_) => ok += 1,
                Err(TaskError::Cancelled) => cancelled += 1,
                Err(other) => panic!("{other}"),
            }
        }
        manager.drain();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            ok,
            "ran exactly the tasks that joined Ok"
        );
        assert_eq!(ok + cancelled, scaled(10_000));
        let stats = manager.stats();
        assert_eq!(
            (stats.completed as usize, stats.cancelled as usize),
            (ok, cancelled)
        );
    });
}

#[test]
fn cancel_of_a_long_finished_id_after_a_million_spawns() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let first = manager.spawn_detached(|| ()).unwrap();
        let mut last = first;
        let spawns = scaled(1_000_000);
        for _ in 1..spawns {
            last = manager.spawn_detached(|| ()).unwrap();
        }
        manager.drain();
        assert_eq!(last.get() as usize, spawns);
        assert!(!manager.cancel(first));
        assert!(!manager.cancel(last));
        assert_eq!(manager.stats().completed as usize, spawns);
        assert_eq!(manager.stats().cancelled, 0);
    });
}

#[test]
fn close_with_zero_and_with_max_timeouts() {
    watchdog(|| {
        let quick = TaskManager::new(2);
        let (release, stuck) = hold_slot(&quick);
        let start = Instant::now();
        let report = quick.close_timeout(Duration::ZERO);
        assert!(start.elapsed() < Duration::from_millis(750));
        assert_eq!(report.abandoned, vec![stuck.id()]);
        release.open();
        stuck.join().unwrap();

        let patient = TaskManager::new(2);
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        patient
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                d.store(true, Ordering::SeqCst);
            })
            .unwrap();
        let report = patient.close_timeout(Duration::MAX);
        assert!(report.is_clean() && !report.timed_out);
        assert!(done.load(Ordering::SeqCst));
    });
}

#[test]
fn a_thread_that_cannot_start_is_an_error_and_leaks_nothing() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .stack_size(usize::MAX - 4096)
            .start()
            .unwrap();
        let error = manager.spawn(|| "kept").unwrap_err();
        assert_eq!(error.kind(), SpawnErrorKind::ThreadStart);
        assert!(error.to_string().contains("worker thread"), "{error}");
        assert_eq!(error.into_inner()(), "kept");
        let stats = manager.stats();
        assert_eq!((stats.threads, stats.running, stats.queued), (0, 0, 0));
        assert!(
            manager.drain_timeout(Duration::from_secs(1)),
            "nothing is left active"
        );
        assert!(manager.close().is_clean());
    });
}

/// A scoped result that spawns another scoped task when it is dropped.
struct SpawnsOnDrop<'scope, 'env> {
    scope: &'scope taskwarden::Scope<'scope, 'env>,
    ran: &'env AtomicUsize,
}

impl Drop for SpawnsOnDrop<'_, '_> {
    fn drop(&mut self) {
        let ran = self.ran;
        self.scope.spawn(move || ran.fetch_add(1, Ordering::SeqCst));
    }
}

#[test]
fn a_scoped_result_whose_drop_spawns_another_scoped_task() {
    watchdog(|| {
        let ran = AtomicUsize::new(0);
        TaskManager::scope(2, |s| {
            for _ in 0..5 {
                let ran = &ran;
                drop(s.spawn(move || SpawnsOnDrop { scope: s, ran }));
            }
        });
        assert_eq!(
            ran.load(Ordering::SeqCst),
            5,
            "the scope waited for the spawned-from-drop tasks"
        );
    });
}

#[test]
fn nested_spawns_with_every_slot_busy_then_drain() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let all_busy = Arc::new(Barrier::new(2));
        for _ in 0..2 {
            let (m, d, b) = (manager.clone(), done.clone(), all_busy.clone());
            manager
                .spawn(move || {
                    b.wait(); // both slots are taken now
                    for _ in 0..10 {
                        let (m2, d2) = (m.clone(), d.clone());
                        m.spawn(move || {
                            for _ in 0..3 {
                                let d3 = d2.clone();
                                m2.spawn(move || d3.fetch_add(1, Ordering::SeqCst)).unwrap();
                            }
                            d2.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                    }
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        manager.drain();
        assert_eq!(done.load(Ordering::SeqCst), 2 + 20 + 60);
    });
}

/// Chosen behaviour: a task that joins a child which has not started runs
/// the child inline on its own thread (see `TaskHandle::join`), so this
/// cannot hang even when the parents hold every slot.
#[test]
fn parents_joining_children_with_every_slot_busy() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let all_busy = Arc::new(Barrier::new(2));
        let parents: Vec<_> = (0..2)
            .map(|p| {
                let (m, b) = (manager.clone(), all_busy.clone());
                manager
                    .spawn(move || {
                        b.wait();
                        let children: Vec<_> = (0..5)
                            .map(|c| m.spawn(move || p * 10 + c).unwrap())
                            .collect();
                        children.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
                    })
                    .unwrap()
            })
            .collect();
        let sums: Vec<i32> = parents.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(sums, vec![10, 60]);
    });
}
