//! loom models of the manager's core protocols, run against the real
//! `TaskManager` with the stand-ins described in `sync`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --lib loom
//! ```
//!
//! Each model is bounded (preemptions, and a manager of one or two slots)
//! so that the whole run stays within minutes on two cores.

use std::sync::atomic::AtomicUsize as StdCounter;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use crate::{TaskError, TaskManager};

/// Runs `body` under every interleaving loom explores with at most
/// `LOOM_MAX_PREEMPTIONS` (default 3) preemptions, and says how many that
/// was: a model that explores one interleaving proves nothing.
///
/// Models of the whole manager mostly run at bound 2: since every task
/// start and settle also claims and releases a slot (`slots`), bound 3 took
/// over ten minutes for several of them (`docs/loom.md` has the counts).
fn model(body: impl Fn() + Sync + Send + 'static) {
    model_bounded(3, body);
}

/// `model` with a default bound of `preemptions`, for a model whose
/// interleavings grow too fast under the usual bound of three.
fn model_bounded(preemptions: usize, body: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(StdCounter::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(move || {
        counted.fetch_add(1, SeqCst);
        body();
    });
    let runs = runs.load(SeqCst);
    // libtest names the test's thread after the test; scripts/loom reads
    // this line into docs/loom.md.
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    eprintln!("loom model {name}: explored {runs} interleavings");
    assert!(runs > 1, "the model explored a single interleaving");
}

/// Spawn racing close: the closure is rejected (and handed back), or
/// accepted and then either run once or cancelled and named in the report.
#[test]
fn loom_spawn_racing_close() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        let ran = Arc::new(StdCounter::new(0));
        let spawner = {
            let (manager, ran) = (manager.clone(), ran.clone());
            thread::spawn(move || {
                match manager.spawn(move || {
                    ran.fetch_add(1, SeqCst);
                }) {
                    Ok(handle) => Some((handle.id(), handle.join())),
                    Err(rejected) => {
                        assert!(rejected.is_closed());
                        None
                    }
                }
            })
        };
        let report = manager.close_timeout(Duration::ZERO);
        let outcome = spawner.join().unwrap();
        let ran = ran.load(SeqCst);
        match outcome {
            None => {
                assert_eq!(ran, 0);
                assert!(report.cancelled.is_empty());
            }
            Some((_, Ok(()))) => assert_eq!(ran, 1),
            Some((id, Err(TaskError::Cancelled))) => {
                assert_eq!(ran, 0);
                assert_eq!(report.cancelled, vec![id]);
            }
            Some((_, Err(other))) => panic!("{other}"),
        }
    });
}

/// Cancel racing the start and the completion of a task: exactly one final
/// state, and the result is never lost.
#[test]
fn loom_cancel_racing_start_and_completion() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let ran = Arc::new(StdCounter::new(0));
        let r = ran.clone();
        let handle = Arc::new(
            manager
                .spawn(move || {
                    r.fetch_add(1, SeqCst);
                    7
                })
                .unwrap(),
        );
        let canceller = {
            let handle = handle.clone();
            thread::spawn(move || handle.cancel())
        };
        canceller.join().unwrap();
        let handle = Arc::try_unwrap(handle).unwrap();
        match handle.join() {
            Ok(value) => {
                assert_eq!(value, 7);
                assert_eq!(ran.load(SeqCst), 1);
            }
            Err(TaskError::Cancelled) => assert_eq!(ran.load(SeqCst), 0),
            Err(other) => panic!("{other}"),
        }
        manager.drain();
        let stats = manager.stats();
        assert_eq!(stats.completed + stats.cancelled, 1);
        manager.close();
    });
}

/// Drain racing a spawn made by the task it waits for: drain must not wake
/// between the child's spawn and the parent's settle. (Bound 2: every task
/// start and settle is also a claim and a release of a slot, and bound 3
/// ran past ten minutes.)
#[test]
fn loom_drain_racing_spawn() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(2));
        let ran = Arc::new(StdCounter::new(0));
        let (m, r) = (manager.clone(), ran.clone());
        manager
            .spawn(move || {
                let child = r.clone();
                m.spawn(move || {
                    child.fetch_add(1, SeqCst);
                })
                .unwrap();
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        manager.drain();
        assert_eq!(ran.load(SeqCst), 2);
        manager.close();
    });
}

/// Two closes at once: neither deadlocks, both return the same report.
#[test]
fn loom_two_concurrent_closes() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        manager.spawn(|| ()).unwrap();
        let other = {
            let manager = manager.clone();
            thread::spawn(move || manager.close_timeout(Duration::MAX))
        };
        let mine = manager.close_timeout(Duration::MAX);
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs);
        assert!(mine.is_clean());
    });
}

/// A handle dropped on a worker thread while its task finishes on the
/// other: the result is dropped exactly once, by one side. (Bound 2, as
/// for `loom_drain_racing_spawn`.)
#[test]
fn loom_last_handle_dropped_on_a_worker() {
    struct Counted(Arc<StdCounter>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    model_bounded(2, || {
        let manager = TaskManager::new(2);
        let drops = Arc::new(StdCounter::new(0));
        let d = drops.clone();
        let first = manager.spawn(move || Counted(d)).unwrap();
        manager.spawn(move || drop(first)).unwrap();
        manager.close_timeout(Duration::MAX);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// A parent joining a child that has not started, on a manager of one
/// slot: the parent runs it inline, racing the worker's dequeue of the same
/// task and a cancel by id. The child runs at most once.
#[test]
fn loom_parent_joins_child_racing_cancel() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        let ran = Arc::new(StdCounter::new(0));
        let (m, r) = (manager.clone(), ran.clone());
        let (ids, id_rx) = std::sync::mpsc::channel();
        let parent = manager
            .spawn(move || {
                let child = m
                    .spawn(move || {
                        r.fetch_add(1, SeqCst);
                    })
                    .unwrap();
                ids.send(child.id()).unwrap();
                child.join()
            })
            .unwrap();
        let child_id = loop {
            if let Ok(id) = id_rx.try_recv() {
                break id;
            }
            thread::yield_now();
        };
        let was_live = manager.cancel(child_id);
        match parent.join().unwrap() {
            Ok(()) => assert_eq!(ran.load(SeqCst), 1),
            Err(TaskError::Cancelled) => {
                assert!(was_live);
                assert_eq!(ran.load(SeqCst), 0);
            }
            Err(other) => panic!("{other}"),
        }
        manager.close_timeout(Duration::MAX);
    });
}

/// A lending wait: with one slot, a task spawns a child and drains. The
/// drain runs nothing on its thread: it lends its slot, a second thread
/// starts and runs the child, and the drain returns once the child has run.
/// (Bound 2: the thread start makes bound 3 explode.)
#[test]
fn loom_drain_from_inside_lends_its_slot() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        let ran = Arc::new(StdCounter::new(0));
        let (m, r) = (manager.clone(), ran.clone());
        let parent = manager
            .spawn(move || {
                let child = r.clone();
                let handle = m
                    .spawn(move || {
                        child.fetch_add(1, SeqCst);
                        5
                    })
                    .unwrap();
                m.drain();
                assert_eq!(r.load(SeqCst), 1, "drain returned before the child ran");
                handle.join()
            })
            .unwrap();
        assert_eq!(parent.join(), Ok(Ok(5)));
        manager.close_timeout(Duration::MAX);
    });
}

/// A detached task's result is dropped before the task counts as settled:
/// a drain on another thread never returns while the drop is unfinished.
#[test]
fn loom_settle_waits_for_the_result_drop() {
    struct Marks(Arc<StdCounter>);
    impl Drop for Marks {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    model(|| {
        let manager = TaskManager::new(1);
        let dropped = Arc::new(StdCounter::new(0));
        let d = dropped.clone();
        manager.spawn_detached(move || Marks(d)).unwrap();
        manager.drain();
        assert_eq!(
            dropped.load(SeqCst),
            1,
            "drain returned before the result was dropped"
        );
        manager.close_timeout(Duration::MAX);
    });
}

/// A `cancel_at` whose instant has passed fires on the timer thread,
/// racing the worker's start of the task and a close: the task runs at most
/// once, a cancelled one never runs, and nothing is abandoned.
#[test]
fn loom_timer_cancel_racing_start_and_close() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let ran = Arc::new(StdCounter::new(0));
        let r = ran.clone();
        let options = crate::TaskOptions::default().cancel_at(std::time::Instant::now());
        let handle = manager
            .spawn_with(options, move || {
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        let report = manager.close_timeout(Duration::MAX);
        match handle.join() {
            Ok(()) => assert_eq!(ran.load(SeqCst), 1),
            // The timer took it out of the queue (its deadline), or the
            // close did.
            Err(TaskError::TimedOut | TaskError::Cancelled) => assert_eq!(ran.load(SeqCst), 0),
            Err(other) => panic!("{other}"),
        }
        assert!(report.abandoned.is_empty());
    });
}

/// `set_max_tasks` raising the limit while a task runs and finishes: the
/// next spawn may start a second thread, but never more tasks at once, or
/// threads, than the larger limit, and every task runs.
#[test]
fn loom_raising_the_limit_racing_a_running_task() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let running = Arc::new(StdCounter::new(0));
        let most = Arc::new(StdCounter::new(0));
        let spawn = |manager: &TaskManager| {
            let (running, most) = (running.clone(), most.clone());
            manager
                .spawn_detached(move || {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    running.fetch_sub(1, SeqCst);
                })
                .unwrap()
        };
        spawn(&manager);
        manager.set_max_tasks(2);
        spawn(&manager);
        manager.drain();
        assert!(most.load(SeqCst) <= 2);
        assert!(manager.stats().threads <= 2);
        assert_eq!(manager.stats().completed, 2);
        manager.close_timeout(Duration::MAX);
    });
}

/// Lazy thread start is exact: with two slots, a task spawned after the
/// previous one was joined never starts a second thread, whatever point of
/// its settling the first task's thread has reached (its thread is about
/// to be free). Racing that settle must not under-count either: the
/// second task runs. (Bound 2: the race needs one preemption, and bound 3
/// explores 2.6 million interleavings.)
#[test]
fn loom_spawn_after_join_starts_no_second_thread() {
    model_bounded(2, || {
        let manager = TaskManager::new(2);
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
        let second = manager.spawn(|| 2).unwrap();
        assert_eq!(manager.stats().threads, 1);
        assert_eq!(second.join(), Ok(2));
        manager.close_timeout(Duration::MAX);
    });
}

/// The reservation: a parent joins a child on a two-slot manager while the
/// limit falls to one and another task is spawned. Children only start
/// through a claim (or the parent's own slot, handed over), so the child
/// and the other task never run at once, and the other task never starts
/// while the parent holds its slot.
#[test]
fn loom_claim_racing_resize_and_a_parked_task() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(2));
        let claimed = Arc::new(StdCounter::new(0));
        let parent_active = Arc::new(StdCounter::new(0));
        let (m, c, p) = (manager.clone(), claimed.clone(), parent_active.clone());
        let parent = manager
            .spawn(move || {
                p.fetch_add(1, SeqCst);
                let c2 = c.clone();
                let child = m
                    .spawn(move || {
                        assert_eq!(c2.fetch_add(1, SeqCst), 0, "two claimed tasks at once");
                        c2.fetch_sub(1, SeqCst);
                    })
                    .unwrap();
                p.fetch_sub(1, SeqCst);
                child.join().unwrap();
                p.fetch_add(1, SeqCst);
                p.fetch_sub(1, SeqCst);
            })
            .unwrap();
        manager.set_max_tasks(1);
        let (c, p) = (claimed.clone(), parent_active.clone());
        let other = manager
            .spawn(move || {
                assert_eq!(c.fetch_add(1, SeqCst), 0, "two claimed tasks at once");
                assert_eq!(p.load(SeqCst), 0, "started while the parent held its slot");
                c.fetch_sub(1, SeqCst);
            })
            .unwrap();
        parent.join().unwrap();
        other.join().unwrap();
        manager.close_timeout(Duration::MAX);
    });
}

/// A parked task resumes while its lent slot is in use: with one slot, a
/// parent spawns a child and a stranger, then joins the child. The stranger
/// never runs on the parent's thread; the child and the stranger never run
/// at once; the parent resumes (maybe while the stranger runs) and every
/// task completes.
#[test]
fn loom_parked_task_resumes_while_its_lent_slot_is_in_use() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        let claimed = Arc::new(StdCounter::new(0));
        // The thread (as a loom thread index + 1) on which the parent is
        // parked in `join` now; 0 while it is not.
        let parked_on = Arc::new(std::sync::Mutex::new(None));
        let (m, c, parked) = (manager.clone(), claimed.clone(), parked_on.clone());
        let parent = manager
            .spawn(move || {
                let c2 = c.clone();
                let child = m
                    .spawn(move || {
                        assert_eq!(c2.fetch_add(1, SeqCst), 0, "two tasks in one slot");
                        c2.fetch_sub(1, SeqCst);
                    })
                    .unwrap();
                let seen = parked.clone();
                let stranger = m
                    .spawn(move || {
                        assert_eq!(c.fetch_add(1, SeqCst), 0, "two tasks in one slot");
                        let here = thread::current().id();
                        assert_ne!(
                            *seen.lock().unwrap(),
                            Some(here),
                            "a stranger ran on a parked task's thread"
                        );
                        c.fetch_sub(1, SeqCst);
                    })
                    .unwrap();
                *parked.lock().unwrap() = Some(thread::current().id());
                child.join().unwrap();
                *parked.lock().unwrap() = None;
                stranger
            })
            .unwrap();
        let stranger = parent.join().unwrap();
        stranger.join().unwrap();
        manager.close_timeout(Duration::MAX);
    });
}

/// close_now from inside a task escalating another thread's close: the
/// caller is excluded before the closer sees the escalation, so neither
/// report lists it.
#[test]
fn loom_escalation_racing_the_callers_exclusion() {
    model_bounded(2, || {
        let manager = Arc::new(TaskManager::new(1));
        let m = manager.clone();
        let (started_tx, started) = std::sync::mpsc::channel();
        let task = manager
            .spawn(move || {
                started_tx.send(()).unwrap();
                m.close_now(Duration::MAX)
            })
            .unwrap();
        let id = task.id();
        while started.try_recv().is_err() {
            thread::yield_now();
        }
        let outer = manager.close_timeout(Duration::MAX);
        let inner = task.join().unwrap();
        for report in [&outer, &inner] {
            assert!(!report.stopped.contains(&id), "{report:?}");
            assert!(!report.abandoned.contains(&id), "{report:?}");
        }
    });
}

/// The reservation itself: two claims racing a lowered limit and a parked
/// task's resume. Never more claims succeed than the limit in force when
/// each was made allows (a check then an add, instead of one
/// compare-and-swap, fails here).
#[test]
fn loom_slot_claims_race_a_resume() {
    model(|| {
        let slots = Arc::new(crate::slots::Slots::default());
        // A parked task's slot: held, then lent.
        assert!(slots.try_claim(2));
        slots.release();
        let won = Arc::new(StdCounter::new(0));
        let claimers: Vec<_> = (0..2)
            .map(|_| {
                let (slots, won) = (slots.clone(), won.clone());
                thread::spawn(move || {
                    if slots.try_claim(1) {
                        won.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        slots.resume(); // the parked task comes back, over the limit
        for claimer in claimers {
            claimer.join().unwrap();
        }
        assert!(won.load(SeqCst) <= 1, "two claims under a limit of one");
    });
}

/// A token cancelled racing the start and the settle of a task spawned
/// with it: the task runs once or never (then `Err(Cancelled)`), is
/// counted once, and leaves the token whatever the order.
#[test]
fn loom_token_cancel_racing_start_and_settle() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let token = crate::CancelToken::new();
        let ran = Arc::new(StdCounter::new(0));
        let r = ran.clone();
        let handle = manager
            .spawn_with(crate::TaskOptions::new().cancel_with(&token), move || {
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        let canceller = {
            let token = token.clone();
            thread::spawn(move || token.cancel())
        };
        let result = handle.join();
        canceller.join().unwrap();
        match result {
            Ok(()) => assert_eq!(ran.load(SeqCst), 1),
            Err(TaskError::Cancelled) => assert_eq!(ran.load(SeqCst), 0),
            Err(other) => panic!("{other}"),
        }
        manager.drain();
        let stats = manager.stats();
        assert_eq!(stats.completed + stats.cancelled, 1);
        assert_eq!(token.attached(), 0, "the settled task left its token");
        manager.close();
    });
}

/// A task that sleeps on its own token, cancelled from another thread
/// while it starts, makes the token, or sleeps: the flag and the token see
/// each other (`Header::mark_own_token` against `request_cancel`), so the
/// sleep always wakes (a lost wake-up is a deadlock loom reports).
#[test]
fn loom_sleep_racing_cancel() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let handle = Arc::new(
            manager
                .spawn(|| crate::sleep(Duration::from_secs(3600)))
                .unwrap(),
        );
        let canceller = {
            let handle = handle.clone();
            thread::spawn(move || handle.cancel())
        };
        canceller.join().unwrap();
        let handle = Arc::try_unwrap(handle).unwrap();
        match handle.join() {
            Ok(slept) => assert!(!slept, "woken by the cancel"),
            Err(TaskError::Cancelled) => {}
            Err(other) => panic!("{other}"),
        }
        manager.close();
    });
}

/// A set fed by a `SetSpawner` on another thread while its owner takes
/// results: the fed task's result comes back once (also when the task
/// settles before its handle reaches the set), and `join_next` ends once
/// the feeder is gone.
#[test]
fn loom_set_spawner_feeds_while_the_owner_joins() {
    model_bounded(2, || {
        let manager = TaskManager::new(1);
        let mut set = manager.task_set::<u32>();
        let feeder = set.spawner();
        let producer = thread::spawn(move || {
            feeder.spawn(|| 7).unwrap();
        });
        let mut results = Vec::new();
        while let Some((_, result)) = set.join_next() {
            results.push(result.unwrap());
        }
        producer.join().unwrap();
        assert_eq!(results, vec![7]);
        manager.close();
    });
}
