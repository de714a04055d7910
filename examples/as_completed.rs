//! Results as they finish, then "Ctrl-C": Python's `as_completed` followed
//! by `shutdown(cancel_futures=True)`.
//!
//! Twenty download-like jobs of uneven length (deterministic pseudo-random
//! sleeps) go into a [`TaskSet`](taskwarden::TaskSet) on 5 slots. Some fail
//! (they return `Err`), one panics, two long ones watch
//! `taskwarden::is_cancelled()`, and one stubborn job ignores it. Each result
//! is printed the moment it arrives: task id, job name, time since the start,
//! outcome. At 400 ms another thread calls `close_now(200 ms)`, standing in
//! for a Ctrl-C handler: queued jobs are cancelled at once (they come back as
//! `Err(Cancelled)`), the polite long jobs stop within the grace, the stubborn
//! one is abandoned and still waited for by the set. The report is printed
//! when `close_now` returns.
//!
//! Then fail-fast (Python's `FIRST_EXCEPTION`, Java's `ShutdownOnFailure`):
//! eight checksum jobs go into a fresh set, most of them slow, and
//! `try_join_all` returns the first mismatch the moment it arrives; the
//! rest are cancelled without being waited for (the slow ones sleep in
//! `taskwarden::sleep`, which wakes them at once).
//!
//! ```text
//! cargo run --example as_completed
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use taskwarden::{TaskError, TaskId, TaskManager};

const THREAD_PREFIX: &str = "dl";
/// When the stand-in for Ctrl-C fires.
const INTERRUPT_AT: Duration = Duration::from_millis(400);
/// How long `close_now` waits for running jobs to notice the flag.
const GRACE: Duration = Duration::from_millis(200);

/// What a job does.
#[derive(Clone, Copy)]
enum Kind {
    /// Sleeps, then succeeds with a byte count, or fails.
    Short { ms: u64, fails: bool },
    /// Panics halfway through.
    Panics { ms: u64 },
    /// Runs for seconds, checking `is_cancelled()` every 10 ms.
    Polite,
    /// Runs 1 s and never checks.
    Stubborn,
}

/// A small, seedable generator (xorshift64*): no extra crate needed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The default panic hook prints every panic; for the manager's threads
/// taskwarden's error log already says it, so keep the hook for the others.
fn quiet_task_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(&format!("{THREAD_PREFIX}-")));
        if !on_worker {
            default_hook(info);
        }
    }));
}

/// Task ids the way a person reads them: `task-1, task-2`.
fn list(ids: &[TaskId]) -> String {
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn download(kind: Kind) -> Result<u64, String> {
    match kind {
        Kind::Short { ms, fails } => {
            std::thread::sleep(Duration::from_millis(ms));
            if fails {
                Err(format!("connection reset after {ms} ms"))
            } else {
                Ok(ms * 1_000)
            }
        }
        Kind::Panics { ms } => {
            std::thread::sleep(Duration::from_millis(ms));
            panic!("corrupt archive header");
        }
        Kind::Polite => {
            let started = Instant::now();
            let mut bytes = 0;
            while started.elapsed() < Duration::from_secs(5) {
                if taskwarden::is_cancelled() {
                    return Err(format!("interrupted after {bytes} bytes"));
                }
                std::thread::sleep(Duration::from_millis(10));
                bytes += 10_000;
            }
            Ok(bytes)
        }
        Kind::Stubborn => {
            std::thread::sleep(Duration::from_secs(1));
            Ok(1_000_000)
        }
    }
}

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    quiet_task_panics();
    let manager = TaskManager::builder()
        .max_tasks(5)
        .thread_name(THREAD_PREFIX)
        .start()
        .expect("valid settings");

    // The jobs: the long ones first, so they hold slots when the "Ctrl-C"
    // comes; then short ones, more than the free slots get through in 400 ms.
    let mut jobs = vec![
        ("mirror-a.iso".to_owned(), Kind::Polite),
        ("mirror-b.iso".to_owned(), Kind::Polite),
        ("legacy.tar".to_owned(), Kind::Stubborn),
    ];
    let mut seed = 7_u64;
    for n in 1..=17 {
        let ms = 20 + next_random(&mut seed) % 180;
        let kind = if n == 6 {
            Kind::Panics { ms }
        } else {
            Kind::Short {
                ms,
                fails: next_random(&mut seed) % 5 == 0,
            }
        };
        jobs.push((format!("file-{n:02}.dat"), kind));
    }

    let start = Instant::now();
    let mut set = manager.task_set();
    let mut names = HashMap::new();
    for (name, kind) in jobs {
        let id = set
            .spawn(move || download(kind))
            .expect("the manager is open");
        names.insert(id, name);
    }
    println!(
        "{} jobs in the set, {} slots",
        set.len(),
        manager.max_tasks()
    );

    std::thread::scope(|s| {
        // The Ctrl-C handler: any thread may stop the manager.
        let interrupt = s.spawn(|| {
            std::thread::sleep(INTERRUPT_AT);
            println!(
                "-- {:>4} ms  ^C: close_now({} ms); {} running, {} queued",
                start.elapsed().as_millis(),
                GRACE.as_millis(),
                manager.running().len(),
                manager.queued().len(),
            );
            let report = manager.close_now(GRACE);
            println!(
                "-- {:>4} ms  {report}\n{:>13} stopped   {}\n{:>13} cancelled {}\n{:>13} abandoned {}",
                start.elapsed().as_millis(),
                "",
                list(&report.stopped),
                "",
                list(&report.cancelled),
                "",
                list(&report.abandoned),
            );
        });

        // As completed: whichever job finishes first comes first.
        let mut cancelled = 0;
        while let Some((id, result)) = set.join_next() {
            let outcome = match result {
                Ok(Ok(bytes)) => format!("ok, {bytes} bytes"),
                Ok(Err(failure)) => format!("failed: {failure}"),
                Err(TaskError::Cancelled) => {
                    cancelled += 1;
                    "cancelled (never started)".to_owned()
                }
                Err(TaskError::Panicked(message)) => format!("panicked: {message}"),
                Err(other) => other.to_string(),
            };
            println!(
                "{:>8}  {:<13} {:>4} ms  {outcome}",
                id.to_string(),
                names[&id],
                start.elapsed().as_millis()
            );
        }
        interrupt.join().expect("the interrupt thread");
        println!(
            "set empty after {} ms; {cancelled} never started",
            start.elapsed().as_millis()
        );
    });
    let stats = manager.stats();
    println!(
        "stats: {} completed, {} panicked, {} cancelled",
        stats.completed, stats.panicked, stats.cancelled
    );
    fail_fast();
}

/// Why a checksum job failed: a mismatch, or the task itself (it panicked,
/// or was cancelled before it ran).
#[derive(Debug)]
enum CheckFailed {
    Mismatch {
        file: String,
        expected: u32,
        got: u32,
    },
    Task(TaskError),
}

impl From<TaskError> for CheckFailed {
    fn from(error: TaskError) -> Self {
        CheckFailed::Task(error)
    }
}

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckFailed::Mismatch {
                file,
                expected,
                got,
            } => write!(f, "{file}: checksum {got:08x}, expected {expected:08x}"),
            CheckFailed::Task(error) => write!(f, "{error}"),
        }
    }
}

/// Fail-fast with `try_join_all`: the first failure returns at once.
fn fail_fast() {
    let manager = TaskManager::builder()
        .max_tasks(4)
        .thread_name("check")
        .start()
        .expect("valid settings");
    let mut set = manager.task_set();
    for n in 1..=8_u32 {
        let file = format!("part-{n}.bin");
        set.spawn(move || {
            // Part 3 is corrupt and found quickly; the others take seconds.
            let (took, got) = if n == 3 {
                (30, 0xdead_beef)
            } else {
                (3_000, n)
            };
            if !taskwarden::sleep(Duration::from_millis(took)) {
                return Ok(n); // cancelled: the set no longer wants this
            }
            if got == n {
                Ok(n)
            } else {
                Err(CheckFailed::Mismatch {
                    file,
                    expected: n,
                    got,
                })
            }
        })
        .expect("the manager is open");
    }
    let start = Instant::now();
    match set.try_join_all() {
        Ok(parts) => println!("fail-fast: all {} parts verified", parts.len()),
        Err(failure) => println!(
            "fail-fast: {failure} after {} ms; the other parts were cancelled",
            start.elapsed().as_millis()
        ),
    }
    let report = manager.close();
    let stats = manager.stats();
    println!(
        "fail-fast: closed in {} ms: {} never started, {} stopped early",
        start.elapsed().as_millis(),
        stats.cancelled,
        stats.completed.saturating_sub(1),
    );
    assert!(report.is_clean(), "{report}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "nothing waited for the slow parts"
    );
}
