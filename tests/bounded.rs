//! A bounded queue: `try_spawn` reports full, `spawn` blocks, close wakes it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_for, watchdog, Gate};
use taskwarden::{SpawnErrorKind, TaskManager};

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

#[test]
fn close_wakes_a_blocked_spawner_with_a_closed_error() {
    watchdog(|| {
        let (manager, gate) = busy_manager(1);
        manager.spawn(|| ()).unwrap();
        let m = manager.clone();
        let producer =
            std::thread::spawn(move || m.spawn(|| "refused").map(|_| ()).unwrap_err().into_inner());
        std::thread::sleep(Duration::from_millis(30));
        let closer = {
            let manager = manager.clone();
            std::thread::spawn(move || manager.close_timeout(Duration::from_millis(50)))
        };
        let handed_back = producer.join().unwrap();
        assert_eq!(handed_back(), "refused");
        let report = closer.join().unwrap();
        assert_eq!(report.cancelled.len(), 1);
        gate.open();
    });
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
