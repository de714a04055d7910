//! Part three, "cancellation that reaches, tasks you can see", attacked
//! from the outside: `CancelToken`, `TaskOptions::cancel_with` and `name`,
//! `cancel_token()`, `cancel_reason()`, `sleep`, `TaskError::TimedOut`,
//! `tasks()` and `TaskInfo`, the per-task hooks, `PanicReport::name`, and
//! a `Spawner` that cancels, asks, closes and stops its manager (also once
//! the manager is dropped). Every case runs under the watchdog; timing
//! claims ("within a few milliseconds") are checked with generous slack.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{hold_slot, scaled, wait_for, watchdog, Gate, LIMIT};
use log::{Level, LevelFilter, Log, Metadata, Record};
use taskwarden::{
    Builder, CancelReason, CancelToken, CloseReport, Spawner, TaskError, TaskHandle, TaskId,
    TaskInfo, TaskManager, TaskOptions, TaskOutcome, TaskState,
};

/// "Within a few milliseconds", with room for a loaded two-core machine.
const PROMPT: Duration = Duration::from_secs(2);
/// A wait that only a cancellation should cut short (well under `LIMIT`,
/// so that a missed wake-up fails a timing assertion, not the watchdog).
const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs a closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_owned()
}

#[derive(Debug, Clone)]
struct Started {
    id: TaskId,
    name: Option<String>,
    queued_for: Duration,
    thread: ThreadId,
    thread_name: String,
}

#[derive(Debug, Clone)]
struct Ended {
    id: TaskId,
    name: Option<String>,
    queued_for: Duration,
    ran_for: Duration,
    outcome: TaskOutcome,
    thread: ThreadId,
    thread_name: String,
}

/// Records what the per-task hooks see.
#[derive(Clone, Default)]
struct Seen {
    started: Arc<Mutex<Vec<Started>>>,
    ended: Arc<Mutex<Vec<Ended>>>,
}

impl Seen {
    fn install(&self, builder: Builder) -> Builder {
        let started = self.started.clone();
        let ended = self.ended.clone();
        builder
            .on_task_start(move |start| {
                started.lock().unwrap().push(Started {
                    id: start.id(),
                    name: start.name().map(str::to_owned),
                    queued_for: start.queued_for(),
                    thread: thread::current().id(),
                    thread_name: thread_name(),
                });
            })
            .on_task_end(move |end| {
                ended.lock().unwrap().push(Ended {
                    id: end.id(),
                    name: end.name().map(str::to_owned),
                    queued_for: end.queued_for(),
                    ran_for: end.ran_for(),
                    outcome: end.outcome(),
                    thread: thread::current().id(),
                    thread_name: thread_name(),
                });
            })
    }

    fn starts_of(&self, id: TaskId) -> Vec<Started> {
        let all = self.started.lock().unwrap();
        all.iter().filter(|s| s.id == id).cloned().collect()
    }

    fn ends_of(&self, id: TaskId) -> Vec<Ended> {
        let all = self.ended.lock().unwrap();
        all.iter().filter(|e| e.id == id).cloned().collect()
    }

    fn end_of(&self, id: TaskId) -> Ended {
        let ends = self.ends_of(id);
        assert_eq!(ends.len(), 1, "one end for {id}: {ends:?}");
        ends[0].clone()
    }

    fn wait_end(&self, id: TaskId) -> Ended {
        wait_for("the end hook", || !self.ends_of(id).is_empty());
        self.end_of(id)
    }
}

fn info_of(tasks: &[TaskInfo], id: TaskId) -> TaskInfo {
    tasks
        .iter()
        .find(|info| info.id == id)
        .unwrap_or_else(|| panic!("{id} not in tasks(): {tasks:?}"))
        .clone()
}

type SleepResult = (bool, Option<CancelReason>);

/// Spawns a task that says when it is about to sleep, sleeps up to `LONG`
/// with `taskwarden::sleep`, and returns whether it slept it all and why
/// it was flagged.
fn spawn_sleeper(
    spawner: &Spawner,
    options: TaskOptions,
) -> (TaskHandle<SleepResult>, mpsc::Receiver<Instant>) {
    let (asleep, is_asleep) = mpsc::channel();
    let handle = spawner
        .spawn_with(options, move || {
            asleep.send(Instant::now()).unwrap();
            let slept = taskwarden::sleep(LONG);
            (slept, taskwarden::cancel_reason())
        })
        .unwrap();
    (handle, is_asleep)
}

fn recv<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("never received: {what}"))
}

/// Each record with its level and text (all the tests of this binary mix
/// here; only warn and error are kept).
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn records() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger in this test binary");
        log::set_max_level(LevelFilter::Warn);
        capture
    })
}

fn logged(level: Level, needles: &[&str]) -> Option<String> {
    records()
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|(l, text)| *l == level && needles.iter().all(|n| text.contains(n)))
        .map(|(_, text)| text.clone())
}

fn all_logged() -> Vec<(Level, String)> {
    records().0.lock().unwrap().clone()
}

// ---------------------------------------------------------------------------
// CancelToken on its own
// ---------------------------------------------------------------------------

/// A manager's spawner for its own hooks. A hook that held the `Spawner`
/// for good would keep its own manager alive (the hook lives in the
/// manager): a reference cycle, its memory and its threads' handles never
/// freed. The slot is emptied when the test ends.
#[derive(Default)]
struct SpawnerSlot(Mutex<Option<Spawner>>);

impl SpawnerSlot {
    fn get(&self) -> Spawner {
        self.0.lock().unwrap().clone().expect("the spawner is set")
    }

    fn set(&self, spawner: Spawner) {
        *self.0.lock().unwrap() = Some(spawner);
    }
}

/// Empties a `SpawnerSlot` when dropped (also when the test panics).
struct ClearSlot(Arc<SpawnerSlot>);

impl Drop for ClearSlot {
    fn drop(&mut self) {
        let taken = self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(taken);
    }
}

#[test]
fn a_token_is_clone_send_sync_debug_default_and_cancelling_is_one_way() {
    fn traits<T: Clone + Send + Sync + std::fmt::Debug + Default + 'static>() {}
    traits::<CancelToken>();
    watchdog(|| {
        let token = CancelToken::default();
        assert!(!token.is_cancelled());
        assert!(!CancelToken::new().is_cancelled());
        let clone = token.clone();
        assert!(!format!("{token:?}").is_empty());
        clone.cancel();
        assert!(
            token.is_cancelled() && clone.is_cancelled(),
            "clones are one token"
        );
        token.cancel();
        assert!(token.is_cancelled(), "a second cancel changes nothing");
        assert!(token.wait_timeout(Duration::ZERO));
        assert!(token.wait_timeout(LONG), "returns at once once cancelled");
    });
}

#[test]
fn token_wait_timeout_runs_out_then_returns_at_once_once_cancelled() {
    watchdog(|| {
        let token = CancelToken::new();
        let began = Instant::now();
        assert!(!token.wait_timeout(Duration::from_millis(50)));
        assert!(began.elapsed() >= Duration::from_millis(50), "never early");
        assert!(!token.wait_timeout(Duration::ZERO));
        token.cancel();
        let began = Instant::now();
        assert!(token.wait_timeout(LONG));
        assert!(token.wait_timeout(Duration::MAX));
        assert!(began.elapsed() < PROMPT);
    });
}

#[test]
fn token_wait_timeout_wakes_every_waiter_promptly_whatever_thread_cancels() {
    watchdog(|| {
        let root = CancelToken::new();
        let child = root.child();
        let grandchild = child.child();
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for n in 0..9 {
            let token = match n % 3 {
                0 => root.clone(),
                1 => child.clone(),
                _ => grandchild.clone(),
            };
            let timeout = if n == 8 { Duration::MAX } else { LONG };
            let waiting = waiting.clone();
            waiters.push(thread::spawn(move || {
                waiting.fetch_add(1, Ordering::SeqCst);
                let woke = token.wait_timeout(timeout);
                (woke, Instant::now())
            }));
        }
        wait_for("the waiters", || waiting.load(Ordering::SeqCst) == 9);
        // Give them a moment to be inside the wait (not a synchronisation:
        // a late waiter returns at once, which passes too).
        thread::sleep(Duration::from_millis(20));
        let canceller = {
            let root = root.clone();
            thread::spawn(move || {
                let at = Instant::now();
                root.cancel();
                at
            })
        };
        let cancelled_at = canceller.join().unwrap();
        for waiter in waiters {
            let (woke, at) = waiter.join().unwrap();
            assert!(woke, "a waiter timed out instead of waking");
            assert!(
                at.saturating_duration_since(cancelled_at) < PROMPT,
                "woke {:?} after the cancel",
                at.saturating_duration_since(cancelled_at)
            );
        }
    });
}

#[test]
fn a_child_follows_its_parent_never_the_other_way() {
    watchdog(|| {
        let parent = CancelToken::new();
        let a = parent.child();
        let b = parent.child();
        let a1 = a.child();
        a.cancel();
        assert!(a.is_cancelled() && a1.is_cancelled());
        assert!(!parent.is_cancelled(), "a child never cancels its parent");
        assert!(!b.is_cancelled(), "nor its sibling");
        parent.cancel();
        assert!(b.is_cancelled());
        let late = parent.child();
        assert!(
            late.is_cancelled(),
            "a child of a cancelled token is born cancelled"
        );
        assert!(late.child().is_cancelled());
    });
}

/// `child()`: "cancelled when this one is". Keeping only the grandchild of
/// a root (the middle token is a temporary) must not cut it off the root.
#[test]
fn a_grandchild_is_cancelled_with_its_root_when_the_middle_token_was_dropped() {
    watchdog(|| {
        let root = CancelToken::new();
        let grandchild = root.child().child();
        let kept_middle = root.child();
        let other_grandchild = kept_middle.child();
        root.cancel();
        assert!(other_grandchild.is_cancelled());
        assert!(
            grandchild.is_cancelled(),
            "root.child().child() was not cancelled with root"
        );
    });
}

#[test]
fn a_task_spawned_with_a_grandchild_token_is_cancelled_with_the_root() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (hold, holder) = hold_slot(&manager);
        let root = CancelToken::new();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let options = TaskOptions::new().cancel_with(&root.child().child());
        let queued = manager
            .spawn_with(options, move || r.store(true, Ordering::SeqCst))
            .unwrap();
        root.cancel();
        let state = manager.state(queued.id());
        hold.open();
        holder.join().unwrap();
        let result = queued.join();
        assert_eq!(
            (state, result, ran.load(Ordering::SeqCst)),
            (Some(TaskState::Finished), Err(TaskError::Cancelled), false),
            "a task of a grandchild token (middle token dropped) outlived the root's cancel"
        );
    });
}

#[test]
fn dropping_a_token_cancels_nothing() {
    watchdog(|| {
        let parent = CancelToken::new();
        let child = parent.child();
        drop(parent);
        assert!(!child.is_cancelled(), "dropping a parent cancels no child");
        assert!(!child.wait_timeout(Duration::from_millis(5)));

        let manager = TaskManager::new(1);
        let (hold, holder) = hold_slot(&manager);
        let token = CancelToken::new();
        let queued = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), || {
                (taskwarden::is_cancelled(), taskwarden::cancel_reason())
            })
            .unwrap();
        drop(token);
        hold.open();
        holder.join().unwrap();
        assert_eq!(queued.join(), Ok((false, None)));
        // The child still works on its own after its parent is gone.
        child.cancel();
        assert!(child.is_cancelled());
    });
}

// ---------------------------------------------------------------------------
// Tokens and tasks
// ---------------------------------------------------------------------------

#[test]
fn a_token_finishes_its_queued_tasks_before_cancel_returns_and_flags_running_ones() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let spawner = manager.spawner();
        let token = CancelToken::new();
        let child = token.child();
        let (running, asleep) = spawn_sleeper(&spawner, TaskOptions::new().cancel_with(&token));
        recv(&asleep, "the running task");
        let ran = Arc::new(AtomicUsize::new(0));
        let queued: Vec<_> = [&token, &token, &child]
            .iter()
            .map(|t| {
                let ran = ran.clone();
                manager
                    .spawn_with(TaskOptions::new().cancel_with(t), move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap()
            })
            .collect();
        let bystander = manager.spawn(taskwarden::is_cancelled).unwrap();
        let before = manager.stats().cancelled;
        let asked = Instant::now();
        token.cancel();
        // Before `cancel` returned: every queued task of the token (and of
        // its child) is finished and gone from queued().
        let in_queue = manager.queued();
        for handle in &queued {
            assert_eq!(manager.state(handle.id()), Some(TaskState::Finished));
            assert!(handle.is_finished());
            assert!(!in_queue.contains(&handle.id()), "{in_queue:?}");
        }
        // (The running task may have stopped already, and the bystander
        // started.)
        assert!(
            in_queue.iter().all(|id| *id == bystander.id()),
            "{in_queue:?}"
        );
        assert_eq!(manager.stats().cancelled, before + 3);
        assert_eq!(running.join(), Ok((false, Some(CancelReason::Token))));
        assert!(asked.elapsed() < PROMPT, "the running task woke late");
        for handle in queued {
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(
            bystander.join(),
            Ok(false),
            "a task without the token is untouched"
        );
    });
}

/// Running tasks of the token stop at once when flagged, freeing their
/// slots while the cancel is still going: none of the token's queued tasks
/// may take such a slot.
#[test]
fn no_queued_task_of_a_token_starts_even_when_its_running_ones_stop_at_once() {
    watchdog(|| {
        for _ in 0..scaled(40) {
            let manager = TaskManager::new(2);
            let spawner = manager.spawner();
            let token = CancelToken::new();
            let branch = token.child();
            let mut sleepers = Vec::new();
            for _ in 0..2 {
                let (handle, asleep) =
                    spawn_sleeper(&spawner, TaskOptions::new().cancel_with(&token));
                recv(&asleep, "a running task");
                sleepers.push(handle);
            }
            let ran = Arc::new(AtomicUsize::new(0));
            let queued: Vec<_> = (0..20)
                .map(|n| {
                    let ran = ran.clone();
                    let t = if n % 2 == 0 { &token } else { &branch };
                    manager
                        .spawn_with(TaskOptions::new().cancel_with(t), move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap()
                })
                .collect();
            token.cancel();
            for handle in sleepers {
                assert_eq!(handle.join(), Ok((false, Some(CancelReason::Token))));
            }
            for handle in queued {
                assert_eq!(handle.join(), Err(TaskError::Cancelled));
            }
            assert_eq!(
                ran.load(Ordering::SeqCst),
                0,
                "a queued task of the token ran"
            );
        }
    });
}

/// Two threads cancel one token. The second `cancel` to arrive must not
/// return before the token took effect: "Cancelling a token takes effect
/// before `cancel` returns ... no task that was queued when `cancel` was
/// called ever starts". The first cancel is held inside the drop of a
/// queued closure (user code it runs); the second cancel returns; then a
/// slot frees up.
#[test]
fn a_concurrent_second_cancel_of_a_token_returns_only_once_it_took_effect() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (hold, holder) = hold_slot(&manager);
        let token = CancelToken::new();
        // Its tasks are reached after the token's own (nodes go breadth
        // first), so `later` is still queued while `first` is dropped.
        let branch = token.child();
        let (dropping, is_dropping) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let guard = OnDrop(move || {
            let _ = dropping.send(());
            let _ = released.recv_timeout(PROMPT);
        });
        let first = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), move || drop(guard))
            .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let later = manager
            .spawn_with(TaskOptions::new().cancel_with(&branch), move || {
                r.store(true, Ordering::SeqCst)
            })
            .unwrap();
        let t = token.clone();
        let first_cancel = thread::spawn(move || t.cancel());
        recv(&is_dropping, "the first cancel dropping a closure");
        token.cancel(); // the second cancel
        let state_after_second = manager.state(later.id());
        let queued_after_second = manager.queued();
        // Free the slot: a task of the token that is still queued starts.
        hold.open();
        holder.join().unwrap();
        let finished = later.wait_timeout(PROMPT);
        let _ = release.send(());
        first_cancel.join().unwrap();
        assert_eq!(first.join(), Err(TaskError::Cancelled));
        let later_id = later.id();
        let later_result = later.join();
        assert!(
            state_after_second == Some(TaskState::Finished)
                && !queued_after_second.contains(&later_id)
                && finished
                && later_result == Err(TaskError::Cancelled)
                && !ran.load(Ordering::SeqCst),
            "after the second cancel returned: state {state_after_second:?}, queued \
             {queued_after_second:?}; then the task ran: {}, result {later_result:?}",
            ran.load(Ordering::SeqCst)
        );
    });
}

#[test]
fn eight_threads_cancel_a_token_while_four_spawn_with_it() {
    watchdog(|| {
        for _ in 0..scaled(10) {
            let manager = Arc::new(TaskManager::new(2));
            let token = CancelToken::new();
            let clock = Arc::new(AtomicU64::new(1));
            let cancels_returned = Arc::new(AtomicUsize::new(0));
            let any_returned_at = Arc::new(AtomicU64::new(u64::MAX));
            let all_returned_at = Arc::new(AtomicU64::new(u64::MAX));
            let go = Arc::new(Barrier::new(12));
            let mut spawners = Vec::new();
            for _ in 0..4 {
                let (m, t, c, go) = (manager.clone(), token.clone(), clock.clone(), go.clone());
                let any = any_returned_at.clone();
                let all = all_returned_at.clone();
                spawners.push(thread::spawn(move || {
                    go.wait();
                    let mut spawned = Vec::new();
                    for _ in 0..60 {
                        let began = c.fetch_add(1, Ordering::SeqCst);
                        let after_a_cancel = any.load(Ordering::SeqCst) < began;
                        let (c2, all2) = (c.clone(), all.clone());
                        let handle = m
                            .spawn_with(TaskOptions::new().cancel_with(&t), move || {
                                let at = c2.fetch_add(1, Ordering::SeqCst);
                                // Started after every cancel had returned?
                                all2.load(Ordering::SeqCst) < at
                            })
                            .expect("a spawn with a cancelled token still succeeds");
                        spawned.push((after_a_cancel, handle));
                    }
                    spawned
                }));
            }
            let mut cancellers = Vec::new();
            for _ in 0..8 {
                let (t, c, go) = (token.clone(), clock.clone(), go.clone());
                let (n, any, all) = (
                    cancels_returned.clone(),
                    any_returned_at.clone(),
                    all_returned_at.clone(),
                );
                cancellers.push(thread::spawn(move || {
                    go.wait();
                    t.cancel();
                    let at = c.fetch_add(1, Ordering::SeqCst);
                    any.fetch_min(at, Ordering::SeqCst);
                    if n.fetch_add(1, Ordering::SeqCst) == 7 {
                        all.store(c.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
                    }
                }));
            }
            for canceller in cancellers {
                canceller.join().unwrap();
            }
            let mut total = 0;
            for spawner in spawners {
                for (after_a_cancel, handle) in spawner.join().unwrap() {
                    total += 1;
                    match handle.join() {
                        Ok(late) => {
                            assert!(!after_a_cancel, "spawned after a cancel returned, yet ran");
                            assert!(!late, "a task of the token started after every cancel");
                        }
                        Err(TaskError::Cancelled) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
            }
            manager.drain();
            assert!(manager.tasks().is_empty());
            let stats = manager.stats();
            assert_eq!(stats.completed + stats.cancelled, total);
            assert!(manager.close().is_clean());
        }
    });
}

/// "a token cancelled before the spawn still lets the spawn succeed (an id
/// is used), but the task is finished at once, never runs, returns
/// `Err(Cancelled)`, counts in `Stats::cancelled`, and `on_task_end` runs on
/// the spawning thread."
#[test]
fn a_token_cancelled_before_the_spawn_accepts_and_finishes_the_task_on_the_spot() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(2))
            .start()
            .unwrap();
        let token = CancelToken::new();
        token.cancel();
        let first = manager.spawn(|| ()).unwrap();
        let first_id = first.id();
        first.join().unwrap();
        let captured = Arc::new(());
        let c = captured.clone();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let options = TaskOptions::new().cancel_with(&token).name("doomed");
        let handle = manager
            .spawn_with(options, move || {
                let _keep = &c;
                r.store(true, Ordering::SeqCst);
            })
            .expect("the spawn succeeds");
        // At once, before anything else happens:
        assert_eq!(handle.id().get(), first_id.get() + 1, "an id is used");
        assert_eq!(manager.state(handle.id()), Some(TaskState::Finished));
        assert!(handle.is_finished());
        assert!(handle.wait_timeout(Duration::ZERO));
        assert_eq!(Arc::strong_count(&captured), 1, "the closure is dropped");
        let end = seen.end_of(handle.id());
        assert_eq!(end.thread, thread::current().id(), "on the spawning thread");
        assert_eq!(end.outcome, TaskOutcome::Cancelled);
        assert_eq!(end.ran_for, Duration::ZERO);
        assert_eq!(end.name.as_deref(), Some("doomed"));
        assert!(seen.starts_of(handle.id()).is_empty());
        let stats = manager.stats();
        assert_eq!((stats.cancelled, stats.queued), (1, 0));
        assert!(manager.tasks().is_empty());
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
        assert!(!ran.load(Ordering::SeqCst));

        // The same through a spawner, a detached spawn and a task set.
        let spawner = manager.spawner();
        let via_spawner = spawner
            .spawn_with(TaskOptions::new().cancel_with(&token), || 1)
            .unwrap();
        assert_eq!(via_spawner.join(), Err(TaskError::Cancelled));
        let mut set = manager.task_set();
        let id = set
            .spawn_with(TaskOptions::new().cancel_with(&token), || 2)
            .unwrap();
        assert_eq!(set.try_join_next(), Some((id, Err(TaskError::Cancelled))));
        let delayed = manager
            .spawn_with(
                TaskOptions::new()
                    .cancel_with(&token)
                    .start_after(Duration::from_secs(30)),
                || 3,
            )
            .unwrap();
        assert!(delayed.is_finished());
        assert_eq!(delayed.join(), Err(TaskError::Cancelled));
        manager.drain();
        assert_eq!(manager.stats().cancelled, 4);
        assert!(manager.close().is_clean());
    });
}

#[test]
fn one_token_reaches_the_tasks_of_two_managers_whose_ids_collide() {
    watchdog(|| {
        let one = TaskManager::new(1);
        let two = TaskManager::new(1);
        let (hold_one, holder_one) = hold_slot(&one);
        let (hold_two, holder_two) = hold_slot(&two);
        let token = CancelToken::new();
        let a = one
            .spawn_with(TaskOptions::new().cancel_with(&token), || "a")
            .unwrap();
        let b = two
            .spawn_with(TaskOptions::new().cancel_with(&token), || "b")
            .unwrap();
        assert_eq!(
            a.id().get(),
            b.id().get(),
            "same number, different managers"
        );
        // Ends one manager's queued task: the token must not forget the other.
        let c = one.spawn(|| "c").unwrap();
        token.cancel();
        assert_eq!(one.state(a.id()), Some(TaskState::Finished));
        assert_eq!(two.state(b.id()), Some(TaskState::Finished));
        hold_one.open();
        hold_two.open();
        holder_one.join().unwrap();
        holder_two.join().unwrap();
        assert_eq!(a.join(), Err(TaskError::Cancelled));
        assert_eq!(b.join(), Err(TaskError::Cancelled));
        assert_eq!(c.join(), Ok("c"));
    });
}

#[test]
fn a_token_keeps_no_task_alive() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .start()
            .unwrap();
        let token = CancelToken::new();
        let captured = Arc::new(());
        // One that runs, one detached that runs, one cancelled in the queue.
        let c = captured.clone();
        let ran = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), move || {
                let _keep = &c;
            })
            .unwrap();
        ran.join().unwrap();
        let c = captured.clone();
        let detached = manager
            .spawner()
            .spawn_detached(move || {
                let _keep = &c;
            })
            .unwrap();
        manager.wait_all([detached]);
        let (hold, holder) = hold_slot(&manager);
        let c = captured.clone();
        let queued = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), move || {
                let _keep = &c;
            })
            .unwrap();
        queued.cancel();
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        hold.open();
        holder.join().unwrap();
        // A task's own token handed out lives on too.
        let c = captured.clone();
        let own = manager
            .spawn(move || {
                let _keep = &c;
                taskwarden::cancel_token().unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        manager.drain();
        assert_eq!(
            Arc::strong_count(&captured),
            1,
            "a token kept a closure alive"
        );
        // The settled tasks left the token: cancelling it now reaches none.
        let ends = seen.ended.lock().unwrap().len();
        let stats = manager.stats();
        token.cancel();
        own.cancel();
        assert_eq!(seen.ended.lock().unwrap().len(), ends);
        assert_eq!(manager.stats().cancelled, stats.cancelled);
        assert!(manager.tasks().is_empty());
    });
}

#[test]
fn cancel_token_is_none_outside_and_one_token_per_task_inside() {
    watchdog(|| {
        assert!(taskwarden::cancel_token().is_none());
        assert_eq!(taskwarden::cancel_reason(), None);
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn(|| {
                let a = taskwarden::cancel_token().expect("inside a task");
                let b = taskwarden::cancel_token().expect("inside a task");
                let before = (a.is_cancelled(), taskwarden::is_cancelled());
                a.cancel();
                (
                    before,
                    b.is_cancelled(),
                    taskwarden::is_cancelled(),
                    taskwarden::cancel_reason(),
                )
            })
            .unwrap();
        assert_eq!(
            handle.join(),
            Ok(((false, false), true, true, Some(CancelReason::Token)))
        );
    });
}

/// "cancelling that token flags the task, with reason `Token`", from
/// another thread, and the task wakes from `sleep` promptly.
#[test]
fn a_task_token_cancelled_on_another_thread_flags_the_task_with_reason_token() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (tx, rx) = mpsc::channel();
        let handle = manager
            .spawn(move || {
                tx.send(taskwarden::cancel_token().unwrap()).unwrap();
                let slept = taskwarden::sleep(LONG);
                (slept, taskwarden::cancel_reason())
            })
            .unwrap();
        let token = recv(&rx, "the task's token");
        let asked = Instant::now();
        thread::spawn(move || token.cancel()).join().unwrap();
        let info = manager.tasks();
        if let Some(info) = info.iter().find(|i| i.id == handle.id()) {
            assert_eq!(info.cancel_reason, Some(CancelReason::Token));
        }
        assert_eq!(handle.join(), Ok((false, Some(CancelReason::Token))));
        assert!(asked.elapsed() < PROMPT);
    });
}

/// "A task's own token is cancelled when its flag is set, before the call
/// that set the flag returns" — for every call that sets it.
#[test]
fn a_task_token_is_cancelled_before_the_flagging_call_returns() {
    watchdog(|| {
        type Flagger = Box<dyn Fn(&TaskManager, &TaskHandle<()>)>;
        let flaggers: Vec<(&str, Flagger)> = vec![
            ("cancel(id)", Box::new(|m, h| assert!(m.cancel(h.id())))),
            ("handle.cancel()", Box::new(|_, h| assert!(h.cancel()))),
            (
                "cancel_all()",
                Box::new(|m, h| assert_eq!(m.cancel_all(), vec![h.id()])),
            ),
            (
                "spawner.cancel(id)",
                Box::new(|m, h| assert!(m.spawner().cancel(h.id()))),
            ),
            (
                "spawner.cancel_all()",
                Box::new(|m, h| assert_eq!(m.spawner().cancel_all(), vec![h.id()])),
            ),
        ];
        for (what, flag) in flaggers {
            let manager = TaskManager::new(1);
            let (tx, rx) = mpsc::channel();
            let gate = Gate::new();
            let g = gate.clone();
            let handle = manager
                .spawn(move || {
                    tx.send(taskwarden::cancel_token().unwrap()).unwrap();
                    g.wait();
                })
                .unwrap();
            let token = recv(&rx, "the task's token");
            assert!(!token.is_cancelled());
            flag(&manager, &handle);
            let cancelled = token.is_cancelled();
            gate.open();
            handle.join().unwrap();
            assert!(
                cancelled,
                "{what} returned before the task's token was cancelled"
            );
        }
    });
}

#[test]
fn children_spawned_with_the_parent_token_stop_with_it_and_others_do_not() {
    watchdog(|| {
        let manager = TaskManager::new(3);
        let (tx, rx) = mpsc::channel();
        let plain_gate = Gate::new();
        let pg = plain_gate.clone();
        let parent = manager
            .spawn(move || {
                let mine = taskwarden::cancel_token().unwrap();
                let spawner = taskwarden::current_spawner().unwrap();
                let with = TaskOptions::new().cancel_with(&mine);
                let (asleep, is_asleep) = mpsc::channel();
                let running_child = spawner
                    .spawn_with(with.clone(), move || {
                        asleep.send(()).unwrap();
                        (taskwarden::sleep(LONG), taskwarden::cancel_reason())
                    })
                    .unwrap();
                is_asleep.recv().unwrap();
                let pg = pg.clone();
                let plain_child = spawner
                    .spawn(move || {
                        pg.wait();
                        taskwarden::is_cancelled()
                    })
                    .unwrap();
                // Both other slots are taken: this one stays queued.
                let queued_child = spawner.spawn_with(with, || "ran").unwrap();
                tx.send((running_child, plain_child, queued_child)).unwrap();
                taskwarden::sleep(LONG)
            })
            .unwrap();
        let (running_child, plain_child, queued_child) = recv(&rx, "the children");
        wait_for("three running", || manager.running().len() == 3);
        let asked = Instant::now();
        assert!(manager.cancel(parent.id()));
        // Before cancel(id) returned, the parent's token was cancelled, and
        // with it the queued child finished.
        assert_eq!(manager.state(queued_child.id()), Some(TaskState::Finished));
        assert!(!manager.queued().contains(&queued_child.id()));
        assert_eq!(parent.join(), Ok(false));
        assert_eq!(running_child.join(), Ok((false, Some(CancelReason::Token))));
        assert!(asked.elapsed() < PROMPT);
        assert_eq!(queued_child.join(), Err(TaskError::Cancelled));
        plain_gate.open();
        assert_eq!(
            plain_child.join(),
            Ok(false),
            "a plain child is not cancelled"
        );
    });
}

/// A token cancel reaches the children of its running tasks through their
/// own tokens. With two running tasks, flagging the first frees a slot
/// while the second's queued child is still queued: "no task that was
/// queued when `cancel` was called ever starts (queued tasks leave the
/// queue before any running one is flagged)". The cancelling thread is
/// held in the drop of the first task's own queued child (user code the
/// cancel runs) until the slot's next task has had its chance.
#[test]
fn no_queued_child_of_a_flagged_task_starts_while_the_token_cancel_runs() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let root = CancelToken::new();
        let branch = root.child();
        let both = Arc::new(Barrier::new(2));
        let started = Arc::new(Mutex::new(Vec::<&'static str>::new()));
        let (c_started, c_has_started) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();

        // A (on the root): its own child D is queued; dropping D's closure
        // waits for C to start (or gives up after PROMPT).
        let (b, s, r) = (both.clone(), started.clone(), ready.clone());
        let a = manager
            .spawn_with(TaskOptions::new().cancel_with(&root), move || {
                b.wait();
                let own = taskwarden::cancel_token().unwrap();
                let guard = OnDrop(move || {
                    let _ = c_has_started.recv_timeout(PROMPT);
                });
                let s2 = s.clone();
                let d = taskwarden::current_spawner()
                    .unwrap()
                    .spawn_with(TaskOptions::new().cancel_with(&own), move || {
                        s2.lock().unwrap().push("D");
                        drop(guard);
                    })
                    .unwrap();
                r.send(()).unwrap();
                // A task that polls its flag returns the moment it is set.
                while !taskwarden::is_cancelled() {
                    thread::sleep(Duration::from_millis(1));
                }
                d
            })
            .unwrap();
        // P (on the branch, reached after A): its own child C is queued.
        let (b, s, r) = (both.clone(), started.clone(), ready.clone());
        let p = manager
            .spawn_with(TaskOptions::new().cancel_with(&branch), move || {
                b.wait();
                let own = taskwarden::cancel_token().unwrap();
                let s2 = s.clone();
                let c = taskwarden::current_spawner()
                    .unwrap()
                    .spawn_with(TaskOptions::new().cancel_with(&own), move || {
                        s2.lock().unwrap().push("C");
                        let _ = c_started.send(());
                    })
                    .unwrap();
                r.send(()).unwrap();
                taskwarden::sleep(LONG);
                c
            })
            .unwrap();
        recv(&is_ready, "A's child queued");
        recv(&is_ready, "P's child queued");
        assert_eq!(manager.queued().len(), 2);
        root.cancel();
        let started_during_cancel = started.lock().unwrap().clone();
        let d = a.join().unwrap();
        let c = p.join().unwrap();
        let (d, c) = (d.join(), c.join());
        assert!(
            started_during_cancel.is_empty(),
            "queued children started while the token's cancel ran: {started_during_cancel:?} \
             (D: {d:?}, C: {c:?})"
        );
        assert_eq!(
            (d, c),
            (Err(TaskError::Cancelled), Err(TaskError::Cancelled))
        );
    });
}

// ---------------------------------------------------------------------------
// sleep
// ---------------------------------------------------------------------------

#[test]
fn sleep_outside_a_task_is_a_plain_sleep() {
    watchdog(|| {
        let began = Instant::now();
        assert!(taskwarden::sleep(Duration::from_millis(30)));
        assert!(began.elapsed() >= Duration::from_millis(30));
        assert!(taskwarden::sleep(Duration::ZERO));
    });
}

#[test]
fn sleep_in_an_uncancelled_task_sleeps_it_all_and_keeps_the_slot() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let sleeper = manager
            .spawn(move || {
                let began = Instant::now();
                let slept = taskwarden::sleep(Duration::from_millis(100));
                o.lock().unwrap().push("sleeper");
                (slept, began.elapsed())
            })
            .unwrap();
        wait_for("the sleeper", || manager.running() == vec![sleeper.id()]);
        let o = order.clone();
        let next = manager
            .spawn(move || o.lock().unwrap().push("next"))
            .unwrap();
        assert_eq!(manager.state(next.id()), Some(TaskState::Queued));
        let (slept, took) = sleeper.join().unwrap();
        next.join().unwrap();
        assert!(slept);
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert_eq!(
            *order.lock().unwrap(),
            ["sleeper", "next"],
            "the slot was kept"
        );
    });
}

#[test]
fn sleep_and_wait_timeout_return_at_once_once_the_flag_is_set() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn(|| {
                let me = taskwarden::current_task().unwrap();
                // Flag set before the task's token exists.
                assert!(taskwarden::current_spawner().unwrap().cancel(me));
                let began = Instant::now();
                let slept = taskwarden::sleep(LONG);
                let again = taskwarden::sleep(LONG);
                let token = taskwarden::cancel_token().unwrap();
                let woke = token.wait_timeout(LONG);
                (
                    slept,
                    again,
                    token.is_cancelled(),
                    woke,
                    taskwarden::cancel_reason(),
                    began.elapsed(),
                )
            })
            .unwrap();
        let (slept, again, cancelled, woke, reason, took) = handle.join().unwrap();
        assert!(!slept && !again, "sleep must report the cancel");
        assert!(
            cancelled && woke,
            "the token of a flagged task is cancelled"
        );
        assert_eq!(reason, Some(CancelReason::Requested));
        assert!(took < PROMPT, "{took:?}");
    });
}

/// "`taskwarden::sleep(d)` and `CancelToken::wait_timeout` return within a
/// few milliseconds of the flag being set, whichever thread sets it".
#[test]
fn sleep_wakes_promptly_however_and_wherever_the_flag_is_set() {
    type Trigger = Box<dyn FnOnce(Arc<TaskManager>, TaskId, CancelToken) + Send>;
    struct Case {
        what: &'static str,
        options: fn(&CancelToken) -> TaskOptions,
        trigger: Trigger,
        reason: CancelReason,
    }
    let plain: fn(&CancelToken) -> TaskOptions = |_| TaskOptions::new();
    let cases = vec![
        Case {
            what: "cancel(id)",
            options: plain,
            trigger: Box::new(|m, id, _| assert!(m.cancel(id))),
            reason: CancelReason::Requested,
        },
        Case {
            what: "cancel_all",
            options: plain,
            trigger: Box::new(|m, _, _| drop(m.cancel_all())),
            reason: CancelReason::Requested,
        },
        Case {
            what: "spawner.cancel(id) from another thread",
            options: plain,
            trigger: Box::new(|m, id, _| {
                let s = m.spawner();
                assert!(thread::spawn(move || s.cancel(id)).join().unwrap());
            }),
            reason: CancelReason::Requested,
        },
        Case {
            what: "close_now",
            options: plain,
            trigger: Box::new(|m, id, _| {
                let report = m.close_now(LONG);
                assert_eq!(report.stopped, vec![id]);
            }),
            reason: CancelReason::Closing,
        },
        Case {
            what: "spawner.close_now from another thread",
            options: plain,
            trigger: Box::new(|m, id, _| {
                let s = m.spawner();
                let report = thread::spawn(move || s.close_now(LONG)).join().unwrap();
                assert_eq!(report.stopped, vec![id]);
            }),
            reason: CancelReason::Closing,
        },
        Case {
            what: "close_timeout's deadline",
            options: plain,
            trigger: Box::new(|m, id, _| {
                // Whether it is listed is checked on its own below.
                let report = m.close_timeout(Duration::from_millis(50));
                assert!(
                    report.timed_out && report.stopped.is_empty(),
                    "{id}: {report:?}"
                );
            }),
            reason: CancelReason::Closing,
        },
        Case {
            what: "cancel_after",
            options: |_| TaskOptions::new().cancel_after(Duration::from_millis(50)),
            trigger: Box::new(|_, _, _| ()),
            reason: CancelReason::Deadline,
        },
        Case {
            what: "cancel_at while running",
            options: |_| TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(200)),
            trigger: Box::new(|_, _, _| ()),
            reason: CancelReason::Deadline,
        },
        Case {
            what: "a token cancelled on another thread",
            options: |t| TaskOptions::new().cancel_with(t),
            trigger: Box::new(|_, _, t| thread::spawn(move || t.cancel()).join().unwrap()),
            reason: CancelReason::Token,
        },
        Case {
            what: "the parent of the task's token",
            options: |t| TaskOptions::new().cancel_with(&t.child()),
            trigger: Box::new(|_, _, t| t.cancel()),
            reason: CancelReason::Token,
        },
    ];
    watchdog(move || {
        for case in cases {
            let manager = Arc::new(TaskManager::new(1));
            let token = CancelToken::new();
            let (handle, asleep) = spawn_sleeper(&manager.spawner(), (case.options)(&token));
            recv(&asleep, "the sleeper");
            let asked = Instant::now();
            (case.trigger)(manager.clone(), handle.id(), token);
            let result = handle.join();
            let took = asked.elapsed();
            assert_eq!(result, Ok((false, Some(case.reason))), "{}", case.what);
            assert!(took < PROMPT, "{}: woke after {took:?}", case.what);
        }
    });
}

#[test]
fn sleep_wakes_when_the_manager_is_dropped_with_a_short_close_timeout() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(1)
            .close_timeout(Duration::from_millis(50))
            .start()
            .unwrap();
        let (handle, asleep) = spawn_sleeper(&manager.spawner(), TaskOptions::new());
        recv(&asleep, "the sleeper");
        let asked = Instant::now();
        drop(manager);
        assert_eq!(handle.join(), Ok((false, Some(CancelReason::Closing))));
        assert!(asked.elapsed() < PROMPT);
    });
}

#[test]
fn a_task_waiting_on_its_token_wakes_promptly_when_cancelled() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (tx, rx) = mpsc::channel();
        let handle = manager
            .spawn(move || {
                let token = taskwarden::cancel_token().unwrap();
                tx.send(()).unwrap();
                token.child().wait_timeout(LONG)
            })
            .unwrap();
        recv(&rx, "the waiter");
        let asked = Instant::now();
        let spawner = manager.spawner();
        let id = handle.id();
        thread::spawn(move || spawner.cancel(id)).join().unwrap();
        assert_eq!(handle.join(), Ok(true));
        assert!(asked.elapsed() < PROMPT);
    });
}

#[test]
fn lend_slot_around_sleep_lends_the_slot_and_still_wakes_on_cancel() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (tx, rx) = mpsc::channel();
        let lender = manager
            .spawn_with(TaskOptions::new().name("lender"), move || {
                taskwarden::lend_slot(|| {
                    tx.send(()).unwrap();
                    taskwarden::sleep(LONG)
                })
            })
            .unwrap();
        recv(&rx, "the lender");
        // Its slot is lent: another task runs meanwhile.
        let other = manager.spawn(|| "ran meanwhile").unwrap();
        assert_eq!(other.join(), Ok("ran meanwhile"));
        let info = info_of(&manager.tasks(), lender.id());
        assert!(info.parked, "{info:?}");
        assert_eq!(info.state, TaskState::Running);
        assert_eq!(info.name.as_deref(), Some("lender"));
        let asked = Instant::now();
        assert!(manager.cancel(lender.id()));
        assert_eq!(lender.join(), Ok(false));
        assert!(asked.elapsed() < PROMPT);
    });
}

// ---------------------------------------------------------------------------
// Reasons
// ---------------------------------------------------------------------------

#[test]
fn cancel_reason_traits_and_display() {
    fn traits<T: std::fmt::Debug + Clone + Copy + PartialEq + Eq + std::fmt::Display>() {}
    traits::<CancelReason>();
    let all = [
        CancelReason::Requested,
        CancelReason::Deadline,
        CancelReason::Token,
        CancelReason::Closing,
    ];
    let texts: BTreeSet<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(texts.iter().all(|t| !t.is_empty()));
    assert_eq!(
        TaskError::TimedOut.to_string(),
        "timed out before it started"
    );
    assert_ne!(TaskError::TimedOut, TaskError::Cancelled);
}

/// A task that waits to be flagged, says so, waits for `proceed`, and
/// returns why it was flagged.
fn spawn_flag_reporter(
    manager: &TaskManager,
    options: TaskOptions,
    proceed: &Gate,
) -> (TaskHandle<Option<CancelReason>>, mpsc::Receiver<()>) {
    let (flagged, is_flagged) = mpsc::channel();
    let proceed = proceed.clone();
    let handle = manager
        .spawn_with(options, move || {
            assert_eq!(taskwarden::cancel_reason(), None);
            while taskwarden::sleep(LONG) {}
            flagged.send(()).unwrap();
            proceed.wait();
            taskwarden::cancel_reason()
        })
        .unwrap();
    (handle, is_flagged)
}

#[test]
fn the_first_reason_to_set_the_flag_is_the_one_kept() {
    watchdog(|| {
        // Deadline first, then a request and a token.
        let manager = Arc::new(TaskManager::new(2));
        let token = CancelToken::new();
        let proceed = Gate::new();
        let options = TaskOptions::new()
            .cancel_after(Duration::from_millis(20))
            .cancel_with(&token);
        let (handle, flagged) = spawn_flag_reporter(&manager, options, &proceed);
        recv(&flagged, "the deadline");
        assert!(manager.cancel(handle.id()));
        token.cancel();
        assert_eq!(manager.cancel_all(), vec![handle.id()]);
        let info = info_of(&manager.tasks(), handle.id());
        assert_eq!(info.cancel_reason, Some(CancelReason::Deadline));
        proceed.open();
        assert_eq!(handle.join(), Ok(Some(CancelReason::Deadline)));

        // A request first, then a token and a close_now.
        let token = CancelToken::new();
        let proceed = Gate::new();
        let (handle, flagged) =
            spawn_flag_reporter(&manager, TaskOptions::new().cancel_with(&token), &proceed);
        wait_for("running", || manager.running().contains(&handle.id()));
        handle.cancel();
        recv(&flagged, "the request");
        token.cancel();
        let info = info_of(&manager.tasks(), handle.id());
        assert_eq!(info.cancel_reason, Some(CancelReason::Requested));
        proceed.open();
        assert_eq!(handle.join(), Ok(Some(CancelReason::Requested)));

        // A token first, then a request and a close.
        let token = CancelToken::new();
        let proceed = Gate::new();
        let (handle, flagged) =
            spawn_flag_reporter(&manager, TaskOptions::new().cancel_with(&token), &proceed);
        wait_for("running", || manager.running().contains(&handle.id()));
        token.cancel();
        recv(&flagged, "the token");
        assert!(manager.cancel(handle.id()));
        proceed.open();
        assert_eq!(handle.join(), Ok(Some(CancelReason::Token)));

        // Closing first, then a request (through a spawner), a token and
        // a deadline.
        let token = CancelToken::new();
        let proceed = Gate::new();
        let options = TaskOptions::new()
            .cancel_with(&token)
            .cancel_at(Instant::now() + Duration::from_millis(300));
        let (handle, flagged) = spawn_flag_reporter(&manager, options, &proceed);
        wait_for("running", || manager.running().contains(&handle.id()));
        let spawner = manager.spawner();
        let m = manager.clone();
        let closer = thread::spawn(move || m.close_now(LIMIT));
        recv(&flagged, "the close");
        assert!(spawner.cancel(handle.id()));
        token.cancel();
        let info = info_of(&spawner.tasks(), handle.id());
        assert_eq!(info.cancel_reason, Some(CancelReason::Closing));
        proceed.open();
        let id = handle.id();
        assert_eq!(handle.join(), Ok(Some(CancelReason::Closing)));
        let report = closer.join().unwrap();
        assert_eq!(report.stopped, vec![id]);
    });
}

#[test]
fn a_queued_task_cancelled_for_another_reason_before_its_deadline_is_cancelled_not_timed_out() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let far = Instant::now() + LONG;
        let by_handle = manager
            .spawn_with(TaskOptions::new().cancel_at(far), || ())
            .unwrap();
        let token = CancelToken::new();
        let by_token = manager
            .spawn_with(TaskOptions::new().cancel_at(far).cancel_with(&token), || ())
            .unwrap();
        let by_close = manager
            .spawn_with(TaskOptions::new().cancel_at(far), || ())
            .unwrap();
        by_handle.cancel();
        token.cancel();
        let report = manager.close_timeout(Duration::from_millis(20));
        assert_eq!(report.cancelled, vec![by_close.id()]);
        hold.open();
        holder.join().unwrap();
        for handle in [by_handle, by_token, by_close] {
            let id = handle.id();
            assert_eq!(handle.join(), Err(TaskError::Cancelled));
            assert_eq!(seen.wait_end(id).outcome, TaskOutcome::Cancelled);
        }
    });
}

// ---------------------------------------------------------------------------
// TimedOut
// ---------------------------------------------------------------------------

/// "A task whose `cancel_at` passes while it is queued never runs (the
/// timer takes it out of the queue at that moment) and its handle (or set,
/// or map item) returns `Err(TimedOut)`; `Stats::cancelled` counts it."
#[test]
fn a_cancel_at_that_passes_in_the_queue_times_the_task_out() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1).thread_name("tmo"))
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let dropped_on = Arc::new(Mutex::new(None));
        let d = dropped_on.clone();
        let guard = OnDrop(move || *d.lock().unwrap() = Some(thread_name()));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let accepted = Instant::now();
        let handle = manager
            .spawn_with(
                TaskOptions::new()
                    .name("late")
                    .cancel_at(accepted + Duration::from_millis(50)),
                move || {
                    drop(guard);
                    r.store(true, Ordering::SeqCst);
                },
            )
            .unwrap();
        let id = handle.id();
        // The slot stays held: the timer alone takes it out of the queue.
        wait_for("the time-out", || {
            manager.state(id) == Some(TaskState::Finished)
        });
        assert!(
            accepted.elapsed() >= Duration::from_millis(50),
            "never early"
        );
        assert!(handle.is_finished());
        assert!(!manager.queued().contains(&id));
        assert!(manager.tasks().iter().all(|info| info.id != id));
        assert_eq!(manager.stats().cancelled, 1);
        assert_eq!(
            dropped_on.lock().unwrap().as_deref(),
            Some("tmo-timer"),
            "dropped on the timer thread"
        );
        let end = seen.end_of(id);
        assert_eq!(end.outcome, TaskOutcome::TimedOut);
        assert_eq!(end.ran_for, Duration::ZERO);
        assert_eq!(end.name.as_deref(), Some("late"));
        assert_eq!(end.thread_name, "tmo-timer");
        // Accepted inside spawn_with, a little after `accepted` above: its
        // queue time to the 50 ms deadline is a little under 50 ms.
        assert!(end.queued_for >= Duration::from_millis(45), "{end:?}");
        assert!(seen.starts_of(id).is_empty());
        hold.open();
        holder.join().unwrap();
        let result = handle.join();
        assert_eq!(result, Err(TaskError::TimedOut));
        assert_eq!(
            result.unwrap_err().to_string(),
            "timed out before it started"
        );
        assert!(!ran.load(Ordering::SeqCst));
        let stats = manager.stats();
        assert_eq!((stats.cancelled, stats.completed), (1, 1));
    });
}

#[test]
fn a_delayed_task_whose_cancel_at_comes_before_its_start_times_out() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let handle = manager
            .spawn_with(
                TaskOptions::new()
                    .start_after(LONG)
                    .cancel_at(Instant::now() + Duration::from_millis(30)),
                || (),
            )
            .unwrap();
        assert_eq!(manager.state(handle.id()), Some(TaskState::Queued));
        let info = info_of(&manager.tasks(), handle.id());
        assert_eq!(info.state, TaskState::Queued, "a delayed task reads queued");
        assert!(
            handle.wait_timeout(PROMPT),
            "not timed out within {PROMPT:?}"
        );
        assert_eq!(handle.join(), Err(TaskError::TimedOut));
        assert_eq!(manager.stats().cancelled, 1);
    });
}

#[test]
fn a_task_set_member_whose_cancel_at_passes_in_the_queue_comes_back_timed_out() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let (hold, holder) = hold_slot(&manager);
        let mut set = manager.task_set();
        let late = set
            .spawn_with(
                TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(30)),
                || "never",
            )
            .unwrap();
        let fine = set.spawn(|| "ran").unwrap();
        let first = set.join_next_timeout(PROMPT);
        assert_eq!(first, Some((late, Err(TaskError::TimedOut))));
        hold.open();
        holder.join().unwrap();
        assert_eq!(set.join_next(), Some((fine, Ok("ran"))));
        assert_eq!(set.join_next(), None);
    });
}

/// "`Stats::cancelled` and `TaskOutcome::Cancelled`/`TimedOut` count only
/// tasks that never ran: a task that ran counts as completed or panicked,
/// flagged or not. A running task flagged by `cancel_after` or `cancel_at`
/// returns what it returns".
#[test]
fn a_task_flagged_by_its_deadline_while_running_counts_as_completed_or_panicked() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(2))
            .start()
            .unwrap();
        let after = manager
            .spawn_with(
                TaskOptions::new().cancel_after(Duration::from_millis(20)),
                || {
                    let slept = taskwarden::sleep(LONG);
                    (slept, taskwarden::cancel_reason(), "stopped early")
                },
            )
            .unwrap();
        let at = manager
            .spawn_with(
                TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(50)),
                || {
                    while taskwarden::sleep(LONG) {}
                    panic!("deadline {:?}", taskwarden::cancel_reason());
                },
            )
            .unwrap();
        let (after_id, at_id) = (after.id(), at.id());
        assert_eq!(
            after.join(),
            Ok((false, Some(CancelReason::Deadline), "stopped early"))
        );
        assert_eq!(
            at.join(),
            Err(TaskError::Panicked("deadline Some(Deadline)".into()))
        );
        manager.drain();
        let stats = manager.stats();
        assert_eq!(
            (stats.completed, stats.panicked, stats.cancelled),
            (1, 1, 0)
        );
        assert_eq!(seen.end_of(after_id).outcome, TaskOutcome::Completed);
        assert_eq!(seen.end_of(at_id).outcome, TaskOutcome::Panicked);
        assert!(seen.end_of(after_id).ran_for >= Duration::from_millis(20));
    });
}

// ---------------------------------------------------------------------------
// Names, hooks and panic reports
// ---------------------------------------------------------------------------

#[test]
fn names_reach_tasks_hooks_and_panic_reports() {
    watchdog(|| {
        let seen = Seen::default();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r = reports.clone();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .on_panic(move |report| {
                r.lock().unwrap().push((
                    report.task(),
                    report.name().map(str::to_owned),
                    report.message().to_owned(),
                ))
            })
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let owned = String::from("resize a.jpg");
        let static_named = manager
            .spawn_with(TaskOptions::new().name("static name"), || ())
            .unwrap();
        let owned_named = manager
            .spawn_with(TaskOptions::new().name(owned.clone()), || panic!("corrupt"))
            .unwrap();
        let unnamed_panic = manager.spawn(|| panic!("anonymous")).unwrap();
        let tasks = manager.tasks();
        assert_eq!(info_of(&tasks, holder.id()).name, None);
        assert_eq!(
            info_of(&tasks, static_named.id()).name.as_deref(),
            Some("static name")
        );
        assert_eq!(
            info_of(&tasks, owned_named.id()).name.as_deref(),
            Some("resize a.jpg")
        );
        hold.open();
        let ids = [
            holder.id(),
            static_named.id(),
            owned_named.id(),
            unnamed_panic.id(),
        ];
        holder.join().unwrap();
        static_named.join().unwrap();
        assert_eq!(
            owned_named.join(),
            Err(TaskError::Panicked("corrupt".into()))
        );
        assert!(unnamed_panic.join().is_err());
        manager.drain();
        let names = [None, Some("static name"), Some("resize a.jpg"), None];
        for (id, name) in ids.iter().zip(names) {
            assert_eq!(seen.end_of(*id).name.as_deref(), name);
            assert_eq!(seen.starts_of(*id)[0].name.as_deref(), name);
        }
        let reports = reports.lock().unwrap().clone();
        assert_eq!(
            reports,
            vec![
                (
                    ids[2],
                    Some("resize a.jpg".to_owned()),
                    "corrupt".to_owned()
                ),
                (ids[3], None, "anonymous".to_owned()),
            ]
        );
    });
}

#[test]
fn options_with_a_name_and_a_token_are_clone_debug_and_comparable() {
    let token = CancelToken::new();
    let options = TaskOptions::new()
        .name(String::from("job"))
        .cancel_with(&token);
    let copy = options.clone();
    assert_eq!(copy, options);
    assert_ne!(copy, TaskOptions::new().name("job"));
    assert!(format!("{options:?}").contains("job"));
    assert_eq!(TaskOptions::new().name("a"), TaskOptions::new().name("a"));
    assert_ne!(TaskOptions::new().name("a"), TaskOptions::new().name("b"));
}

#[test]
fn a_named_task_panic_is_logged_with_its_name() {
    watchdog(|| {
        records();
        let manager = TaskManager::new(1);
        let handle = manager
            .spawn_with(TaskOptions::new().name("resize q7.jpg"), || {
                panic!("unique-reach-panic-5521")
            })
            .unwrap();
        let label = format!("{} (resize q7.jpg)", handle.id());
        assert!(handle.join().is_err());
        assert!(
            logged(Level::Error, &[&label, "unique-reach-panic-5521"]).is_some(),
            "no error line with {label:?}: {:?}",
            all_logged()
        );
    });
}

#[test]
fn a_named_task_whose_closure_drop_panics_on_cancel_is_logged_with_its_name() {
    watchdog(|| {
        records();
        let manager = TaskManager::new(1);
        let (hold, holder) = hold_slot(&manager);
        let bomb = OnDrop(|| panic!("unique-reach-drop-8812"));
        let handle = manager
            .spawn_with(TaskOptions::new().name("bomb squad"), move || drop(bomb))
            .unwrap();
        let label = format!("{} (bomb squad)", handle.id());
        handle.cancel();
        hold.open();
        holder.join().unwrap();
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
        assert!(
            logged(Level::Error, &[&label, "unique-reach-drop-8812"]).is_some(),
            "no error line with {label:?}: {:?}",
            all_logged()
        );
    });
}

/// "Names appear in the crate's log lines about a task": the warning of a
/// close that reached its deadline names the tasks it cancelled and
/// abandoned.
#[test]
fn the_close_deadline_warning_names_named_tasks() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .thread_name("named-close-warn")
            .start()
            .unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let stubborn = manager
            .spawn_with(TaskOptions::new().name("stubborn one"), move || g.wait())
            .unwrap();
        wait_for("running", || manager.running().len() == 1);
        let queued = manager
            .spawn_with(TaskOptions::new().name("queued one"), || ())
            .unwrap();
        let report = manager.close_timeout(Duration::from_millis(20));
        gate.open();
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert_eq!(report.cancelled, vec![queued.id()]);
        let abandoned = format!("{} (stubborn one)", stubborn.id());
        let cancelled = format!("{} (queued one)", queued.id());
        assert!(
            logged(Level::Warn, &["named-close-warn", &abandoned, &cancelled]).is_some(),
            "no warning naming {abandoned:?} and {cancelled:?}: {:?}",
            all_logged()
                .into_iter()
                .filter(|(_, t)| t.contains("named-close-warn"))
                .collect::<Vec<_>>()
        );
        stubborn.join().unwrap();
    });
}

#[test]
fn the_start_hook_runs_on_the_running_thread_just_before_the_closure() {
    watchdog(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let e = events.clone();
        let manager = Arc::new(
            TaskManager::builder()
                .max_tasks(1)
                .on_task_start(move |start| {
                    let listed = taskwarden::current_spawner()
                        .map(|s| s.tasks().iter().any(|i| i.id == start.id()));
                    e.lock()
                        .unwrap()
                        .push(("start", start.id(), thread::current().id(), listed));
                })
                .start()
                .unwrap(),
        );
        let e = events.clone();
        let m = manager.clone();
        // A parent that joins a child claims it and runs it on its own
        // thread: the child's start hook runs there too.
        let parent = manager
            .spawn(move || {
                let me = taskwarden::current_task().unwrap();
                e.lock()
                    .unwrap()
                    .push(("body", me, thread::current().id(), None));
                let e2 = e.clone();
                let child = m
                    .spawn(move || {
                        let me = taskwarden::current_task().unwrap();
                        e2.lock()
                            .unwrap()
                            .push(("body", me, thread::current().id(), None));
                    })
                    .unwrap();
                let id = child.id();
                child.join().unwrap();
                id
            })
            .unwrap();
        let parent_id = parent.id();
        let child_id = parent.join().unwrap();
        let events = events.lock().unwrap().clone();
        let kinds: Vec<_> = events.iter().map(|(k, id, _, _)| (*k, *id)).collect();
        assert_eq!(
            kinds,
            vec![
                ("start", parent_id),
                ("body", parent_id),
                ("start", child_id),
                ("body", child_id)
            ]
        );
        let threads: BTreeSet<_> = events.iter().map(|(_, _, t, _)| format!("{t:?}")).collect();
        assert_eq!(threads.len(), 1, "all on the parent's thread: {events:?}");
        for (kind, id, _, listed) in &events {
            if *kind == "start" {
                assert_eq!(
                    *listed,
                    Some(true),
                    "tasks() in the start hook of {id} (accepted, not finished)"
                );
            }
        }
    });
}

/// `queued_for` is the time from acceptance to start (to settle, for a
/// task that never ran), `ran_for` from start to settle.
#[test]
fn queued_for_and_ran_for_measure_the_wait_and_the_run() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let before_spawn = Instant::now();
        let waits = manager
            .spawn(|| thread::sleep(Duration::from_millis(60)))
            .unwrap();
        let never = manager.spawn(|| ()).unwrap();
        let after_spawn = Instant::now();
        thread::sleep(Duration::from_millis(80));
        let before_cancel = Instant::now();
        never.cancel();
        let after_cancel = Instant::now();
        let released = Instant::now();
        hold.open();
        holder.join().unwrap();
        let waits_id = waits.id();
        waits.join().unwrap();
        let finished = Instant::now();
        let end = seen.end_of(never.id());
        assert_eq!(end.ran_for, Duration::ZERO);
        assert!(
            end.queued_for >= before_cancel - after_spawn
                && end.queued_for <= after_cancel - before_spawn,
            "{end:?}"
        );
        let start = seen.starts_of(waits_id)[0].clone();
        assert_ne!(start.thread, thread::current().id());
        assert!(start.thread_name.starts_with("taskwarden-"), "{start:?}");
        let end = seen.end_of(waits_id);
        assert!(start.queued_for >= released - after_spawn, "{start:?}");
        assert!(start.queued_for <= finished - before_spawn, "{start:?}");
        assert!(
            end.queued_for >= start.queued_for.saturating_sub(Duration::from_millis(1))
                && end.queued_for <= start.queued_for + Duration::from_millis(50),
            "the end's queued_for is the start's: {start:?} {end:?}"
        );
        assert!(end.ran_for >= Duration::from_millis(60), "{end:?}");
        assert!(end.ran_for <= finished - before_spawn, "{end:?}");
        // A delayed task waited at least its delay.
        let delayed = manager
            .spawn_with(
                TaskOptions::new().start_after(Duration::from_millis(50)),
                || (),
            )
            .unwrap();
        let id = delayed.id();
        delayed.join().unwrap();
        manager.drain();
        // Its start time is counted from just before the acceptance time.
        assert!(seen.starts_of(id)[0].queued_for >= Duration::from_millis(45));
    });
}

/// "`on_task_end` runs once for every accepted task as it settles", also
/// for cancelled and timed-out ones (with `ran_for` zero and no start hook
/// before them), detached ones, set and map members, scoped tasks, and the
/// tasks a close drops.
#[test]
fn the_end_hook_runs_once_for_every_accepted_task_whatever_its_fate() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(2))
            .start()
            .unwrap();
        let mut expect: BTreeMap<TaskId, TaskOutcome> = BTreeMap::new();
        let mut unknown_ran = 0; // map items: their ids are not seen
        for n in 0..10 {
            let handle = manager.spawn(move || n).unwrap();
            expect.insert(handle.id(), TaskOutcome::Completed);
            handle.join().unwrap();
        }
        for _ in 0..3 {
            let handle = manager.spawn(|| panic!("boom")).unwrap();
            expect.insert(handle.id(), TaskOutcome::Panicked);
            assert!(handle.join().is_err());
        }
        for _ in 0..5 {
            let id = manager.spawn_detached(|| ()).unwrap();
            expect.insert(id, TaskOutcome::Completed);
        }
        manager.drain();
        // Two held slots and a queue of doomed tasks.
        let (hold_a, holder_a) = hold_slot(&manager);
        let (hold_b, holder_b) = hold_slot(&manager);
        expect.insert(holder_a.id(), TaskOutcome::Completed);
        expect.insert(holder_b.id(), TaskOutcome::Completed);
        let by_handle = manager.spawn(|| ()).unwrap();
        let by_id = manager.spawn(|| ()).unwrap();
        let token = CancelToken::new();
        let by_token = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), || ())
            .unwrap();
        let timed = manager
            .spawn_with(
                TaskOptions::new().cancel_at(Instant::now() + Duration::from_millis(20)),
                || (),
            )
            .unwrap();
        let mut set = manager.task_set::<()>();
        for _ in 0..3 {
            expect.insert(set.spawn(|| ()).unwrap(), TaskOutcome::Cancelled);
        }
        for handle in [&by_handle, &by_id, &by_token] {
            expect.insert(handle.id(), TaskOutcome::Cancelled);
        }
        expect.insert(timed.id(), TaskOutcome::TimedOut);
        by_handle.cancel();
        assert!(manager.cancel(by_id.id()));
        token.cancel();
        assert!(timed.wait_timeout(PROMPT));
        drop(set);
        // A map whose first window queues behind the held slots, dropped.
        let map = manager.map(0..100_u32, |n| n);
        drop(map);
        let cancelled_by_all = manager.spawn(|| ()).unwrap();
        expect.insert(cancelled_by_all.id(), TaskOutcome::Cancelled);
        let reached = manager.cancel_all();
        assert!(reached.contains(&cancelled_by_all.id()));
        hold_a.open();
        hold_b.open();
        holder_a.join().unwrap();
        holder_b.join().unwrap();
        // Scoped tasks.
        manager.scoped(|s| {
            for _ in 0..3 {
                s.spawn(|| ());
            }
        });
        unknown_ran += 3;
        // A close that drops queued tasks and abandons a running one.
        let (hold, holder) = hold_slot(&manager);
        let (hold2, holder2) = hold_slot(&manager);
        let q1 = manager.spawn(|| ()).unwrap();
        let q2 = manager.spawn_detached(|| ()).unwrap();
        expect.insert(holder.id(), TaskOutcome::Completed);
        expect.insert(holder2.id(), TaskOutcome::Completed);
        expect.insert(q1.id(), TaskOutcome::Cancelled);
        expect.insert(q2, TaskOutcome::Cancelled);
        let report = manager.close_timeout(Duration::from_millis(20));
        assert_eq!(report.cancelled, vec![q1.id(), q2]);
        hold.open();
        hold2.open();
        holder.join().unwrap();
        holder2.join().unwrap();
        let last = q2.get();
        let map_items = last as usize - expect.len() - unknown_ran;
        wait_for("every end hook", || {
            seen.ended.lock().unwrap().len() == last as usize
        });
        let ended = seen.ended.lock().unwrap().clone();
        let mut per_id: BTreeMap<TaskId, Vec<TaskOutcome>> = BTreeMap::new();
        for end in &ended {
            per_id.entry(end.id).or_default().push(end.outcome);
        }
        assert_eq!(per_id.len(), last as usize, "one end per id: {per_id:?}");
        assert!(per_id.keys().map(|id| id.get()).eq(1..=last));
        for (id, outcome) in &expect {
            assert_eq!(per_id[id], vec![*outcome], "{id}");
        }
        let mut map_cancelled = 0;
        for end in &ended {
            let starts = seen.starts_of(end.id).len();
            match end.outcome {
                TaskOutcome::Cancelled | TaskOutcome::TimedOut => {
                    assert_eq!(end.ran_for, Duration::ZERO, "{end:?}");
                    assert_eq!(starts, 0, "a start hook before {end:?}");
                    if !expect.contains_key(&end.id) {
                        map_cancelled += 1;
                    }
                }
                _ => assert_eq!(starts, 1, "{end:?}"),
            }
        }
        assert!(
            map_items > 0 && map_cancelled == map_items,
            "map items all dropped"
        );
        let stats = manager.stats();
        assert_eq!(stats.completed + stats.panicked + stats.cancelled, last);
    });
}

/// For a task that never ran, the end hook runs "on the thread that
/// cancelled it".
#[test]
fn the_end_hook_of_a_task_cancelled_in_the_queue_runs_on_the_cancelling_thread() {
    watchdog(|| {
        type Cancel = Box<dyn FnOnce(&Arc<TaskManager>, TaskHandle<()>, &CancelToken) + Send>;
        let cases: Vec<(&str, Cancel)> = vec![
            ("handle.cancel", Box::new(|_, h, _| assert!(h.cancel()))),
            (
                "manager.cancel",
                Box::new(|m, h, _| assert!(m.cancel(h.id()))),
            ),
            (
                "spawner.cancel",
                Box::new(|m, h, _| assert!(m.spawner().cancel(h.id()))),
            ),
            ("cancel_all", Box::new(|m, _, _| drop(m.cancel_all()))),
            ("token.cancel", Box::new(|_, _, t| t.cancel())),
            (
                "close_now",
                Box::new(|m, _, _| drop(m.close_now(Duration::from_millis(20)))),
            ),
            (
                "close_timeout",
                Box::new(|m, _, _| drop(m.close_timeout(Duration::from_millis(20)))),
            ),
        ];
        for (what, cancel) in cases {
            let seen = Seen::default();
            let manager = Arc::new(
                seen.install(TaskManager::builder().max_tasks(1))
                    .start()
                    .unwrap(),
            );
            let (hold, holder) = hold_slot(&manager);
            let token = CancelToken::new();
            let queued = manager
                .spawn_with(TaskOptions::new().cancel_with(&token), || ())
                .unwrap();
            let id = queued.id();
            let m = manager.clone();
            let canceller = thread::Builder::new()
                .name(format!("canceller {what}"))
                .spawn(move || {
                    cancel(&m, queued, &token);
                    thread::current().id()
                })
                .unwrap();
            let canceller_id = canceller.join().unwrap();
            hold.open();
            holder.join().unwrap();
            let end = seen.wait_end(id);
            assert_eq!(end.outcome, TaskOutcome::Cancelled, "{what}");
            assert_eq!(
                end.thread, canceller_id,
                "{what}: ran on {:?}",
                end.thread_name
            );
        }
        // A dropped task set and a dropped map: on the dropping thread.
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let mut set = manager.task_set();
        let member = set.spawn(|| ()).unwrap();
        let map = manager.map(0..4_u32, |n| n);
        drop(set);
        drop(map);
        hold.open();
        holder.join().unwrap();
        manager.drain();
        let me = thread::current().id();
        let ended = seen.ended.lock().unwrap().clone();
        let never_ran: Vec<_> = ended
            .iter()
            .filter(|e| e.outcome == TaskOutcome::Cancelled)
            .collect();
        assert!(never_ran.iter().any(|e| e.id == member));
        assert!(never_ran.len() >= 2, "{ended:?}");
        for end in never_ran {
            assert_eq!(end.thread, me, "{end:?}");
        }
    });
}

#[test]
fn the_end_hook_of_a_task_that_ran_runs_on_its_thread_after_its_result_was_dropped() {
    watchdog(|| {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_end(move |end| {
                o.lock()
                    .unwrap()
                    .push(format!("end {} on {}", end.id(), thread_name()))
            })
            .thread_name("enders")
            .start()
            .unwrap();
        let o = order.clone();
        let id = manager
            .spawn_detached(move || {
                let o2 = o.clone();
                OnDrop(move || o2.lock().unwrap().push("result dropped".into()))
            })
            .unwrap();
        manager.wait_all([id]);
        manager.drain();
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            vec!["result dropped".to_owned(), format!("end {id} on enders-0")]
        );
    });
}

#[test]
fn hooks_that_panic_are_caught_and_the_manager_goes_on() {
    watchdog(|| {
        let starts = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        let (s, e) = (starts.clone(), ends.clone());
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_task_start(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                panic!("start hook panics");
            })
            .on_task_end(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
                panic!("end hook panics");
            })
            .start()
            .unwrap();
        let handles: Vec<_> = (0..20_u32)
            .map(|n| manager.spawn(move || n * 2).unwrap())
            .collect();
        for (n, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.join(), Ok(n as u32 * 2));
        }
        let panicking = manager.spawn(|| panic!("the task")).unwrap();
        assert_eq!(
            panicking.join(),
            Err(TaskError::Panicked("the task".into()))
        );
        let (hold, holder) = hold_slot(&manager);
        let (hold2, holder2) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        queued.cancel();
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        hold.open();
        hold2.open();
        holder.join().unwrap();
        holder2.join().unwrap();
        manager.drain();
        assert_eq!(starts.load(Ordering::SeqCst), 23);
        assert_eq!(ends.load(Ordering::SeqCst), 24);
        let stats = manager.stats();
        assert_eq!(
            (stats.completed, stats.panicked, stats.cancelled),
            (22, 1, 1),
            "hook panics are not task panics"
        );
        assert!(manager.tasks().is_empty());
        assert_eq!(manager.spawn(|| 7).unwrap().join(), Ok(7));
        assert!(manager.close().is_clean());
    });
}

#[test]
fn a_panic_in_a_per_task_hook_is_logged() {
    watchdog(|| {
        records();
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_start(|_| panic!("unique-start-hook-panic-3391"))
            .on_task_end(|_| panic!("unique-end-hook-panic-3392"))
            .start()
            .unwrap();
        assert_eq!(manager.spawn(|| 1).unwrap().join(), Ok(1));
        manager.drain();
        for needle in ["unique-start-hook-panic-3391", "unique-end-hook-panic-3392"] {
            assert!(
                logged(Level::Error, &[needle]).is_some(),
                "{needle} not logged at error level"
            );
        }
    });
}

/// "Neither hook runs under a lock of the crate's": hooks that spawn,
/// cancel and inspect the same manager.
#[test]
fn hooks_may_spawn_cancel_and_inspect_their_own_manager() {
    watchdog(|| {
        let spawner_slot = Arc::new(SpawnerSlot::default());
        let _clear = ClearSlot(spawner_slot.clone());
        let victims: Arc<Mutex<Vec<TaskId>>> = Arc::new(Mutex::new(Vec::new()));
        let follow_ups = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(Mutex::new(Vec::new()));
        let (sp, f, en) = (spawner_slot.clone(), follow_ups.clone(), ends.clone());
        let (sp2, v2) = (spawner_slot.clone(), victims.clone());
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_start(move |start| {
                let spawner = sp.get();
                let _ = spawner.tasks();
                let _ = spawner.stats();
                assert_eq!(spawner.state(start.id()), Some(TaskState::Running));
                if start.name() == Some("cancel me as I start") {
                    assert!(spawner.cancel(start.id()));
                }
                if start.name() == Some("spawner") && f.fetch_add(1, Ordering::SeqCst) < 3 {
                    spawner
                        .spawn_with(TaskOptions::new().name("spawner"), || ())
                        .unwrap();
                }
            })
            .on_task_end(move |end| {
                let spawner = sp2.get();
                let _ = spawner.tasks();
                let _ = spawner.stats();
                en.lock().unwrap().push((end.id(), end.outcome()));
                if end.name() == Some("kill the victims") {
                    let victims = v2.lock().unwrap().clone();
                    for victim in victims {
                        // Its own end hook runs here, nested.
                        assert!(spawner.cancel(victim));
                    }
                    let _ = spawner.cancel_all();
                }
            })
            .start()
            .unwrap();
        spawner_slot.set(manager.spawner());

        let flagged = manager
            .spawn_with(TaskOptions::new().name("cancel me as I start"), || {
                (taskwarden::is_cancelled(), taskwarden::cancel_reason())
            })
            .unwrap();
        assert_eq!(flagged.join(), Ok((true, Some(CancelReason::Requested))));

        manager
            .spawn_with(TaskOptions::new().name("spawner"), || ())
            .unwrap()
            .join()
            .unwrap();
        manager.drain();
        assert_eq!(follow_ups.load(Ordering::SeqCst), 4);

        let gate = Gate::new();
        let g = gate.clone();
        let killer = manager
            .spawn_with(TaskOptions::new().name("kill the victims"), move || {
                g.wait()
            })
            .unwrap();
        wait_for("the killer", || manager.running() == vec![killer.id()]);
        let victims_handles: Vec<_> = (0..3).map(|_| manager.spawn(|| ()).unwrap()).collect();
        *victims.lock().unwrap() = victims_handles.iter().map(TaskHandle::id).collect();
        gate.open();
        killer.join().unwrap();
        for victim in victims_handles {
            assert_eq!(victim.join(), Err(TaskError::Cancelled));
        }
        manager.drain();
        let ends = ends.lock().unwrap().clone();
        let flagged_end = ends
            .iter()
            .find(|(id, _)| id.get() == 1)
            .expect("the first task's end");
        assert_eq!(flagged_end.1, TaskOutcome::Completed, "it ran, flagged");
        assert_eq!(
            ends.len() as u64,
            manager.stats().completed + manager.stats().cancelled
        );
        assert!(manager.close().is_clean());
    });
}

/// The end hook of a task a token cancels runs on the cancelling thread,
/// inside `cancel`: it may cancel the token again, spawn with it (the task
/// is finished at once, its own end hook nested), and ask the manager.
#[test]
fn an_end_hook_inside_a_token_cancel_may_use_the_token_and_the_manager() {
    watchdog(|| {
        let spawner_slot = Arc::new(SpawnerSlot::default());
        let _clear = ClearSlot(spawner_slot.clone());
        let token = CancelToken::new();
        let nested = Arc::new(Mutex::new(Vec::new()));
        let (sp, t, n) = (spawner_slot.clone(), token.clone(), nested.clone());
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_end(move |end| {
                if end.name() != Some("first victim") {
                    n.lock().unwrap().push((end.id(), end.outcome()));
                    return;
                }
                let spawner = sp.get();
                t.cancel();
                let _ = t.child();
                let late = spawner
                    .spawn_with(TaskOptions::new().cancel_with(&t), || ())
                    .unwrap();
                assert!(late.is_finished());
                let _ = spawner.tasks();
                let _ = spawner.stats();
                n.lock().unwrap().push((late.id(), TaskOutcome::Cancelled));
            })
            .start()
            .unwrap();
        spawner_slot.set(manager.spawner());
        let (hold, holder) = hold_slot(&manager);
        let first = manager
            .spawn_with(
                TaskOptions::new().cancel_with(&token).name("first victim"),
                || (),
            )
            .unwrap();
        let second = manager
            .spawn_with(TaskOptions::new().cancel_with(&token.child()), || ())
            .unwrap();
        token.cancel();
        assert!(first.is_finished() && second.is_finished());
        hold.open();
        holder.join().unwrap();
        manager.drain();
        let nested = nested.lock().unwrap().clone();
        assert!(
            nested.contains(&(second.id(), TaskOutcome::Cancelled)),
            "{nested:?}"
        );
        assert_eq!(
            nested.len(),
            4,
            "second, the late one twice, the holder: {nested:?}"
        );
    });
}

#[test]
fn an_end_hook_may_close_its_own_manager() {
    watchdog(|| {
        let spawner_slot = Arc::new(SpawnerSlot::default());
        let _clear = ClearSlot(spawner_slot.clone());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (sp, r) = (spawner_slot.clone(), reports.clone());
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_task_end(move |end| {
                if end.name() == Some("closer") {
                    let report = sp.get().close_timeout(LIMIT / 4);
                    r.lock().unwrap().push(report);
                }
            })
            .start()
            .unwrap();
        spawner_slot.set(manager.spawner());
        let others: Vec<_> = (0..4)
            .map(|_| {
                manager
                    .spawn(|| thread::sleep(Duration::from_millis(5)))
                    .unwrap()
            })
            .collect();
        let closer = manager
            .spawn_with(TaskOptions::new().name("closer"), || ())
            .unwrap();
        closer.join().unwrap();
        for other in others {
            other.join().unwrap();
        }
        let report = manager.close();
        assert!(manager.is_closed());
        assert_eq!(reports.lock().unwrap().clone(), vec![report.clone()]);
        assert!(report.abandoned.is_empty(), "{report:?}");
    });
}

// ---------------------------------------------------------------------------
// tasks()
// ---------------------------------------------------------------------------

#[test]
fn tasks_shows_queued_running_and_parked_tasks_with_names_and_reasons() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        assert!(manager.tasks().is_empty());
        let gate = Gate::new();
        let (tx, rx) = mpsc::channel();
        let (m, g) = (manager.clone(), gate.clone());
        let parent = manager
            .spawn_with(TaskOptions::new().name("parent"), move || {
                let g = g.clone();
                let child = m
                    .spawn_with(TaskOptions::new().name("child"), move || {
                        g.wait();
                        taskwarden::cancel_reason()
                    })
                    .unwrap();
                tx.send(child.id()).unwrap();
                // Parks, and runs the still-queued child on this thread.
                child.join()
            })
            .unwrap();
        let child = recv(&rx, "the child's id");
        wait_for("the child running", || {
            manager.state(child) == Some(TaskState::Running)
        });
        let queued = manager
            .spawn_with(TaskOptions::new().name(format!("queued {}", 3)), || ())
            .unwrap();
        let unnamed = manager.spawn(|| ()).unwrap();
        assert!(manager.cancel(child));
        let tasks = manager.tasks();
        let ids: Vec<_> = tasks.iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![parent.id(), child, queued.id(), unnamed.id()]);
        let p = info_of(&tasks, parent.id());
        assert_eq!(
            (p.name.as_deref(), p.state, p.parked, p.cancel_reason),
            (Some("parent"), TaskState::Running, true, None)
        );
        let c = info_of(&tasks, child);
        assert_eq!(
            (c.name.as_deref(), c.state, c.parked, c.cancel_reason),
            (
                Some("child"),
                TaskState::Running,
                false,
                Some(CancelReason::Requested)
            )
        );
        let q = info_of(&tasks, queued.id());
        assert_eq!(
            (q.name.as_deref(), q.state, q.parked, q.cancel_reason),
            (Some("queued 3"), TaskState::Queued, false, None)
        );
        let u = info_of(&tasks, unnamed.id());
        assert_eq!(
            (u.name, u.state, u.parked),
            (None, TaskState::Queued, false)
        );
        // The spawner sees the same.
        let via_spawner: Vec<_> = manager.spawner().tasks().iter().map(|i| i.id).collect();
        assert_eq!(via_spawner, ids);
        // A cancelled queued task leaves at once.
        unnamed.cancel();
        assert!(manager.tasks().iter().all(|i| i.id != unnamed.id()));
        gate.open();
        assert_eq!(parent.join(), Ok(Ok(Some(CancelReason::Requested))));
        queued.join().unwrap();
        manager.drain();
        assert!(manager.tasks().is_empty());
    });
}

#[test]
fn tasks_marks_tasks_parked_in_drain_and_lend_slot() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let gate = Gate::new();
        let g = gate.clone();
        let worker = manager.spawn(move || g.wait()).unwrap();
        let m = manager.clone();
        let drainer = manager.spawn(move || m.drain()).unwrap();
        let g = gate.clone();
        let lender = manager
            .spawn(move || taskwarden::lend_slot(|| g.wait()))
            .unwrap();
        wait_for("both parked", || {
            let tasks = manager.tasks();
            tasks.iter().filter(|i| i.parked).count() == 2
        });
        let tasks = manager.tasks();
        assert!(info_of(&tasks, drainer.id()).parked);
        assert!(info_of(&tasks, lender.id()).parked);
        assert!(!info_of(&tasks, worker.id()).parked);
        gate.open();
        worker.join().unwrap();
        drainer.join().unwrap();
        lender.join().unwrap();
        assert!(manager.tasks().is_empty());
    });
}

#[test]
fn tasks_is_a_sane_snapshot_under_churn() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(2));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (manager.clone(), stop.clone());
        let churn = thread::spawn(move || {
            let mut n = 0_u64;
            while !s.load(Ordering::SeqCst) {
                let options = if n % 3 == 0 {
                    TaskOptions::new().name(format!("job {n}"))
                } else {
                    TaskOptions::new()
                };
                let handle = m.spawn_with(options, thread::yield_now).unwrap();
                if n % 5 == 0 {
                    handle.cancel();
                }
                n += 1;
                if n % 50 == 0 {
                    m.drain();
                }
            }
        });
        for _ in 0..scaled(2_000) {
            let tasks = manager.tasks();
            assert!(
                tasks.windows(2).all(|w| w[0].id < w[1].id),
                "ascending and unique"
            );
            for info in &tasks {
                assert!(
                    matches!(info.state, TaskState::Queued | TaskState::Running),
                    "{info:?}"
                );
                assert!(
                    !(info.parked && info.state == TaskState::Queued),
                    "{info:?}"
                );
                if let Some(name) = &info.name {
                    assert_eq!(*name, format!("job {}", info.id.get() - 1));
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        churn.join().unwrap();
        manager.drain();
        assert!(manager.tasks().is_empty());
    });
}

// ---------------------------------------------------------------------------
// Spawner: remote control
// ---------------------------------------------------------------------------

#[test]
fn a_spawner_cancels_and_asks_like_its_manager() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let spawner = manager.spawner();
        let (hold, holder) = hold_slot(&manager);
        let a = manager.spawn(|| ()).unwrap();
        let b = manager.spawn(|| ()).unwrap();
        let c = manager.spawn(|| ()).unwrap();
        assert_eq!(spawner.state(a.id()), Some(TaskState::Queued));
        assert_eq!(spawner.state(holder.id()), Some(TaskState::Running));
        let far = c.id();
        assert!(spawner.cancel(a.id()));
        assert!(!spawner.cancel(a.id()), "already finished");
        assert_eq!(spawner.state(a.id()), Some(TaskState::Finished));
        assert_eq!(spawner.stats().cancelled, manager.stats().cancelled);
        assert_eq!(spawner.stats().queued, 2);
        let ids = |infos: Vec<TaskInfo>| infos.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(spawner.tasks()), ids(manager.tasks()));
        assert_eq!(spawner.cancel_all(), vec![holder.id(), b.id(), far]);
        hold.open();
        holder.join().unwrap();
        assert_eq!(b.join(), Err(TaskError::Cancelled));
        assert_eq!(c.join(), Err(TaskError::Cancelled));
        // Another manager's id is never one of this manager's tasks.
        let other = TaskManager::new(1);
        let foreign = other.spawn(|| ()).unwrap();
        assert!(!spawner.cancel(foreign.id()));
        assert_eq!(spawner.state(foreign.id()), None);
        foreign.join().unwrap();
        let stats = spawner.stats();
        assert_eq!((stats.completed, stats.cancelled), (1, 3));
    });
}

/// "Once its manager is dropped these answer as the closed manager would
/// (the close's report, the final stats)."
#[test]
fn a_spawner_outliving_a_cleanly_dropped_manager_answers_as_the_closed_manager() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let done = manager.spawn(|| 1).unwrap();
        let failed = manager.spawn(|| panic!("no")).unwrap();
        let (done_id, failed_id) = (done.id(), failed.id());
        done.join().unwrap();
        assert!(failed.join().is_err());
        manager.drain();
        let before = manager.stats();
        drop(manager);
        assert!(spawner.is_closed());
        let began = Instant::now();
        let report = spawner.close_now(LONG);
        assert!(
            began.elapsed() < PROMPT,
            "close_now on a closed manager waits for nothing"
        );
        assert!(report.is_clean(), "{report:?}");
        assert!(report.stopped.is_empty());
        assert_eq!(spawner.close_timeout(LONG), report);
        assert_eq!(spawner.close_now(Duration::ZERO), report);
        let after = spawner.stats();
        assert_eq!(
            (after.completed, after.panicked, after.cancelled),
            (before.completed, before.panicked, before.cancelled)
        );
        assert_eq!((after.running, after.queued, after.threads), (0, 0, 0));
        assert!(!spawner.cancel(done_id) && !spawner.cancel(failed_id));
        assert_eq!(spawner.cancel_all(), Vec::<TaskId>::new());
        assert_eq!(spawner.state(done_id), Some(TaskState::Finished));
        assert!(spawner.tasks().is_empty());
        let refused = spawner.spawn(|| 5).unwrap_err();
        assert!(refused.is_closed());
        assert_eq!((refused.into_inner())(), 5, "the closure is handed back");
    });
}

#[test]
fn a_spawner_outliving_a_manager_dropped_at_its_deadline_returns_that_close_report() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(1)
            .close_timeout(Duration::from_millis(50))
            .start()
            .unwrap();
        let spawner = manager.spawner();
        let gate = Gate::new();
        let g = gate.clone();
        let stubborn = manager.spawn(move || g.wait()).unwrap();
        wait_for("running", || manager.running().len() == 1);
        let queued = manager.spawn(|| ()).unwrap();
        drop(manager);
        let began = Instant::now();
        let report = spawner.close_now(LONG);
        assert!(began.elapsed() < PROMPT, "the drop's report, at once");
        assert_eq!(report.cancelled, vec![queued.id()]);
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        assert!(report.stopped.is_empty(), "the drop was a plain close");
        assert!(report.timed_out);
        assert_eq!(spawner.close_timeout(Duration::ZERO), report);
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        gate.open();
        let stubborn_id = stubborn.id();
        stubborn.join().unwrap();
        wait_for("the abandoned task to settle", || {
            spawner.tasks().is_empty()
        });
        assert!(!spawner.cancel(stubborn_id));
        let stats = spawner.stats();
        assert_eq!((stats.cancelled, stats.running, stats.queued), (1, 0, 0));
        assert_eq!(spawner.close_now(LONG), report);
    });
}

/// "a signal handler or a watchdog thread can hold a `'static` handle to a
/// manager that its owner still drops normally".
#[test]
fn a_watchdog_thread_stops_the_manager_while_its_owner_is_blocked_in_join() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let spawner = manager.spawner();
        let (sleeper, asleep) = spawn_sleeper(&spawner, TaskOptions::new().name("sleeper"));
        let queued_gate = Gate::new();
        let (hold, holder) = hold_slot(&manager);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let queued = manager
            .spawn(move || r.store(true, Ordering::SeqCst))
            .unwrap();
        recv(&asleep, "the sleeper");
        let (tx, rx) = mpsc::channel();
        let watchdog_thread = thread::spawn(move || {
            // Let the owner block in join first; a late stop is fine too.
            thread::sleep(Duration::from_millis(20));
            let report = spawner.close_now(Duration::from_millis(200));
            tx.send(Instant::now()).unwrap();
            report
        });
        let joined = sleeper.join();
        let joined_at = Instant::now();
        let report = watchdog_thread.join().unwrap();
        let stopped_at = recv(&rx, "the stop");
        assert_eq!(joined, Ok((false, Some(CancelReason::Closing))));
        assert!(joined_at.saturating_duration_since(stopped_at) < PROMPT);
        queued_gate.open();
        hold.open();
        holder.join().unwrap();
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(report.cancelled.len(), 1);
        assert!(
            report.stopped.len() + report.abandoned.len() == 2,
            "{report:?}"
        );
        assert_eq!(manager.close(), report, "the owner gets the same report");
        drop(manager);
    });
}

#[test]
fn close_now_through_a_spawner_escalates_the_owners_drop() {
    watchdog(|| {
        let manager = TaskManager::builder()
            .max_tasks(1)
            .close_timeout(LONG)
            .start()
            .unwrap();
        let spawner = manager.spawner();
        let (sleeper, asleep) = spawn_sleeper(&spawner, TaskOptions::new());
        recv(&asleep, "the sleeper");
        let dropper = thread::spawn(move || {
            let began = Instant::now();
            drop(manager);
            began.elapsed()
        });
        wait_for("the drop's close to begin", || spawner.is_closed());
        let report = spawner.close_now(LONG);
        let took = dropper.join().unwrap();
        assert!(took < PROMPT, "the drop waited {took:?}");
        assert_eq!(report.stopped, vec![sleeper.id()]);
        assert!(!report.timed_out);
        assert_eq!(sleeper.join(), Ok((false, Some(CancelReason::Closing))));
        assert_eq!(spawner.close_timeout(LONG), report);
    });
}

#[test]
fn close_now_through_the_current_spawner_flags_the_caller_without_waiting_for_it() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (other, asleep) = spawn_sleeper(&manager.spawner(), TaskOptions::new());
        recv(&asleep, "the other task");
        let closer = manager
            .spawn(|| {
                let me = taskwarden::current_task().unwrap();
                let report = taskwarden::current_spawner().unwrap().close_now(LONG);
                (
                    me,
                    report,
                    taskwarden::is_cancelled(),
                    taskwarden::cancel_reason(),
                )
            })
            .unwrap();
        let (me, report, flagged, reason): (TaskId, CloseReport, bool, Option<CancelReason>) =
            closer.join().unwrap();
        assert!(flagged);
        assert_eq!(reason, Some(CancelReason::Closing));
        assert!(!report.stopped.contains(&me) && !report.abandoned.contains(&me));
        assert_eq!(report.stopped, vec![other.id()]);
        assert_eq!(other.join(), Ok((false, Some(CancelReason::Closing))));
        assert_eq!(manager.close(), report);
    });
}

#[test]
fn a_spawner_close_and_the_owner_close_race_to_one_report() {
    watchdog(|| {
        for _ in 0..scaled(20) {
            let manager = Arc::new(TaskManager::new(2));
            let spawner = manager.spawner();
            for _ in 0..6 {
                manager
                    .spawn(|| thread::sleep(Duration::from_millis(1)))
                    .unwrap();
            }
            let go = Arc::new(Barrier::new(2));
            let (g, s) = (go.clone(), spawner.clone());
            let remote = thread::spawn(move || {
                g.wait();
                s.close_timeout(LIMIT / 4)
            });
            go.wait();
            let mine = manager.close_timeout(LIMIT / 4);
            assert_eq!(remote.join().unwrap(), mine);
            assert!(mine.is_clean());
            assert_eq!(spawner.stats().completed, 6);
        }
    });
}

// ---------------------------------------------------------------------------
// state(id) and handles agree; plain spawn unchanged
// ---------------------------------------------------------------------------

/// "`state(id)` reads `Finished` exactly when `is_finished()` is true and
/// `wait_timeout` returns at once" — with an end hook widening the window
/// between a result being handed over and the task being settled.
#[test]
fn state_and_is_finished_agree_while_tasks_settle() {
    watchdog(|| {
        let manager = Arc::new(
            TaskManager::builder()
                .max_tasks(2)
                .on_task_end(|_| {
                    // A short busy wait (a yield can cost a whole time
                    // slice on a loaded machine).
                    let until = Instant::now() + Duration::from_micros(30);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                })
                .start()
                .unwrap(),
        );
        for _ in 0..scaled(200) {
            let handle = manager.spawn(|| ()).unwrap();
            let id = handle.id();
            let mut spins = 0;
            loop {
                let by_state = manager.state(id) == Some(TaskState::Finished);
                let by_handle = handle.is_finished();
                if by_state {
                    assert!(by_handle, "state says Finished, the handle does not");
                    assert!(handle.wait_timeout(Duration::ZERO));
                    break;
                }
                let by_handle = handle.is_finished();
                if by_handle {
                    assert_eq!(
                        manager.state(id),
                        Some(TaskState::Finished),
                        "the handle says finished, state does not"
                    );
                    break;
                }
                spins += 1;
                if spins < 200 {
                    thread::yield_now();
                } else {
                    // Polling, not synchronisation: spare a loaded machine.
                    thread::sleep(Duration::from_micros(100));
                }
            }
            handle.join().unwrap();
        }
    });
}

#[test]
fn a_queued_task_being_cancelled_reads_finished_only_once_its_closure_is_dropped() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = Arc::new(
            seen.install(TaskManager::builder().max_tasks(1))
                .start()
                .unwrap(),
        );
        let (hold, holder) = hold_slot(&manager);
        let (dropping, is_dropping) = mpsc::channel();
        let release = Gate::new();
        let r = release.clone();
        let guard = OnDrop(move || {
            dropping.send(()).unwrap();
            r.wait();
        });
        let token = CancelToken::new();
        let handle = manager
            .spawn_with(TaskOptions::new().cancel_with(&token), move || drop(guard))
            .unwrap();
        let id = handle.id();
        let t = token.clone();
        let canceller = thread::spawn(move || t.cancel());
        recv(&is_dropping, "the drop");
        assert_ne!(manager.state(id), Some(TaskState::Finished));
        assert!(!handle.is_finished());
        assert!(!handle.wait_timeout(Duration::ZERO));
        assert!(
            seen.ends_of(id).is_empty(),
            "the end hook comes after the drop"
        );
        release.open();
        canceller.join().unwrap();
        assert_eq!(manager.state(id), Some(TaskState::Finished));
        assert!(handle.is_finished());
        assert_eq!(seen.end_of(id).outcome, TaskOutcome::Cancelled);
        hold.open();
        holder.join().unwrap();
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn plain_spawn_behaves_as_before() {
    watchdog(|| {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r = reports.clone();
        let manager = TaskManager::builder()
            .max_tasks(2)
            .on_panic(move |report| r.lock().unwrap().push(report.name().map(str::to_owned)))
            .start()
            .unwrap();
        let handle = manager
            .spawn(|| {
                (
                    taskwarden::is_cancelled(),
                    taskwarden::cancel_reason(),
                    taskwarden::current_task().is_some(),
                )
            })
            .unwrap();
        assert_eq!(handle.id().get(), 1);
        assert_eq!(handle.join(), Ok((false, None, true)));
        let panicked = manager.spawn(|| panic!("plain")).unwrap();
        assert_eq!(
            panicked.join(),
            Err(TaskError::Panicked("plain".to_owned()))
        );
        assert_eq!(*reports.lock().unwrap(), vec![None]);
        assert_eq!(
            TaskError::Panicked("x".into()).to_string(),
            "task panicked: x"
        );
        assert_eq!(
            TaskError::Cancelled.to_string(),
            "task was cancelled before it started"
        );
        let (hold, holder) = hold_slot(&manager);
        let (hold2, holder2) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        let info = info_of(&manager.tasks(), queued.id());
        assert_eq!(
            (info.name, info.state, info.parked, info.cancel_reason),
            (None, TaskState::Queued, false, None)
        );
        queued.cancel();
        assert_eq!(manager.state(queued.id()), Some(TaskState::Finished));
        assert_eq!(queued.join(), Err(TaskError::Cancelled), "not TimedOut");
        hold.open();
        hold2.open();
        holder.join().unwrap();
        holder2.join().unwrap();
        manager.drain();
        let stats = manager.stats();
        assert_eq!(
            (stats.completed, stats.panicked, stats.cancelled),
            (3, 1, 1)
        );
        assert!(manager.close().is_clean());
    });
}

// ---------------------------------------------------------------------------
// More hostile cases
// ---------------------------------------------------------------------------

/// Part one, close (3): "at the deadline ... every task still running has
/// its cancel flag set and is listed in `abandoned`". A task asleep in
/// `taskwarden::sleep` wakes the moment the close flags it: it must be
/// listed all the same (it was running when the deadline passed).
#[test]
fn a_close_deadline_lists_the_sleeping_task_it_flags_as_abandoned() {
    watchdog(|| {
        for _ in 0..scaled(20) {
            let manager = TaskManager::new(1);
            let (handle, asleep) = spawn_sleeper(&manager.spawner(), TaskOptions::new());
            recv(&asleep, "the sleeper");
            let id = handle.id();
            let report = manager.close_timeout(Duration::from_millis(20));
            assert_eq!(handle.join(), Ok((false, Some(CancelReason::Closing))));
            assert!(
                report.abandoned == vec![id] && report.timed_out && !report.is_clean(),
                "a task running at the deadline is not listed: {report:?}"
            );
        }
    });
}

/// Two threads cancel two tokens; a queued closure of each token cancels
/// the other token from its `Drop` (user code the cancel runs). Neither
/// `cancel` may deadlock.
#[test]
fn tokens_cancelled_from_each_others_closure_drops_do_not_deadlock() {
    watchdog(|| {
        let (finished, has_finished) = mpsc::channel();
        thread::spawn(move || {
            let manager = TaskManager::new(1);
            let (hold, holder) = hold_slot(&manager);
            let one = CancelToken::new();
            let two = CancelToken::new();
            let both = Arc::new(Barrier::new(2));
            let (b, t) = (both.clone(), two.clone());
            let guard_one = OnDrop(move || {
                b.wait();
                t.cancel();
            });
            let (b, t) = (both.clone(), one.clone());
            let guard_two = OnDrop(move || {
                b.wait();
                t.cancel();
            });
            let q1 = manager
                .spawn_with(TaskOptions::new().cancel_with(&one), move || {
                    drop(guard_one)
                })
                .unwrap();
            let q2 = manager
                .spawn_with(TaskOptions::new().cancel_with(&two), move || {
                    drop(guard_two)
                })
                .unwrap();
            let (a, b) = (one.clone(), two.clone());
            let x = thread::spawn(move || a.cancel());
            let y = thread::spawn(move || b.cancel());
            x.join().unwrap();
            y.join().unwrap();
            hold.open();
            holder.join().unwrap();
            let _ = finished.send((q1.join(), q2.join()));
        });
        let results = has_finished
            .recv_timeout(Duration::from_secs(20))
            .expect("deadlock: two token cancels wait for each other");
        assert_eq!(
            results,
            (Err(TaskError::Cancelled), Err(TaskError::Cancelled))
        );
    });
}

/// "Children are not cancelled with their parent unless asked", also a
/// child that its parent's join runs on the parent's own thread.
#[test]
fn a_child_run_inline_sleeps_on_when_its_parent_is_cancelled() {
    watchdog(|| {
        let manager = Arc::new(TaskManager::new(1));
        let (tx, rx) = mpsc::channel();
        let m = manager.clone();
        let parent = manager
            .spawn(move || {
                let child = m
                    .spawn(|| {
                        (
                            taskwarden::sleep(Duration::from_millis(300)),
                            taskwarden::cancel_reason(),
                        )
                    })
                    .unwrap();
                tx.send(child.id()).unwrap();
                let result = child.join();
                (result, taskwarden::cancel_reason())
            })
            .unwrap();
        let child = recv(&rx, "the child");
        wait_for("the child running", || {
            manager.state(child) == Some(TaskState::Running)
        });
        assert!(manager.cancel(parent.id()));
        assert_eq!(
            parent.join(),
            Ok((Ok((true, None)), Some(CancelReason::Requested)))
        );
    });
}

/// `CancelReason::Requested` covers "a set or map cancelling its own".
#[test]
fn a_set_or_map_cancelling_its_own_running_tasks_gives_reason_requested() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (tx, rx) = mpsc::channel();
        let (asleep, is_asleep) = mpsc::channel();
        let mut set = manager.task_set();
        let (t, a) = (tx.clone(), asleep.clone());
        set.spawn(move || {
            a.send(()).unwrap();
            let slept = taskwarden::sleep(LONG);
            t.send((slept, taskwarden::cancel_reason())).unwrap();
        })
        .unwrap();
        recv(&is_asleep, "the set's task");
        let asked = Instant::now();
        drop(set);
        assert_eq!(
            recv(&rx, "the set's task"),
            (false, Some(CancelReason::Requested))
        );
        assert!(asked.elapsed() < PROMPT);

        let (t, a) = (Mutex::new(tx), Mutex::new(asleep));
        let map = manager.map(0..1_u32, move |_| {
            a.lock().unwrap().send(()).unwrap();
            let slept = taskwarden::sleep(LONG);
            t.lock()
                .unwrap()
                .send((slept, taskwarden::cancel_reason()))
                .unwrap();
        });
        recv(&is_asleep, "the map's item");
        let asked = Instant::now();
        drop(map);
        assert_eq!(
            recv(&rx, "the map's item"),
            (false, Some(CancelReason::Requested))
        );
        assert!(asked.elapsed() < PROMPT);
    });
}

#[test]
fn tasks_lists_an_abandoned_task_after_its_close_with_reason_closing() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let gate = Gate::new();
        let g = gate.clone();
        let stubborn = manager
            .spawn_with(TaskOptions::new().name("stubborn"), move || g.wait())
            .unwrap();
        wait_for("running", || manager.running().len() == 1);
        let report = manager.close_timeout(Duration::from_millis(20));
        assert_eq!(report.abandoned, vec![stubborn.id()]);
        let tasks = manager.tasks();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        let info = &tasks[0];
        assert_eq!(
            (
                info.id,
                info.name.as_deref(),
                info.state,
                info.cancel_reason
            ),
            (
                stubborn.id(),
                Some("stubborn"),
                TaskState::Running,
                Some(CancelReason::Closing)
            )
        );
        gate.open();
        stubborn.join().unwrap();
        wait_for("the abandoned task to settle", || {
            manager.tasks().is_empty()
        });
    });
}

/// The end hook of a task a close drops runs on the closing thread, inside
/// the close: closing again there returns at once, as a close called on
/// the closing thread itself does.
#[test]
fn an_end_hook_run_by_a_close_may_call_close_again() {
    watchdog(|| {
        let spawner_slot = Arc::new(SpawnerSlot::default());
        let _clear = ClearSlot(spawner_slot.clone());
        let inner = Arc::new(Mutex::new(Vec::new()));
        let (sp, i) = (spawner_slot.clone(), inner.clone());
        let manager = TaskManager::builder()
            .max_tasks(1)
            .on_task_end(move |end| {
                if end.outcome() == TaskOutcome::Cancelled {
                    let spawner = sp.get();
                    let began = Instant::now();
                    let a = spawner.close_now(LONG);
                    let b = spawner.close_timeout(LONG);
                    i.lock().unwrap().push((end.id(), a, b, began.elapsed()));
                }
            })
            .start()
            .unwrap();
        spawner_slot.set(manager.spawner());
        let (hold, holder) = hold_slot(&manager);
        let queued = manager.spawn(|| ()).unwrap();
        let closer = {
            let spawner = manager.spawner();
            thread::spawn(move || spawner.close_timeout(Duration::from_millis(20)))
        };
        let report = closer.join().unwrap();
        hold.open();
        holder.join().unwrap();
        assert_eq!(report.cancelled, vec![queued.id()]);
        let inner = inner.lock().unwrap().clone();
        assert_eq!(inner.len(), 1, "{inner:?}");
        let (id, _, _, took) = &inner[0];
        assert_eq!(*id, queued.id());
        assert!(*took < PROMPT, "the nested closes waited {took:?}");
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

/// "`on_task_end` runs once for every accepted task", with cancels racing
/// the workers that start the same tasks.
#[test]
fn the_end_hook_runs_once_per_task_under_racing_cancels() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = Arc::new(
            seen.install(TaskManager::builder().max_tasks(2))
                .start()
                .unwrap(),
        );
        let mut total = 0_u64;
        for _ in 0..scaled(20) {
            let token = CancelToken::new();
            let ids: Vec<TaskId> = (0..100)
                .map(|n| {
                    let options = if n % 2 == 0 {
                        TaskOptions::new().cancel_with(&token)
                    } else {
                        TaskOptions::new()
                    };
                    manager
                        .spawn_with(options, || {
                            let _ = taskwarden::sleep(Duration::from_micros(50));
                        })
                        .unwrap()
                        .id()
                })
                .collect();
            total += ids.len() as u64;
            let spawner = manager.spawner();
            let some: Vec<TaskId> = ids.iter().copied().step_by(3).collect();
            let canceller = thread::spawn(move || {
                for id in some {
                    spawner.cancel(id);
                }
            });
            token.cancel();
            canceller.join().unwrap();
            manager.drain();
        }
        assert_eq!(seen.ended.lock().unwrap().len() as u64, total);
        let ended = seen.ended.lock().unwrap().clone();
        let mut per_id = BTreeMap::new();
        for end in &ended {
            *per_id.entry(end.id).or_insert(0) += 1;
            let starts = seen.starts_of(end.id).len();
            match end.outcome {
                TaskOutcome::Completed => assert_eq!(starts, 1, "{end:?}"),
                TaskOutcome::Cancelled => {
                    assert_eq!((starts, end.ran_for), (0, Duration::ZERO), "{end:?}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(per_id.values().all(|n| *n == 1));
        let stats = manager.stats();
        assert_eq!(stats.completed + stats.cancelled, total);
    });
}

#[test]
fn sleep_in_a_scoped_task_wakes_on_its_handle_cancel() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let result = manager.scoped(|s| {
            let handle = s.spawn(|| (taskwarden::sleep(LONG), taskwarden::cancel_reason()));
            wait_for("running", || manager.running().len() == 1);
            let asked = Instant::now();
            let _ = handle.cancel();
            (handle.join(), asked.elapsed())
        });
        assert_eq!(result.0, Ok((false, Some(CancelReason::Requested))));
        assert!(result.1 < PROMPT);
    });
}

#[test]
fn hook_and_info_types_have_their_traits() {
    fn outcome<T: std::fmt::Debug + Clone + Copy + PartialEq + Eq + Send + Sync>() {}
    fn info<T: std::fmt::Debug + Clone + Send + Sync>() {}
    outcome::<TaskOutcome>();
    info::<TaskInfo>();
    watchdog(|| {
        let texts = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (texts.clone(), texts.clone());
        let manager = TaskManager::builder()
            .on_task_start(move |start| a.lock().unwrap().push(format!("{start:?}")))
            .on_task_end(move |end| b.lock().unwrap().push(format!("{end:?}")))
            .on_panic(|report| assert!(format!("{report:?}").contains("named")))
            .start()
            .unwrap();
        let _ = manager
            .spawn_with(TaskOptions::new().name("named"), || panic!("x"))
            .unwrap()
            .join();
        manager.drain();
        let texts = texts.lock().unwrap().clone();
        assert_eq!(texts.len(), 2);
        assert!(texts.iter().all(|t| t.contains("named")), "{texts:?}");
    });
}

#[test]
fn sleep_and_wait_timeout_for_ever_still_wake_on_cancel() {
    watchdog(|| {
        let manager = TaskManager::new(2);
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        let sleeper = manager
            .spawn(move || {
                t.send(()).unwrap();
                taskwarden::sleep(Duration::MAX)
            })
            .unwrap();
        let waiter = manager
            .spawn(move || {
                let token = taskwarden::cancel_token().unwrap();
                tx.send(()).unwrap();
                token.wait_timeout(Duration::MAX)
            })
            .unwrap();
        recv(&rx, "one");
        recv(&rx, "two");
        let asked = Instant::now();
        assert_eq!(manager.cancel_all().len(), 2);
        assert_eq!(sleeper.join(), Ok(false));
        assert_eq!(waiter.join(), Ok(true));
        assert!(asked.elapsed() < PROMPT);
    });
}

/// Whichever of a `cancel_at` and a `cancel` wins for a queued task, its
/// handle and its `TaskEnd` tell the same story.
#[test]
fn a_deadline_racing_a_cancel_gives_the_handle_and_the_end_hook_one_story() {
    watchdog(|| {
        let seen = Seen::default();
        let manager = seen
            .install(TaskManager::builder().max_tasks(1))
            .start()
            .unwrap();
        let (hold, holder) = hold_slot(&manager);
        let at = Instant::now() + Duration::from_millis(5);
        let handles: Vec<_> = (0..scaled(200))
            .map(|_| {
                manager
                    .spawn_with(TaskOptions::new().cancel_at(at), || ())
                    .unwrap()
            })
            .collect();
        while Instant::now() < at {
            thread::yield_now();
        }
        for handle in handles.iter().rev() {
            let _ = handle.cancel();
        }
        for handle in handles {
            let id = handle.id();
            let result = handle.join();
            let outcome = seen.wait_end(id).outcome;
            match result {
                Err(TaskError::TimedOut) => assert_eq!(outcome, TaskOutcome::TimedOut, "{id}"),
                Err(TaskError::Cancelled) => assert_eq!(outcome, TaskOutcome::Cancelled, "{id}"),
                other => panic!("{id} ran: {other:?}"),
            }
        }
        hold.open();
        holder.join().unwrap();
        assert_eq!(manager.stats().cancelled as usize, scaled(200));
    });
}
