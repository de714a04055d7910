//! The main demo: a realistic batch on a bounded manager.
//!
//! 400 jobs of 1 to 20 ms of work run on 16 slots, next to one stubborn job
//! that ignores cancellation. Every 50th job panics (logged, counted, and the
//! batch goes on). A live progress bar shows done / running / queued /
//! panicked / cancelled, the rate and an ETA, with log records printed above
//! it; when stdout is not a terminal (CI, a pipe) a plain line is printed
//! every second instead. Once the batch is through, the manager closes with a
//! 2 s deadline: the stubborn job is abandoned on its thread, and the close
//! report, the jobs' results and the final stats are printed as short tables.
//!
//! Job `n` is task `n`; the stubborn job is spawned last, so it is task
//! `jobs + 1`.
//!
//! ```text
//! cargo run --example demo
//! cargo run --example demo -- --jobs 1000 --slots 8 --deadline-ms 500 --panic-every 25 --seed 7
//! ```

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskwarden::{TaskError, TaskId, TaskManager, TaskOptions};

/// The manager's thread name prefix: its threads are `demo-0`, `demo-1`, ...
const THREAD_PREFIX: &str = "demo";

struct Options {
    jobs: u64,
    slots: usize,
    deadline: Duration,
    panic_every: u64,
    seed: u64,
}

const USAGE: &str = "usage: demo [--jobs N (400)] [--slots N (16)] [--deadline-ms N (2000)] \
[--panic-every N (50, 0 for never)] [--seed N (42)]";

fn parse() -> Result<Options, String> {
    let mut options = Options {
        jobs: 400,
        slots: 16,
        deadline: Duration::from_secs(2),
        panic_every: 50,
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
            "--seed" => options.seed = number,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// A small, seedable generator (xorshift64*): the demo needs no extra crate.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Pretend work: checksum a buffer for about `duration`.
fn work(duration: Duration, job: u64) -> u64 {
    let start = Instant::now();
    let mut sum = job;
    while start.elapsed() < duration {
        if taskwarden::is_cancelled() {
            break;
        }
        for i in 0..1_000_u64 {
            sum = sum.wrapping_mul(31).wrapping_add(i ^ job);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    sum
}

/// simplelog formats every record; this sink prints each finished line
/// above the progress bar (`ProgressBar::println`), or plainly once the bar
/// is gone, so a log line never lands inside the bar.
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
            if self.bar.is_finished() {
                println!("{text}");
            } else {
                self.bar.println(text);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        0 => "no panics".to_owned(),
        1 => "every job panics".to_owned(),
        n => format!("every {} panics", ordinal(n)),
    }
}

fn list(ids: &[TaskId]) -> String {
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// One look at the batch: the regular jobs only (the stubborn job is
/// counted apart).
struct Progress {
    done: u64,
    running: usize,
    queued: usize,
    panicked: u64,
    cancelled: u64,
    rate: f64,
    eta: Option<Duration>,
}

impl Progress {
    fn read(manager: &TaskManager, stubborn_finished: bool, jobs: u64, elapsed: Duration) -> Self {
        let stats = manager.stats();
        let settled = stats.completed + stats.panicked + stats.cancelled;
        let done = settled
            .saturating_sub(u64::from(stubborn_finished))
            .min(jobs);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64((jobs - done) as f64 / rate));
        Progress {
            done,
            running: stats.running,
            queued: stats.queued,
            panicked: stats.panicked,
            cancelled: stats.cancelled,
            rate,
            eta,
        }
    }

    fn summary(&self) -> String {
        format!(
            "running {:>2}  queued {:>4}  panicked {:>2}  cancelled {:>2}  {:>4.0} jobs/s  eta {}",
            self.running,
            self.queued,
            self.panicked,
            self.cancelled,
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
        ProgressStyle::with_template("{spinner} [{wide_bar}] done {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let log_config = simplelog::Config::default();
    if live {
        let sink = AboveTheBar {
            bar: bar.clone(),
            pending: Vec::new(),
        };
        simplelog::WriteLogger::init(log::LevelFilter::Info, log_config, sink).ok();
    } else {
        simplelog::SimpleLogger::init(log::LevelFilter::Info, log_config).ok();
    }
    // taskwarden already logs every task panic (with its id) at error level;
    // the standard hook's report would only scribble over the progress bar.
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
    println!(
        "taskwarden demo: {} jobs of 1-20 ms on {} slots, {};\n\
         plus one stubborn job that ignores cancellation; close deadline {}",
        options.jobs,
        options.slots,
        panic_policy(options.panic_every),
        seconds(options.deadline),
    );

    let started = Instant::now();
    let mut rng = options.seed.max(1);
    let mut handles = Vec::with_capacity(options.jobs as usize);
    for job in 1..=options.jobs {
        let millis = 1 + next_random(&mut rng) % 20;
        let panics = options.panic_every != 0 && job % options.panic_every == 0;
        // Named: the log line of a panic says `task-50 (checksum 50)`.
        let named = TaskOptions::new().name(format!("checksum {job}"));
        handles.push(
            manager
                .spawn_with(named, move || {
                    let checksum = work(Duration::from_millis(millis), job);
                    if panics {
                        panic!("job {job} hit a corrupt record");
                    }
                    checksum
                })
                .expect("open"),
        );
    }
    // Spawned last so that job n is task n.
    let stubborn = manager
        .spawn_with(TaskOptions::new().name("stubborn export"), || {
            // Ignores is_cancelled() on purpose: close must abandon it on time.
            std::thread::sleep(Duration::from_secs(4));
            "the stubborn job finally returned"
        })
        .expect("open");

    // Live progress until every regular job has settled.
    let mut last_line: Option<Instant> = None;
    let progress = loop {
        let progress = Progress::read(
            &manager,
            stubborn.is_finished(),
            options.jobs,
            started.elapsed(),
        );
        let finished = progress.done == options.jobs;
        if live {
            bar.set_position(progress.done);
            bar.set_message(progress.summary());
        } else if finished || last_line.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            println!(
                "[{:>7}] done {:>4}/{}  {}",
                seconds(started.elapsed()),
                progress.done,
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

    // The close blocks this thread; the spinner keeps turning on its own.
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.set_message(format!(
        "closing: waiting for the stubborn job ({}) against a {} deadline...",
        stubborn.id(),
        seconds(options.deadline)
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    let batch_line = format!(
        "batch: {} jobs through in {} ({:.0} jobs/s); closing with a {} deadline",
        options.jobs,
        seconds(batch_time),
        progress.rate,
        seconds(options.deadline)
    );
    if live {
        bar.println(batch_line);
    } else {
        println!("{batch_line}");
    }
    let report = manager.close();
    bar.finish_and_clear();

    let (mut ok, mut panicked, mut cancelled) = (0_u64, 0_u64, 0_u64);
    for handle in handles {
        match handle.join() {
            Ok(_) => ok += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            // Cancelled (or timed out) before it started.
            Err(_) => cancelled += 1,
        }
    }

    let row = |label: &str, value: String| println!("  {label:<9}  {value}");
    println!("close report: {report}");
    row("elapsed", seconds(report.elapsed));
    row(
        "timed out",
        if report.timed_out { "yes" } else { "no" }.to_owned(),
    );
    let listed = |ids: &[TaskId], what: &str| {
        if ids.is_empty() {
            "0".to_owned()
        } else {
            format!("{}  {} ({what})", ids.len(), list(ids))
        }
    };
    row("cancelled", listed(&report.cancelled, "never ran"));
    let abandoned_what = if report.abandoned.contains(&stubborn.id()) {
        "still running, flagged; the stubborn job"
    } else {
        "still running, flagged"
    };
    row("abandoned", listed(&report.abandoned, abandoned_what));
    println!("jobs:");
    row("ok", format!("{ok:>3}"));
    row("panicked", format!("{panicked:>3}"));
    row("cancelled", format!("{cancelled:>3}"));
    println!("final stats:");
    for line in manager.stats().to_string().lines() {
        println!("  {line}");
    }
    println!("total {}", seconds(started.elapsed()));
    ExitCode::SUCCESS
}
