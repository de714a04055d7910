//! What taskwarden logs: task panics at error level with id and message,
//! close deadlines at warn level, start and close at debug.

mod common;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{hold_slot, watchdog};
use log::{Level, LevelFilter, Log, Metadata, Record};
use taskwarden::TaskManager;

struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
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
        .any(|(l, text)| *l == level && needles.iter().all(|n| text.contains(n)))
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

#[test]
fn each_task_is_traced() {
    watchdog(|| {
        records();
        let manager = TaskManager::new(1);
        let id = manager.spawn(|| ()).unwrap().id().to_string();
        manager.drain();
        assert!(logged(Level::Trace, &[&id, "started"]));
        assert!(logged(Level::Trace, &[&id, "finished"]));
    });
}
