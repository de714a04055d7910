//! A long-running service on one manager, for about 2 seconds.
//!
//! The manager is built with `keep_alive` (idle threads retire), hooks that
//! name and count threads as they start and stop, and an `on_panic` hook
//! that counts panics. Every 100 ms the service loop takes in the requests
//! of that tick and runs each with a per-request timeout
//! (`TaskOptions::cancel_after`); a request that times out is retried once,
//! 200 ms later (`start_after`). When the load rises the service raises
//! `max_tasks` with `set_max_tasks`, and lowers it when the load falls. Some
//! requests queue a follow-up through `taskwarden::current_spawner()`, with
//! no `Arc<TaskManager>` in sight. At the end the service stops with
//! `close_now`: a background job that runs until cancelled is stopped, a
//! job scheduled for later is cancelled; then the report and final stats.
//!
//! ```text
//! cargo run --example daemon
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskwarden::{TaskError, TaskHandle, TaskManager, TaskOptions};

const THREAD_PREFIX: &str = "svc";
/// How long a request may run before its cancel flag is set.
const TIMEOUT: Duration = Duration::from_millis(100);
/// How long a timed-out request waits before its retry.
const RETRY_DELAY: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(100);
const TICKS: u32 = 20;

/// A request waiting for its answer: number, attempt, handle.
type InFlight = (u32, u32, TaskHandle<Result<u32, String>>);

/// Requests arriving in `tick`: quiet, busy, quiet, then nothing.
fn load(tick: u32) -> u32 {
    match tick {
        0..=5 => 1,
        6..=11 => 6,
        12..=15 => 1,
        _ => 0,
    }
}

/// The request `n`; its first attempt is slow when `n % 7 == 3` (it hits
/// the timeout), request 20 panics, and every 8th queues a follow-up.
fn request(n: u32, attempt: u32) -> impl FnOnce() -> Result<u32, String> + Send + 'static {
    move || {
        if n == 20 {
            panic!("request {n}: malformed input");
        }
        let work = if n % 7 == 3 && attempt == 1 {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(20 + u64::from(n % 5) * 10)
        };
        let started = Instant::now();
        while started.elapsed() < work {
            if taskwarden::is_cancelled() {
                return Err(format!(
                    "timed out after {} ms",
                    started.elapsed().as_millis()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if n % 8 == 0 {
            let spawner = taskwarden::current_spawner().expect("inside a task");
            match spawner.spawn_detached(move || std::thread::sleep(Duration::from_millis(10))) {
                Ok(id) => println!("   request {n}: queued follow-up {id} from inside the task"),
                Err(refused) => println!("   request {n}: follow-up refused ({refused})"),
            }
        }
        Ok(n * 10)
    }
}

/// The default panic hook prints every panic; on the manager's threads the
/// error log and `on_panic` already say it.
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

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    quiet_task_panics();
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let panics = Arc::new(AtomicUsize::new(0));
    let manager = {
        let (started, stopped, panics) = (started.clone(), stopped.clone(), panics.clone());
        TaskManager::builder()
            .max_tasks(2)
            .thread_name(THREAD_PREFIX)
            .keep_alive(Duration::from_millis(250))
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
                println!("   thread {} started", thread_name());
            })
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
                println!("   thread {} stopped", thread_name());
            })
            .on_panic(move |report| {
                panics.fetch_add(1, Ordering::SeqCst);
                println!(
                    "   on_panic: {} panicked: {}",
                    report.task(),
                    report.message()
                );
            })
            .start()
            .expect("valid settings")
    };

    let start = Instant::now();
    let mut in_flight: Vec<InFlight> = Vec::new();
    let (mut next, mut ok, mut failed) = (0, 0, 0);
    for tick in 0..TICKS {
        let at = start.elapsed().as_millis();
        // Resize when the load changes.
        let wanted = if load(tick) > 2 { 6 } else { 2 };
        if wanted != manager.max_tasks() {
            let before = (manager.max_tasks(), manager.stats().threads);
            manager.set_max_tasks(wanted);
            println!(
                "{at:>5} ms  load {} per tick: max_tasks {} -> {}, threads {} -> {}",
                load(tick),
                before.0,
                manager.max_tasks(),
                before.1,
                manager.stats().threads
            );
        }
        for _ in 0..load(tick) {
            next += 1;
            let options = TaskOptions::default().cancel_after(TIMEOUT);
            let handle = manager
                .spawn_with(options, request(next, 1))
                .expect("the manager is open");
            in_flight.push((next, 1, handle));
        }

        // Collect what finished; retry a timeout once, later.
        let (finished, waiting): (Vec<_>, Vec<_>) = in_flight
            .drain(..)
            .partition(|(_, _, handle)| handle.is_finished());
        in_flight = waiting;
        for (n, attempt, handle) in finished {
            match handle.join() {
                Ok(Ok(_)) => {
                    ok += 1;
                    if attempt == 2 {
                        println!("{at:>5} ms  request {n} ok on its retry");
                    }
                }
                Ok(Err(why)) if attempt == 1 => {
                    let options = TaskOptions::default()
                        .start_after(RETRY_DELAY)
                        .cancel_after(TIMEOUT);
                    let retry = manager
                        .spawn_with(options, request(n, 2))
                        .expect("the manager is open");
                    println!(
                        "{at:>5} ms  request {n} {why}; retry as {} in {} ms",
                        retry.id(),
                        RETRY_DELAY.as_millis()
                    );
                    in_flight.push((n, 2, retry));
                }
                Ok(Err(why)) => {
                    failed += 1;
                    println!("{at:>5} ms  request {n} failed again: {why}");
                }
                Err(TaskError::Panicked(message)) => {
                    failed += 1;
                    println!("{at:>5} ms  request {n} panicked ({message}); not retried");
                }
                // Cancelled or timed out before it started.
                Err(_) => failed += 1,
            }
        }
        if tick == TICKS - 3 {
            // Background work that runs until told to stop, and one job
            // scheduled for later: what the final close_now is for.
            let compaction = manager
                .spawn_detached(|| {
                    while !taskwarden::is_cancelled() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
                .expect("the manager is open");
            let nightly = manager
                .spawn_with(
                    TaskOptions::default().start_after(Duration::from_secs(60)),
                    || (),
                )
                .expect("the manager is open");
            println!(
                "{at:>5} ms  background compaction {compaction} (runs until cancelled), nightly job {} in 60 s: {:?}",
                nightly.id(),
                manager.state(nightly.id()).expect("a known id")
            );
        }
        if tick % 5 == 4 {
            let stats = manager.stats();
            println!(
                "{at:>5} ms  status: {ok} ok, {failed} failed, {} running, {} queued, {} threads",
                stats.running, stats.queued, stats.threads
            );
        }
        std::thread::sleep(TICK);
    }

    let report = manager.close_now(Duration::from_millis(300));
    println!(
        "{:>5} ms  close_now: {report}; stopped {}, cancelled {}, abandoned {}",
        start.elapsed().as_millis(),
        report.stopped.len(),
        report.cancelled.len(),
        report.abandoned.len()
    );
    println!(
        "requests: {next}, {ok} ok, {failed} failed, {} unanswered at close",
        in_flight.len()
    );
    println!(
        "hooks: {} threads started, {} stopped, {} panics",
        started.load(Ordering::SeqCst),
        stopped.load(Ordering::SeqCst),
        panics.load(Ordering::SeqCst)
    );
    println!("final stats:\n{}", manager.stats());
}
