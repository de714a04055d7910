//! `TaskSet`: results in completion order, each exactly once; cancelled,
//! panicked and closed-over tasks; timeouts; drop cancels, `detach_all`
//! lets go; `IntoIterator`; a large set.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{hold_slot, wait_for, watchdog, Concurrency, Gate};
use taskwarden::{SpawnErrorKind, TaskError, TaskManager, TaskOptions};

/// Generous bound for "late": a loaded 2-core machine may deschedule us.
const SLACK: Duration = Duration::from_millis(500);

fn gates(n: usize) -> Vec<Gate> {
    (0..n).map(|_| Gate::new()).collect()
}

#[test]
fn join_next_follows_completion_order_not_spawn_order() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let mut set = manager.task_set::<usize>();
        let gates = gates(3);
        let mut ids = Vec::new();
        for (i, gate) in gates.iter().enumerate() {
            let gate = gate.clone();
            ids.push(
                set.spawn(move || {
                    gate.wait();
                    i
                })
                .unwrap(),
            );
        }
        assert_eq!(set.len(), 3);
        for i in [2, 0, 1] {
            gates[i].open();
            assert_eq!(set.join_next(), Some((ids[i], Ok(i))));
        }
        assert_eq!(set.join_next(), None);
        assert!(set.is_empty());
    });
}

#[test]
fn every_result_comes_back_exactly_once_then_none() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        let mut set = manager.task_set();
        let mut spawned = HashSet::new();
        for i in 0..50_u64 {
            let id = set.spawn(move || i * 2).unwrap();
            assert!(spawned.insert(id), "ids are unique");
        }
        assert_eq!(set.len(), 50);
        let mut seen = HashSet::new();
        let mut values = Vec::new();
        while let Some((id, result)) = set.join_next() {
            assert!(seen.insert(id), "{id} came back twice");
            values.push(result.unwrap());
            assert_eq!(set.len(), 50 - seen.len());
        }
        assert_eq!(seen, spawned);
        values.sort_unstable();
        assert_eq!(values, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        assert_eq!(set.join_next(), None, "None again once empty");
        assert_eq!(set.try_join_next(), None);
    });
}

#[test]
fn try_join_next_never_blocks() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let mut set = manager.task_set();
        let gate = Gate::new();
        let g = gate.clone();
        let id = set
            .spawn(move || {
                g.wait();
                'x'
            })
            .unwrap();
        assert_eq!(set.try_join_next(), None);
        assert!(!set.is_empty(), "still held, just not finished");
        gate.open();
        wait_for("the task to finish", || {
            manager.state(id) == Some(taskwarden::TaskState::Finished)
        });
        assert_eq!(set.try_join_next(), Some((id, Ok('x'))));
        assert!(set.is_empty());
    });
}

#[test]
fn a_task_cancelled_before_it_ran_comes_back_cancelled() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let mut set = manager.task_set();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let id = set.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
        assert!(manager.cancel(id));
        assert_eq!(set.join_next(), Some((id, Err(TaskError::Cancelled))));
        release.open();
        held.join().unwrap();
        manager.drain();
        assert!(!ran.load(Ordering::SeqCst), "a cancelled task never runs");
    });
}

#[test]
fn cancel_all_on_the_set_cancels_queued_and_flags_running_tasks() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set();
        let spinner = set
            .spawn(|| {
                wait_for("the cancel flag", taskwarden::is_cancelled);
                "stopped"
            })
            .unwrap();
        wait_for("the spinner running", || manager.running() == vec![spinner]);
        let queued = set.spawn(|| "never").unwrap();
        // A task outside the set is not touched.
        let outsider = manager.spawn(taskwarden::is_cancelled).unwrap();
        set.cancel_all();
        let mut results: Vec<_> = std::iter::from_fn(|| set.join_next()).collect();
        results.sort_by_key(|(id, _)| *id);
        assert_eq!(
            results,
            vec![
                (spinner, Ok("stopped")),
                (queued, Err(TaskError::Cancelled))
            ]
        );
        assert_eq!(outsider.join(), Ok(false), "the set cancels only its own");
    });
}

#[test]
fn a_panicked_task_comes_back_panicked_and_the_others_go_on() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let mut set = manager.task_set::<u8>();
        let bad = set.spawn(|| panic!("set boom")).unwrap();
        let good = set.spawn(|| 7).unwrap();
        let mut results: Vec<_> = std::iter::from_fn(|| set.join_next()).collect();
        results.sort_by_key(|(id, _)| *id);
        assert_eq!(
            results,
            vec![
                (bad, Err(TaskError::Panicked("set boom".into()))),
                (good, Ok(7))
            ]
        );
    });
}

#[test]
fn after_a_close_dropped_tasks_come_back_at_once_and_running_ones_are_waited_for() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set();
        let gate = Gate::new();
        let g = gate.clone();
        let running = set
            .spawn(move || {
                g.wait();
                0
            })
            .unwrap();
        wait_for("the first task running", || {
            manager.running() == vec![running]
        });
        let queued: Vec<_> = (1..=3).map(|i| set.spawn(move || i).unwrap()).collect();
        let report = manager.close_timeout(Duration::from_millis(50));
        assert_eq!(report.cancelled, queued);
        assert_eq!(report.abandoned, vec![running]);
        // The dropped ones are ready now, without waiting for the running one.
        let mut cancelled = Vec::new();
        for _ in 0..3 {
            let (id, result) = set
                .try_join_next()
                .expect("a dropped task is ready at once");
            assert_eq!(result, Err(TaskError::Cancelled));
            cancelled.push(id);
        }
        cancelled.sort_unstable();
        assert_eq!(cancelled, queued);
        assert_eq!(set.try_join_next(), None, "the abandoned task still runs");
        assert_eq!(set.len(), 1);
        gate.open();
        assert_eq!(set.join_next(), Some((running, Ok(0))));
        assert_eq!(set.join_next(), None);
    });
}

#[test]
fn spawning_into_a_set_follows_the_managers_rules() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(1)
            .queue_capacity(1)
            .start()
            .unwrap();
        let (release, held) = hold_slot(&manager);
        let mut set = manager.task_set();
        let first = set.try_spawn(|| 1).unwrap();
        let full = set.try_spawn(|| 2).unwrap_err();
        assert_eq!(full.kind(), SpawnErrorKind::Full);
        assert_eq!(full.into_inner()(), 2, "the closure is handed back");
        assert_eq!(set.len(), 1, "a rejected spawn is not held");
        release.open();
        held.join().unwrap();
        assert_eq!(set.join_next(), Some((first, Ok(1))));
        manager.close();
        let closed = set.spawn(|| 3).unwrap_err();
        assert!(closed.is_closed());
        assert_eq!(closed.into_inner()(), 3);
        let closed = set.spawn_with(TaskOptions::default(), || 4).unwrap_err();
        assert!(closed.is_closed());
        assert!(set.is_empty());
    });
}

#[test]
fn set_tasks_share_the_managers_limit() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let seen = Concurrency::default();
        let mut set = manager.task_set();
        for i in 0..20 {
            let seen = seen.clone();
            set.spawn(move || {
                let _in = seen.enter();
                std::thread::yield_now();
                i
            })
            .unwrap();
        }
        assert_eq!(set.into_iter().count(), 20);
        assert!(seen.max() <= 2, "saw {} at once", seen.max());
    });
}

#[test]
fn spawn_with_options_applies_them() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let mut set = manager.task_set();
        let delay = Duration::from_millis(50);
        let before = Instant::now();
        let id = set
            .spawn_with(TaskOptions::default().start_after(delay), Instant::now)
            .unwrap();
        let (got, started) = set.join_next().unwrap();
        assert_eq!(got, id);
        let waited = started.unwrap() - before;
        assert!(waited >= delay, "started early: {waited:?}");
        assert!(waited <= delay + SLACK, "started late: {waited:?}");
    });
}

#[test]
fn join_next_timeout_is_none_when_empty_and_when_time_runs_out() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set::<u8>();
        let started = Instant::now();
        assert_eq!(set.join_next_timeout(common::LIMIT), None);
        assert!(set.is_empty(), "None because the set is empty");
        assert!(
            started.elapsed() < common::LIMIT / 2,
            "an empty set does not wait"
        );

        let gate = Gate::new();
        let g = gate.clone();
        let id = set
            .spawn(move || {
                g.wait();
                5
            })
            .unwrap();
        let timeout = Duration::from_millis(30);
        let started = Instant::now();
        assert_eq!(set.join_next_timeout(timeout), None);
        let waited = started.elapsed();
        assert!(waited >= timeout, "returned early: {waited:?}");
        assert!(waited <= timeout + SLACK, "returned late: {waited:?}");
        assert!(!set.is_empty(), "None because time ran out");
        gate.open();
        assert_eq!(set.join_next_timeout(common::LIMIT), Some((id, Ok(5))));
        assert!(set.is_empty());
    });
}

#[test]
fn dropping_a_set_cancels_its_tasks_and_does_not_wait() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set();
        let gate = Gate::new();
        let (tx, rx) = mpsc::channel();
        let g = gate.clone();
        let running = set
            .spawn(move || {
                g.wait();
                tx.send(taskwarden::is_cancelled()).unwrap();
            })
            .unwrap();
        wait_for("the first task running", || {
            manager.running() == vec![running]
        });
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = ran.clone();
            set.spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        drop(set); // must return with the gate still shut
        gate.open();
        assert!(
            rx.recv_timeout(common::LIMIT).unwrap(),
            "the running task saw its cancel flag"
        );
        manager.drain();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "queued tasks never ran");
        assert_eq!(manager.stats().cancelled, 3);
    });
}

#[test]
fn a_dropped_task_handle_detaches_but_a_dropped_set_cancels() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let by_handle = Arc::new(AtomicBool::new(false));
        let b = by_handle.clone();
        drop(
            manager
                .spawn(move || b.store(true, Ordering::SeqCst))
                .unwrap(),
        );
        let by_set = Arc::new(AtomicBool::new(false));
        let mut set = manager.task_set();
        let b = by_set.clone();
        set.spawn(move || b.store(true, Ordering::SeqCst)).unwrap();
        drop(set);
        release.open();
        held.join().unwrap();
        manager.drain();
        assert!(
            by_handle.load(Ordering::SeqCst),
            "a dropped handle detaches"
        );
        assert!(!by_set.load(Ordering::SeqCst), "a dropped set cancels");
    });
}

#[test]
fn detach_all_lets_the_tasks_run_on_and_empties_the_set() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set();
        let gate = Gate::new();
        let done = Arc::new(AtomicUsize::new(0));
        let flagged = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (g, d, f) = (gate.clone(), done.clone(), flagged.clone());
            ids.push(
                set.spawn(move || {
                    g.wait();
                    if taskwarden::is_cancelled() {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                    d.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap(),
            );
        }
        set.detach_all();
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        assert_eq!(set.join_next(), None);
        drop(set); // holds nothing: cancels nothing
        gate.open();
        manager.wait_all(&ids);
        assert_eq!(done.load(Ordering::SeqCst), 3, "every task ran");
        assert_eq!(flagged.load(Ordering::SeqCst), 0, "none was cancelled");
    });
}

#[test]
fn into_iterator_yields_in_completion_order() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let mut set = manager.task_set();
        let gates = gates(3);
        let mut ids = Vec::new();
        for (i, gate) in gates.iter().enumerate() {
            let gate = gate.clone();
            ids.push(
                set.spawn(move || {
                    gate.wait();
                    i
                })
                .unwrap(),
            );
        }
        let order = [1, 2, 0];
        gates[order[0]].open();
        let mut got = Vec::new();
        for (id, result) in set {
            let i = result.unwrap();
            assert_eq!(id, ids[i]);
            got.push(i);
            if let Some(&next) = order.get(got.len()) {
                gates[next].open();
            }
        }
        assert_eq!(got, order);
    });
}

#[test]
fn a_set_of_ten_thousand_tasks_completes() {
    watchdog(|| {
        let n = common::scaled(10_000);
        let manager = TaskManager::new(4);
        let mut set = manager.task_set();
        for i in 0..n as u64 {
            set.spawn(move || i).unwrap();
        }
        assert_eq!(set.len(), n);
        let mut ids = HashSet::new();
        let mut sum = 0;
        while let Some((id, result)) = set.join_next() {
            assert!(ids.insert(id));
            sum += result.unwrap();
        }
        assert_eq!(ids.len(), n);
        assert_eq!(sum, (n as u64) * (n as u64 - 1) / 2);
    });
}

#[test]
fn a_set_is_debug_and_send() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set();
        set.spawn(|| 1_u32).unwrap();
        assert!(format!("{set:?}").contains("TaskSet"));
        let other = std::thread::spawn(move || set.join_next().map(|(_, r)| r));
        assert_eq!(other.join().unwrap(), Some(Ok(1)));
    });
}
