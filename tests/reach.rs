//! Cancellation that reaches a blocked task (part three): `sleep` and
//! `CancelToken::wait_timeout` wake within a few milliseconds whatever
//! sets the flag, the reason is kept (the first wins), a `cancel_at` that
//! passes in the queue is `TimedOut`, and tokens cancel their tasks and
//! children, from any number of threads, without keeping anything alive.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{hold_slot, wait_for, watchdog, Gate, LIMIT};
use taskwarden::{
    CancelReason, CancelToken, TaskError, TaskManager, TaskOptions, TaskOutcome, TaskState,
};

/// "A few milliseconds", with slack for a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(2);

/// Spawns a task that sleeps 60 s on `manager` with `options`, waits until
/// it sleeps, and returns its handle and the channel that carries, when it
/// wakes, (slept the whole time, its reason, when it woke).
#[allow(clippy::type_complexity)]
fn sleeper(
    manager: &TaskManager,
    options: TaskOptions,
) -> (
    taskwarden::TaskHandle<()>,
    mpsc::Receiver<(bool, Option<CancelReason>, Instant)>,
) {
    let (asleep_tx, asleep) = mpsc::channel();
    let (woke_tx, woke) = mpsc::channel();
    let handle = manager
        .spawn_with(options, move || {
            asleep_tx.send(()).unwrap();
            let slept = taskwarden::sleep(LIMIT);
            woke_tx
                .send((slept, taskwarden::cancel_reason(), Instant::now()))
                .unwrap();
        })
        .unwrap();
    asleep.recv_timeout(LIMIT).expect("the task started");
    (handle, woke)
}

fn assert_prompt(what: &str, asked: Instant, woke: Instant) {
    let took = woke.saturating_duration_since(asked);
    eprintln!("{what}: woke {took:?} after the flag was set");
    assert!(took < PROMPT, "{what}: woke {took:?} after the flag");
}

#[test]
fn sleep_wakes_promptly_on_cancel_from_another_thread() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (handle, woke) = sleeper(&manager, TaskOptions::new());
        let id = handle.id();
        let spawner = manager.spawner();
        let asked = Instant::now();
        let live = thread::spawn(move || spawner.cancel(id)).join().unwrap();
        let (slept, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert!(live, "cancel found it settled: slept {slept}, {reason:?}");
        assert!(!slept);
        assert_eq!(reason, Some(CancelReason::Requested));
        assert_prompt("cancel(id)", asked, at);
        handle.join().unwrap();
    });
}

#[test]
fn sleep_wakes_promptly_on_close_now_which_reports_it_stopped() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (handle, woke) = sleeper(&manager, TaskOptions::new());
        let asked = Instant::now();
        let report = manager.close_now(LIMIT);
        let (slept, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert!(!slept);
        assert_eq!(reason, Some(CancelReason::Closing));
        assert_prompt("close_now", asked, at);
        assert_eq!(report.stopped, vec![handle.id()]);
        assert!(report.elapsed < PROMPT, "{report:?}");
    });
}

#[test]
fn sleep_wakes_promptly_at_its_deadline() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let after = Duration::from_millis(50);
        let spawned = Instant::now();
        let (handle, woke) = sleeper(&manager, TaskOptions::new().cancel_after(after));
        let (slept, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert!(!slept);
        assert_eq!(reason, Some(CancelReason::Deadline));
        assert!(at >= spawned + after, "never early");
        assert_prompt("cancel_after", spawned + after, at);
        handle.join().unwrap();

        let at_time = Instant::now() + after;
        let (handle, woke) = sleeper(&manager, TaskOptions::new().cancel_at(at_time));
        let (_, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert_eq!(reason, Some(CancelReason::Deadline));
        assert_prompt("cancel_at", at_time, at);
        assert_eq!(handle.join(), Ok(()), "a task that ran returns its value");
    });
}

#[test]
fn sleep_wakes_promptly_on_its_token_and_on_its_own_token() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let token = CancelToken::new();
        let (handle, woke) = sleeper(&manager, TaskOptions::new().cancel_with(&token));
        let asked = Instant::now();
        token.cancel();
        let (_, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert_eq!(reason, Some(CancelReason::Token));
        assert_prompt("cancel_with token", asked, at);
        handle.join().unwrap();

        // Its own token, handed to another thread and cancelled there.
        let (token_tx, token_rx) = mpsc::channel();
        let (woke_tx, woke) = mpsc::channel();
        let handle = manager
            .spawn(move || {
                token_tx.send(taskwarden::cancel_token().unwrap()).unwrap();
                let slept = taskwarden::sleep(LIMIT);
                woke_tx
                    .send((slept, taskwarden::cancel_reason(), Instant::now()))
                    .unwrap();
            })
            .unwrap();
        let own = token_rx.recv_timeout(LIMIT).unwrap();
        let asked = Instant::now();
        thread::spawn(move || own.cancel()).join().unwrap();
        let (slept, reason, at) = woke.recv_timeout(LIMIT).unwrap();
        assert!(!slept);
        assert_eq!(reason, Some(CancelReason::Token));
        assert_prompt("own token", asked, at);
        handle.join().unwrap();
    });
}

#[test]
fn an_own_token_is_cancelled_before_the_cancel_returns_and_at_once_when_late() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (token_tx, token_rx) = mpsc::channel();
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let handle = manager
            .spawn(move || {
                token_tx.send(taskwarden::cancel_token().unwrap()).unwrap();
                g.wait();
                // The flag is set already: both return at once.
                let started = Instant::now();
                let slept = taskwarden::sleep(LIMIT);
                let late = taskwarden::cancel_token().unwrap();
                (slept, late.wait_timeout(LIMIT), started.elapsed())
            })
            .unwrap();
        let own = token_rx.recv_timeout(LIMIT).unwrap();
        assert!(!own.is_cancelled());
        assert!(handle.cancel());
        assert!(own.is_cancelled(), "cancelled before cancel returned");
        gate.open();
        let (slept, cancelled, took) = handle.join().unwrap();
        assert!(!slept && cancelled);
        assert!(took < PROMPT, "{took:?}");
        // A token made after the flag was set starts cancelled.
        let (flagged_tx, flagged) = mpsc::channel();
        let handle = manager
            .spawn(move || {
                while !taskwarden::is_cancelled() {
                    thread::yield_now();
                }
                flagged_tx.send(()).unwrap();
                taskwarden::cancel_token().unwrap().is_cancelled()
            })
            .unwrap();
        wait_for("the task to run", || !manager.running().is_empty());
        handle.cancel();
        flagged.recv_timeout(LIMIT).unwrap();
        assert_eq!(handle.join(), Ok(true));
    });
}

#[test]
fn the_first_reason_to_set_the_flag_is_kept() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let token = CancelToken::new();
        let options = TaskOptions::new()
            .cancel_with(&token)
            .cancel_after(Duration::from_millis(20));
        let (handle, woke) = sleeper(&manager, options);
        let (_, reason, _) = woke.recv_timeout(LIMIT).unwrap();
        assert_eq!(reason, Some(CancelReason::Deadline));
        token.cancel();
        handle.cancel();
        let report = manager.close_now(LIMIT);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(handle.join(), Ok(()));
        assert_eq!(taskwarden::cancel_reason(), None, "outside a task");
        assert!(taskwarden::cancel_token().is_none());
    });
}

#[test]
fn a_cancel_at_passing_in_the_queue_is_timed_out_told_by_the_timer_thread() {
    watchdog(|| {
        let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ended.clone();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_end(move |end| {
                let thread = thread::current().name().unwrap_or("").to_owned();
                seen.lock()
                    .unwrap()
                    .push((end.id(), end.outcome(), end.ran_for(), thread));
            })
            .start()
            .unwrap();
        let (gate, held) = hold_slot(&manager);
        let deadline = Instant::now() + Duration::from_millis(30);
        let timed = manager
            .spawn_with(TaskOptions::new().cancel_at(deadline), || ())
            .unwrap();
        let id = timed.id();
        assert!(timed.wait_timeout(LIMIT), "taken out without a free slot");
        assert!(Instant::now() >= deadline);
        assert_eq!(timed.join(), Err(TaskError::TimedOut));
        assert_eq!(
            TaskError::TimedOut.to_string(),
            "timed out before it started"
        );
        assert_eq!(manager.state(id), Some(TaskState::Finished));
        gate.open();
        held.join().unwrap();
        manager.drain();
        let stats = manager.stats();
        assert_eq!((stats.cancelled, stats.completed), (1, 1));
        let ended = ended.lock().unwrap();
        let (_, outcome, ran_for, thread) = ended.iter().find(|end| end.0 == id).unwrap();
        assert_eq!(*outcome, TaskOutcome::TimedOut);
        assert_eq!(*ran_for, Duration::ZERO);
        assert_eq!(
            thread, "taskwarden-timer",
            "on the thread that cancelled it"
        );
    });
}

#[test]
fn a_token_cancels_its_queued_tasks_before_cancel_returns_and_flags_the_running() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let token = CancelToken::new();
        let (gate, held) = hold_slot(&manager);
        let ran = Arc::new(AtomicUsize::new(0));
        let (running, woke) = sleeper(&manager, TaskOptions::new().cancel_with(&token));
        let queued: Vec<_> = (0..10)
            .map(|_| {
                let ran = ran.clone();
                manager
                    .spawn_with(TaskOptions::new().cancel_with(&token), move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap()
            })
            .collect();
        token.cancel();
        // Before `cancel` returned: every queued one finished, none ran.
        assert!(manager.queued().is_empty());
        for handle in &queued {
            assert!(handle.is_finished());
        }
        let (_, reason, _) = woke.recv_timeout(LIMIT).unwrap();
        assert_eq!(reason, Some(CancelReason::Token));
        gate.open();
        held.join().unwrap();
        running.join().unwrap();
        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        manager.drain();
        assert_eq!(manager.stats().cancelled, 10);
    });
}

#[test]
fn a_token_cancelled_before_the_spawn_finishes_the_task_on_the_spawning_thread() {
    watchdog(|| {
        let ended_on = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ended_on.clone();
        let manager = TaskManager::builder()
            .on_task_start(|_| panic!("no task starts"))
            .on_task_end(move |end| {
                seen.lock()
                    .unwrap()
                    .push((end.outcome(), end.ran_for(), thread::current().id()));
            })
            .start()
            .unwrap();
        let token = CancelToken::new();
        token.cancel();
        let handle = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), || "never")
            .unwrap();
        assert!(handle.is_finished(), "finished at once");
        assert_eq!(handle.id().get(), 1, "an id is used");
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
        assert_eq!(manager.stats().cancelled, 1);
        assert_eq!(
            *ended_on.lock().unwrap(),
            vec![(
                TaskOutcome::Cancelled,
                Duration::ZERO,
                thread::current().id()
            )]
        );
    });
}

#[test]
fn children_stop_with_a_parent_that_asks_and_only_then() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(4));
        let m = manager.clone();
        let (children_tx, children) = mpsc::channel();
        let parent = manager
            .spawn(move || {
                let mine = taskwarden::cancel_token().unwrap();
                let bound = m
                    .spawn_with(TaskOptions::new().cancel_with(&mine), || {
                        taskwarden::sleep(LIMIT)
                    })
                    .unwrap();
                let free = m
                    .spawn_with(
                        TaskOptions::new().cancel_after(Duration::from_millis(300)),
                        || taskwarden::sleep(LIMIT),
                    )
                    .unwrap();
                children_tx.send((bound.id(), free.id())).unwrap();
                taskwarden::sleep(LIMIT);
                (bound.join(), free.join())
            })
            .unwrap();
        let (bound, free) = children.recv_timeout(LIMIT).unwrap();
        wait_for("both children to sleep", || {
            manager.state(bound) == Some(TaskState::Running)
                && manager.state(free) == Some(TaskState::Running)
        });
        let asked = Instant::now();
        parent.cancel();
        wait_for("the bound child to stop", || {
            manager.state(bound) == Some(TaskState::Finished)
        });
        assert!(asked.elapsed() < PROMPT);
        let reasons: Vec<_> = manager
            .tasks()
            .into_iter()
            .map(|task| (task.id, task.cancel_reason))
            .collect();
        assert!(
            reasons.contains(&(free, None)),
            "the free child is not cancelled with its parent: {reasons:?}"
        );
        assert_eq!(parent.join(), Ok((Ok(false), Ok(false))));
    });
}

#[test]
fn tokens_cancelled_from_many_threads_while_others_spawn_lose_no_task() {
    watchdog(|| {
        let rounds = common::scaled(40);
        let manager = Arc::new(TaskManager::new(2));
        for _ in 0..rounds {
            let root = CancelToken::new();
            let tokens: Vec<_> = (0..4).map(|_| root.child()).collect();
            let ran = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(8));
            let mut threads = Vec::new();
            // Four spawners, each on its own child token.
            for token in tokens.clone() {
                let (manager, ran, barrier) = (manager.clone(), ran.clone(), barrier.clone());
                threads.push(thread::spawn(move || {
                    barrier.wait();
                    let mut handles = Vec::new();
                    for _ in 0..25 {
                        let ran = ran.clone();
                        let options = TaskOptions::new().cancel_with(&token);
                        handles.push(
                            manager
                                .spawn_with(options, move || {
                                    ran.fetch_add(1, Ordering::SeqCst);
                                    taskwarden::sleep(LIMIT)
                                })
                                .unwrap(),
                        );
                    }
                    handles
                }));
            }
            // Four cancellers: the root twice, two children directly.
            let mut cancellers = Vec::new();
            for at in 0..4 {
                let (root, child, barrier) =
                    (root.clone(), tokens[at % 2].clone(), barrier.clone());
                cancellers.push(thread::spawn(move || {
                    barrier.wait();
                    if at < 2 {
                        root.cancel();
                    } else {
                        child.cancel();
                    }
                }));
            }
            for canceller in cancellers {
                canceller.join().unwrap();
            }
            let mut ok = 0;
            let mut cancelled = 0;
            for thread in threads {
                for handle in thread.join().unwrap() {
                    match handle.join() {
                        Ok(slept) => {
                            assert!(!slept, "woken by its token");
                            ok += 1;
                        }
                        Err(TaskError::Cancelled) => cancelled += 1,
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            assert_eq!(ok + cancelled, 100);
            assert_eq!(ran.load(Ordering::SeqCst), ok, "a cancelled task never ran");
            assert!(tokens.iter().all(CancelToken::is_cancelled));
        }
        manager.drain();
        assert!(manager.tasks().is_empty());
    });
}

#[test]
fn a_token_keeps_no_task_alive_and_dropping_it_cancels_nothing() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let token = CancelToken::new();
        let witness = Arc::new(());
        let w = witness.clone();
        let handle = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), move || {
                let _keep = &w;
            })
            .unwrap();
        handle.join().unwrap();
        manager.drain();
        assert_eq!(
            Arc::strong_count(&witness),
            1,
            "the settled task's closure is gone though the token lives"
        );
        // A token dropped before its task runs cancels nothing.
        let (gate, held) = hold_slot(&manager);
        let token = CancelToken::new();
        let waiting = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), || {
                taskwarden::is_cancelled()
            })
            .unwrap();
        drop(token);
        gate.open();
        held.join().unwrap();
        assert_eq!(waiting.join(), Ok(false));
    });
}
