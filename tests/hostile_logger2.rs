//! A bad neighbour: a logger that spawns on the manager that is logging.
//! The logger is per process, so this file holds a single test.
//!
//! The logger finds the manager through a global slot (a `Weak`) and
//! `spawn_detached`s one closure per record, with trace enabled: every
//! record the engine writes, from spawn, worker, drain or close, re-enters
//! the engine. A budget stops the chain (each spawned task logs again).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use common::watchdog;
use log::{LevelFilter, Log, Metadata, Record};
use taskwarden::TaskManager;

static SLOT: Mutex<Option<Weak<TaskManager>>> = Mutex::new(None);
const BUDGET: usize = 300;
static TRIED: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static RAN: AtomicUsize = AtomicUsize::new(0);

struct SpawnsPerRecord;

impl Log for SpawnsPerRecord {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &Record<'_>) {
        // The slot's lock is released at the end of this statement, before
        // spawning (which logs again, re-entering here).
        let weak = SLOT.lock().unwrap().clone();
        let Some(manager) = weak.and_then(|weak| weak.upgrade()) else {
            return;
        };
        if TRIED.fetch_add(1, Ordering::SeqCst) >= BUDGET {
            return;
        }
        let spawned = manager.spawn_detached(|| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        if spawned.is_ok() {
            ACCEPTED.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_logger_that_spawns_on_the_same_manager() {
    watchdog(|| {
        log::set_logger(&SpawnsPerRecord).expect("the only logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
        let manager = Arc::new(TaskManager::builder().max_tasks(2).start().unwrap());
        *SLOT.lock().unwrap() = Some(Arc::downgrade(&manager));
        let handles: Vec<_> = (0..20_u64)
            .map(|n| manager.spawn(move || n * 2).unwrap())
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 380);
        manager.drain();
        assert!(ACCEPTED.load(Ordering::SeqCst) > 0, "the logger spawned");
        let report = manager.close();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            RAN.load(Ordering::SeqCst),
            ACCEPTED.load(Ordering::SeqCst),
            "every task the logger got accepted ran before the close returned"
        );
        *SLOT.lock().unwrap() = None;
        drop(manager);
    });
}
