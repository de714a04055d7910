//! Waits lend their slot and never run a stranger (API.md part three,
//! "Waits lend their slot; they never run a stranger"): a task that holds a
//! lock while it waits cannot deadlock on a stranger that takes the same
//! lock (rayon's issue 592), in a join, a blocked spawn, a drain and a
//! close; a chain of 10,000 joins completes on the default stack; the limit
//! stays exact while parked tasks wake and the limit changes; a close
//! counts each task once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{scaled, wait_for, watchdog, Concurrency, Gate, LIMIT};
use taskwarden::{TaskManager, TaskState};

/// A stranger: takes `lock` (blocking), and says on which thread it ran.
fn stranger(lock: &Arc<Mutex<()>>) -> impl FnOnce() -> ThreadId + Send + 'static {
    let lock = lock.clone();
    move || {
        let _held = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        thread::current().id()
    }
}

/// A stranger that also says whether the task `holder` was still live
/// when it started: on the holder's thread, that means it ran on the
/// holder's stack (the same thread after the holder returned is fine).
fn stranger_of(
    lock: &Arc<Mutex<()>>,
    holder: taskwarden::TaskId,
) -> impl FnOnce() -> (ThreadId, bool) + Send + 'static {
    let lock = lock.clone();
    move || {
        let spawner = taskwarden::current_spawner().expect("inside a task");
        let holder_live = spawner.state(holder) != Some(TaskState::Finished);
        let _held = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (thread::current().id(), holder_live)
    }
}

/// A task holds a lock and joins a child that runs on another thread; a
/// stranger queued meanwhile takes the same lock. The join must not run
/// the stranger on the lock holder's stack.
#[test]
fn a_join_while_holding_a_lock_never_runs_a_stranger() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let lock = Arc::new(Mutex::new(()));
        let (m, l) = (manager.clone(), lock.clone());
        let holder = manager
            .spawn(move || {
                let _held = l.lock().unwrap();
                let gate = Gate::new();
                let g = gate.clone();
                let child = m.spawn(move || g.wait()).unwrap();
                let child_id = child.id();
                wait_for("the child to run", || {
                    m.state(child_id) == Some(TaskState::Running)
                });
                // Both slots are taken: the stranger queues.
                let me = taskwarden::current_task().expect("inside a task");
                let stranger = m.spawn(stranger_of(&l, me)).unwrap();
                let opener = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(50));
                    gate.open();
                });
                child.join().unwrap();
                opener.join().unwrap();
                (thread::current().id(), stranger)
            })
            .unwrap();
        let (holder_thread, stranger) = holder.join().unwrap();
        let (stranger_thread, holder_live) = stranger.join().unwrap();
        assert!(
            !(stranger_thread == holder_thread && holder_live),
            "a stranger ran on the lock holder's stack"
        );
        assert!(manager.close().is_clean());
    });
}

/// A task holding a lock spawns into a full bounded queue: the blocked
/// spawn lends its slot; the queued stranger runs elsewhere (and waits for
/// the lock until the holder lets go).
#[test]
fn a_blocked_spawn_while_holding_a_lock_never_runs_a_stranger() {
    watchdog(|| {
        let manager = Arc::new(
            TaskManager::builder()
                .max_tasks(1)
                .queue_capacity(1)
                .start()
                .unwrap(),
        );
        let lock = Arc::new(Mutex::new(()));
        let (m, l) = (manager.clone(), lock.clone());
        let holder = manager
            .spawn(move || {
                let _held = l.lock().unwrap();
                let first = m.spawn(stranger(&l)).unwrap();
                let second = m.spawn(|| thread::current().id()).unwrap();
                (thread::current().id(), first, second)
            })
            .unwrap();
        let (holder_thread, first, second) = holder.join().unwrap();
        assert_ne!(first.join(), Ok(holder_thread));
        assert!(second.join().is_ok());
        assert!(manager.close().is_clean());
    });
}

/// On a one-slot manager, a task takes `lock`, queues a stranger that
/// takes it too, then calls `wait` while still holding the lock. Returns
/// the holder's thread, what `wait` returned, and the stranger's handle.
fn wait_holding_a_lock<R: Send + 'static>(
    wait: impl FnOnce(&TaskManager) -> R + Send + 'static,
) -> (ThreadId, R, Stranger) {
    let manager = Arc::new(TaskManager::new(1));
    let lock = Arc::new(Mutex::new(()));
    let (m, l) = (manager.clone(), lock.clone());
    let holder = manager
        .spawn(move || {
            let _held = l.lock().unwrap();
            let stranger = m.spawn(stranger(&l)).unwrap();
            let waited = wait(&m);
            (thread::current().id(), waited, stranger)
        })
        .unwrap();
    let (holder_thread, waited, stranger) = holder.join().unwrap();
    manager.close();
    (
        holder_thread,
        waited,
        Stranger {
            handle: stranger,
            manager,
        },
    )
}

/// The stranger of `wait_holding_a_lock`, and its manager.
struct Stranger {
    handle: taskwarden::TaskHandle<ThreadId>,
    manager: Arc<TaskManager>,
}

impl Stranger {
    fn id(&self) -> taskwarden::TaskId {
        self.handle.id()
    }

    /// Its result, once its thread (left to finish on its own by the
    /// close) has exited too: Miri's leak check wants no thread running
    /// when the test ends.
    fn join(self) -> Result<ThreadId, taskwarden::TaskError> {
        let result = self.handle.join();
        common::wait_for("the stranger's thread to exit", || {
            self.manager.stats().threads == 0
        });
        for _ in 0..100 {
            thread::yield_now();
        }
        result
    }
}

/// A task holding a lock drains: the drain runs nothing on its thread, so
/// the stranger that wants the lock waits for it elsewhere; the drain
/// times out (the stranger cannot finish while the lock is held: that wait
/// is the user's), and nothing deadlocks.
#[test]
fn a_drain_while_holding_a_lock_never_runs_a_stranger() {
    watchdog(|| {
        let (holder_thread, drained, stranger) =
            wait_holding_a_lock(|m| m.drain_timeout(Duration::from_millis(200)));
        assert!(
            !drained,
            "the stranger waits for the lock the drainer holds"
        );
        assert_ne!(stranger.join(), Ok(holder_thread));
    });
}

/// A task holding a lock closes its own manager with a deadline: the close
/// keeps its deadline (it used to run the stranger inline and never
/// return), and the stranger, running elsewhere, is abandoned.
#[test]
fn a_close_from_inside_while_holding_a_lock_keeps_its_deadline() {
    watchdog(|| {
        let (holder_thread, (report, took), stranger) = wait_holding_a_lock(|m| {
            let started = Instant::now();
            (
                m.close_timeout(Duration::from_millis(200)),
                started.elapsed(),
            )
        });
        assert!(took < Duration::from_secs(2), "the close took {took:?}");
        assert!(report.timed_out, "{report:?}");
        assert_eq!(report.abandoned, vec![stranger.id()], "{report:?}");
        assert_ne!(stranger.join(), Ok(holder_thread));
    });
}

/// A chain of 10,000 tasks, each spawning the next and joining it,
/// completes on the default stack size, with one slot and with the default
/// limit. Inline runs stop while a quarter of the stack is left; deeper,
/// the joiner lends its slot and the next link runs on another thread.
#[test]
fn a_chain_of_ten_thousand_joins_completes_on_the_default_stack() {
    fn link(depth: u64) -> u64 {
        if depth == 0 {
            return 0;
        }
        let spawner = taskwarden::current_spawner().expect("inside a task");
        let next = spawner.spawn(move || link(depth - 1)).unwrap();
        next.join().unwrap() + 1
    }
    watchdog(|| {
        // Natively the full 10,000. Under a sanitizer (a stress factor
        // below 1) the chain is cut harder than other loops: past the
        // inline depth every link starts a thread, slow under TSan (a
        // thousand links took 22 s there on a loaded machine).
        let depth = if common::stress_factor() < 1.0 {
            scaled(2_000)
        } else {
            10_000
        } as u64;
        for manager in [TaskManager::new(1), TaskManager::builder().start().unwrap()] {
            let top = manager.spawn(move || link(depth)).unwrap();
            assert_eq!(top.join(), Ok(depth));
            let threads = manager.stats().threads;
            assert!(manager.close().is_clean());
            assert!(threads >= 1);
        }
    });
}

/// Parked tasks claim the tasks they wait for after the limit fell below
/// the tasks running: no child ever starts while the limit or more hold a
/// slot (the check and the claim are one step). Children only start
/// through a claim, so at most 2 of them ever run at once, however the
/// parents park and wake.
#[test]
fn resizing_while_parked_tasks_wake_keeps_the_limit_exact() {
    watchdog(|| {
        let rounds = scaled(150);
        let mut over = 0;
        for _ in 0..rounds {
            let manager = Arc::new(TaskManager::new(4));
            let children = Concurrency::default();
            let go = Gate::new();
            let parents: Vec<_> = (0..4)
                .map(|_| {
                    let (m, children, go) = (manager.clone(), children.clone(), go.clone());
                    manager
                        .spawn(move || {
                            go.wait();
                            let kids: Vec<_> = (0..3)
                                .map(|_| {
                                    let children = children.clone();
                                    m.spawn(move || {
                                        let _in = children.enter();
                                        thread::sleep(Duration::from_micros(200));
                                    })
                                    .unwrap()
                                })
                                .collect();
                            for kid in kids {
                                kid.join().unwrap();
                            }
                        })
                        .unwrap()
                })
                .collect();
            wait_for("four parents running", || manager.running().len() == 4);
            manager.set_max_tasks(2);
            go.open();
            for parent in parents {
                parent.join().unwrap();
            }
            if children.max() > 2 {
                over += 1;
            }
            assert!(manager.close().is_clean());
        }
        assert_eq!(
            over, 0,
            "{over} of {rounds} rounds ran more than 2 children at once under a limit of 2"
        );
    });
}

/// Producers race a 5 ms close on 2 slots: claims stop before the sweep,
/// so `abandoned` lists only tasks running at the deadline (at most the
/// limit: nothing is parked) and no id is in two lists.
#[test]
fn a_close_counts_each_task_once() {
    watchdog(|| {
        for round in 0..scaled(20) {
            let manager = Arc::new(TaskManager::new(2));
            let stop = Arc::new(AtomicBool::new(false));
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let (m, stop) = (manager.clone(), stop.clone());
                    thread::spawn(move || {
                        while !stop.load(Ordering::SeqCst) {
                            let spawned = m.spawn_detached(|| {
                                let until = Instant::now() + Duration::from_millis(2);
                                while Instant::now() < until && !taskwarden::is_cancelled() {
                                    std::hint::spin_loop();
                                }
                            });
                            if spawned.is_err() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            thread::sleep(Duration::from_millis(3));
            let report = manager.close_timeout(Duration::from_millis(5));
            stop.store(true, Ordering::SeqCst);
            for producer in producers {
                producer.join().unwrap();
            }
            assert!(
                report.abandoned.len() <= 2,
                "round {round}: {} abandoned on 2 slots (first: {:?})",
                report.abandoned.len(),
                &report.abandoned[..report.abandoned.len().min(8)]
            );
            for id in &report.abandoned {
                assert!(!report.cancelled.contains(id) && !report.stopped.contains(id));
            }
        }
    });
}

/// Mutation audit (a): the wake-up a searching worker passes on to the
/// next sleeper. Four warm threads all asleep; four tasks spawned in a
/// tight loop must all run at once (a rendezvous): a lost hand-on leaves
/// one asleep.
#[test]
fn a_burst_after_every_worker_slept_wakes_them_all() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        let warm = Arc::new(std::sync::Barrier::new(4));
        for _ in 0..4 {
            let warm = warm.clone();
            manager
                .spawn_detached(move || {
                    warm.wait();
                })
                .unwrap();
        }
        manager.drain();
        for round in 0..scaled(20) {
            thread::sleep(Duration::from_millis(20)); // past every spin
            let met = Arc::new(AtomicUsize::new(0));
            let all: Vec<_> = (0..4)
                .map(|_| {
                    let met = met.clone();
                    manager
                        .spawn(move || {
                            met.fetch_add(1, Ordering::SeqCst);
                            let deadline = Instant::now()
                                + Duration::from_millis(if cfg!(miri) { 20_000 } else { 500 });
                            while met.load(Ordering::SeqCst) < 4 {
                                if Instant::now() > deadline {
                                    return false;
                                }
                                thread::yield_now();
                            }
                            true
                        })
                        .unwrap()
                })
                .collect();
            let met_all = all.into_iter().all(|h| h.join().unwrap());
            assert!(
                met_all,
                "round {round}: a worker was left asleep: {:?}",
                manager.stats()
            );
        }
    });
}

/// Mutation audit (b): a parked task stops showing as running. With 2
/// slots, a parent joins a child that runs on the other worker: while it
/// waits, `running()` is exactly the child and `stats().running` is 1.
#[test]
fn a_parked_task_does_not_show_as_running() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let gate = Gate::new();
        let (started_tx, started) = mpsc::channel();
        let (m, g) = (manager.clone(), gate.clone());
        let parent = manager
            .spawn(move || {
                let child = m
                    .spawn(move || {
                        started_tx
                            .send(taskwarden::current_task().unwrap())
                            .unwrap();
                        g.wait();
                    })
                    .unwrap();
                child.join().unwrap();
            })
            .unwrap();
        let child = started.recv_timeout(LIMIT).expect("the child started");
        // The parent parks within microseconds; give it generous time, then
        // name the broken promise rather than hang.
        let deadline = Instant::now() + Duration::from_secs(5);
        while manager.running() != vec![child] && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            manager.running(),
            vec![child],
            "a task parked in join still shows as running"
        );
        assert_eq!(manager.stats().running, 1, "stats count the parked task");
        gate.open();
        parent.join().unwrap();
        assert!(manager.close().is_clean());
    });
}
