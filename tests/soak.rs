//! Soak: eight threads spawn while another keeps replacing the manager with
//! a fresh one and closing the old one on a short deadline. Every closure is
//! accounted for exactly once: rejected and handed back, ran, or cancelled
//! by a close (and then named in that close's report).
//!
//! `cargo test --release -- --ignored soak` runs the long version (at least
//! 1,000,000 spawns); CI runs `soak_short`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::watchdog;
use taskwarden::{TaskError, TaskManager};

const SPAWNERS: usize = 8;

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    cancelled: AtomicUsize,
    rejected: AtomicUsize,
    ran: AtomicUsize,
    reported_cancelled: AtomicUsize,
}

fn soak(total: usize) {
    let current = Arc::new(Mutex::new(Arc::new(TaskManager::new(4))));
    let tally = Arc::new(Tally::default());
    let spawning = Arc::new(AtomicBool::new(true));

    let closer = {
        let (current, tally, spawning) = (current.clone(), tally.clone(), spawning.clone());
        std::thread::spawn(move || {
            let mut closes = 0;
            while spawning.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(300));
                let fresh = Arc::new(TaskManager::new(4));
                let old = std::mem::replace(&mut *current.lock().unwrap(), fresh);
                let report = old.close_timeout(Duration::from_micros(50));
                tally
                    .reported_cancelled
                    .fetch_add(report.cancelled.len(), Ordering::SeqCst);
                closes += 1;
            }
            closes
        })
    };

    let spawners: Vec<_> = (0..SPAWNERS)
        .map(|_| {
            let (current, tally) = (current.clone(), tally.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::with_capacity(1024);
                let settle = |handles: &mut Vec<taskwarden::TaskHandle<()>>| {
                    for handle in handles.drain(..) {
                        match handle.join() {
                            Ok(()) => tally.ok.fetch_add(1, Ordering::SeqCst),
                            Err(TaskError::Cancelled) => {
                                tally.cancelled.fetch_add(1, Ordering::SeqCst)
                            }
                            Err(other) => panic!("{other}"),
                        };
                    }
                };
                for _ in 0..total / SPAWNERS {
                    let manager = current.lock().unwrap().clone();
                    let t = tally.clone();
                    match manager.spawn(move || {
                        // A little work, so that closes find tasks queued.
                        let mut x = 0_u64;
                        for i in 0..300 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                        }
                        t.ran.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(handle) => handles.push(handle),
                        Err(error) => {
                            assert!(error.is_closed());
                            error.into_inner()(); // handed back: it still runs, here
                            tally.rejected.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if handles.len() == 1024 {
                        settle(&mut handles);
                    }
                }
                settle(&mut handles);
            })
        })
        .collect();
    for spawner in spawners {
        spawner.join().unwrap();
    }
    spawning.store(false, Ordering::SeqCst);
    let closes = closer.join().unwrap();
    let last = current.lock().unwrap().clone();
    let report = last.close();
    tally
        .reported_cancelled
        .fetch_add(report.cancelled.len(), Ordering::SeqCst);

    let total = total / SPAWNERS * SPAWNERS;
    let (ok, cancelled, rejected, ran) = (
        tally.ok.load(Ordering::SeqCst),
        tally.cancelled.load(Ordering::SeqCst),
        tally.rejected.load(Ordering::SeqCst),
        tally.ran.load(Ordering::SeqCst),
    );
    assert_eq!(
        ok + cancelled + rejected,
        total,
        "every spawn accounted for"
    );
    assert_eq!(
        ran,
        ok + rejected,
        "each closure ran at most once, and none was lost"
    );
    assert_eq!(
        cancelled,
        tally.reported_cancelled.load(Ordering::SeqCst),
        "reports name every cancel"
    );
    assert!(closes > 0);
    eprintln!("soak: {total} spawns, {ok} ran, {cancelled} cancelled, {rejected} rejected, {closes} closes");
}

#[test]
fn soak_short() {
    watchdog(|| {
        soak(if cfg!(debug_assertions) {
            40_000
        } else {
            200_000
        })
    });
}

#[test]
#[ignore = "long: run with `cargo test --release -- --ignored soak`"]
fn soak_long() {
    watchdog(|| soak(1_200_000));
}
