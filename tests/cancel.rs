//! Cooperative cancellation: by handle, by id, all at once; and drain.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{hold_slot, scaled, wait_for, watchdog, Gate};
use taskwarden::{TaskError, TaskManager};

#[test]
fn a_cancelled_queued_task_never_runs_and_its_closure_is_dropped() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let blocker = manager.spawn(move || g.wait()).unwrap();
        wait_for("blocker running", || manager.running().len() == 1);

        let ran = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        struct CountDrop(Arc<AtomicUsize>);
        impl Drop for CountDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (r, token) = (ran.clone(), CountDrop(dropped.clone()));
        let queued = manager
            .spawn(move || {
                let _token = token;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        queued.cancel();
        // Dropped at once, while the blocker still holds the only slot.
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert!(queued.is_finished());
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        gate.open();
        blocker.join().unwrap();
        manager.drain();
        assert!(!ran.load(Ordering::SeqCst), "a cancelled task never starts");
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped exactly once");
        assert_eq!(manager.stats().cancelled, 1);
    });
}

#[test]
fn a_running_task_sees_the_flag_and_returns_what_it_likes() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let started = Gate::new();
        let s = started.clone();
        let handle = manager
            .spawn(move || {
                assert!(!taskwarden::is_cancelled());
                s.open();
                while !taskwarden::is_cancelled() {
                    std::thread::sleep(Duration::from_micros(100));
                }
                "stopped"
            })
            .unwrap();
        started.wait();
        handle.cancel();
        // It had started, so it runs to its own end and returns its value.
        assert_eq!(handle.join(), Ok("stopped"));
        assert_eq!(
            manager.stats().cancelled,
            0,
            "a running task is not counted as cancelled"
        );
    });
}

#[test]
fn cancel_by_id_reports_whether_the_task_was_live() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let running = manager
            .spawn(|| {
                while !taskwarden::is_cancelled() {
                    std::thread::sleep(Duration::from_micros(100));
                }
                "saw the flag"
            })
            .unwrap();
        wait_for("running", || manager.running() == vec![running.id()]);
        let queued = manager.spawn(|| "never").unwrap();

        let queued_id = queued.id();
        assert!(manager.cancel(queued_id), "queued counts as live");
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        assert!(!manager.cancel(queued_id), "already cancelled");

        let id = running.id();
        assert!(manager.cancel(id), "running counts as live");
        assert_eq!(running.join(), Ok("saw the flag"));
        manager.drain();
        assert!(!manager.cancel(id), "finished is not live");
        assert!(
            !manager.cancel(id_above_every_id_of(&manager)),
            "an id never issued"
        );
    });
}

/// An id above every id `manager` has issued: a `TaskId` comes only from a
/// handle, so take one from another manager that issued more ids.
fn id_above_every_id_of(manager: &TaskManager) -> taskwarden::TaskId {
    let issued = manager.spawn(|| ()).unwrap();
    let highest = issued.id().get();
    issued.join().unwrap();
    let other = TaskManager::new(1);
    let mut id = other.spawn_detached(|| ()).unwrap();
    while id.get() <= highest + 10 {
        id = other.spawn_detached(|| ()).unwrap();
    }
    other.drain();
    id
}

/// The running tasks return the moment they see their flag, so a
/// `cancel_all` that flags them before it has taken the queued tasks out
/// lets a queued task start in the freed slot: `ran` catches that.
#[test]
fn cancel_all_cancels_queued_and_flags_running() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let runners: Vec<_> = (0..2)
            .map(|_| {
                manager
                    .spawn(|| {
                        while !taskwarden::is_cancelled() {
                            std::thread::yield_now();
                        }
                        true
                    })
                    .unwrap()
            })
            .collect();
        wait_for("two running", || manager.running().len() == 2);
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let ran = ran.clone();
                manager
                    .spawn(move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        false
                    })
                    .unwrap()
            })
            .collect();
        manager.cancel_all();
        for handle in runners {
            assert_eq!(handle.join(), Ok(true));
        }
        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        manager.drain();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "a queued task ran");
        assert!(!manager.is_closed(), "cancel_all does not close");
        assert_eq!(manager.spawn(|| 3).unwrap().join(), Ok(3));
        let stats = manager.stats();
        assert_eq!((stats.cancelled, stats.completed), (5, 3));
    });
}

#[test]
fn a_queued_detached_task_cancelled_by_id_never_runs() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, blocker) = hold_slot(&manager);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let id = manager
            .spawn_detached(move || r.store(true, Ordering::SeqCst))
            .unwrap();
        assert!(manager.cancel(id), "a queued detached task is live");
        assert!(!manager.cancel(id), "and cancelled once");
        release.open();
        blocker.join().unwrap();
        manager.drain();
        assert!(!ran.load(Ordering::SeqCst), "a cancelled task never starts");
        assert_eq!(manager.stats().cancelled, 1);
    });
}

#[test]
fn a_cancelled_task_whose_closure_panics_on_drop() {
    watchdog(|| {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                if !std::thread::panicking() {
                    panic!("the cancelled closure's drop panics");
                }
            }
        }
        let manager = TaskManager::new(1);
        let (release, blocker) = hold_slot(&manager);
        let bomb = PanicOnDrop;
        let queued = manager
            .spawn(move || {
                let _keep = &bomb;
            })
            .unwrap();
        // Cancelling drops the closure; its panic must not unwind out.
        let cancelled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queued.cancel()));
        assert!(cancelled.is_ok(), "the drop's panic unwound out of cancel");
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        release.open();
        blocker.join().unwrap();
        manager.drain();
        assert_eq!(manager.stats().panicked, 1);
    });
}

#[test]
fn wait_timeout_is_true_for_a_cancelled_task() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (release, blocker) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        assert!(!queued.wait_timeout(Duration::from_millis(10)), "queued");
        queued.cancel();
        let start = Instant::now();
        assert!(queued.wait_timeout(common::LIMIT), "it will never run");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        release.open();
        blocker.join().unwrap();
    });
}

#[test]
fn cancel_racing_start_settles_each_task_once() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let mut cancelled = 0;
        let rounds = scaled(if cfg!(debug_assertions) {
            2_000
        } else {
            10_000
        });
        for _ in 0..rounds {
            let r = ran.clone();
            let handle = manager
                .spawn(move || r.fetch_add(1, Ordering::SeqCst))
                .unwrap();
            handle.cancel();
            match handle.join() {
                Ok(_) => {}
                Err(TaskError::Cancelled) => cancelled += 1,
                Err(other) => panic!("{other}"),
            }
        }
        manager.drain();
        let ran = ran.load(Ordering::SeqCst);
        assert_eq!(
            ran + cancelled,
            rounds,
            "each task ran once or was cancelled, never both"
        );
        let stats = manager.stats();
        assert_eq!(stats.completed as usize, ran);
        assert_eq!(stats.cancelled as usize, cancelled);
    });
}

#[test]
fn drain_waits_for_work_spawned_while_draining() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let (m, d) = (manager.clone(), done.clone());
        // A chain: each task spawns the next, so work appears during drain.
        fn link(manager: Arc<TaskManager>, done: Arc<AtomicUsize>, left: usize) {
            std::thread::sleep(Duration::from_millis(1));
            done.fetch_add(1, Ordering::SeqCst);
            if left > 0 {
                let next = manager.clone();
                manager.spawn(move || link(next, done, left - 1)).unwrap();
            }
        }
        manager.spawn(move || link(m, d, 19)).unwrap();
        manager.drain();
        assert_eq!(done.load(Ordering::SeqCst), 20);
        assert!(!manager.is_closed(), "drain does not close");
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

#[test]
fn drain_timeout_reports_whether_everything_finished() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        manager.spawn(move || g.wait()).unwrap();
        let start = Instant::now();
        assert!(!manager.drain_timeout(Duration::from_millis(50)));
        assert!(start.elapsed() >= Duration::from_millis(50));
        gate.open();
        assert!(manager.drain_timeout(common::LIMIT));
        assert!(manager.drain_timeout(Duration::ZERO), "nothing left");
    });
}
