//! Scaling: what a task costs as the work grows, for taskwarden, the raw
//! channel floor and the peer pools (the same pools as `benches/memory.rs`).
//!
//! Three series:
//!
//! - `slots`: ns per task for 1,000,000 empty tasks, one producer, submit all
//!   then wait, with 1, 2, 4, ... 256 threads (taskwarden's `max_tasks`).
//! - `producers`: ns per task for 1,000,000 empty tasks split over 1, 2, 4
//!   and 8 producer threads, 2 threads in the pool.
//! - `memory`: bytes per queued empty task at queue depths 1k to 10M: one
//!   thread blocked on a gate, N empty tasks submitted, VmRSS before and after.
//!   Each (pool, depth) runs in a child process of this binary, since RSS is
//!   per process and a previous pool's freed memory would hide the growth.
//!
//! Timing is plain `Instant`, no criterion: at each point every pool is built
//! once, runs once unmeasured (threads started, caches warm), then once per
//! round in an order rotated each round so that no pool always runs first;
//! the median of the rounds is reported.
//!
//! ```text
//! cargo bench -p taskwarden-bench --bench scaling                  # full, a few minutes
//! SCALING_QUICK=1 cargo bench -p taskwarden-bench --bench scaling  # smoke run
//! scripts/bench-scaling        # runs it and draws docs/scaling*.svg and docs/scaling.md
//! ```
//!
//! Results go to `$CARGO_TARGET_DIR/scaling.json` (default `target/`).

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Floor, Pool, RayonSpawn, RustyPool, Taskwarden, TaskwardenDetached, Threadpool};

const FULL_TASKS: usize = 1_000_000;
const FULL_ROUNDS: usize = 5;
const QUICK_TASKS: usize = 100_000;
const THREADS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const PRODUCERS: [usize; 4] = [1, 2, 4, 8];
const PRODUCER_THREADS: usize = 2;
const DEPTHS: [usize; 5] = [1_000, 10_000, 100_000, 1_000_000, 10_000_000];
const QUICK_MAX_DEPTH: usize = 100_000;

/// The pools, by the names used in the JSON and in the child's arguments.
const POOLS: [&str; 6] = [
    "floor",
    "taskwarden-detached",
    "taskwarden",
    "rusty_pool",
    "threadpool",
    "rayon-spawn",
];

/// `Pool` has a generic `submit`, so it cannot be a trait object; this
/// wrapper runs whole workloads instead, which lets one loop rotate pools.
trait Workload {
    /// Submits `tasks` empty tasks from `producers` threads, then waits.
    fn run(&self, producers: usize, tasks: usize) -> Duration;
    fn stop(self: Box<Self>);
}

impl<P: Pool + 'static> Workload for P {
    fn run(&self, producers: usize, tasks: usize) -> Duration {
        let start = Instant::now();
        if producers == 1 {
            // No scope here: the single-producer series measures submit
            // alone, without a thread spawn and join around it.
            for _ in 0..tasks {
                self.submit(|| ());
            }
        } else {
            std::thread::scope(|s| {
                for p in 0..producers {
                    // The first producers take the remainder, so the total is exact.
                    let share = tasks / producers + usize::from(p < tasks % producers);
                    s.spawn(move || {
                        for _ in 0..share {
                            self.submit(|| ());
                        }
                    });
                }
            });
        }
        self.wait();
        start.elapsed()
    }

    fn stop(self: Box<Self>) {
        self.shutdown();
    }
}

fn build(name: &str, threads: usize) -> Box<dyn Workload> {
    match name {
        "floor" => Box::new(Floor::new(threads)),
        "taskwarden-detached" => Box::new(TaskwardenDetached::new(threads)),
        "taskwarden" => Box::new(Taskwarden::new(threads)),
        "rusty_pool" => Box::new(RustyPool::new(threads)),
        "threadpool" => Box::new(Threadpool::new(threads)),
        "rayon-spawn" => Box::new(RayonSpawn::new(threads)),
        other => panic!("unknown pool {other}"),
    }
}

struct Config {
    quick: bool,
    tasks: usize,
    rounds: usize,
    depths: Vec<usize>,
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::var("SCALING_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Config {
            quick,
            tasks: if quick { QUICK_TASKS } else { FULL_TASKS },
            rounds: if quick { 1 } else { FULL_ROUNDS },
            depths: DEPTHS
                .into_iter()
                .filter(|&d| !quick || d <= QUICK_MAX_DEPTH)
                .collect(),
        }
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// ns per task of every pool at one point, one sample per round.
fn measure_point(config: &Config, threads: usize, producers: usize) -> Vec<Vec<f64>> {
    let pools: Vec<Box<dyn Workload>> = POOLS.iter().map(|name| build(name, threads)).collect();
    // Unmeasured: taskwarden starts its threads lazily, the others at build;
    // after this run every pool has its threads up.
    for pool in &pools {
        pool.run(producers, config.tasks);
    }
    let mut samples = vec![Vec::with_capacity(config.rounds); pools.len()];
    for round in 0..config.rounds {
        for i in 0..pools.len() {
            let at = (round + i) % pools.len();
            // Lets the previous pool's threads go back to sleep (rayon's
            // spin before sleeping) so they do not steal this pool's cores.
            std::thread::sleep(Duration::from_millis(20));
            let took = pools[at].run(producers, config.tasks);
            samples[at].push(took.as_nanos() as f64 / config.tasks as f64);
        }
    }
    for pool in pools {
        pool.stop();
    }
    samples
}

/// One timed series: a row of medians per x, printed as it is measured.
fn timed_series(config: &Config, label: &str, points: &[(usize, usize)], x: &[usize]) -> String {
    println!(
        "\n{label}: median ns per task\n| x | {} |",
        POOLS.join(" | ")
    );
    println!("| ---: |{}", " ---: |".repeat(POOLS.len()));
    let mut per_pool: Vec<Vec<Vec<f64>>> = vec![Vec::new(); POOLS.len()];
    for (&(threads, producers), &value) in points.iter().zip(x) {
        let samples = measure_point(config, threads, producers);
        let medians: Vec<String> = samples
            .iter()
            .map(|s| format!("{:.0}", median(s)))
            .collect();
        println!("| {value} | {} |", medians.join(" | "));
        for (pool, s) in per_pool.iter_mut().zip(samples) {
            pool.push(s);
        }
    }
    series_json(x, "ns_per_task", &per_pool)
}

/// `{"x": [...], "<unit>": {pool: [median per x]}, "samples": {pool: [[...] per x]}}`.
fn series_json(x: &[usize], unit: &str, per_pool: &[Vec<Vec<f64>>]) -> String {
    let list = |v: &[f64]| {
        let items: Vec<String> = v.iter().map(|n| format!("{n:.1}")).collect();
        format!("[{}]", items.join(", "))
    };
    let medians: Vec<String> = POOLS
        .iter()
        .zip(per_pool)
        .map(|(name, points)| {
            let m: Vec<f64> = points.iter().map(|s| median(s)).collect();
            format!("\"{name}\": {}", list(&m))
        })
        .collect();
    let samples: Vec<String> = POOLS
        .iter()
        .zip(per_pool)
        .map(|(name, points)| {
            let all: Vec<String> = points.iter().map(|s| list(s)).collect();
            format!("\"{name}\": [{}]", all.join(", "))
        })
        .collect();
    let xs: Vec<String> = x.iter().map(usize::to_string).collect();
    format!(
        "{{\"x\": [{}], \"{unit}\": {{{}}}, \"samples\": {{{}}}}}",
        xs.join(", "),
        medians.join(", "),
        samples.join(", ")
    )
}

/// VmRSS of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// In a child process: the RSS growth while `depth` empty tasks wait behind
/// the pool's only thread, which is held on a gate.
fn queued_rss<P: Pool>(depth: usize) -> u64 {
    let pool = P::new(1);
    let started = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    pool.submit(move || {
        s.wait();
        r.wait();
    });
    // Measured from the moment the gate task runs, so the thread's start
    // (lazy in taskwarden) and the gate's own slot are not counted.
    started.wait();
    let before = rss_bytes();
    for _ in 0..depth {
        pool.submit(|| ());
    }
    let after = rss_bytes();
    release.wait();
    pool.wait();
    pool.shutdown();
    after.saturating_sub(before)
}

fn child(name: &str, depth: usize) {
    let grown = match name {
        "floor" => queued_rss::<Floor>(depth),
        "taskwarden-detached" => queued_rss::<TaskwardenDetached>(depth),
        "taskwarden" => queued_rss::<Taskwarden>(depth),
        "rusty_pool" => queued_rss::<RustyPool>(depth),
        "threadpool" => queued_rss::<Threadpool>(depth),
        "rayon-spawn" => queued_rss::<RayonSpawn>(depth),
        other => panic!("unknown pool {other}"),
    };
    println!("{grown}");
}

fn memory_series(config: &Config) -> String {
    let grown = |name: &str, depth: usize| -> u64 {
        common::run_child(&[name, &depth.to_string()])
            .parse()
            .expect("a number")
    };
    println!("\nmemory: bytes per queued empty task (VmRSS growth / depth)");
    println!("| depth | {} |", POOLS.join(" | "));
    println!("| ---: |{}", " ---: |".repeat(POOLS.len()));
    let mut per_pool: Vec<Vec<Vec<f64>>> = vec![Vec::new(); POOLS.len()];
    let mut rss: Vec<Vec<Vec<f64>>> = vec![Vec::new(); POOLS.len()];
    for &depth in &config.depths {
        let mut row = Vec::new();
        for (i, name) in POOLS.iter().enumerate() {
            let bytes = grown(name, depth);
            let per_task = bytes as f64 / depth as f64;
            row.push(format!("{per_task:.1}"));
            per_pool[i].push(vec![per_task]);
            rss[i].push(vec![bytes as f64]);
        }
        println!("| {depth} | {} |", row.join(" | "));
    }
    // One child per (pool, depth): "samples" holds the raw RSS growth in bytes.
    let per_task = series_json(&config.depths, "bytes_per_task", &per_pool);
    let raw = series_json(&config.depths, "rss_growth_bytes", &rss);
    format!("{{\"per_task\": {per_task}, \"raw\": {raw}}}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        child(&args[at + 1], args[at + 2].parse().expect("a depth"));
        return;
    }
    let config = Config::from_env();
    let began = Instant::now();
    println!(
        "scaling: {} tasks per point, {} round(s) after one warm-up{}",
        config.tasks,
        config.rounds,
        if config.quick { " (SCALING_QUICK)" } else { "" }
    );
    let slot_points: Vec<(usize, usize)> = THREADS.iter().map(|&t| (t, 1)).collect();
    let slots = timed_series(
        &config,
        "slots (threads), one producer",
        &slot_points,
        &THREADS,
    );
    let producer_points: Vec<(usize, usize)> =
        PRODUCERS.iter().map(|&p| (PRODUCER_THREADS, p)).collect();
    let producers = timed_series(
        &config,
        "producers, 2 threads",
        &producer_points,
        &PRODUCERS,
    );
    let memory = memory_series(&config);
    let seconds = began.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let json = format!(
        "{{\"quick\": {}, \"tasks\": {}, \"rounds\": {}, \"producer_threads\": {PRODUCER_THREADS}, \
         \"cores\": {cores}, \"seconds\": {seconds:.1}, \"pools\": [{}],\n\"slots\": {slots},\n\"producers\": {producers},\n\
         \"memory\": {memory}}}\n",
        config.quick,
        config.tasks,
        config.rounds,
        POOLS.map(|p| format!("\"{p}\"")).join(", "),
    );
    let path = common::target_dir().join("scaling.json");
    std::fs::write(&path, json).expect("write scaling.json");
    println!("\n{seconds:.0} s; written to {}", path.display());
}
