//! The main demo: a realistic batch on a bounded manager.
//!
//! 400 jobs of 1 to 20 ms of work run on 16 slots. A few panic (logged,
//! counted, and the batch goes on); one ignores cancellation entirely. A live
//! progress line shows done / running / queued / panicked at least every
//! 100 ms. Once the batch is through, the manager closes with a 2 s deadline:
//! the stubborn job is abandoned on its thread, and the close report and the
//! final stats are printed.
//!
//! ```text
//! cargo run --example demo
//! cargo run --example demo -- --jobs 1000 --slots 8 --deadline-ms 500 --panic-every 25 --seed 7
//! ```

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use taskwarden::{TaskError, TaskManager};

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

/// taskwarden already logs every task panic (with its id) at error level,
/// so the default hook's report for our worker threads is only noise. Other
/// threads keep the default report.
fn quiet_worker_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("demo-"));
        if !on_worker {
            default_hook(info);
        }
    }));
}

fn ids(ids: &[taskwarden::TaskId]) -> String {
    let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(", "))
}

fn main() -> ExitCode {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    quiet_worker_panics();
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let manager = match TaskManager::builder()
        .max_tasks(options.slots)
        .close_timeout(options.deadline)
        .thread_name("demo")
        .start()
    {
        Ok(manager) => manager,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "taskwarden demo: {} jobs of 1-20 ms on {} slots, every {}th panics, one ignores cancellation; close deadline {:?}",
        options.jobs, options.slots, options.panic_every, options.deadline
    );

    let started = Instant::now();
    let mut rng = options.seed.max(1);
    let stubborn = manager
        .spawn(|| {
            // Ignores is_cancelled() on purpose: close must abandon it on time.
            std::thread::sleep(Duration::from_secs(4));
            "the stubborn job finally returned"
        })
        .expect("open");
    let mut handles = Vec::with_capacity(options.jobs as usize);
    for job in 1..=options.jobs {
        let millis = 1 + next_random(&mut rng) % 20;
        let panics = options.panic_every != 0 && job % options.panic_every == 0;
        handles.push(
            manager
                .spawn(move || {
                    let checksum = work(Duration::from_millis(millis), job);
                    if panics {
                        panic!("job {job} hit a corrupt record");
                    }
                    checksum
                })
                .expect("open"),
        );
    }

    // Live progress until only the stubborn job is left.
    let live = std::io::stdout().is_terminal();
    let mut last_print = Instant::now() - Duration::from_secs(1);
    loop {
        let stats = manager.stats();
        let finished = stats.queued == 0 && stats.running <= 1;
        if finished || last_print.elapsed() >= Duration::from_millis(100) {
            let line = format!(
                "[{:>6.2}s] done {:>4}/{:<4} running {:>2} queued {:>4} panicked {:>2}",
                started.elapsed().as_secs_f64(),
                stats.completed + stats.panicked,
                options.jobs + 1,
                stats.running,
                stats.queued,
                stats.panicked,
            );
            if live {
                print!("\r{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last_print = Instant::now();
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if live {
        println!();
    }

    println!(
        "batch through in {:?}; closing with a {:?} deadline",
        started.elapsed(),
        options.deadline
    );
    let report = manager.close();
    println!("close report: {report}");
    println!("  cancelled (never ran): {}", ids(&report.cancelled));
    println!(
        "  abandoned (still running, flagged): {}",
        ids(&report.abandoned)
    );
    println!("  stubborn job was {}", stubborn.id());

    let (mut ok, mut panicked, mut cancelled) = (0, 0, 0);
    for handle in handles {
        match handle.join() {
            Ok(_) => ok += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            Err(TaskError::Cancelled) => cancelled += 1,
        }
    }
    println!("jobs: {ok} ok, {panicked} panicked, {cancelled} cancelled");
    println!("final stats: {:?}", manager.stats());
    println!("total {:?}", started.elapsed());
    ExitCode::SUCCESS
}
