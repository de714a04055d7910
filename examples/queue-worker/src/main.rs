//! A Redis queue worker on a taskwarden `TaskManager`: bounded intake, ack
//! after finish, requeue on SIGTERM. See this package's README.md.
//!
//! ```text
//! taskwarden-queue-worker --redis redis://127.0.0.1:6390/ --name a --max-tasks 8 --close-ms 2000
//! ```
//!
//! The main thread is the intake: it takes a permit from a gate of
//! `max_tasks` permits, then moves one job from `jobs` to
//! `processing:<name>` (`BLMOVE`), then spawns it; the task holds the
//! permit until it ends, so the worker never holds a job it cannot start.
//! A job's task does its (simulated) work in `taskwarden::sleep` steps and
//! then completes it: counted in the `done` hash and removed from the
//! processing list in one atomic step. On SIGTERM the intake stops, the
//! manager closes with the deadline `--close-ms`, and every job of a task
//! in the close report (cancelled, stopped or abandoned) is pushed back on
//! the queue, unless its task completed it first. Last, a sweep moves back
//! anything left in the processing list, and one line gives the counts.

mod gate;
mod queue;
mod sigterm;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use taskwarden::{TaskId, TaskManager, TaskOptions};

use gate::Gate;
use queue::Queue;

/// How long the intake waits for a free permit before it looks at the stop
/// flag again.
const POLL: Duration = Duration::from_millis(50);
/// A job's work is done in steps of this size; `taskwarden::sleep` also
/// wakes within a few ms of a cancel, so a flagged job stops promptly.
const STEP: Duration = Duration::from_millis(2);
/// After the close, how long to wait for abandoned tasks to return: they are
/// flagged, so they leave their sleep at once; one inside a Redis call
/// returns within that connection's I/O timeout (2 s).
const SETTLE: Duration = Duration::from_secs(3);

struct Args {
    redis: String,
    queue: String,
    name: String,
    max_tasks: usize,
    close: Duration,
}

const USAGE: &str = "usage: taskwarden-queue-worker [--redis URL] [--queue KEY] [--name NAME] \
[--max-tasks N] [--close-ms MS]
  --redis      default redis://127.0.0.1:6379/
  --queue      the list to take jobs from; default jobs
  --name       this worker's name (its processing list is processing:NAME); default w<pid>
  --max-tasks  jobs run at once, and so jobs held at once; default 8
  --close-ms   on SIGTERM, how long running jobs may go on before they are
               cancelled and requeued; default 2000";

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            redis: "redis://127.0.0.1:6379/".to_owned(),
            queue: "jobs".to_owned(),
            name: format!("w{}", std::process::id()),
            max_tasks: 8,
            close: Duration::from_secs(2),
        };
        let mut given = std::env::args().skip(1);
        while let Some(flag) = given.next() {
            let mut value = || given.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--redis" => args.redis = value()?,
                "--queue" => args.queue = value()?,
                "--name" => args.name = value()?,
                "--max-tasks" => {
                    args.max_tasks = value()?
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--max-tasks takes a number above 0")?
                }
                "--close-ms" => {
                    let ms: u64 = value()?
                        .parse()
                        .ok()
                        .filter(|&ms| ms > 0)
                        .ok_or("--close-ms takes a number above 0")?;
                    args.close = Duration::from_millis(ms);
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(args)
    }
}

/// What the intake and the tasks share.
struct Shared {
    queue: Queue,
    /// The job of each task that has not completed it: filled by the intake
    /// (under this lock, across the spawn, so that the entry is there before
    /// the task can remove it), emptied by a task that completes its job.
    /// At the close it maps the report's ids back to jobs.
    jobs: Mutex<HashMap<TaskId, String>>,
    /// Jobs completed (counted in Redis) by this worker.
    done: AtomicU64,
    /// Jobs whose work finished after the worker had requeued them: nothing
    /// was counted for them here; another worker will do them.
    late: AtomicU64,
    /// Completions that failed on a Redis error.
    failed: AtomicU64,
}

impl Shared {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, String>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long a job's simulated work takes: 10 to 40 ms, fixed per job.
fn work_for(job: &str) -> Duration {
    let hash = job.bytes().fold(17_u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    Duration::from_millis(10 + u64::from(hash % 31))
}

/// The body of a job's task: the work, then the completion. A task whose
/// flag is set during the work returns at once and records nothing: the
/// close hands its job back to the queue.
fn run_job(shared: &Shared, job: &str) {
    let mut left = work_for(job);
    while !left.is_zero() {
        let step = left.min(STEP);
        if !taskwarden::sleep(step) {
            log::debug!(
                "job {job}: cancelled with {} ms of work left",
                left.as_millis()
            );
            return;
        }
        left -= step;
    }
    match shared.queue.complete(job) {
        Ok(true) => {
            shared.done.fetch_add(1, Ordering::Relaxed);
            if let Some(id) = taskwarden::current_task() {
                shared.jobs().remove(&id);
            }
        }
        Ok(false) => {
            shared.late.fetch_add(1, Ordering::Relaxed);
            log::info!("job {job}: finished after it was requeued; not counted here");
        }
        Err(err) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            log::error!("job {job}: completion failed: {err}");
        }
    }
}

/// Takes and spawns jobs until the stop flag is set or Redis fails; returns
/// how many it took (and the error, if one ended it).
fn intake(
    manager: &TaskManager,
    shared: &Arc<Shared>,
    gate: &Arc<Gate>,
) -> (u64, Option<redis::RedisError>) {
    let mut taken = 0;
    let mut con = match shared.queue.connect() {
        Ok(con) => con,
        Err(err) => return (taken, Some(err)),
    };
    while !sigterm::seen() {
        // A permit first, then the job: a job is taken only when a slot is
        // free for it. Bounded, so the flag is seen while every slot is busy.
        let Some(permit) = gate.acquire_timeout(POLL) else {
            continue;
        };
        let job = match shared.queue.take(&mut con) {
            Ok(Some(job)) => job,
            Ok(None) => continue, // the queue stayed empty for 100 ms
            Err(err) => return (taken, Some(err)),
        };
        taken += 1;
        let task_shared = Arc::clone(shared);
        let task_job = job.clone();
        let options = TaskOptions::new().name(format!("job {job}"));
        // Held across the spawn (which does not block: the queue is
        // unbounded), so the entry is there before the task can remove it.
        let mut jobs = shared.jobs();
        let spawned = manager.spawn_with(options, move || {
            let _permit = permit; // given back when the task ends, or is dropped unrun
            run_job(&task_shared, &task_job);
        });
        match spawned {
            Ok(handle) => {
                jobs.insert(handle.id(), job); // the handle is dropped: the task runs detached
            }
            // Cannot happen (the manager closes after the intake returns);
            // if it did, the job stays in the processing list for the sweep.
            Err(err) => log::error!("job {job}: spawn refused: {err}"),
        }
    }
    (taken, None)
}

/// Pushes back on the queue the jobs of `ids` (the close report's tasks)
/// that no task completed, then sweeps the processing list; returns both
/// lists of jobs. The tasks have returned by now (or were given `SETTLE`),
/// and the requeue script is safe against one that is still completing.
fn give_back(shared: &Shared, ids: &[TaskId]) -> redis::RedisResult<(Vec<String>, Vec<String>)> {
    let mut con = shared.queue.connect()?;
    let mut requeued = Vec::new();
    for id in ids {
        // No entry: its task completed the job after all (during the close).
        let Some(job) = shared.jobs().remove(id) else {
            continue;
        };
        // false: its task completed it after all, after the lookup.
        if shared.queue.requeue(&mut con, &job)? {
            requeued.push(job);
        }
    }
    // Should find nothing: every job taken is done, requeued above, or (on
    // a failure) still here.
    let swept = shared.queue.sweep(&mut con)?;
    Ok((requeued, swept))
}

fn main() -> ExitCode {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let args = match Args::parse() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("{why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !sigterm::install() {
        log::warn!("no SIGTERM handler: this worker cannot stop cleanly");
    }
    let name = &args.name;
    let queue = match Queue::new(&args.redis, &args.queue, name) {
        Ok(queue) => queue,
        Err(err) => {
            eprintln!("worker {name}: bad Redis URL {}: {err}", args.redis);
            return ExitCode::from(2);
        }
    };
    // Jobs left in our processing list by an earlier run of this worker that
    // was killed outright go back to the queue first. This assumes no other
    // live worker has the same name.
    let recovered = match queue.connect().and_then(|mut con| queue.sweep(&mut con)) {
        Ok(jobs) => jobs.len(),
        Err(err) => {
            eprintln!("worker {name}: Redis at {}: {err}", args.redis);
            return ExitCode::FAILURE;
        }
    };
    let manager = TaskManager::builder()
        .max_tasks(args.max_tasks)
        .close_timeout(args.close)
        .thread_name(format!("{name}-job"))
        .start()
        .expect("max_tasks and the close deadline are checked above 0");
    let shared = Arc::new(Shared {
        queue,
        jobs: Mutex::new(HashMap::new()),
        done: AtomicU64::new(0),
        late: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    println!(
        "worker {name}: pid {}, max_tasks {}, close deadline {} ms, recovered {recovered}; taking jobs",
        std::process::id(),
        args.max_tasks,
        args.close.as_millis(),
    );

    let gate = Gate::new(args.max_tasks);
    let (taken, intake_error) = intake(&manager, &shared, &gate);
    let mut ok = true;
    match &intake_error {
        Some(err) => {
            log::error!("intake stopped on a Redis error: {err}");
            ok = false;
        }
        None => log::info!("stop signal: intake stopped after {taken} jobs, closing"),
    }

    // Running jobs may finish until the deadline; then the queued ones are
    // cancelled and the running ones flagged (they return within a few ms).
    let report = manager.close_timeout(args.close);
    if !manager.wait_all_timeout(&report.abandoned, SETTLE) {
        log::error!("abandoned tasks still running after {SETTLE:?}");
        ok = false;
    }
    let to_requeue: Vec<TaskId> = report
        .cancelled
        .iter()
        .chain(&report.stopped)
        .chain(&report.abandoned)
        .copied()
        .collect();
    let (requeued, swept) = match give_back(&shared, &to_requeue) {
        Ok(back) => back,
        Err(err) => {
            log::error!("giving jobs back failed (a restart of this worker recovers them): {err}");
            ok = false;
            (Vec::new(), Vec::new())
        }
    };
    if !requeued.is_empty() {
        log::info!("requeued: {}", requeued.join(", "));
    }
    if !swept.is_empty() {
        log::warn!("swept back jobs that no task held: {}", swept.join(", "));
    }

    let done = shared.done.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let back = (requeued.len() + swept.len()) as u64;
    println!(
        "worker {name}: taken {taken}, done {done}, requeued {back} (close report: cancelled {}, \
         stopped {}, abandoned {}; swept {}), late {}, failed {failed}; close took {} ms",
        report.cancelled.len(),
        report.stopped.len(),
        report.abandoned.len(),
        swept.len(),
        shared.late.load(Ordering::Relaxed),
        report.elapsed.as_millis(),
    );
    if taken != done + back {
        println!(
            "worker {name}: ACCOUNTING MISMATCH: taken {taken} != done {done} + requeued {back}"
        );
        ok = false;
    }
    if failed > 0 {
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
