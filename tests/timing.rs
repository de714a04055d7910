//! `TaskOptions`: cancel_after, cancel_at, start_after, start_at; never
//! early, not much late; delayed tasks count as queued; close and delayed
//! tasks; the timer thread is not a worker.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{hold_slot, wait_for, watchdog};
use taskwarden::{SpawnErrorKind, TaskError, TaskManager, TaskOptions, TaskState};

/// Generous bound for "late": a loaded 2-core machine may deschedule us.
const SLACK: Duration = Duration::from_millis(500);
/// Far enough away never to arrive during a test.
const FAR: Duration = Duration::from_secs(3_600);

fn opts() -> TaskOptions {
    TaskOptions::default()
}

fn assert_on_time(what: &str, from: Instant, at: Instant, requested: Duration) {
    let took = at.saturating_duration_since(from);
    assert!(
        at >= from + requested,
        "{what} early: {took:?} < {requested:?}"
    );
    assert!(
        took <= requested + SLACK,
        "{what} late: {took:?} for {requested:?}"
    );
}

/// Waits for the cancel flag and returns when it was seen.
fn flag_seen_at() -> Instant {
    wait_for("the cancel flag", taskwarden::is_cancelled);
    Instant::now()
}

/// Records the thread that drops it.
struct DropProbe(Arc<Mutex<Option<ThreadId>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(thread::current().id());
    }
}

#[test]
fn cancel_after_counts_from_the_start_of_the_task() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let d = Duration::from_millis(50);
        let task = manager
            .spawn_with(opts().cancel_after(d), || {
                let started = Instant::now();
                let flagged_at_start = taskwarden::is_cancelled();
                (flagged_at_start, started, flag_seen_at())
            })
            .unwrap();
        // Longer than d while queued: the clock has not started yet.
        assert!(!held.wait_timeout(2 * d));
        let opened = Instant::now();
        release.open();
        let (flagged_at_start, started, seen) = task.join().unwrap();
        assert!(!flagged_at_start, "d counts from the start, not the spawn");
        assert!(seen >= opened + d, "flagged early");
        assert_on_time(
            "cancel_after",
            started,
            seen,
            d.saturating_sub(Duration::from_millis(2)),
        );
        held.join().unwrap();
    });
}

#[test]
fn cancel_at_flags_a_running_task_and_its_result_stands() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let spawned = Instant::now();
        let d = Duration::from_millis(60);
        let at = spawned + d;
        let task = manager
            .spawn_with(opts().cancel_at(at), flag_seen_at)
            .unwrap();
        let seen = task
            .join()
            .expect("a flagged task's return value is its result");
        assert_on_time("cancel_at", spawned, seen, d);
    });
}

#[test]
fn cancel_at_passing_while_queued_means_the_task_never_runs() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let dropped_on = Arc::new(Mutex::new(None));
        let probe = DropProbe(dropped_on.clone());
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let spawned = Instant::now();
        let d = Duration::from_millis(60);
        let at = spawned + d;
        let task = manager
            .spawn_with(opts().cancel_at(at), move || {
                let _keep = &probe;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        let state = manager.state(task.id());
        if Instant::now() < at {
            assert_eq!(state, Some(TaskState::Queued), "cancelled early");
        }
        assert!(
            task.wait_timeout(common::LIMIT),
            "cancelled without a free slot"
        );
        assert_on_time("cancel_at (queued)", spawned, Instant::now(), d);
        assert_eq!(manager.state(task.id()), Some(TaskState::Finished));
        assert!(!manager.queued().contains(&task.id()));
        let dropper = dropped_on.lock().unwrap().expect("the closure was dropped");
        assert_ne!(
            dropper,
            thread::current().id(),
            "dropped on the timer thread"
        );
        assert_eq!(task.join(), Err(TaskError::TimedOut));
        release.open();
        held.join().unwrap();
        manager.drain();
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn start_after_keeps_the_task_queued_until_its_time() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let d = Duration::from_millis(80);
        let spawned = Instant::now();
        let task = manager
            .spawn_with(opts().start_after(d), Instant::now)
            .unwrap();
        let state = manager.state(task.id());
        if spawned.elapsed() < d {
            assert_eq!(state, Some(TaskState::Queued));
        }
        assert_on_time("start_after", spawned, task.join().unwrap(), d);
    });
}

#[test]
fn start_at_keeps_the_task_queued_until_its_time() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let d = Duration::from_millis(80);
        let spawned = Instant::now();
        let task = manager
            .spawn_with(opts().start_at(spawned + d), Instant::now)
            .unwrap();
        assert_on_time("start_at", spawned, task.join().unwrap(), d);
        // A start time in the past starts at once.
        let now = Instant::now();
        let task = manager
            .spawn_with(opts().start_at(now), Instant::now)
            .unwrap();
        assert_on_time("start_at (past)", now, task.join().unwrap(), Duration::ZERO);
    });
}

#[test]
fn when_both_start_bounds_are_set_the_later_wins() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (short, long) = (Duration::from_millis(30), Duration::from_millis(150));
        let spawned = Instant::now();
        let a = manager
            .spawn_with(
                opts().start_after(long).start_at(spawned + short),
                Instant::now,
            )
            .unwrap();
        let b = manager
            .spawn_with(
                opts().start_at(spawned + long).start_after(short),
                Instant::now,
            )
            .unwrap();
        assert_on_time("start_after later", spawned, a.join().unwrap(), long);
        assert_on_time("start_at later", spawned, b.join().unwrap(), long);
    });
}

#[test]
fn a_setter_called_twice_keeps_the_last_value() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let d = Duration::from_millis(50);
        let spawned = Instant::now();
        let shorter = manager
            .spawn_with(opts().start_after(FAR).start_after(d), Instant::now)
            .unwrap();
        let longer = manager
            .spawn_with(
                opts()
                    .start_after(Duration::from_millis(1))
                    .start_after(3 * d),
                Instant::now,
            )
            .unwrap();
        assert_on_time("last start_after", spawned, shorter.join().unwrap(), d);
        assert_on_time("last start_after", spawned, longer.join().unwrap(), 3 * d);

        let spawned = Instant::now();
        let flagged = manager
            .spawn_with(opts().cancel_after(FAR).cancel_after(d), flag_seen_at)
            .unwrap();
        assert_on_time("last cancel_after", spawned, flagged.join().unwrap(), d);
    });
}

#[test]
fn cancel_after_and_cancel_at_both_apply() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let d = Duration::from_millis(60);
        let spawned = Instant::now();
        let at_first = manager
            .spawn_with(
                opts().cancel_after(FAR).cancel_at(spawned + d),
                flag_seen_at,
            )
            .unwrap();
        let after_first = manager
            .spawn_with(
                opts().cancel_at(spawned + FAR).cancel_after(d),
                flag_seen_at,
            )
            .unwrap();
        assert_on_time("cancel_at of both", spawned, at_first.join().unwrap(), d);
        assert_on_time(
            "cancel_after of both",
            spawned,
            after_first.join().unwrap(),
            d,
        );
    });
}

#[test]
fn start_and_cancel_options_combine() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let d = Duration::from_millis(40);
        let spawned = Instant::now();
        let task = manager
            .spawn_with(opts().start_after(d).cancel_after(d), || {
                (Instant::now(), flag_seen_at())
            })
            .unwrap();
        let (started, seen) = task.join().unwrap();
        assert_on_time("start", spawned, started, d);
        assert!(
            seen >= started + d.saturating_sub(Duration::from_millis(2)),
            "flagged early"
        );
        assert!(seen >= spawned + 2 * d, "flagged early");
    });
}

#[test]
fn delayed_tasks_count_as_queued() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(2)
            .queue_capacity(1)
            .start()
            .unwrap();
        let delayed = manager.spawn_with(opts().start_after(FAR), || ()).unwrap();
        assert_eq!(manager.state(delayed.id()), Some(TaskState::Queued));
        assert_eq!(manager.queued(), vec![delayed.id()]);
        assert_eq!(manager.stats().queued, 1);
        assert!(
            !manager.drain_timeout(Duration::from_millis(30)),
            "drain waits for delayed tasks"
        );
        let full = manager.try_spawn(|| 1).unwrap_err();
        assert_eq!(full.kind(), SpawnErrorKind::Full, "it fills the queue");
        assert_eq!(full.into_inner()(), 1);
        let full = manager
            .try_spawn_with(opts().start_after(Duration::from_millis(1)), || 2)
            .unwrap_err();
        assert!(full.is_full());
        assert!(manager.cancel(delayed.id()));
        assert_eq!(delayed.join(), Err(TaskError::Cancelled));
        assert!(manager.queued().is_empty());
        assert_eq!(manager.stats().queued, 0);
        assert!(manager.drain_timeout(common::LIMIT));
        assert_eq!(manager.try_spawn(|| 3).unwrap().join(), Ok(3), "room again");
    });
}

#[test]
fn queued_lists_delayed_and_ready_tasks_together_ascending() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let a = manager.spawn_with(opts().start_after(FAR), || ()).unwrap();
        let b = manager.spawn(|| ()).unwrap();
        let c = manager
            .spawn_with(opts().start_at(Instant::now() + FAR), || ())
            .unwrap();
        assert_eq!(manager.queued(), vec![a.id(), b.id(), c.id()]);
        assert_eq!(manager.stats().queued, 3);
        a.cancel();
        c.cancel();
        release.open();
        held.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn delayed_tasks_hold_no_worker_and_a_ready_one_still_waits_for_a_slot() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let delayed = manager.spawn_with(opts().start_after(FAR), || ()).unwrap();
        assert_eq!(manager.stats().threads, 0, "a waiting task holds no thread");
        assert_eq!(
            manager.spawn(|| 5).unwrap().join(),
            Ok(5),
            "the one slot is free"
        );
        delayed.cancel();

        let (release, held) = hold_slot(&manager);
        let d = Duration::from_millis(20);
        let ready = manager.spawn_with(opts().start_after(d), || ()).unwrap();
        assert!(
            !ready.wait_timeout(5 * d),
            "its time came, but no slot is free"
        );
        assert_eq!(manager.state(ready.id()), Some(TaskState::Queued));
        release.open();
        held.join().unwrap();
        ready.join().unwrap();
    });
}

#[test]
fn delayed_tasks_with_one_start_time_run_in_id_order() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, held) = hold_slot(&manager);
        let order = Arc::new(Mutex::new(Vec::new()));
        let at = Instant::now() + Duration::from_millis(30);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let order = order.clone();
                manager
                    .spawn_with(opts().start_at(at), move || {
                        order
                            .lock()
                            .unwrap()
                            .push(taskwarden::current_task().unwrap())
                    })
                    .unwrap()
            })
            .collect();
        let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
        // Let their time come while the slot is still held.
        assert!(!held.wait_timeout(Duration::from_millis(80)));
        release.open();
        held.join().unwrap();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ids);
    });
}

#[test]
fn a_close_cancels_at_once_delayed_tasks_that_would_start_after_its_deadline() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let late = manager.spawn_with(opts().start_after(FAR), || ()).unwrap();
        let timeout = Duration::from_secs(20);
        let started = Instant::now();
        let report = manager.close_timeout(timeout);
        assert!(
            started.elapsed() < timeout / 2,
            "cancelled at once, not at the deadline"
        );
        assert_eq!(report.cancelled, vec![late.id()]);
        assert!(report.abandoned.is_empty());
        assert_eq!(late.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn a_close_waits_for_delayed_tasks_that_start_before_its_deadline() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let d = Duration::from_millis(50);
        let spawned = Instant::now();
        let soon = manager
            .spawn_with(opts().start_after(d), Instant::now)
            .unwrap();
        let report = manager.close_timeout(Duration::from_secs(20));
        assert!(report.is_clean(), "{report:?}");
        assert_on_time("start_after under close", spawned, soon.join().unwrap(), d);
    });
}

#[test]
fn the_timer_thread_is_not_counted_as_a_worker() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        assert_eq!(manager.spawn(|| ()).unwrap().join(), Ok(()));
        let delayed = manager.spawn_with(opts().start_after(FAR), || ()).unwrap();
        let flagged = manager
            .spawn_with(opts().cancel_after(Duration::from_millis(20)), flag_seen_at)
            .unwrap();
        assert!(manager.stats().threads <= 1, "{:?}", manager.stats());
        flagged.join().unwrap();
        assert!(manager.stats().threads <= 1, "{:?}", manager.stats());
        delayed.cancel();
        let report = manager.close();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(manager.stats().threads, 0);
    });
}

#[test]
fn options_are_default_clone_and_debug() {
    watchdog(|| {
        let options = TaskOptions::default().cancel_after(Duration::from_millis(1));
        #[allow(clippy::clone_on_copy)]
        let copy = options.clone();
        assert!(!format!("{copy:?}").is_empty());
    });
}
