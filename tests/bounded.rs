//! A bounded queue: `try_spawn` reports full, `spawn` blocks, close wakes it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Gate};
use taskwarden::{SpawnError, SpawnErrorKind, TaskManager};

fn busy_manager(capacity: usize) -> (Arc<TaskManager>, Gate) {
    let manager = Arc::new(
        TaskManager::builder()
            .max_tasks(1)
            .queue_capacity(capacity)
            .start()
            .unwrap(),
    );
    let gate = Gate::new();
    let g = gate.clone();
    manager.spawn(move || g.wait()).unwrap();
    wait_for("the slot taken", || manager.running().len() == 1);
    (manager, gate)
}

#[test]
fn try_spawn_reports_a_full_queue_and_hands_the_closure_back() {
    watchdog(|| {
        let (manager, gate) = busy_manager(2);
        let a = manager.try_spawn(|| 'a').unwrap();
        let b = manager.try_spawn(|| 'b').unwrap();
        let full = manager.try_spawn(|| 'c').unwrap_err();
        assert!(full.is_full() && !full.is_closed());
        assert_eq!(full.kind(), SpawnErrorKind::Full);
        assert!(full.to_string().contains("full"));
        assert_eq!(full.into_inner()(), 'c');
        assert_eq!(manager.stats().queued, 2);
        gate.open();
        assert_eq!((a.join(), b.join()), (Ok('a'), Ok('b')));
        assert!(manager.try_spawn(|| 'd').is_ok(), "room again");
    });
}

#[test]
fn spawn_blocks_while_the_queue_is_full() {
    watchdog(|| {
        let (manager, gate) = busy_manager(1);
        manager.spawn(|| ()).unwrap(); // fills the queue
        let accepted = Arc::new(AtomicBool::new(false));
        let (m, a) = (manager.clone(), accepted.clone());
        let producer = std::thread::spawn(move || {
            let handle = m.spawn(|| "late").unwrap();
            a.store(true, Ordering::SeqCst);
            handle.join()
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !accepted.load(Ordering::SeqCst),
            "spawn must block on a full queue"
        );
        gate.open();
        assert_eq!(producer.join().unwrap(), Ok("late"));
        assert!(accepted.load(Ordering::SeqCst));
    });
}

#[test]
fn cancelling_a_queued_task_makes_room() {
    watchdog(|| {
        let (manager, gate) = busy_manager(1);
        let queued = manager.spawn(|| ()).unwrap();
        assert!(manager.try_spawn(|| ()).unwrap_err().is_full());
        queued.cancel();
        let next = manager.try_spawn(|| 5).unwrap();
        gate.open();
        assert_eq!(next.join(), Ok(5));
    });
}

/// What a producer's spawn returned, with its closure type named.
type Spawned = Result<(), SpawnError<fn() -> &'static str>>;

/// Starts `n` producers that each spawn into the full queue of `manager`,
/// and waits until all are blocked: each raised its flag just before its
/// spawn, the queue is full, and no spawn has returned.
fn blocked_spawners(manager: &Arc<TaskManager>, n: usize) -> mpsc::Receiver<Spawned> {
    let (returned, results) = mpsc::channel();
    let about_to_spawn = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let (m, flag, returned) = (manager.clone(), about_to_spawn.clone(), returned.clone());
        std::thread::spawn(move || {
            flag.fetch_add(1, Ordering::SeqCst);
            let refused: fn() -> &'static str = || "refused";
            let _ = returned.send(m.spawn(refused).map(drop));
        });
    }
    wait_for("the producers at their spawn, the queue full", || {
        about_to_spawn.load(Ordering::SeqCst) == n && manager.stats().queued == 1
    });
    // Give a spawn that wrongly does not block the time to say so.
    assert!(
        results.recv_timeout(Duration::from_millis(50)).is_err(),
        "a spawn into a full queue returned before the close"
    );
    results
}

/// The close wakes blocked spawners as it begins, not at its deadline nor
/// when the tasks are done: the running task is held until the spawners
/// have returned, and the deadline is far away.
fn close_wakes_blocked_spawners(n: usize) {
    let (manager, gate) = busy_manager(1);
    let queued_ran = Arc::new(AtomicBool::new(false));
    let q = queued_ran.clone();
    manager
        .spawn(move || q.store(true, Ordering::SeqCst))
        .unwrap();
    let results = blocked_spawners(&manager, n);
    let start = Instant::now();
    let closer = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.close_timeout(Duration::from_secs(10)))
    };
    for _ in 0..n {
        let error = results
            .recv_timeout(common::LIMIT)
            .expect("a blocked spawner woke")
            .unwrap_err();
        assert!(error.is_closed(), "{error}");
        assert_eq!(error.into_inner()(), "refused");
    }
    let woke_after = start.elapsed();
    assert!(
        woke_after < Duration::from_secs(5),
        "the spawners woke only after {woke_after:?}"
    );
    gate.open();
    let report = closer.join().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        queued_ran.load(Ordering::SeqCst),
        "the queued task still ran"
    );
}

#[test]
fn close_wakes_a_blocked_spawner_with_a_closed_error() {
    watchdog(|| close_wakes_blocked_spawners(1));
}

#[test]
fn close_wakes_every_blocked_spawner_with_a_closed_error() {
    watchdog(|| close_wakes_blocked_spawners(3));
}

#[test]
fn a_fast_producer_never_overfills_the_queue() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(2)
            .queue_capacity(4)
            .start()
            .unwrap();
        let mut most = 0;
        for _ in 0..300 {
            manager
                .spawn(|| std::thread::sleep(Duration::from_micros(50)))
                .unwrap();
            most = most.max(manager.stats().queued);
        }
        manager.drain();
        assert!(most <= 4, "queued {most} with capacity 4");
        assert_eq!(manager.stats().completed, 300);
    });
}

/// A task that `running()` shows has left the queue: its place is free at
/// once. (It used to show a moment before a bounded queue counted it out,
/// and a spawner that had waited for it could still find the queue full.)
#[test]
fn a_task_shown_running_has_left_the_queue() {
    watchdog(|| {
        for _ in 0..300 {
            let manager = TaskManager::builder()
                .max_tasks(1)
                .queue_capacity(1)
                .start()
                .unwrap();
            let gate = Gate::new();
            let g = gate.clone();
            manager.spawn(move || g.wait()).unwrap();
            // No sleep between looks: the check lands as close to the
            // start as it can.
            while manager.running().is_empty() {
                std::hint::spin_loop();
            }
            let queued = manager
                .try_spawn(|| ())
                .expect("the running task's place in the queue is free");
            gate.open();
            queued.join().unwrap();
        }
    });
}
