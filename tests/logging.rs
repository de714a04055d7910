//! What taskwarden logs: task panics at error level with id and message,
//! close deadlines at warn level, start and close at debug.

mod common;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{hold_slot, watchdog};
use log::{Level, LevelFilter, Log, Metadata, Record};
use taskwarden::TaskManager;

/// Each record with its level, its text and the name of the thread that
/// wrote it (records of all the tests in this binary mix here).
struct Capture(Mutex<Vec<(Level, String, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string(), thread));
    }
    fn flush(&self) {}
}

fn records() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
        capture
    })
}

fn logged(level: Level, needles: &[&str]) -> bool {
    records()
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|(l, text, _)| *l == level && needles.iter().all(|n| text.contains(n)))
}

#[test]
fn a_panic_is_logged_at_error_level_with_id_and_message() {
    watchdog(|| {
        records();
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn(|| panic!("unique-panic-message-7731"))
            .unwrap();
        let id = handle.id().to_string();
        let _ = handle.join();
        assert!(logged(Level::Error, &[&id, "unique-panic-message-7731"]));
    });
}

#[test]
fn a_close_deadline_is_logged_at_warn_level_naming_the_tasks() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .thread_name("deadline-log")
            .max_tasks(1)
            .start()
            .unwrap();
        let (release, stubborn) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        manager.close_timeout(Duration::from_millis(10));
        release.open();
        let (a, c) = (stubborn.id().to_string(), queued.id().to_string());
        assert!(
            logged(Level::Warn, &["deadline-log", &a, &c]),
            "{:?}",
            records().0.lock().unwrap()
        );
    });
}

#[test]
fn start_and_close_are_logged_at_debug_level() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .thread_name("debug-log-unique")
            .start()
            .unwrap();
        manager.close();
        assert!(logged(Level::Debug, &["starting", "debug-log-unique"]));
        assert!(logged(Level::Debug, &["closed", "debug-log-unique"]));
    });
}

/// Every manager's first task is "task-1", so records are told apart by
/// thread: this test spawns and waits from a thread of its own, on a
/// manager whose workers have a prefix of their own. The task starts and
/// finishes on one of those workers (or inline on the spawning thread).
#[test]
fn each_task_is_traced() {
    watchdog(|| {
        records();
        const SPAWNER: &str = "each-task-is-traced-spawner";
        const WORKERS: &str = "each-task-is-traced-worker";
        let id = std::thread::Builder::new()
            .name(SPAWNER.into())
            .spawn(|| {
                let manager = TaskManager::builder()
                    .max_tasks(1)
                    .thread_name(WORKERS)
                    .start()
                    .unwrap();
                let handle = manager.spawn(|| ()).unwrap();
                let id = handle.id();
                handle.join().unwrap();
                manager.drain();
                id
            })
            .unwrap()
            .join()
            .unwrap();
        let ours = |event: &str, on_a_worker: bool| {
            let text = format!("{id} {event}");
            records()
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|(level, line, thread)| {
                    *level == Level::Trace
                        && line.starts_with(&text)
                        && (thread == SPAWNER || (on_a_worker && thread.starts_with(WORKERS)))
                })
        };
        let all = || format!("{:?}", records().0.lock().unwrap());
        assert!(ours("queued", false), "{}", all());
        assert!(ours("started", true), "{}", all());
        assert!(ours("finished", true), "{}", all());
    });
}

#[test]
fn log_lines_about_a_named_task_carry_its_name() {
    watchdog(|| {
        records();
        let manager = TaskManager::new(1);
        let options = taskwarden::TaskOptions::new().name(format!("resize {}", "a.jpg"));
        let handle = manager
            .spawn_with(options, || panic!("unique-named-panic-5520"))
            .unwrap();
        let label = format!("{} (resize a.jpg)", handle.id());
        let _ = handle.join();
        assert!(
            logged(
                Level::Error,
                &[&label, "panicked", "unique-named-panic-5520"]
            ),
            "no error line says {label}"
        );
        // Trace lines too (start and finish).
        assert!(logged(Level::Trace, &[&label, "started"]));
        // An unnamed task's lines have no parentheses.
        let plain = manager.spawn(|| panic!("unique-plain-panic-5521")).unwrap();
        let id = plain.id().to_string();
        let _ = plain.join();
        assert!(logged(
            Level::Error,
            &[&format!("{id} panicked"), "unique-plain-panic-5521"]
        ));
    });
}

#[test]
fn a_close_deadline_names_its_named_tasks() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .thread_name("named-deadline-log")
            .max_tasks(1)
            .start()
            .unwrap();
        let gate = std::sync::Arc::new(common::Gate::new());
        let g = gate.clone();
        let named = |name: &'static str| taskwarden::TaskOptions::new().name(name);
        let stubborn = manager
            .spawn_with(named("stubborn upload"), move || g.wait())
            .unwrap();
        common::wait_for("the stubborn task to run", || !manager.running().is_empty());
        let queued = manager.spawn_with(named("queued resize"), || ()).unwrap();
        manager.close_timeout(Duration::from_millis(10));
        gate.open();
        let abandoned = format!("{} (stubborn upload)", stubborn.id());
        let cancelled = format!("{} (queued resize)", queued.id());
        assert!(
            logged(Level::Warn, &["named-deadline-log", &abandoned, &cancelled]),
            "{:?}",
            records().0.lock().unwrap()
        );
    });
}

#[test]
fn a_close_still_waiting_after_a_second_says_once_what_for_and_until_when() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .thread_name("slow-close-log")
            .max_tasks(1)
            .start()
            .unwrap();
        let gate = std::sync::Arc::new(common::Gate::new());
        let g = gate.clone();
        let slow = manager
            .spawn_with(
                taskwarden::TaskOptions::new().name("slow export"),
                move || g.wait(),
            )
            .unwrap();
        common::wait_for("the slow task to run", || !manager.running().is_empty());
        let queued = manager.spawn(|| ()).unwrap();
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1_500));
            gate.open();
        });
        let report = manager.close_timeout(Duration::from_secs(30));
        opener.join().unwrap();
        assert!(report.is_clean() && !report.timed_out, "{report:?}");
        let waiting = format!("{} (slow export)", slow.id());
        let lines: Vec<String> = records()
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, text, _)| {
                *level == Level::Warn
                    && text.contains("slow-close-log")
                    && text.contains("is waiting for")
            })
            .map(|(_, text, _)| text.clone())
            .collect();
        assert_eq!(lines.len(), 1, "once: {lines:?}");
        assert!(lines[0].contains(&waiting), "{}", lines[0]);
        assert!(lines[0].contains(&queued.id().to_string()), "{}", lines[0]);
        assert!(lines[0].contains("until its deadline in"), "{}", lines[0]);
        // A quick close says nothing of the kind.
        let quick = TaskManager::builder()
            .thread_name("quick-close-log")
            .start()
            .unwrap();
        quick.spawn(|| ()).unwrap();
        quick.close();
        assert!(!logged(Level::Warn, &["quick-close-log"]));
    });
}
