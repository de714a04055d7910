//! Tasks you can see (part three): `tasks()` while tasks queue, run and
//! park; names in panic reports and hooks; `on_task_start`/`on_task_end`
//! for every accepted task (also those that never ran), outside every lock,
//! with panics caught; and a `Spawner` that cancels, asks and stops its
//! manager, also after the manager is dropped.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{hold_slot, wait_for, watchdog, Gate, LIMIT};
use taskwarden::{
    CancelReason, TaskError, TaskId, TaskManager, TaskOptions, TaskOutcome, TaskState,
};

#[test]
fn tasks_shows_queued_running_and_parked_tasks_with_names_and_reasons() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let gate = Arc::new(Gate::new());
        let m = manager.clone();
        let g = gate.clone();
        let (child_tx, child_rx) = mpsc::channel();
        // A parent that joins a child: parked while the child runs.
        let parent = manager
            .spawn_with(TaskOptions::new().name("parent"), move || {
                let g = g.clone();
                let child = m
                    .spawn_with(TaskOptions::new().name("child"), move || g.wait())
                    .unwrap();
                child_tx.send(child.id()).unwrap();
                child.join()
            })
            .unwrap();
        let child = child_rx.recv_timeout(LIMIT).unwrap();
        wait_for("the child to run", || {
            manager.state(child) == Some(TaskState::Running)
        });
        // Both slots are taken (the child, and a plain task), so these wait.
        let g = gate.clone();
        let plain = manager.spawn(move || g.wait()).unwrap();
        wait_for("the plain task to run", || {
            manager.running().contains(&plain.id())
        });
        let queued = manager
            .spawn_with(TaskOptions::new().name(String::from("queued")), || ())
            .unwrap();
        manager.cancel(plain.id());
        let tasks = manager.tasks();
        let ids: Vec<TaskId> = tasks.iter().map(|task| task.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "ascending by id");
        let find = |id: TaskId| tasks.iter().find(|task| task.id == id).unwrap();
        let p = find(parent.id());
        assert_eq!(
            (p.name.as_deref(), p.state, p.parked),
            (Some("parent"), TaskState::Running, true)
        );
        let c = find(child);
        assert_eq!(
            (c.name.as_deref(), c.state, c.parked),
            (Some("child"), TaskState::Running, false)
        );
        let q = find(queued.id());
        assert_eq!(
            (q.name.as_deref(), q.state, q.parked),
            (Some("queued"), TaskState::Queued, false)
        );
        let r = find(plain.id());
        assert_eq!(
            (r.name.as_deref(), r.cancel_reason),
            (None, Some(CancelReason::Requested))
        );
        gate.open();
        assert_eq!(parent.join(), Ok(Ok(())));
        manager.drain();
        assert!(manager.tasks().is_empty(), "finished tasks are not listed");
        let parked_again = manager.tasks();
        assert!(parked_again.iter().all(|task| !task.parked));
    });
}

#[test]
fn a_task_parked_in_lend_slot_reads_parked_and_resumes_unparked() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (inside_tx, inside) = mpsc::channel();
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let handle = manager
            .spawn(move || {
                taskwarden::lend_slot(|| {
                    inside_tx.send(()).unwrap();
                    g.wait();
                });
                taskwarden::current_task()
            })
            .unwrap();
        inside.recv_timeout(LIMIT).unwrap();
        let id = handle.id();
        assert!(manager.tasks()[0].parked);
        assert!(manager.running().is_empty(), "a parked task is not running");
        gate.open();
        assert_eq!(handle.join(), Ok(Some(id)));
        let (watch_tx, watch) = mpsc::channel();
        let watched = manager
            .spawn(move || {
                watch_tx.send(()).unwrap();
                taskwarden::sleep(LIMIT)
            })
            .unwrap();
        watch.recv_timeout(LIMIT).unwrap();
        let tasks = manager.tasks();
        assert!(!tasks[0].parked, "sleep keeps its slot: not parked");
        watched.cancel();
        assert_eq!(watched.join(), Ok(false));
    });
}

#[test]
fn a_panic_report_and_the_hooks_carry_the_name() {
    watchdog(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
        let manager = TaskManager::builder()
            .on_panic(move |report| {
                s1.lock()
                    .unwrap()
                    .push(format!("panic {:?}", report.name()));
            })
            .on_task_start(move |start| {
                s2.lock().unwrap().push(format!("start {:?}", start.name()));
            })
            .on_task_end(move |end| {
                s3.lock()
                    .unwrap()
                    .push(format!("end {:?} {:?}", end.name(), end.outcome()));
            })
            .start()
            .unwrap();
        let options = TaskOptions::new().name("resize a.jpg");
        let _ = manager
            .spawn_with(options, || panic!("corrupt"))
            .unwrap()
            .join();
        manager.spawn(|| ()).unwrap().join().unwrap();
        manager.drain();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                "start Some(\"resize a.jpg\")",
                "panic Some(\"resize a.jpg\")",
                "end Some(\"resize a.jpg\") Panicked",
                "start None",
                "end None Completed",
            ]
        );
    });
}

#[test]
fn the_start_hook_runs_on_the_task_thread_before_its_closure() {
    watchdog(|| {
        let before = Arc::new(Mutex::new(None));
        let b = before.clone();
        let manager = TaskManager::builder()
            .on_task_start(move |start| {
                assert_eq!(taskwarden::current_task(), Some(start.id()));
                *b.lock().unwrap() = Some((start.id(), thread::current().id()));
            })
            .start()
            .unwrap();
        let b = before.clone();
        let handle = manager
            .spawn(move || {
                let seen = b.lock().unwrap().take();
                (seen, thread::current().id())
            })
            .unwrap();
        let id = handle.id();
        let (seen, ran_on) = handle.join().unwrap();
        assert_eq!(seen, Some((id, ran_on)));
    });
}

#[test]
fn the_end_hook_runs_once_per_accepted_task_and_before_join_returns() {
    watchdog(|| {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let starts = Arc::new(AtomicUsize::new(0));
        let (e, s) = (ends.clone(), starts.clone());
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_start(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .on_task_end(move |end| {
                e.lock()
                    .unwrap()
                    .push((end.id(), end.outcome(), end.queued_for(), end.ran_for()));
            })
            .start()
            .unwrap();
        let ran = manager
            .spawn(|| thread::sleep(Duration::from_millis(20)))
            .unwrap();
        let ran_id = ran.id();
        ran.join().unwrap();
        assert!(
            ends.lock().unwrap().iter().any(|end| end.0 == ran_id),
            "the hook ran before join returned"
        );
        let (gate, held) = hold_slot(&manager);
        let cancelled = manager.spawn(|| ()).unwrap();
        let cancelled_id = cancelled.id();
        let detached = manager.spawn_detached(|| ()).unwrap();
        thread::sleep(Duration::from_millis(30));
        assert!(manager.cancel(cancelled.id()));
        assert!(manager.cancel(detached));
        gate.open();
        held.join().unwrap();
        assert_eq!(cancelled.join(), Err(TaskError::Cancelled));
        let report = manager.close();
        assert!(report.is_clean());
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 4, "{ends:?}");
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "never-run tasks do not start"
        );
        let of = |id: TaskId| *ends.iter().find(|end| end.0 == id).unwrap();
        let (_, outcome, _, ran_for) = of(ran_id);
        assert_eq!(outcome, TaskOutcome::Completed);
        assert!(ran_for >= Duration::from_millis(20));
        for id in [cancelled_id, detached] {
            let (_, outcome, queued_for, ran_for) = of(id);
            assert_eq!(outcome, TaskOutcome::Cancelled);
            assert_eq!(ran_for, Duration::ZERO);
            assert!(queued_for >= Duration::from_millis(30), "{queued_for:?}");
        }
    });
}

#[test]
fn hooks_that_panic_are_caught_and_the_tasks_go_on() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_task_start(|start| {
                if start.id().get() % 2 == 0 {
                    panic!("start hook")
                }
            })
            .on_task_end(|end| {
                if end.id().get() % 3 == 0 {
                    panic!("end hook")
                }
            })
            .start()
            .unwrap();
        let handles: Vec<_> = (0..12_u64)
            .map(|n| manager.spawn(move || n * 2).unwrap())
            .collect();
        for (n, handle) in (0..).zip(handles) {
            assert_eq!(handle.join(), Ok(n * 2));
        }
        manager.drain();
        let stats = manager.stats();
        assert_eq!(stats.completed, 12);
        assert_eq!(manager.close().abandoned, vec![]);
    });
}

#[test]
fn hooks_may_spawn_cancel_and_ask_on_their_own_manager() {
    watchdog(|| {
        let spawner_slot: Arc<Mutex<Option<taskwarden::Spawner>>> = Arc::new(Mutex::new(None));
        let follow_ups = Arc::new(AtomicUsize::new(0));
        let (slot, f) = (spawner_slot.clone(), follow_ups.clone());
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_start(|start| {
                // A hook that asks about the tasks: no lock of the crate is held.
                let spawner = taskwarden::current_spawner().unwrap();
                assert!(spawner.tasks().iter().any(|task| task.id == start.id()));
            })
            .on_task_end(move |end| {
                let Some(spawner) = slot.lock().unwrap().clone() else {
                    return;
                };
                if end.name() == Some("first") {
                    let f = f.clone();
                    let follow = spawner
                        .spawn_with(TaskOptions::new().name("follow-up"), move || {
                            f.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                    let doomed = spawner.spawn(|| ()).unwrap();
                    spawner.cancel(doomed.id());
                    drop(follow);
                }
            })
            .start()
            .unwrap();
        *spawner_slot.lock().unwrap() = Some(manager.spawner());
        manager
            .spawn_with(TaskOptions::new().name("first"), || ())
            .unwrap()
            .join()
            .unwrap();
        manager.drain();
        assert_eq!(follow_ups.load(Ordering::SeqCst), 1);
        let stats = manager.stats();
        assert_eq!((stats.completed, stats.cancelled), (2, 1));
        spawner_slot.lock().unwrap().take();
    });
}

#[test]
fn a_spawner_outlives_its_manager_and_answers_as_the_closed_manager() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let done = spawner.spawn(|| 1).unwrap();
        let done_id = done.id();
        assert_eq!(done.join(), Ok(1));
        let report = {
            let manager = manager;
            manager.close()
        };
        // The manager is dropped; the spawner answers for it.
        assert!(spawner.is_closed());
        assert_eq!(spawner.close_timeout(Duration::from_secs(1)), report);
        assert_eq!(spawner.close_now(Duration::ZERO), report);
        assert_eq!(spawner.stats().completed, 1);
        assert_eq!(spawner.stats().threads, 0);
        assert_eq!(spawner.state(done_id), Some(TaskState::Finished));
        assert!(!spawner.cancel(done_id));
        assert!(spawner.cancel_all().is_empty());
        assert!(spawner.tasks().is_empty());
        assert!(spawner.spawn(|| ()).unwrap_err().is_closed());
    });
}

#[test]
fn a_watchdog_thread_stops_the_manager_through_a_spawner() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let sleepers: Vec<_> = (0..2)
            .map(|n| {
                manager
                    .spawn_with(TaskOptions::new().name(format!("sleeper {n}")), || {
                        taskwarden::sleep(LIMIT)
                    })
                    .unwrap()
            })
            .collect();
        let queued = manager.spawn(|| true).unwrap();
        wait_for("both sleepers to run", || manager.running().len() == 2);
        let names: Vec<_> = spawner
            .tasks()
            .into_iter()
            .filter_map(|task| task.name)
            .collect();
        assert_eq!(names, vec!["sleeper 0", "sleeper 1"]);
        // 'static: moved into another thread while the owner keeps the manager.
        let watcher = thread::spawn(move || spawner.close_now(LIMIT));
        for sleeper in sleepers {
            assert_eq!(sleeper.join(), Ok(false), "woken by close_now");
        }
        let report = watcher.join().unwrap();
        assert_eq!(report.cancelled, vec![queued.id()]);
        assert_eq!(report.stopped.len(), 2);
        assert!(!report.timed_out);
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        assert_eq!(manager.close(), report);
    });
}
