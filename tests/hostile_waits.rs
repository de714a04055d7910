//! Waits from inside a task never hang, whatever `max_tasks` and the queue
//! size (API.md part two, "From inside a task (part one, made exact)"), and
//! a task is settled only after its result was handed over or dropped.
//! One test per case of the engine issue, named after the case.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Gate, LIMIT};
use log::{Level, LevelFilter, Log, Metadata, Record};
use taskwarden::{current_task, TaskId, TaskManager};

// Case 1.
#[test]
fn a_task_that_spawns_a_child_then_drains_with_one_slot() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let ran = Arc::new(AtomicBool::new(false));
                let r = ran.clone();
                let child = m
                    .spawn(move || {
                        r.store(true, Ordering::SeqCst);
                        "child value"
                    })
                    .unwrap();
                m.drain();
                (ran.load(Ordering::SeqCst), child)
            })
            .unwrap();
        let (ran_before_drain_returned, child) = parent.join().unwrap();
        assert!(
            ran_before_drain_returned,
            "drain returned before the child ran"
        );
        assert_eq!(child.join(), Ok("child value"));
    });
}

// Case 2.
#[test]
fn a_task_that_spawns_a_child_then_closes_with_one_slot() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let child = m.spawn(|| "ran, not cancelled").unwrap();
                let start = Instant::now();
                let report = m.close_timeout(Duration::from_secs(3));
                (report, start.elapsed(), child)
            })
            .unwrap();
        let (report, took, child) = parent.join().unwrap();
        assert!(took < Duration::from_secs(2), "close took {took:?}");
        assert!(report.cancelled.is_empty(), "{report:?}");
        assert!(report.is_clean() && !report.timed_out, "{report:?}");
        assert_eq!(child.join(), Ok("ran, not cancelled"));
    });
}

// Case 3.
#[test]
fn a_child_run_inline_by_its_joining_parent_drains() {
    watchdog(|| {
        // One slot, held by the parent: the child cannot have started when
        // the parent joins it, so it runs inline, on the parent's thread.
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let m2 = m.clone();
                let child = m
                    .spawn(move || {
                        m2.drain();
                        (thread::current().id(), current_task())
                    })
                    .unwrap();
                let child_id = child.id();
                let (ran_on, seen) = child.join().unwrap();
                (thread::current().id(), ran_on, child_id, seen)
            })
            .unwrap();
        let (parent_thread, child_thread, child_id, seen) = parent.join().unwrap();
        assert_eq!(parent_thread, child_thread, "the child ran inline");
        assert_eq!(seen, Some(child_id));
        assert!(manager.drain_timeout(LIMIT));
    });
}

// Case 4, two slots: both drainers run at once.
#[test]
fn two_tasks_drain_at_the_same_moment_with_two_slots() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let together = Arc::new(Barrier::new(2));
        let drainers: Vec<_> = (0..2)
            .map(|n| {
                let (m, b) = (manager.clone(), together.clone());
                manager
                    .spawn(move || {
                        b.wait();
                        m.drain();
                        n
                    })
                    .unwrap()
            })
            .collect();
        let got: Vec<_> = drainers.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, vec![0, 1]);
        assert!(manager.drain_timeout(LIMIT));
    });
}

// Case 4, one slot: the second drainer is queued behind the first. The
// first, parked in drain, lends its slot: the second runs (inline on the
// first's thread, or on a worker since parked callers do not count toward
// max_tasks) and its drain must not wait for the first, which is below it
// (or parked in a drain): both return.
#[test]
fn two_tasks_drain_at_the_same_moment_with_one_slot() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let go = Gate::new();
        let drainers: Vec<_> = (0..2)
            .map(|n| {
                let (m, g) = (manager.clone(), go.clone());
                manager
                    .spawn(move || {
                        g.wait();
                        m.drain();
                        n
                    })
                    .unwrap()
            })
            .collect();
        wait_for("the first running, the second queued", || {
            let stats = manager.stats();
            stats.running == 1 && stats.queued == 1
        });
        go.open();
        let got: Vec<_> = drainers.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, vec![0, 1]);
        assert!(manager.drain_timeout(LIMIT));
    });
}

// Case 5, as part three has it: a spawn waiting for room lends its slot
// and runs nothing on its own thread; another thread runs the queue.
#[test]
fn a_task_spawning_into_a_full_queue_lends_its_slot() {
    watchdog(|| {
        let manager = Arc::new(
            TaskManager::builder()
                .max_tasks(1)
                .queue_capacity(1)
                .start()
                .unwrap(),
        );
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let first = m.spawn(|| thread::current().id()).unwrap();
                // The queue holds `first` and the only slot is ours: this
                // spawn can only make progress by lending the slot.
                let second = m.spawn(|| thread::current().id()).unwrap();
                (thread::current().id(), first, second)
            })
            .unwrap();
        let (parent_thread, first, second) = parent.join().unwrap();
        assert_ne!(
            first.join(),
            Ok(parent_thread),
            "the blocked spawn ran a stranger on its own thread"
        );
        assert!(second.join().is_ok());
        assert!(
            manager.stats().threads <= 2,
            "one thread per lent slot at most"
        );
    });
}

// Case 6.
#[test]
fn a_task_closes_while_another_thread_closes_without_deadline() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let go = Gate::new();
        let (m, g) = (manager.clone(), go.clone());
        let task = manager
            .spawn(move || {
                g.wait();
                (m.close(), current_task().unwrap())
            })
            .unwrap();
        wait_for("the task running", || manager.running() == vec![task.id()]);
        let closer = {
            let m = manager.clone();
            thread::spawn(move || m.close_timeout(Duration::MAX))
        };
        wait_for("the other close begun", || manager.is_closed());
        go.open();
        let (inner, me) = task.join().unwrap();
        let outer = closer.join().unwrap();
        assert!(!outer.abandoned.contains(&me), "{outer:?}");
        assert!(!inner.abandoned.contains(&me), "{inner:?}");
        assert_eq!(
            format!("{inner:?}"),
            format!("{outer:?}"),
            "the task's close returns the first close's report"
        );
    });
}

/// A result that drains its own manager when dropped, and tells what
/// `current_task()` it saw before and after the drain.
struct DrainsOnDrop {
    manager: Arc<TaskManager>,
    seen: mpsc::Sender<(Option<TaskId>, Option<TaskId>)>,
}

impl Drop for DrainsOnDrop {
    fn drop(&mut self) {
        let before = current_task();
        self.manager.drain();
        let _ = self.seen.send((before, current_task()));
    }
}

// Case 7.
#[test]
fn a_detached_result_whose_drop_drains_the_manager() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let (tx, rx) = mpsc::channel();
        let m = manager.clone();
        let id = manager
            .spawn_detached(move || DrainsOnDrop {
                manager: m,
                seen: tx,
            })
            .unwrap();
        let (before, after) = rx.recv_timeout(LIMIT).expect("the drain returned");
        assert_eq!(
            before,
            Some(id),
            "the result is dropped as part of its task"
        );
        assert_eq!(after, Some(id));
        assert!(manager.drain_timeout(LIMIT));
    });
}

/// A result whose drop says it began, then takes `for_` to finish.
struct SlowDrop {
    began: mpsc::Sender<()>,
    for_: Duration,
    finished: Arc<AtomicBool>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        let _ = self.began.send(());
        thread::sleep(self.for_);
        self.finished.store(true, Ordering::SeqCst);
    }
}

// Case 8.
#[test]
fn a_close_abandons_a_task_whose_result_drop_is_slow() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (tx, began) = mpsc::channel();
        let id = manager
            .spawn_detached(move || SlowDrop {
                began: tx,
                for_: Duration::from_secs(3),
                finished: Arc::default(),
            })
            .unwrap();
        began.recv_timeout(LIMIT).expect("the drop began");
        let start = Instant::now();
        let report = manager.close_timeout(Duration::from_millis(100));
        let took = start.elapsed();
        assert!(took < Duration::from_millis(900), "close took {took:?}");
        assert!(report.abandoned.contains(&id), "{report:?}");
        assert!(report.timed_out);
        drop(manager);
        assert!(start.elapsed() < Duration::from_secs(2), "drop waited");
    });
}

/// A result whose drop blocks until `gate` opens.
struct StuckDrop(mpsc::Sender<()>, Gate);

impl Drop for StuckDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
        self.1.wait();
    }
}

// Case 8, the variant whose drop does not return until the test ends.
#[test]
fn a_close_and_drop_return_while_a_result_drop_never_returns() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(2)
            .close_timeout(Duration::from_millis(100))
            .start()
            .unwrap();
        let never = Gate::new();
        let (tx, began) = mpsc::channel();
        let g = never.clone();
        let id = manager.spawn_detached(move || StuckDrop(tx, g)).unwrap();
        began.recv_timeout(LIMIT).expect("the drop began");
        let start = Instant::now();
        let report = manager.close();
        assert!(report.abandoned.contains(&id), "{report:?}");
        drop(manager);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "close and drop took {took:?}"
        );
        never.open();
    });
}

// Case 9, a detached result: drain waits for its drop to end.
#[test]
fn a_task_is_settled_only_after_its_result_is_dropped() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let finished = Arc::new(AtomicBool::new(false));
        let (tx, began) = mpsc::channel();
        let f = finished.clone();
        manager
            .spawn_detached(move || SlowDrop {
                began: tx,
                for_: Duration::from_millis(300),
                finished: f,
            })
            .unwrap();
        // Drain is called while the drop runs (it sleeps to keep the window
        // wide; the check below is exact either way).
        began.recv_timeout(LIMIT).expect("the drop began");
        manager.drain();
        assert!(
            finished.load(Ordering::SeqCst),
            "drain returned while a result's drop was still running"
        );
    });
}

/// A detached result whose drop spawns one more task on the same manager.
struct SpawnsOnDropArc {
    manager: Arc<TaskManager>,
    began: mpsc::Sender<()>,
    ran: Arc<AtomicBool>,
}

impl Drop for SpawnsOnDropArc {
    fn drop(&mut self) {
        let _ = self.began.send(());
        thread::sleep(Duration::from_millis(100)); // widens the window only
        let ran = self.ran.clone();
        self.manager
            .spawn_detached(move || ran.store(true, Ordering::SeqCst))
            .unwrap();
    }
}

// Case 9, a task spawned from a result's drop, through a shared manager:
// drain counts it, since the parent was not settled before it was spawned.
#[test]
fn a_task_spawned_from_a_result_drop_is_drained() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let ran = Arc::new(AtomicBool::new(false));
        let (tx, began) = mpsc::channel();
        let (m, r) = (manager.clone(), ran.clone());
        manager
            .spawn_detached(move || SpawnsOnDropArc {
                manager: m,
                began: tx,
                ran: r,
            })
            .unwrap();
        began.recv_timeout(LIMIT).expect("the drop began");
        manager.drain();
        assert!(
            ran.load(Ordering::SeqCst),
            "drain returned before the task spawned from the drop ran"
        );
    });
}

/// A scoped result (it holds the scope) that spawns from its drop.
struct SpawnsOnDropScoped<'scope, 'env> {
    scope: &'scope taskwarden::Scope<'scope, 'env>,
    ran: &'env AtomicUsize,
}

impl Drop for SpawnsOnDropScoped<'_, '_> {
    fn drop(&mut self) {
        thread::sleep(Duration::from_millis(50)); // widens the window only
        let ran = self.ran;
        self.scope.spawn(move || ran.fetch_add(1, Ordering::SeqCst));
    }
}

// Case 9, in a scope: the scope returns only after the tasks spawned from
// its results' drops ran.
#[test]
fn a_task_spawned_from_a_scoped_result_drop_runs_before_the_scope_returns() {
    watchdog(|| {
        let ran = AtomicUsize::new(0);
        TaskManager::scope(2, |s| {
            let ran = &ran;
            // Detached at once: the worker drops the result.
            drop(s.spawn(move || SpawnsOnDropScoped { scope: s, ran }));
            // Joined: the caller drops it.
            let joined = s.spawn(move || SpawnsOnDropScoped { scope: s, ran });
            drop(joined.join().unwrap());
            // Finished, then its handle dropped.
            let late = s.spawn(move || SpawnsOnDropScoped { scope: s, ran });
            while !late.is_finished() {
                thread::yield_now();
            }
            drop(late);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    });
}

struct Capture(Mutex<Vec<String>>);

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Error
    }
    fn log(&self, record: &Record<'_>) {
        if record.level() <= Level::Error {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn errors() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger in this test binary");
        log::set_max_level(LevelFilter::Error);
        capture
    })
}

fn error_logged(id: TaskId, message: &str) -> bool {
    let id = id.to_string();
    errors()
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.contains(&id) && line.contains(message))
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

// Case 10, the handle dropped before the task finished.
#[test]
fn a_result_drop_panic_with_the_handle_dropped_before_the_task_finished() {
    watchdog(|| {
        errors();
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let handle = manager
            .spawn(move || {
                g.wait();
                PanicOnDrop("result-drop-panic-before-2291")
            })
            .unwrap();
        let id = handle.id();
        assert!(catch_unwind(AssertUnwindSafe(|| drop(handle))).is_ok());
        gate.open();
        manager.drain();
        assert_eq!(manager.stats().panicked, 1);
        assert!(error_logged(id, "result-drop-panic-before-2291"));
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

// Case 10, the handle dropped after the task finished: the result drops on
// the dropping thread, and its panic must not unwind out of `drop(handle)`.
#[test]
fn a_result_drop_panic_with_the_handle_dropped_after_the_task_finished() {
    watchdog(|| {
        errors();
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn(|| PanicOnDrop("result-drop-panic-after-8172"))
            .unwrap();
        let id = handle.id();
        assert!(handle.wait_timeout(LIMIT));
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(handle)));
        assert!(dropped.is_ok(), "the panic unwound out of drop(handle)");
        wait_for("the panic counted", || manager.stats().panicked == 1);
        assert!(error_logged(id, "result-drop-panic-after-8172"));
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}

// Case 10, a detached task.
#[test]
fn a_result_drop_panic_of_a_detached_task() {
    watchdog(|| {
        errors();
        let manager = TaskManager::new(1);
        let id = manager
            .spawn_detached(|| PanicOnDrop("result-drop-panic-detached-5530"))
            .unwrap();
        manager.drain();
        assert_eq!(manager.stats().panicked, 1);
        assert!(error_logged(id, "result-drop-panic-detached-5530"));
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
    });
}
