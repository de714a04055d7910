//! Asking about a task: `state`, `queued`, `wait_all`, `wait_all_timeout`,
//! `cancel_all`'s ids, and a cancel that takes effect before it returns.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{hold_slot, wait_for, watchdog, Gate};
use taskwarden::{TaskError, TaskId, TaskManager, TaskState};

/// Generous bound for "late": a loaded 2-core machine may deschedule us.
const SLACK: Duration = Duration::from_millis(500);

/// The id numbered `n`, taken from a scratch manager (ids start at 1).
fn task_id(n: u64) -> TaskId {
    let scratch = TaskManager::new(1);
    loop {
        let id = scratch.spawn_detached(|| ()).unwrap();
        if id.get() == n {
            return id;
        }
        assert!(id.get() < n, "the scratch manager skipped id {n}");
    }
}

/// Records the thread that drops it.
struct DropProbe(Arc<Mutex<Option<ThreadId>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(thread::current().id());
    }
}

#[test]
fn state_follows_a_task_from_queued_to_running_to_finished() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let first = manager.spawn(move || g.wait()).unwrap();
        wait_for("the first task running", || manager.running().len() == 1);
        let second = manager.spawn(|| ()).unwrap();
        assert_eq!(manager.state(first.id()), Some(TaskState::Running));
        assert_eq!(manager.state(second.id()), Some(TaskState::Queued));
        gate.open();
        let (a, b) = (first.id(), second.id());
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(manager.state(a), Some(TaskState::Finished));
        assert_eq!(manager.state(b), Some(TaskState::Finished));
        let state = manager.state(a).unwrap();
        let copy = state;
        assert_eq!(format!("{copy:?}"), "Finished");
    });
}

#[test]
fn panicked_and_cancelled_tasks_read_finished() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let bad = manager.spawn(|| panic!("state boom")).unwrap();
        let id = bad.id();
        assert_eq!(bad.join(), Err(TaskError::Panicked("state boom".into())));
        assert_eq!(manager.state(id), Some(TaskState::Finished));
        manager.close();
        assert_eq!(
            manager.state(id),
            Some(TaskState::Finished),
            "also after close"
        );
    });
}

#[test]
fn state_is_none_only_above_every_used_id() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        // Ids come only from their manager (part three): an id "above every
        // id used" can only be another manager's, and reads None too.
        assert_eq!(
            manager.state(task_id(1)),
            None,
            "a fresh manager used no id"
        );
        let ids: Vec<_> = (0..3)
            .map(|_| {
                let handle = manager.spawn(|| ()).unwrap();
                let id = handle.id();
                handle.join().unwrap();
                id
            })
            .collect();
        for id in &ids {
            assert_eq!(manager.state(*id), Some(TaskState::Finished));
        }
        assert_eq!(manager.state(task_id(4)), None);
        assert_eq!(manager.state(task_id(1_000)), None);
    });
}

#[test]
fn a_rejected_spawns_id_reads_finished() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(1)
            .queue_capacity(1)
            .start()
            .unwrap();
        let (release, held) = hold_slot(&manager);
        let queued = manager.try_spawn(|| ()).unwrap();
        assert!(manager.try_spawn(|| ()).unwrap_err().is_full());
        queued.cancel();
        let next = manager.try_spawn(|| ()).unwrap();
        for n in queued.id().get() + 1..next.id().get() {
            assert_eq!(
                manager.state(task_id(n)),
                Some(TaskState::Finished),
                "the id used up by a rejected spawn"
            );
        }
        release.open();
        held.join().unwrap();
        let last = next.id().get();
        next.join().unwrap();
        manager.close();
        assert!(manager.spawn(|| ()).is_err());
        assert!(matches!(
            manager.state(task_id(last + 1)),
            None | Some(TaskState::Finished)
        ));
    });
}

#[test]
fn queued_lists_the_queued_ids_ascending() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        assert!(manager.queued().is_empty());
        let (release, held) = hold_slot(&manager);
        let ids: Vec<_> = (0..4)
            .map(|_| manager.spawn_detached(|| ()).unwrap())
            .collect();
        assert_eq!(manager.queued(), ids);
        assert!(
            !manager.queued().contains(&held.id()),
            "running is not queued"
        );
        assert_eq!(manager.running(), vec![held.id()]);
        release.open();
        manager.drain();
        assert!(manager.queued().is_empty());
    });
}

#[test]
fn cancelling_a_queued_task_takes_effect_before_cancel_returns() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let dropped_on = Arc::new(Mutex::new(None));
        let probe = DropProbe(dropped_on.clone());
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let by_manager = manager
            .spawn(move || {
                let _keep = &probe;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        let by_handle = manager.spawn(|| 2).unwrap();
        let (a, b) = (by_manager.id(), by_handle.id());
        assert_eq!(manager.queued(), vec![a, b]);

        assert!(manager.cancel(a));
        // With the slot still held: no worker has reached the task.
        assert_eq!(manager.queued(), vec![b]);
        assert_eq!(manager.state(a), Some(TaskState::Finished));
        assert!(by_manager.is_finished());
        assert_eq!(
            *dropped_on.lock().unwrap(),
            Some(thread::current().id()),
            "the closure is dropped on the cancelling thread"
        );
        assert_eq!(by_manager.join(), Err(TaskError::Cancelled));

        by_handle.cancel();
        assert!(manager.queued().is_empty());
        assert_eq!(manager.state(b), Some(TaskState::Finished));
        assert_eq!(by_handle.join(), Err(TaskError::Cancelled));
        assert!(!manager.cancel(b), "already finished");

        release.open();
        held.join().unwrap();
        manager.drain();
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn cancel_all_returns_the_ids_it_reached_ascending() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        assert!(manager.cancel_all().is_empty(), "nothing to reach");
        let done = manager.spawn(|| ()).unwrap();
        let done_id = done.id();
        done.join().unwrap();
        let running = manager
            .spawn(|| {
                wait_for("the cancel flag", taskwarden::is_cancelled);
                "flagged"
            })
            .unwrap();
        wait_for("the slot taken", || manager.running() == vec![running.id()]);
        let queued: Vec<_> = (0..3).map(|i| manager.spawn(move || i).unwrap()).collect();
        let mut expected = vec![running.id()];
        expected.extend(queued.iter().map(|h| h.id()));
        let reached = manager.cancel_all();
        assert_eq!(reached, expected);
        assert!(
            !reached.contains(&done_id),
            "a finished task is not reached"
        );
        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        assert_eq!(running.join(), Ok("flagged"));
        assert!(!manager.is_closed(), "cancel_all does not close");
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

#[test]
fn wait_all_waits_for_every_listed_task_detached_ones_too() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(3));
        let gates: Vec<_> = (0..3).map(|_| Gate::new()).collect();
        let ids: Vec<TaskId> = gates
            .iter()
            .map(|g| {
                let g = g.clone();
                manager.spawn_detached(move || g.wait()).unwrap()
            })
            .collect();
        let returned = Arc::new(AtomicBool::new(false));
        let (m, r, waited) = (manager.clone(), returned.clone(), ids.clone());
        let waiter = thread::spawn(move || {
            m.wait_all(waited); // by value
            r.store(true, Ordering::SeqCst);
        });
        gates[0].open();
        gates[1].open();
        assert!(!manager.wait_all_timeout(&ids, Duration::from_millis(20)));
        assert!(!returned.load(Ordering::SeqCst), "one task is still held");
        gates[2].open();
        waiter.join().unwrap();
        assert!(returned.load(Ordering::SeqCst));
        manager.wait_all(&ids); // by reference, already finished
        manager.wait_all([ids[0]]);
        manager.wait_all(Vec::<TaskId>::new());
        for id in &ids {
            assert_eq!(manager.state(*id), Some(TaskState::Finished));
        }
    });
}

#[test]
fn wait_all_timeout_is_false_at_the_timeout_and_true_once_all_finished() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let gate = Gate::new();
        let g = gate.clone();
        let held = manager.spawn_detached(move || g.wait()).unwrap();
        let quick = manager.spawn(|| ()).unwrap();
        let ids = [held, quick.id()];
        let timeout = Duration::from_millis(40);
        let started = Instant::now();
        assert!(!manager.wait_all_timeout(ids, timeout));
        let waited = started.elapsed();
        assert!(waited >= timeout, "returned early: {waited:?}");
        assert!(waited <= timeout + SLACK, "returned late: {waited:?}");
        gate.open();
        assert!(manager.wait_all_timeout(ids, common::LIMIT));
        assert!(
            manager.wait_all_timeout(ids.iter(), Duration::ZERO),
            "already finished"
        );
        assert!(manager.wait_all_timeout(Vec::<TaskId>::new(), Duration::ZERO));
    });
}

#[test]
fn a_cancelled_queued_task_counts_as_finished_for_wait_all() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let queued = manager.spawn_detached(|| ()).unwrap();
        assert!(manager.cancel(queued));
        assert!(manager.wait_all_timeout([queued], Duration::ZERO));
        manager.wait_all([queued]);
        release.open();
        held.join().unwrap();
    });
}

#[test]
fn another_managers_id_counts_as_finished_in_wait_all() {
    watchdog(|| {
        // Part three replaces part two's panic: ids carry their manager, and
        // another manager's id is never this manager's task.
        let manager = TaskManager::new(1);
        let known = manager.spawn_detached(|| ()).unwrap();
        manager.drain();
        let foreign = task_id(7);
        assert_eq!(foreign.get(), 7);
        let started = Instant::now();
        assert!(manager.wait_all_timeout([known, foreign], common::LIMIT));
        assert!(started.elapsed() < common::LIMIT / 2, "true at once");
        manager.wait_all([known, foreign]);
    });
}

#[test]
fn waiting_on_a_snapshot_of_running_and_queued_ignores_later_work() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release_a, a) = hold_slot(&manager);
        let early = manager.spawn(|| ()).unwrap();
        let mut snapshot = manager.running();
        snapshot.extend(manager.queued());
        assert_eq!(snapshot, vec![a.id(), early.id()]);
        let later_gate = Gate::new();
        let g = later_gate.clone();
        let later = manager.spawn(move || g.wait()).unwrap();
        release_a.open();
        manager.wait_all(&snapshot);
        assert_ne!(manager.state(later.id()), Some(TaskState::Finished));
        later_gate.open();
        later.join().unwrap();
        a.join().unwrap();
        early.join().unwrap();
    });
}
