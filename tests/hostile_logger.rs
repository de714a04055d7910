//! A bad neighbour: a `log` implementation that panics on every record.
//! The logger is per process, so this file holds a single test.
//!
//! Expected: a logger's panic never escapes through the public API and
//! never leaves a task unsettled or a lock held: spawn, join, drain, a
//! timed-out close, a second close and Drop all return normally.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{hold_slot, watchdog};
use log::{LevelFilter, Log, Metadata, Record};
use taskwarden::{TaskError, TaskManager};

const MARK: &str = "the hostile logger panics";

struct Panics;

static RECORDS: AtomicUsize = AtomicUsize::new(0);

impl Log for Panics {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        RECORDS.fetch_add(1, Ordering::SeqCst);
        panic!("{MARK} on a {} record", record.level());
    }
    fn flush(&self) {}
}

#[test]
fn a_logger_that_panics_on_every_record() {
    // Keep the logger's own panics on the workers out of the output;
    // report all others (a panic escaping to the test thread included).
    let report_others = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        let on_a_worker = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("taskwarden"));
        if !(on_a_worker && text.starts_with(MARK)) {
            report_others(info);
        }
    }));
    watchdog(|| {
        log::set_logger(&Panics).expect("the only logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
        // Tasks settle (traces at queued, started, finished; errors for
        // the panicking ones), and drain returns.
        let manager = TaskManager::new(2);
        let handles: Vec<_> = (0..20_u32)
            .map(|n| {
                manager
                    .spawn(move || {
                        if n % 5 == 0 {
                            panic!("task {n} panics");
                        }
                        n
                    })
                    .unwrap()
            })
            .collect();
        for (n, handle) in (0..20_u32).zip(handles) {
            match handle.join() {
                Ok(value) => assert_eq!(value, n),
                Err(TaskError::Panicked(message)) => {
                    assert_eq!(n % 5, 0);
                    assert_eq!(message, format!("task {n} panics"));
                }
                Err(other) => panic!("task {n}: {other:?}"),
            }
        }
        manager.drain();
        let stats = manager.stats();
        assert_eq!((stats.running, stats.queued), (0, 0));
        assert_eq!((stats.completed, stats.panicked), (16, 4));
        assert!(RECORDS.load(Ordering::SeqCst) > 0, "the logger was called");
        drop(manager);

        // A close that times out with a running and a queued task (warn),
        // then a second close and Drop.
        let manager = TaskManager::new(1);
        let (release, running) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        let report = manager.close_timeout(Duration::from_millis(50));
        assert_eq!(report.abandoned, vec![running.id()], "{report:?}");
        assert_eq!(report.cancelled, vec![queued.id()], "{report:?}");
        assert!(report.timed_out);
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        let again = manager.close();
        assert_eq!(format!("{again:?}"), format!("{report:?}"));
        release.open();
        running.join().unwrap();
        drop(manager);
    });
}
