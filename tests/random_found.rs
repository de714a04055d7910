//! Defects found by a model-based random test (issue 22), each as its
//! reproduction under a watchdog: a `close_now` that listed its caller, and
//! a `state` ahead of its handle. (The drain that waited for its own waiter
//! is in `wait_for_exclusion.rs`.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{hold_slot, scaled, wait_for, watchdog, LIMIT};
use taskwarden::{TaskManager, TaskOptions, TaskState};

/// Defect 2: `close_now` from inside a task while another thread closes never
/// lists its caller: the caller is excluded before it wakes the closer.
#[test]
fn close_now_from_inside_during_a_close_never_lists_its_caller() {
    watchdog(|| {
        let rounds = scaled(300);
        let mut ran = 0;
        for round in 0..rounds {
            let m = Arc::new(TaskManager::new(1));
            let weak = Arc::downgrade(&m);
            let task = m
                .spawn_with(
                    TaskOptions::new().start_after(Duration::from_millis(3)),
                    move || weak.upgrade().unwrap().close_now(Duration::from_millis(11)),
                )
                .unwrap();
            let id = task.id();
            let outer = m.close_timeout(Duration::from_millis(23));
            // On a loaded machine the task may not have started by the
            // outer deadline: then the close cancelled it, nothing to check.
            let Ok(inner) = task.join() else {
                continue;
            };
            ran += 1;
            for report in [&inner, &outer] {
                assert!(
                    !report.stopped.contains(&id) && !report.abandoned.contains(&id),
                    "round {round}: the caller {id} is listed: {report:?}"
                );
            }
        }
        assert!(
            ran * 2 >= rounds,
            "only {ran} of {rounds} tasks ran before the close"
        );
    });
}

/// Defect 3: `state(id)` says `Finished` only when the handle is finished: not
/// while another thread is still dropping the closure of the queued task it
/// cancels.
#[test]
fn state_and_handle_agree_while_a_cancelled_closure_is_dropped() {
    struct SlowDrop(mpsc::Sender<()>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
            thread::sleep(Duration::from_millis(200));
        }
    }
    watchdog(|| {
        let m = Arc::new(TaskManager::new(1));
        let (gate, held) = hold_slot(&m);
        let (began_tx, began) = mpsc::channel();
        let slow = SlowDrop(began_tx);
        let handle = m
            .spawn(move || {
                let _keep = &slow;
            })
            .unwrap();
        let id = handle.id();
        let canceller = {
            let m = m.clone();
            thread::spawn(move || m.cancel(id))
        };
        began.recv_timeout(LIMIT).expect("the drop began");
        let mut seen_dropping = false;
        loop {
            let state = m.state(id);
            let finished = handle.is_finished();
            if state == Some(TaskState::Finished) {
                assert!(
                    handle.is_finished(),
                    "state says Finished while the handle is not"
                );
                break;
            }
            if !finished {
                seen_dropping = true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        assert!(seen_dropping, "the drop was not observed in progress");
        assert!(canceller.join().unwrap());
        assert_eq!(handle.join(), Err(taskwarden::TaskError::Cancelled));
        gate.open();
        held.join().unwrap();
        assert!(m.close().is_clean());
    });
}

/// While the closure is being dropped, the handle waits (it is not
/// finished), and once `state` reads `Finished`, `wait_timeout` returns at
/// once.
#[test]
fn a_finished_state_means_wait_timeout_returns_at_once() {
    watchdog(|| {
        let m = TaskManager::new(2);
        for _ in 0..scaled(2_000) {
            let done = Arc::new(AtomicBool::new(false));
            let d = done.clone();
            let handle = m.spawn(move || d.store(true, Ordering::SeqCst)).unwrap();
            let id = handle.id();
            wait_for("the task to finish", || {
                m.state(id) == Some(TaskState::Finished)
            });
            assert!(handle.is_finished());
            assert!(handle.wait_timeout(Duration::ZERO));
            assert!(done.load(Ordering::SeqCst));
        }
    });
}
