//! Stopping on a real Ctrl-C: a watcher thread holds a `Spawner` and calls
//! `close_now` when SIGINT arrives, then prints the report with task names.
//!
//! Five named jobs (`TaskOptions::name`) go into a task set on 3 slots: two
//! long hashes and a journal flush run, two more wait in the queue. The
//! jobs wait in `taskwarden::sleep`, which wakes the moment a task is
//! cancelled; the journal flush, once cancelled, ignores it and finishes its
//! write, a little longer than the grace. `main` owns the manager and sits
//! in `join_next`, printing each result as it comes. The SIGINT handler
//! (a two-line FFI declaration, no extra crate) only sets an atomic flag; a
//! watcher thread, holding nothing but a `Spawner`, polls that flag every
//! 10 ms. On SIGINT it takes `spawner.tasks()` (to name the ids) and calls
//! `spawner.close_now(2 s)`: the queued jobs are cancelled, the sleeping
//! ones stop at once, the journal flush is abandoned (and still finishes,
//! and is still joined, half a second later). Without a signal the watcher
//! does the same after 20 s (`CTRL_C_TIMEOUT_SECS` to change it), so the
//! example always ends. On targets other than unix there is no handler: it
//! stops after the timeout only.
//!
//! ```text
//! cargo run --example ctrl_c       # then press Ctrl-C
//! kill -INT <pid>                  # or this, from another terminal
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use taskwarden::{CloseReport, Spawner, TaskError, TaskId, TaskManager, TaskOptions};

/// How long `close_now` waits for running jobs to return.
const GRACE: Duration = Duration::from_secs(2);
/// How often the watcher looks at the flag.
const POLL: Duration = Duration::from_millis(10);
/// How long the journal flush keeps going once cancelled: longer than the grace.
const STUBBORN_FOR: Duration = Duration::from_millis(2_500);

/// The SIGINT flag and its handler.
#[cfg(unix)]
mod sigint {
    use std::ffi::c_int;
    use std::sync::atomic::{AtomicBool, Ordering};

    const SIGINT: c_int = 2;
    /// `SIG_ERR`, `(void (*)(int)) -1`.
    const SIG_ERR: usize = usize::MAX;
    static SEEN: AtomicBool = AtomicBool::new(false);

    extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    }

    /// Runs in signal context: a lock-free atomic store is all it may do.
    extern "C" fn on_sigint(_: c_int) {
        SEEN.store(true, Ordering::SeqCst);
    }

    /// Installs the handler; false if the OS refused.
    pub fn install() -> bool {
        // SAFETY: `signal` is the C library's, declared with its C
        // signature (`sighandler_t` is a function pointer, as wide as
        // `usize`); the handler is an `extern "C" fn(c_int)` that only
        // stores to an atomic, which is async-signal-safe.
        unsafe { signal(SIGINT, on_sigint) != SIG_ERR }
    }

    pub fn seen() -> bool {
        SEEN.load(Ordering::SeqCst)
    }
}

/// No handler here: the example stops after its timeout only.
#[cfg(not(unix))]
mod sigint {
    pub fn install() -> bool {
        false
    }

    pub fn seen() -> bool {
        false
    }
}

/// What a job does: wait this many seconds in `taskwarden::sleep`, which
/// a cancel wakes at once.
#[derive(Clone, Copy)]
enum Job {
    /// Returns as soon as it is cancelled.
    Polite(u64),
    /// Once cancelled, still finishes its write (for longer than the grace)
    /// before it returns.
    Stubborn(u64),
}

fn run(job: Job) -> String {
    let started = Instant::now();
    let (Job::Polite(secs) | Job::Stubborn(secs)) = job;
    if taskwarden::sleep(Duration::from_secs(secs)) {
        return format!("done in {secs} s");
    }
    let cancelled_at = started.elapsed().as_millis();
    if let Job::Stubborn(_) = job {
        std::thread::sleep(STUBBORN_FOR); // ignores the cancel: a write must not be cut
        return format!(
            "cancelled after {cancelled_at} ms, finished its write {} ms later",
            STUBBORN_FOR.as_millis()
        );
    }
    format!("stopped after {cancelled_at} ms")
}

/// Ids with their names, `task-1 (hash big.iso), task-2 (...)`.
fn named(ids: &[TaskId], names: &HashMap<TaskId, String>) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = ids
        .iter()
        .map(|id| match names.get(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        })
        .collect();
    named.join(", ")
}

/// The watcher: waits for SIGINT (or the timeout), then stops the manager
/// through its spawner and prints the report. Returns early, with no report,
/// if the manager closes without it (every job finished on its own).
fn watch(spawner: Spawner, start: Instant, timeout: Duration) -> Option<CloseReport> {
    let why = loop {
        if sigint::seen() {
            break "SIGINT";
        }
        if start.elapsed() >= timeout {
            break "no SIGINT within the timeout";
        }
        if spawner.is_closed() {
            return None;
        }
        std::thread::sleep(POLL);
    };
    // The watcher has only the spawner: `tasks()` names the ids. Take it
    // before the close, which settles them (a settled task leaves `tasks()`).
    let tasks = spawner.tasks();
    let names: HashMap<TaskId, String> = tasks
        .iter()
        .filter_map(|task| Some((task.id, task.name.clone()?)))
        .collect();
    println!(
        "{:>5} ms  {why}: close_now({} s) with {} tasks",
        start.elapsed().as_millis(),
        GRACE.as_secs(),
        tasks.len()
    );
    let report = spawner.close_now(GRACE);
    println!("{:>5} ms  {report}", start.elapsed().as_millis());
    println!("{:>9} stopped:   {}", "", named(&report.stopped, &names));
    println!("{:>9} cancelled: {}", "", named(&report.cancelled, &names));
    println!("{:>9} abandoned: {}", "", named(&report.abandoned, &names));
    Some(report)
}

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let timeout = std::env::var("CTRL_C_TIMEOUT_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map_or(Duration::from_secs(20), Duration::from_secs);
    let handler = match sigint::install() {
        true => "SIGINT handler installed",
        false => "no SIGINT handler here: it stops after the timeout",
    };
    println!("pid {}; {handler}", std::process::id());

    let start = Instant::now();
    let manager = TaskManager::builder()
        .max_tasks(3)
        .thread_name("job")
        .start()
        .expect("valid settings");
    // The first three take the slots; the last two wait in the queue.
    let jobs = [
        ("hash", "big.iso", Job::Polite(40)),
        ("flush", "journal", Job::Stubborn(35)),
        ("hash", "old.iso", Job::Polite(30)),
        ("upload", "big.iso", Job::Polite(50)),
        ("hash", "new.iso", Job::Polite(30)),
    ];
    let mut set = manager.task_set();
    let mut names = HashMap::new();
    for (verb, what, job) in jobs {
        let name = format!("{verb} {what}");
        let options = TaskOptions::new().name(name.clone());
        let id = set
            .spawn_with(options, move || run(job))
            .expect("the manager is open");
        names.insert(id, name);
    }

    while manager.running().len() < manager.max_tasks() {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "{:>5} ms  {} running, {} queued; waiting for Ctrl-C (SIGINT), at most {} s",
        start.elapsed().as_millis(),
        manager.running().len(),
        manager.queued().len(),
        timeout.as_secs()
    );

    let spawner = manager.spawner();
    let watcher = std::thread::spawn(move || watch(spawner, start, timeout));
    while let Some((id, result)) = set.join_next() {
        let outcome = match result {
            Ok(said) => said,
            Err(TaskError::Cancelled) => "cancelled before it started".to_owned(),
            Err(other) => other.to_string(),
        };
        println!(
            "{:>5} ms  {id} ({}): {outcome}",
            start.elapsed().as_millis(),
            names[&id]
        );
    }
    // Every job is settled; this ends the watcher if no close came.
    manager.close();
    let report = watcher.join().expect("the watcher thread");
    println!(
        "{:>5} ms  done: {}",
        start.elapsed().as_millis(),
        match report {
            Some(report) if report.timed_out => "stopped, one job abandoned (and joined)",
            Some(_) => "stopped, nothing abandoned",
            None => "every job finished on its own",
        }
    );
}
