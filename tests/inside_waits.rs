//! Waits called from inside one of the manager's own tasks, with
//! `max_tasks(1)`: none deadlocks, because the caller runs what it waits
//! for; a parked caller reads `Running` but is not counted as running.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{wait_for, watchdog, Gate};
use taskwarden::{TaskId, TaskManager, TaskState};

/// Runs `body` inside a task of `manager` and returns its result.
fn inside<R: Send + 'static>(
    manager: &Arc<TaskManager>,
    body: impl FnOnce(&TaskManager) -> R + Send + 'static,
) -> R {
    let m = manager.clone();
    manager
        .spawn(move || body(&m))
        .expect("the manager is open")
        .join()
        .expect("the task returned")
}

fn one_slot() -> Arc<TaskManager> {
    Arc::new(TaskManager::new(1))
}

#[test]
fn wait_all_and_wait_all_timeout_from_inside_do_not_deadlock() {
    watchdog(|| {
        let manager = one_slot();
        let ran = inside(&manager, |m| {
            let count = Arc::new(AtomicUsize::new(0));
            let ids: Vec<TaskId> = (0..3)
                .map(|_| {
                    let count = count.clone();
                    m.spawn_detached(move || count.fetch_add(1, Ordering::SeqCst))
                        .unwrap()
                })
                .collect();
            m.wait_all(&ids[..2]);
            let after_wait_all = count.load(Ordering::SeqCst);
            let in_time = m.wait_all_timeout(&ids, common::LIMIT);
            (after_wait_all, in_time, count.load(Ordering::SeqCst))
        });
        let (after_wait_all, in_time, total) = ran;
        assert!(after_wait_all >= 2);
        assert!(in_time);
        assert_eq!(total, 3);
    });
}

#[test]
fn join_and_wait_timeout_from_inside_do_not_deadlock() {
    watchdog(|| {
        let manager = one_slot();
        let (a, b) = inside(&manager, |m| {
            let first = m.spawn(|| 1).unwrap();
            let second = m.spawn(|| 2).unwrap();
            assert!(second.wait_timeout(common::LIMIT));
            (first.join(), second.join())
        });
        assert_eq!((a, b), (Ok(1), Ok(2)));
    });
}

#[test]
fn join_next_from_inside_does_not_deadlock() {
    watchdog(|| {
        let manager = one_slot();
        let mut values = inside(&manager, |m| {
            let mut set = m.task_set();
            for i in 0..3 {
                set.spawn(move || i).unwrap();
            }
            let mut values = Vec::new();
            values.push(set.join_next().unwrap().1.unwrap());
            values.push(set.join_next_timeout(common::LIMIT).unwrap().1.unwrap());
            while let Some((_, result)) = set.join_next() {
                values.push(result.unwrap());
            }
            assert!(set.try_join_next().is_none());
            values
        });
        values.sort_unstable();
        assert_eq!(values, [0, 1, 2]);
    });
}

#[test]
fn map_next_from_inside_does_not_deadlock() {
    watchdog(|| {
        let manager = one_slot();
        let (ordered, unordered) = inside(&manager, |m| {
            let ordered: Vec<_> = m.map(0..20_u32, |x| x * 2).collect();
            let mut unordered: Vec<_> = m.map_unordered(0..20_u32, |x| x * 3).collect();
            unordered.sort_by_key(|(i, _)| *i);
            (ordered, unordered)
        });
        assert_eq!(ordered, (0..20).map(|x| Ok(x * 2)).collect::<Vec<_>>());
        assert_eq!(
            unordered,
            (0..20).map(|x| (x as usize, Ok(x * 3))).collect::<Vec<_>>()
        );
    });
}

#[test]
fn the_wait_at_the_end_of_scoped_from_inside_does_not_deadlock() {
    watchdog(|| {
        let manager = one_slot();
        let sum = inside(&manager, |m| {
            let parts = [1_u64, 2, 3, 4];
            let total = AtomicUsize::new(0);
            m.scoped(|s| {
                for p in &parts {
                    s.spawn(|| total.fetch_add(*p as usize, Ordering::SeqCst));
                }
            });
            total.load(Ordering::SeqCst)
        });
        assert_eq!(sum, 10);
    });
}

#[test]
fn a_spawn_blocked_on_a_full_queue_from_inside_does_not_deadlock() {
    watchdog(|| {
        let manager = Arc::new(
            TaskManager::builder()
                .max_tasks(1)
                .queue_capacity(1)
                .start()
                .unwrap(),
        );
        let results = inside(&manager, |m| {
            let first = m.spawn(|| "first").unwrap(); // fills the queue
            let second = m.spawn(|| "second").unwrap(); // room made by running `first` here
            (first.join(), second.join())
        });
        assert_eq!(results, (Ok("first"), Ok("second")));
    });
}

#[test]
fn ids_and_current_task_nest_when_a_waiter_runs_a_task_inline() {
    watchdog(|| {
        let manager = one_slot();
        let (parent, child_id, seen_in_child, after) = inside(&manager, |m| {
            let parent = taskwarden::current_task().unwrap();
            let child = m.spawn(taskwarden::current_task).unwrap();
            let child_id = child.id();
            let seen = child.join().unwrap();
            (parent, child_id, seen, taskwarden::current_task())
        });
        assert_eq!(seen_in_child, Some(child_id));
        assert_eq!(after, Some(parent));
        assert!(child_id > parent);
    });
}

#[test]
fn a_parked_task_reads_running_but_is_not_counted_as_running() {
    watchdog(|| {
        let manager = one_slot();
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let parent = taskwarden::current_task().unwrap();
                let m2 = m.clone();
                // With one slot the child runs on this thread, under the
                // parked parent.
                let child = m
                    .spawn(move || {
                        let me = taskwarden::current_task().unwrap();
                        (me, m2.running(), m2.stats().running, m2.state(parent))
                    })
                    .unwrap();
                (parent, child.join().unwrap())
            })
            .unwrap();
        let (parent, (child, running, stats_running, parent_state)) = parent.join().unwrap();
        assert_ne!(parent, child);
        assert_eq!(running, vec![child], "the parked parent is not listed");
        assert_eq!(stats_running, 1, "the parked parent is not counted");
        assert_eq!(parent_state, Some(TaskState::Running));
    });
}

#[test]
fn a_parked_task_does_not_hold_a_slot_against_other_work() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let gate = Gate::new();
        let (tx, rx) = mpsc::channel();
        let (m, g) = (manager.clone(), gate.clone());
        let parent = manager
            .spawn(move || {
                let child = m.spawn(move || g.wait()).unwrap();
                tx.send((taskwarden::current_task().unwrap(), child.id()))
                    .unwrap();
                child.join()
            })
            .unwrap();
        let (parent_id, child_id) = rx.recv_timeout(common::LIMIT).unwrap();
        wait_for("the parent to park", || manager.running() == vec![child_id]);
        assert_eq!(manager.state(parent_id), Some(TaskState::Running));
        assert_eq!(manager.stats().running, 1);
        // One slot is free: other work runs while the child is held.
        let other = manager.spawn(|| "ran").unwrap();
        assert_eq!(other.join(), Ok("ran"));
        gate.open();
        assert_eq!(parent.join(), Ok(Ok(())));
    });
}

#[test]
fn drain_and_close_from_inside_run_the_child_rather_than_cancel_it() {
    watchdog(|| {
        let manager = one_slot();
        let drained = inside(&manager, |m| {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            m.spawn_detached(move || r.store(true, Ordering::SeqCst))
                .unwrap();
            m.drain();
            ran.load(Ordering::SeqCst)
        });
        assert!(drained, "drain returns once the child has run");

        let (report, ran, child) = inside(&manager, |m| {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let child = m.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
            let report = m.close();
            (report, ran.load(Ordering::SeqCst), child.join())
        });
        assert!(report.cancelled.is_empty(), "{report:?}");
        assert!(ran, "close ran the child");
        assert_eq!(child, Ok(()));
        assert!(manager.is_closed());
    });
}
