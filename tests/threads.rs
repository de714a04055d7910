//! Worker threads: `keep_alive`, `on_thread_start` / `on_thread_stop` hooks,
//! `on_panic`, and panicking hooks.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Gate};
use taskwarden::{TaskError, TaskId, TaskManager};

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_string()
}

/// True for "{prefix}-{n}".
fn is_worker_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

thread_local! {
    static STARTED_HERE: Cell<bool> = const { Cell::new(false) };
}

#[test]
fn an_idle_thread_exits_after_keep_alive_and_new_work_starts_threads_again() {
    watchdog(|| {
        let keep_alive = Duration::from_millis(50);
        let stops = Arc::new(Mutex::new(Vec::new()));
        let starts = Arc::new(AtomicUsize::new(0));
        let (st, sp) = (starts.clone(), stops.clone());
        let manager = TaskManager::builder()
            .max_tasks(2)
            .keep_alive(keep_alive)
            .on_thread_start(move || {
                st.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || sp.lock().unwrap().push(Instant::now()))
            .start()
            .unwrap();
        let ended = manager.spawn(Instant::now).unwrap().join().unwrap();
        wait_for("the idle thread to exit", || manager.stats().threads == 0);
        let stopped = stops.lock().unwrap().clone();
        assert_eq!(stopped.len(), 1);
        assert!(
            stopped[0] >= ended + keep_alive,
            "exited {:?} after going idle",
            stopped[0] - ended
        );
        assert!(
            !manager.is_closed(),
            "keep_alive does not close the manager"
        );
        assert_eq!(
            manager.spawn(|| 7).unwrap().join(),
            Ok(7),
            "threads start again"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        wait_for("the second thread to exit", || manager.stats().threads == 0);
        assert!(manager.close().is_clean());
    });
}

#[test]
fn without_keep_alive_threads_live_until_close() {
    watchdog(|| {
        let stops = Arc::new(AtomicUsize::new(0));
        let sp = stops.clone();
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_thread_stop(move || {
                sp.fetch_add(1, Ordering::SeqCst);
            })
            .start()
            .unwrap();
        let handle = manager.spawn(|| ()).unwrap();
        handle.join().unwrap();
        let idle = manager.spawn(|| ()).unwrap();
        assert!(idle.wait_timeout(common::LIMIT));
        // An idle wait well past any plausible keep-alive.
        let gate = Gate::new();
        let g = gate.clone();
        let waiter = manager.spawn(move || g.wait()).unwrap();
        assert!(!waiter.wait_timeout(Duration::from_millis(100)));
        gate.open();
        waiter.join().unwrap();
        let threads = manager.stats().threads;
        assert!(threads >= 1);
        assert_eq!(
            stops.load(Ordering::SeqCst),
            0,
            "no thread exited before close"
        );
        manager.close();
        assert_eq!(stops.load(Ordering::SeqCst), threads);
    });
}

#[test]
fn thread_hooks_run_on_the_named_worker_threads() {
    watchdog(|| {
        let started = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let (st, sp) = (started.clone(), stopped.clone());
        let manager = TaskManager::builder()
            .max_tasks(2)
            .thread_name("hooked")
            .on_thread_start(move || {
                STARTED_HERE.with(|s| s.set(true));
                st.lock().unwrap().push(thread_name());
            })
            .on_thread_stop(move || sp.lock().unwrap().push(thread_name()))
            .start()
            .unwrap();
        let gate = Gate::new();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                manager
                    .spawn(move || {
                        g.wait();
                        (STARTED_HERE.with(|s| s.get()), thread_name())
                    })
                    .unwrap()
            })
            .collect();
        wait_for("both running", || manager.running().len() == 2);
        gate.open();
        let mut task_threads = HashSet::new();
        for handle in handles {
            let (hook_ran_first, name) = handle.join().unwrap();
            assert!(hook_ran_first, "on_thread_start runs before the first task");
            task_threads.insert(name);
        }
        assert!(manager.close().is_clean());
        let started: HashSet<_> = started.lock().unwrap().iter().cloned().collect();
        let stopped: Vec<_> = stopped.lock().unwrap().clone();
        assert_eq!(started.len(), 2, "{started:?}");
        assert_eq!(task_threads, started);
        assert_eq!(stopped.len(), 2, "{stopped:?}");
        assert_eq!(stopped.iter().cloned().collect::<HashSet<_>>(), started);
        for name in &started {
            assert!(is_worker_name(name, "hooked"), "{name}");
        }
    });
}

#[test]
fn on_thread_stop_runs_for_an_abandoned_thread_after_close_returns() {
    watchdog(|| {
        let stops = Arc::new(AtomicUsize::new(0));
        let sp = stops.clone();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_thread_stop(move || {
                sp.fetch_add(1, Ordering::SeqCst);
            })
            .start()
            .unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let stubborn = manager.spawn(move || g.wait()).unwrap();
        wait_for("the slot taken", || manager.running().len() == 1);
        let report = manager.close_timeout(Duration::from_millis(30));
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert_eq!(
            stops.load(Ordering::SeqCst),
            0,
            "its thread is still in the task"
        );
        gate.open();
        stubborn.join().unwrap();
        wait_for("the stop hook", || stops.load(Ordering::SeqCst) == 1);
    });
}

#[derive(Debug, PartialEq)]
struct Oops(u32);

#[test]
fn on_panic_sees_the_task_the_message_and_the_original_payload() {
    watchdog(|| {
        type Seen = (TaskId, String, Option<u32>, Option<String>, String);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s = seen.clone();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .thread_name("panicky")
            .on_panic(move |report| {
                s.lock().unwrap().push((
                    report.task(),
                    report.message().to_string(),
                    report.payload().downcast_ref::<Oops>().map(|o| o.0),
                    report.payload().downcast_ref::<String>().cloned(),
                    thread_name(),
                ));
            })
            .start()
            .unwrap();
        let custom = manager
            .spawn(|| -> u8 { std::panic::panic_any(Oops(7)) })
            .unwrap();
        let custom_id = custom.id();
        let custom_message = match custom.join() {
            Err(TaskError::Panicked(message)) => message,
            other => panic!("expected a panic, got {other:?}"),
        };
        let text = manager
            .spawn(|| -> u8 { panic!("kaboom {}", std::hint::black_box(3)) })
            .unwrap();
        let text_id = text.id();
        assert_eq!(text.join(), Err(TaskError::Panicked("kaboom 3".into())));
        assert_eq!(
            manager.spawn(|| 1).unwrap().join(),
            Ok(1),
            "the manager goes on"
        );
        wait_for("both reports", || seen.lock().unwrap().len() == 2);
        let seen = seen.lock().unwrap();
        let (id, message, oops, _, thread) = &seen[0];
        assert_eq!(*id, custom_id);
        assert_eq!(*message, custom_message, "the message join reports");
        assert_eq!(*oops, Some(7), "the original payload");
        assert!(
            is_worker_name(thread, "panicky"),
            "ran on the worker: {thread}"
        );
        let (id, message, _, string, thread) = &seen[1];
        assert_eq!(*id, text_id);
        assert_eq!(message, "kaboom 3");
        assert_eq!(string.as_deref(), Some("kaboom 3"));
        assert!(
            is_worker_name(thread, "panicky"),
            "ran on the worker: {thread}"
        );
        drop(seen);
        wait_for("two panics counted", || manager.stats().panicked == 2);
    });
}

#[test]
fn a_panicking_hook_is_caught_and_the_manager_goes_on() {
    watchdog(|| {
        let stops = Arc::new(AtomicUsize::new(0));
        let sp = stops.clone();
        let panics = Arc::new(AtomicUsize::new(0));
        let pc = panics.clone();
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_thread_start(|| panic!("start hook"))
            .on_thread_stop(move || {
                sp.fetch_add(1, Ordering::SeqCst);
                panic!("stop hook");
            })
            .on_panic(move |_| {
                pc.fetch_add(1, Ordering::SeqCst);
                panic!("panic hook");
            })
            .start()
            .unwrap();
        for i in 0..6 {
            assert_eq!(manager.spawn(move || i).unwrap().join(), Ok(i));
        }
        let bad = manager.spawn(|| -> u8 { panic!("task") }).unwrap();
        assert_eq!(bad.join(), Err(TaskError::Panicked("task".into())));
        wait_for("the panic hook", || panics.load(Ordering::SeqCst) == 1);
        assert_eq!(manager.spawn(|| 9).unwrap().join(), Ok(9));
        let threads = manager.stats().threads;
        let report = manager.close();
        assert!(report.is_clean(), "{report:?}");
        assert!(stops.load(Ordering::SeqCst) >= threads);
        assert_eq!(manager.stats().threads, 0);
    });
}
