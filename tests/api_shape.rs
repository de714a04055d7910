//! Compile-time checks of the part-two API shape: the bounds and signatures
//! that API.md states. If this file compiles, they hold.

mod common;

use std::any::Any;
use std::cell::Cell;
use std::error::Error;
use std::fmt::{Debug, Display};
use std::time::Duration;

use common::watchdog;
use taskwarden::{
    CancelReason, CancelToken, CloseReport, Map, MapUnordered, PanicReport, SetSpawner, SpawnError,
    SpawnErrorKind, Spawner, Stats, TaskEnd, TaskError, TaskId, TaskInfo, TaskManager, TaskOptions,
    TaskOutcome, TaskSet, TaskStart, TaskState, TryMap,
};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_debug<T: Debug>() {}
fn assert_clone<T: Clone>() {}
fn assert_default<T: Default>() {}
fn assert_display<T: Display>() {}
fn assert_copy_eq<T: Copy + Clone + PartialEq + Eq + Debug>() {}

#[test]
fn part_two_types_have_the_stated_bounds() {
    assert_send::<TaskSet<u8>>();
    assert_send::<TaskSet<String>>();
    assert_debug::<TaskSet<u8>>();

    assert_send::<Map<'static, u8>>();
    assert_debug::<Map<'static, u8>>();
    assert_send::<MapUnordered<'static, u8>>();
    assert_debug::<MapUnordered<'static, u8>>();

    assert_clone::<Spawner>();
    assert_send::<Spawner>();
    assert_sync::<Spawner>();
    assert_debug::<Spawner>();

    assert_default::<TaskOptions>();
    assert_clone::<TaskOptions>();
    assert_debug::<TaskOptions>();

    assert_copy_eq::<TaskState>();
    assert_copy_eq::<SpawnErrorKind>();
    assert_display::<SpawnErrorKind>();

    assert_debug::<CloseReport>();
    assert_clone::<CloseReport>();
    assert_debug::<Stats>();
    assert_clone::<Stats>();
}

#[test]
fn part_three_types_have_the_stated_bounds() {
    assert_clone::<CancelToken>();
    assert_send::<CancelToken>();
    assert_sync::<CancelToken>();
    assert_debug::<CancelToken>();
    assert_default::<CancelToken>();

    assert_copy_eq::<CancelReason>();
    assert_display::<CancelReason>();
    assert_copy_eq::<TaskOutcome>();

    assert_debug::<TaskInfo>();
    assert_clone::<TaskInfo>();
    assert_debug::<TaskStart<'static>>();
    assert_debug::<TaskEnd<'static>>();

    assert_clone::<SetSpawner<u8>>();
    assert_send::<SetSpawner<String>>();
    assert_sync::<SetSpawner<String>>();
    assert_debug::<SetSpawner<u8>>();

    assert_send::<TryMap<'static, u8, TaskError>>();
    assert_debug::<TryMap<'static, u8, TaskError>>();

    // TimedOut is a TaskError, with its own text.
    assert_eq!(
        TaskError::TimedOut.to_string(),
        "timed out before it started"
    );
}

/// The part-three signatures, as API.md states them (compiled, not run).
#[allow(dead_code, clippy::type_complexity)]
fn part_three_signatures(manager: &TaskManager, spawner: &Spawner) {
    let _: fn(std::time::Duration) -> bool = taskwarden::sleep;
    let _: fn() -> Option<CancelReason> = taskwarden::cancel_reason;
    let _: fn() -> Option<CancelToken> = taskwarden::cancel_token;
    let _: Vec<TaskInfo> = manager.tasks();
    let _: Vec<TaskInfo> = spawner.tasks();
    let _: bool = spawner.cancel(TaskId::clone(&manager.spawn(|| ()).unwrap().id()));
    let _: Vec<TaskId> = spawner.cancel_all();
    let _: Option<TaskState> = spawner.state(manager.spawn(|| ()).unwrap().id());
    let _: Stats = spawner.stats();
    let _: CloseReport = spawner.close_timeout(Duration::ZERO);
    let _: CloseReport = spawner.close_now(Duration::ZERO);
    let set: TaskSet<Result<u8, TaskError>> = manager.task_set();
    let _: SetSpawner<Result<u8, TaskError>> = set.spawner();
    let _: Result<Vec<u8>, TaskError> = set.try_join_all();
    let _: Vec<(TaskId, Result<u8, TaskError>)> = manager.task_set::<u8>().join_all();
    let _: TryMap<'_, u8, TaskError> = manager.try_map(0..1_u8, Ok);
    let _: Map<'_, u8> = manager.map_with(TaskOptions::new(), 0..1_u8, |n| n);
    let _: MapUnordered<'_, u8> = spawner.map_unordered_with(TaskOptions::new(), 0..1_u8, |n| n);
    let _: TaskOptions = TaskOptions::new()
        .cancel_with(&CancelToken::new())
        .name("static")
        .name(String::from("owned"));
}

/// `SpawnError<F>` is `Send + Sync` for a closure that is `Send` only.
fn spawn_error_of<F: FnOnce() -> u32 + Send>(_: &F) {
    assert_send::<SpawnError<F>>();
    assert_sync::<SpawnError<F>>();
}

fn spawn_a_send_only_closure(manager: &TaskManager) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let cell = Cell::new(3_u32); // Send, not Sync
    let handle = manager.spawn(move || cell.get())?;
    Ok(handle.join()?)
}

#[test]
fn spawn_errors_travel_across_threads_with_question_mark() {
    watchdog(|| {
        let cell = Cell::new(1_u32);
        let f = move || cell.get();
        spawn_error_of(&f);
        let manager = TaskManager::new(1);
        assert_eq!(spawn_a_send_only_closure(&manager).unwrap(), 3);
        manager.close();
        let error = spawn_a_send_only_closure(&manager).unwrap_err();
        assert!(error.to_string().contains("closed"), "{error}");
        let error = std::thread::spawn(move || error).join().unwrap();
        assert!(error.to_string().contains("closed"));
    });
}

#[test]
fn spawn_error_kind_displays_closed_and_full() {
    watchdog(|| {
        assert!(SpawnErrorKind::Closed
            .to_string()
            .to_lowercase()
            .contains("closed"));
        assert!(SpawnErrorKind::Full
            .to_string()
            .to_lowercase()
            .contains("full"));
    });
}

/// The signatures as written, checked by coercion to function pointers.
#[allow(clippy::type_complexity)]
#[test]
fn part_two_signatures_are_as_written() {
    let _: fn(&TaskManager) -> Spawner = TaskManager::spawner;
    let _: fn(&TaskManager) -> TaskSet<u8> = TaskManager::task_set::<u8>;
    let _: fn(&TaskManager, Duration) -> CloseReport = TaskManager::close_now;
    let _: fn(&TaskManager) -> Vec<TaskId> = TaskManager::cancel_all;
    let _: fn(&TaskManager) -> Vec<TaskId> = TaskManager::queued;
    let _: fn(&TaskManager, TaskId) -> Option<TaskState> = TaskManager::state;
    let _: fn(&TaskManager, Vec<TaskId>) = TaskManager::wait_all::<Vec<TaskId>>;
    let _: fn(&TaskManager, [TaskId; 2], Duration) -> bool =
        TaskManager::wait_all_timeout::<[TaskId; 2]>;
    let _: fn(&TaskManager) -> usize = TaskManager::max_tasks;
    let _: fn(&TaskManager, usize) = TaskManager::set_max_tasks;
    let _: fn() -> Option<Spawner> = taskwarden::current_spawner;
    let _: fn(&Spawner) -> bool = Spawner::is_closed;

    let _: fn(&TaskSet<u8>) -> usize = TaskSet::<u8>::len;
    let _: fn(&TaskSet<u8>) -> bool = TaskSet::<u8>::is_empty;
    let _: fn(&mut TaskSet<u8>) -> Option<(TaskId, Result<u8, TaskError>)> =
        TaskSet::<u8>::join_next;
    let _: fn(&mut TaskSet<u8>) -> Option<(TaskId, Result<u8, TaskError>)> =
        TaskSet::<u8>::try_join_next;
    let _: fn(&mut TaskSet<u8>, Duration) -> Option<(TaskId, Result<u8, TaskError>)> =
        TaskSet::<u8>::join_next_timeout;
    let _: fn(&TaskSet<u8>) = TaskSet::<u8>::cancel_all;
    let _: fn(&mut TaskSet<u8>) = TaskSet::<u8>::detach_all;

    let _: fn(TaskOptions, Duration) -> TaskOptions = TaskOptions::cancel_after;
    let _: fn(TaskOptions, std::time::Instant) -> TaskOptions = TaskOptions::cancel_at;
    let _: fn(TaskOptions, Duration) -> TaskOptions = TaskOptions::start_after;
    let _: fn(TaskOptions, std::time::Instant) -> TaskOptions = TaskOptions::start_at;
    let _: fn(taskwarden::Builder, Duration) -> taskwarden::Builder =
        taskwarden::Builder::keep_alive;

    fn report_parts<'r>(report: &'r PanicReport<'_>) -> (TaskId, &'r str, &'r (dyn Any + Send)) {
        (report.task(), report.message(), report.payload())
    }
    let _ = report_parts;

    fn set_items<T: Send + 'static>(
        set: TaskSet<T>,
    ) -> impl Iterator<Item = (TaskId, Result<T, TaskError>)> {
        set.into_iter()
    }
    let _ = set_items::<u8>;
    fn map_items<'a, T: 'a>(map: Map<'a, T>) -> impl Iterator<Item = Result<T, TaskError>> + 'a {
        map
    }
    let _ = map_items::<u8>;
    fn unordered_items<'a, T: 'a>(
        map: MapUnordered<'a, T>,
    ) -> impl Iterator<Item = (usize, Result<T, TaskError>)> + 'a {
        map
    }
    let _ = unordered_items::<u8>;

    fn kind_of<F>(error: &SpawnError<F>) -> SpawnErrorKind {
        error.kind()
    }
    let _ = kind_of::<fn()>;
}

/// Reading fields of the now non-exhaustive report and stats (never
/// constructing them).
#[test]
fn reports_and_stats_are_read_by_field() {
    watchdog(|| {
        let manager = TaskManager::new(1);
        let stats = manager.stats();
        let _: (usize, usize, usize, u64, u64, u64) = (
            stats.running,
            stats.queued,
            stats.threads,
            stats.completed,
            stats.panicked,
            stats.cancelled,
        );
        let report = manager.close_now(Duration::from_secs(1));
        let _: (&Vec<TaskId>, &Vec<TaskId>, &Vec<TaskId>, bool, Duration) = (
            &report.cancelled,
            &report.abandoned,
            &report.stopped,
            report.timed_out,
            report.elapsed,
        );
        assert!(report.is_clean());
    });
}
