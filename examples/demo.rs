//! The main demo: a realistic batch on a bounded manager, about six seconds
//! long.
//!
//! 400 named jobs (`fetch 1` ... `fetch 400`) run on 16 slots. Each job
//! waits 60 to 340 ms as if on the network (`taskwarden::sleep`, which wakes
//! at once when the job is cancelled), then checksums what it got. A waiting
//! job holds a slot but no core, so 16 slots on a 2-core machine are
//! reasonable: the batch is bound by waiting, not by CPU, and its progress
//! bar moves for four to five seconds.
//!
//! Along the way:
//! - every 50th job panics: taskwarden logs it through `log` with the job's
//!   id and name, counts it, and the batch goes on;
//! - halfway through, the order behind the last 40 jobs is withdrawn: they
//!   share one `CancelToken`, and cancelling it drops those still queued
//!   (they never run) and flags those already running (they stop at their
//!   wait);
//! - one stubborn job (`stubborn export`, spawned last) blocks in a plain
//!   `std::thread::sleep` and never looks at its cancel flag.
//!
//! A live two-line progress bar shows the settled jobs, counted apart as
//! succeeded / panicked / cancelled, next to running, queued, the rate and
//! an ETA, with log records printed above it. When stdout is not a terminal
//! (CI, a pipe) a plain line is printed every second instead, and the log
//! goes to stdout too, so the lines stay in order.
//!
//! Once the batch has settled, the manager closes with a 2 s deadline and
//! says what it waits for; taskwarden itself logs a warning after 1 s that
//! names the stubborn job. At the deadline the stubborn job is abandoned:
//! its cancel flag is set, it is listed in the close report, and it keeps
//! its worker thread. The summary counts the jobs by outcome and explains
//! why the final stats still show one task running on one thread: the
//! process exits without waiting for it. The demo exits 0 (2 on a bad flag).
//!
//! Job `n` is task `n`; the stubborn job is spawned last, so it is task
//! `jobs + 1`.
//!
//! ```text
//! cargo run --example demo
//! cargo run --example demo -- --jobs 1000 --slots 32 --deadline-ms 500 --panic-every 25 --withdraw 100 --seed 7
//! ```

use std::io::IsTerminal;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskwarden::{
    CancelReason, CancelToken, TaskError, TaskId, TaskManager, TaskOptions, TaskState,
};

/// The manager's thread name prefix: its threads are `demo-0`, `demo-1`, ...
const THREAD_PREFIX: &str = "demo";

/// The shortest and longest network wait of a job.
const WAIT_MS: (u64, u64) = (60, 340);

/// How long the stubborn job blocks: far longer than the demo lasts.
const STUBBORN_FOR: Duration = Duration::from_secs(60);

struct Options {
    jobs: u64,
    slots: usize,
    deadline: Duration,
    panic_every: u64,
    withdraw: u64,
    seed: u64,
}

const USAGE: &str = "usage: demo [--jobs N (400)] [--slots N (16)] [--deadline-ms N (2000)] \
[--panic-every N (50, 0 for never)] [--withdraw N (40, 0 for none)] [--seed N (42)]";

fn parse() -> Result<Options, String> {
    let mut options = Options {
        jobs: 400,
        slots: 16,
        deadline: Duration::from_secs(2),
        panic_every: 50,
        withdraw: 40,
        seed: 42,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: `{value}` is not a whole number\n{USAGE}"))?;
        match flag.as_str() {
            "--jobs" => options.jobs = number,
            "--slots" => options.slots = number as usize,
            "--deadline-ms" => options.deadline = Duration::from_millis(number),
            "--panic-every" => options.panic_every = number,
            "--withdraw" => options.withdraw = number,
            "--seed" => options.seed = number,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    options.withdraw = options.withdraw.min(options.jobs);
    Ok(options)
}

/// A small, seedable generator (xorshift64*): the demo needs no extra crate.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Pretend work: wait `wait` for a record as if on the network, then
/// checksum it. `None` if the job was cancelled while it waited: it stops
/// there, which is what a cooperative job does.
fn fetch(wait: Duration, job: u64) -> Option<u64> {
    if !taskwarden::sleep(wait) {
        return None;
    }
    let mut sum = job;
    for i in 0..20_000_u64 {
        sum = sum.wrapping_mul(31).wrapping_add(i ^ job);
    }
    Some(sum)
}

/// simplelog formats every record; this sink prints each finished line
/// above the progress bar (`ProgressBar::println`), or plainly when there
/// is no bar or it is gone, so a log line never lands inside the bar.
struct AboveTheBar {
    bar: ProgressBar,
    pending: Vec<u8>,
}

impl Write for AboveTheBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            if self.bar.is_hidden() {
                say(&self.bar, &text);
            } else {
                say(&self.bar, &wrap(&text, WRAP_AT));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where log records are wrapped on a terminal: taskwarden's lines about a
/// close name every task they wait for and run past 120 columns, and a
/// word-wrapped record with an indented tail reads better than one the
/// terminal cuts mid-word. A pipe gets every record on one line.
const WRAP_AT: usize = 118;

/// `text` wrapped at `width` columns on spaces; continuation lines are
/// indented by four.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut column = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if column > 0 && column + 1 + len > width {
            out.push_str("\n    ");
            column = 4;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    out
}

/// Prints a line above the bar while it is drawn, plainly otherwise. A
/// closed stdout (`demo | head`) is not worth a panic inside the logger.
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() || bar.is_finished() {
        writeln!(std::io::stdout(), "{line}").ok();
    } else {
        bar.println(line);
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn panic_policy(every: u64) -> String {
    match every {
        0 => "no job panics".to_owned(),
        1 => "every job panics".to_owned(),
        n => format!("every {} job panics", ordinal(n)),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn list(ids: &[TaskId]) -> String {
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// One look at the batch: the regular jobs only (the stubborn job is
/// counted apart).
struct Progress {
    /// Jobs that ran to the end of their closure (a flagged job that
    /// stopped early counts as cancelled, not here).
    succeeded: u64,
    panicked: u64,
    /// Never started, or stopped early by their cancel flag.
    cancelled: u64,
    running: usize,
    queued: usize,
    rate: f64,
    eta: Option<Duration>,
}

impl Progress {
    fn read(
        manager: &TaskManager,
        stubborn_finished: bool,
        stopped_early: u64,
        elapsed: Duration,
        jobs: u64,
    ) -> Self {
        let stats = manager.stats();
        // `completed` counts every closure that returned: the stubborn job,
        // once it has, and the jobs that stopped early too.
        let ran_through = stats.completed.saturating_sub(u64::from(stubborn_finished));
        let succeeded = ran_through.saturating_sub(stopped_early);
        let cancelled = stats.cancelled + stopped_early;
        let settled = (succeeded + stats.panicked + cancelled).min(jobs);
        // The rate counts the jobs that ran; withdrawn ones settle for free.
        let ran = succeeded + stats.panicked + stopped_early;
        let rate = ran as f64 / elapsed.as_secs_f64().max(1e-3);
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64((jobs - settled) as f64 / rate));
        Progress {
            succeeded,
            panicked: stats.panicked,
            cancelled,
            running: stats.running,
            queued: stats.queued,
            rate,
            eta,
        }
    }

    fn settled(&self) -> u64 {
        self.succeeded + self.panicked + self.cancelled
    }

    fn summary(&self) -> String {
        format!(
            "succeeded {:>3}  panicked {:>2}  cancelled {:>3}  |  running {:>2}  queued {:>3}  |  {:>3.0} jobs/s  eta {}",
            self.succeeded,
            self.panicked,
            self.cancelled,
            self.running,
            self.queued,
            self.rate,
            self.eta.map_or_else(|| "?".to_owned(), seconds),
        )
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let live = std::io::stdout().is_terminal();
    let bar = if live {
        ProgressBar::with_draw_target(Some(options.jobs), ProgressDrawTarget::stdout_with_hz(15))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed:>3} [{wide_bar}] {pos}/{len} settled\n  {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    // Every record goes through `say`: above the bar when there is one, to
    // stdout otherwise, in order with the progress lines.
    let sink = AboveTheBar {
        bar: bar.clone(),
        pending: Vec::new(),
    };
    simplelog::WriteLogger::init(log::LevelFilter::Info, simplelog::Config::default(), sink).ok();
    // taskwarden already logs every task panic (with its id and name) at
    // error level; the standard hook's report would only repeat it.
    taskwarden::quiet_task_panics();

    let manager = match TaskManager::builder()
        .max_tasks(options.slots)
        .close_timeout(options.deadline)
        .thread_name(THREAD_PREFIX)
        .start()
    {
        Ok(manager) => manager,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "taskwarden demo: {} jobs on {} slots ({}). Each job waits {}-{} ms as if on the network, then\n\
         checksums what it got: a waiting job holds a slot but no core, so more slots than cores pay off.\n\
         {}; {};\n\
         one stubborn job ignores cancellation; the close deadline is {}.",
        options.jobs,
        options.slots,
        plural(cores as u64, "core", "cores"),
        WAIT_MS.0,
        WAIT_MS.1,
        capitalise(&panic_policy(options.panic_every)),
        match options.withdraw {
            0 => "no order is withdrawn".to_owned(),
            n => format!(
                "halfway, the order behind the last {} is withdrawn (one CancelToken)",
                plural(n, "job", "jobs")
            ),
        },
        seconds(options.deadline),
    );

    let started = Instant::now();
    let mut rng = options.seed.max(1);
    let withdrawn = CancelToken::new();
    let first_withdrawn = options.jobs - options.withdraw + 1;
    let stopped_early = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(options.jobs as usize);
    for job in 1..=options.jobs {
        let wait =
            Duration::from_millis(WAIT_MS.0 + next_random(&mut rng) % (WAIT_MS.1 - WAIT_MS.0 + 1));
        let panics = options.panic_every != 0 && job % options.panic_every == 0;
        // Named: the log line of a panic says `task-50 (fetch 50)`.
        let mut job_options = TaskOptions::new().name(format!("fetch {job}"));
        if job >= first_withdrawn {
            job_options = job_options.cancel_with(&withdrawn);
        }
        let stopped_early = Arc::clone(&stopped_early);
        handles.push(
            manager
                .spawn_with(job_options, move || {
                    let checksum = fetch(wait, job);
                    if checksum.is_none() {
                        stopped_early.fetch_add(1, Ordering::Relaxed);
                    } else if panics {
                        panic!("job {job} hit a corrupt record");
                    }
                    checksum
                })
                .expect("open"),
        );
    }
    // Spawned last so that job n is task n. It says which thread it runs on,
    // so that the summary can name the thread it is abandoned on.
    let stubborn_thread = Arc::new(OnceLock::new());
    let stubborn = {
        let thread = Arc::clone(&stubborn_thread);
        manager
            .spawn_with(TaskOptions::new().name("stubborn export"), move || {
                let name = std::thread::current().name().unwrap_or("?").to_owned();
                thread.set(name).ok();
                // Blocks in a call that cannot be interrupted and never looks
                // at is_cancelled(): close can only abandon it.
                std::thread::sleep(STUBBORN_FOR);
                "the stubborn export finally returned"
            })
            .expect("open")
    };

    // Live progress until every regular job has settled.
    let mut last_line: Option<Instant> = None;
    let mut withdrawal_done = options.withdraw == 0;
    let progress = loop {
        let progress = Progress::read(
            &manager,
            stubborn.is_finished(),
            stopped_early.load(Ordering::Relaxed),
            started.elapsed(),
            options.jobs,
        );
        let finished = progress.settled() >= options.jobs;
        if !withdrawal_done && !finished && progress.settled() * 2 >= options.jobs {
            withdrawal_done = true;
            withdraw(&manager, &withdrawn, first_withdrawn, options.jobs);
            continue;
        }
        if live {
            bar.set_position(progress.settled());
            bar.set_message(progress.summary());
        } else if finished || last_line.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            println!(
                "[{:>6}] settled {:>3}/{}  {}",
                format!("{:.1} s", started.elapsed().as_secs_f64()),
                progress.settled(),
                options.jobs,
                progress.summary()
            );
            last_line = Some(Instant::now());
        }
        if finished {
            break progress;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let batch_time = started.elapsed();
    say(
        &bar,
        &format!(
            "batch settled in {} ({:.0} jobs/s): {} succeeded, {} panicked, {} cancelled",
            seconds(batch_time),
            progress.rate,
            progress.succeeded,
            progress.panicked,
            progress.cancelled,
        ),
    );

    // The close blocks this thread; the spinner keeps turning on its own.
    let waiting_for: Vec<String> = manager
        .tasks()
        .iter()
        .map(|task| match &task.name {
            Some(name) => format!("{} ({name})", task.id),
            None => task.id.to_string(),
        })
        .collect();
    let closing = format!(
        "closing with a {} deadline, waiting for {}: {}",
        seconds(options.deadline),
        plural(waiting_for.len() as u64, "task", "tasks"),
        if waiting_for.is_empty() {
            "nothing".to_owned()
        } else {
            waiting_for.join(", ")
        },
    );
    say(&bar, &closing);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.set_message(format!(
        "closing, deadline {} ...",
        seconds(options.deadline)
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    let report = manager.close();
    bar.finish_and_clear();

    let (mut succeeded, mut stopped, mut panicked, mut never_ran) = (0_u64, 0_u64, 0_u64, 0_u64);
    for handle in handles {
        match handle.join() {
            Ok(Some(_)) => succeeded += 1,
            Ok(None) => stopped += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            // Cancelled (or timed out) before it started.
            Err(_) => never_ran += 1,
        }
    }

    let row = |label: &str, value: String| println!("  {label:<10} {value}");
    println!("close report: {report}");
    let listed = |ids: &[TaskId], what: &str| {
        if ids.is_empty() {
            "0".to_owned()
        } else {
            format!("{}  {} ({what})", ids.len(), list(ids))
        }
    };
    row(
        "cancelled",
        listed(&report.cancelled, "still queued, never ran"),
    );
    let abandoned_what = if report.abandoned.contains(&stubborn.id()) {
        "the stubborn export: still running, flagged"
    } else {
        "still running, flagged"
    };
    row("abandoned", listed(&report.abandoned, abandoned_what));
    println!("jobs, by outcome:");
    row("succeeded", format!("{succeeded:>3}"));
    let why = |count: u64, note: String| {
        if count == 0 {
            "  0".to_owned()
        } else {
            format!("{count:>3}  ({note})")
        }
    };
    row(
        "panicked",
        why(
            panicked,
            "each logged above with its id and name; the batch went on".to_owned(),
        ),
    );
    row(
        "cancelled",
        why(
            never_ran + stopped,
            format!("withdrawn: {never_ran} never started, {stopped} stopped early at their wait"),
        ),
    );
    let stats = manager.stats();
    println!("final stats (the manager's counters; completed = succeeded + stopped early):");
    println!(
        "  running {}  queued {}  threads {}  completed {}  panicked {}  cancelled {}",
        stats.running,
        stats.queued,
        stats.threads,
        stats.completed,
        stats.panicked,
        stats.cancelled
    );
    if report.abandoned.contains(&stubborn.id()) {
        let thread = stubborn_thread.get().map_or("?", String::as_str);
        println!(
            "running {} / threads {} is not a leak: {} job ignored cancellation and was abandoned on its thread {thread};\n\
             the process exits without waiting for it (a long-lived program would see that thread exit when the job returns).",
            stats.running,
            stats.threads,
            report.abandoned.len(),
        );
    }
    println!("total {}", seconds(started.elapsed()));
    ExitCode::SUCCESS
}

/// Cancels the withdrawn order's token and says what that did: queued jobs
/// are gone before `cancel` returns, running ones are flagged.
fn withdraw(manager: &TaskManager, token: &CancelToken, first: u64, jobs: u64) {
    let before = manager.stats().cancelled;
    token.cancel();
    let never_run = manager.stats().cancelled - before;
    let flagged = manager
        .tasks()
        .iter()
        .filter(|task| {
            task.state == TaskState::Running && task.cancel_reason == Some(CancelReason::Token)
        })
        .count() as u64;
    log::info!(
        "halfway: the order behind jobs {first}-{jobs} is withdrawn: {} dropped, {} flagged",
        plural(never_run, "queued job", "queued jobs"),
        plural(flagged, "running one", "running ones"),
    );
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
