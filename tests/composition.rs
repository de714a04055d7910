//! Composition (part three B): `join_all`, fail-fast `try_join_all` and
//! `try_map`, options on every item of a map, a set fed from other threads
//! through `SetSpawner`, and `Scope::spawn_with`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{watchdog, Concurrency, Gate, LIMIT};
use taskwarden::{TaskError, TaskId, TaskManager, TaskOptions, TaskOutcome};

/// A failure of a fallible task, or the task's own error.
#[derive(Debug, PartialEq)]
enum Failure {
    Bad(u32),
    Task(TaskError),
}

impl From<TaskError> for Failure {
    fn from(error: TaskError) -> Self {
        Failure::Task(error)
    }
}

const PROMPT: Duration = Duration::from_secs(5);

#[test]
fn join_all_returns_every_result_in_spawn_order() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let mut set = manager.task_set();
        let mut ids = Vec::new();
        for n in 0..20_u64 {
            // Later tasks finish first.
            ids.push(
                set.spawn(move || {
                    thread::sleep(Duration::from_millis(20 - n));
                    if n == 7 {
                        panic!("seven");
                    }
                    n
                })
                .unwrap(),
            );
        }
        let all = set.join_all();
        let got: Vec<TaskId> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, ids);
        for (n, (_, result)) in (0..).zip(all) {
            if n == 7 {
                assert_eq!(result, Err(TaskError::Panicked("seven".into())));
            } else {
                assert_eq!(result, Ok(n));
            }
        }
    });
}

#[test]
fn try_join_all_returns_the_first_failure_at_once_and_cancels_the_rest() {
    watchdog(|| {
        let manager = TaskManager::new(4);
        let mut set = manager.task_set();
        let woke = Arc::new(AtomicUsize::new(0));
        for n in 0..12_u32 {
            let woke = woke.clone();
            set.spawn(move || {
                if n == 2 {
                    thread::sleep(Duration::from_millis(30));
                    return Err(Failure::Bad(n));
                }
                // Would run for a minute: only a cancel ends it early.
                if !taskwarden::sleep(LIMIT) {
                    woke.fetch_add(1, Ordering::SeqCst);
                }
                Ok(n)
            })
            .unwrap();
        }
        let started = Instant::now();
        assert_eq!(set.try_join_all(), Err(Failure::Bad(2)));
        let took = started.elapsed();
        assert!(took < PROMPT, "fail-fast took {took:?}");
        // It did not wait for the others, which were cancelled (queued) or
        // flagged (running, and they wake at once).
        manager.drain();
        assert!(started.elapsed() < PROMPT);
        let stats = manager.stats();
        let woke = woke.load(Ordering::SeqCst);
        assert_eq!(stats.cancelled as usize + woke, 11);
        // Three ran beside the failure; a fourth may have taken its slot
        // before the failure was seen.
        assert!((3..=4).contains(&woke), "{woke} woke");
    });
}

#[test]
fn try_join_all_converts_a_panic_and_gives_values_in_spawn_order() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let mut set = manager.task_set::<Result<u32, Failure>>();
        for n in 0..5 {
            set.spawn(move || {
                thread::sleep(Duration::from_millis(u64::from(10 - 2 * n)));
                Ok(n * 10)
            })
            .unwrap();
        }
        assert_eq!(set.try_join_all(), Ok(vec![0, 10, 20, 30, 40]));

        let mut set = manager.task_set::<Result<u32, Failure>>();
        set.spawn(|| panic!("boom")).unwrap();
        assert_eq!(
            set.try_join_all(),
            Err(Failure::Task(TaskError::Panicked("boom".into())))
        );
        let empty = manager.task_set::<Result<u32, Failure>>();
        assert_eq!(empty.try_join_all(), Ok(vec![]));
    });
}

#[test]
fn a_set_fed_from_four_threads_yields_every_result_once() {
    watchdog(|| {
        let per_thread = common::scaled(2_000) as u64;
        let manager = TaskManager::new(2);
        let mut set = manager.task_set::<u64>();
        let barrier = Arc::new(Barrier::new(4));
        let feeders: Vec<_> = (0..4_u64)
            .map(|t| {
                let feeder = set.spawner();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    for n in 0..per_thread {
                        feeder.spawn(move || t * 1_000_000 + n).unwrap();
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        while let Some((_, result)) = set.join_next() {
            seen.push(result.unwrap());
        }
        for feeder in feeders {
            feeder.join().unwrap();
        }
        assert_eq!(
            seen.len() as u64,
            4 * per_thread,
            "join_next waited for the feeders"
        );
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len() as u64, 4 * per_thread, "each result once");
        assert!(set.is_empty());
    });
}

#[test]
fn join_next_waits_while_a_set_spawner_lives_and_the_others_do_not() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let mut set = manager.task_set::<u32>();
        let feeder = set.spawner();
        assert!(set.try_join_next().is_none());
        assert!(set.join_next_timeout(Duration::from_millis(10)).is_none());
        let (sent_tx, sent) = mpsc::channel();
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let producer = thread::spawn(move || {
            g.wait();
            let id = feeder.spawn(|| 5).unwrap();
            sent_tx.send(id).unwrap();
            let clone = feeder.clone();
            drop(feeder);
            thread::sleep(Duration::from_millis(20));
            clone.spawn(|| 6).unwrap();
            // The last spawner goes here: join_next on the empty set ends.
        });
        let started = Instant::now();
        gate.open();
        let (id, result) = set.join_next().expect("waited for the fed task");
        assert_eq!(result, Ok(5));
        assert_eq!(id, sent.recv().unwrap());
        assert_eq!(set.join_next().unwrap().1, Ok(6));
        assert!(set.join_next().is_none(), "no spawner left");
        assert!(started.elapsed() < PROMPT);
        producer.join().unwrap();
    });
}

#[test]
fn len_counts_what_a_set_spawner_fed() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let set = manager.task_set();
        let gate = Arc::new(Gate::new());
        let feeder = set.spawner();
        for _ in 0..3 {
            let g = gate.clone();
            feeder.spawn(move || g.wait()).unwrap();
        }
        assert_eq!(set.len(), 3);
        gate.open();
        drop(feeder);
        assert_eq!(set.join_all().len(), 3);
    });
}

#[test]
fn a_set_spawner_outliving_its_set_hands_the_closure_back() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let set = manager.task_set::<&str>();
        let feeder = set.spawner();
        let (gate, held) = common::hold_slot(&manager);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        feeder
            .spawn(move || {
                r.fetch_add(1, Ordering::SeqCst);
                "fed"
            })
            .unwrap();
        drop(set); // cancels what it holds, fed tasks too
        let error = feeder.spawn(|| "late").unwrap_err();
        assert!(error.is_closed());
        assert_eq!((error.into_inner())(), "late", "the closure comes back");
        gate.open();
        held.join().unwrap();
        manager.drain();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the fed task was cancelled");
        assert!(format!("{feeder:?}").contains("set_dropped: true"));
    });
}

#[test]
fn a_fed_task_that_settles_before_its_handle_arrives_is_not_lost() {
    watchdog(|| {
        // Tasks that finish at once, fed from a thread while the owner
        // takes results: some settle before their handle reaches the set.
        let manager = TaskManager::new(2);
        for _ in 0..common::scaled(200) {
            let mut set = manager.task_set::<u32>();
            let feeder = set.spawner();
            let producer = thread::spawn(move || {
                for n in 0..20 {
                    feeder.spawn(move || n).unwrap();
                }
            });
            let mut got = 0;
            while let Some((_, result)) = set.join_next() {
                got += result.unwrap();
            }
            producer.join().unwrap();
            assert_eq!(got, 190);
        }
    });
}

#[test]
fn try_map_collects_into_a_result_and_stops_at_the_first_failure() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let all: Result<Vec<u32>, Failure> = manager.try_map(1..=50_u32, Ok).collect();
        assert_eq!(all, Ok((1..=50).collect()));

        let started = Instant::now();
        let yielded: Vec<Result<u32, Failure>> = manager
            .try_map(0..1_000_u32, |n| {
                if n == 3 {
                    return Err(Failure::Bad(n));
                }
                if n > 3 {
                    taskwarden::sleep(LIMIT);
                }
                Ok(n)
            })
            .collect();
        assert_eq!(
            yielded,
            vec![Ok(0), Ok(1), Ok(2), Err(Failure::Bad(3))],
            "input order, then the failure, then the end"
        );
        manager.drain();
        assert!(
            started.elapsed() < PROMPT,
            "what was in flight was cancelled"
        );

        let panicked: Result<Vec<u32>, Failure> = manager
            .try_map(0..4_u32, |n| if n == 1 { panic!("one") } else { Ok(n) })
            .collect();
        assert_eq!(
            panicked,
            Err(Failure::Task(TaskError::Panicked("one".into())))
        );
    });
}

#[test]
fn try_map_keeps_the_map_window() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let submitted = Arc::new(AtomicUsize::new(0));
        let s = submitted.clone();
        let items = (0..100_u32).inspect(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        });
        let concurrency = Concurrency::default();
        let c = concurrency.clone();
        let map = manager.try_map(items, move |n| -> Result<u32, Failure> {
            let _in = c.enter();
            thread::sleep(Duration::from_millis(1));
            Ok(n)
        });
        assert!(
            submitted.load(Ordering::SeqCst) <= 4,
            "a window of 2 x max_tasks"
        );
        let mut taken = 0;
        for result in map {
            assert_eq!(result, Ok(taken));
            taken += 1;
            assert!(submitted.load(Ordering::SeqCst) <= taken as usize + 4);
        }
        assert_eq!(taken, 100);
        assert!(concurrency.max() <= 2);
    });
}

#[test]
fn map_with_applies_the_options_to_every_item() {
    watchdog(|| {
        let names = Arc::new(Mutex::new(Vec::new()));
        let n = names.clone();
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_task_end(move |end| {
                n.lock()
                    .unwrap()
                    .push((end.name().map(str::to_owned), end.outcome()));
            })
            .start()
            .unwrap();
        let options = TaskOptions::new()
            .name("fetch")
            .cancel_after(Duration::from_millis(20));
        let results: Vec<_> = manager
            .map_with(options, [0_u64, 60_000, 0], |ms| {
                taskwarden::sleep(Duration::from_millis(ms))
            })
            .collect();
        assert_eq!(results, vec![Ok(true), Ok(false), Ok(true)]);
        manager.drain();
        {
            let names = names.lock().unwrap();
            assert_eq!(names.len(), 3);
            assert!(names
                .iter()
                .all(|(name, outcome)| name.as_deref() == Some("fetch")
                    && *outcome == TaskOutcome::Completed));
        }

        // A cancel_at that passes while items wait: those items are TimedOut.
        let (gate, held) = common::hold_slot(&manager);
        let (gate2, held2) = common::hold_slot(&manager);
        let options = TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(30));
        let mut unordered = manager.map_unordered_with(options, 0..3_u32, |n| n);
        thread::sleep(Duration::from_millis(60));
        gate.open();
        gate2.open();
        held.join().unwrap();
        held2.join().unwrap();
        let mut outcomes: Vec<_> = unordered.by_ref().collect();
        outcomes.sort_by_key(|(index, _)| *index);
        assert_eq!(
            outcomes,
            vec![
                (0, Err(TaskError::TimedOut)),
                (1, Err(TaskError::TimedOut)),
                (2, Err(TaskError::TimedOut))
            ]
        );
    });
}

#[test]
fn a_spawner_maps_too() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let handle = thread::spawn(move || {
            let doubled: Vec<u32> = spawner
                .map(1..=10_u32, |n| n * 2)
                .map(Result::unwrap)
                .collect();
            let total: Result<Vec<u32>, Failure> = spawner.try_map(1..=3_u32, Ok).collect();
            (doubled, total)
        });
        let (doubled, total) = handle.join().unwrap();
        assert_eq!(doubled, (1..=10).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(total, Ok(vec![1, 2, 3]));
    });
}

#[test]
fn scope_spawn_with_times_out_work_on_borrowed_data() {
    watchdog(|| {
        let lines: Vec<String> = (0..1_000_000).map(|n| n.to_string()).collect();
        let started = Instant::now();
        let (counted, finished) = TaskManager::scope(2, |s| {
            let options = TaskOptions::new()
                .cancel_after(Duration::from_millis(30))
                .name("count lines");
            let slow = s.spawn_with(options, || {
                let mut seen = 0_usize;
                for line in &lines {
                    if taskwarden::is_cancelled() {
                        break;
                    }
                    seen += line.len();
                    thread::sleep(Duration::from_micros(100));
                }
                seen
            });
            let quick = s.spawn_with(TaskOptions::new(), || lines.len());
            (slow.join(), quick.join())
        });
        assert!(
            started.elapsed() < PROMPT,
            "the timeout stopped the borrowed work"
        );
        assert!(counted.unwrap() < lines.iter().map(String::len).sum::<usize>());
        assert_eq!(finished, Ok(1_000_000));
        drop(lines);
    });
}

#[test]
fn scope_spawn_with_a_deadline_passed_in_the_queue_never_runs() {
    watchdog(|| {
        let data = [1, 2, 3];
        let ran = AtomicUsize::new(0);
        let gate = Gate::new();
        let (running_tx, running) = mpsc::channel();
        TaskManager::scope(1, |s| {
            let blocker = s.spawn(|| {
                running_tx.send(()).unwrap();
                gate.wait()
            });
            running.recv_timeout(LIMIT).unwrap();
            let late = s.spawn_with(
                TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(10)),
                || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    data.len()
                },
            );
            thread::sleep(Duration::from_millis(40));
            gate.open();
            blocker.join().unwrap();
            assert_eq!(late.join(), Err(TaskError::TimedOut));
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(data.len(), 3);
    });
}

#[test]
fn join_next_deadline_tells_empty_from_timed_out() {
    watchdog(|| {
        use taskwarden::JoinNext;
        let manager = TaskManager::new(1);
        let mut set = manager.task_set::<u32>();
        let soon = || Instant::now() + Duration::from_millis(20);
        assert_eq!(set.join_next_deadline(soon()), JoinNext::Empty);
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let id = set
            .spawn(move || {
                g.wait();
                1
            })
            .unwrap();
        assert_eq!(set.join_next_deadline(soon()), JoinNext::TimedOut);
        assert_eq!(set.join_next_timeout(Duration::from_millis(5)), None);
        gate.open();
        assert_eq!(
            set.join_next_deadline(Instant::now() + LIMIT),
            JoinNext::Finished(id, Ok(1))
        );
        // An empty set with a live feeder waits for it, until the deadline.
        let feeder = set.spawner();
        let started = Instant::now();
        assert_eq!(set.join_next_deadline(soon()), JoinNext::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(15));
        let fed = feeder.spawn(|| 2).unwrap();
        assert_eq!(
            set.join_next_deadline(Instant::now() + LIMIT),
            JoinNext::Finished(fed, Ok(2))
        );
        drop(feeder);
        assert_eq!(
            set.join_next_deadline(Instant::now() + LIMIT),
            JoinNext::Empty
        );
    });
}
