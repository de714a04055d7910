//! What criterion's throughput groups do not show (issue 19), each pool in
//! a child process of its own:
//!
//! - **round trip**: one task at a time, spawn then wait for its result,
//!   20,000 times back to back on 4 slots: p50 and p99. taskwarden joins
//!   its handle; the others send the result back on a channel (the floor
//!   is a raw crossbeam pool).
//! - **trickle**: one empty task per millisecond for one second on 8
//!   slots: the CPU time the whole process used (all its threads, from
//!   `/proc/self/task/*/schedstat`), against the floor's.
//! - **fork-join**: a recursive sum over 1,000,000 numbers with 1,000-number
//!   leaves on 2 threads, against `rayon::join`: the median of 30 runs.
//!   taskwarden twice: `taskwarden` spawns one half, computes the other
//!   itself and joins; `taskwarden-both` spawns both halves and joins both.
//! - **map**: `map` over 20,000 items of 5 µs of arithmetic each (a busy
//!   spin of `busy_work`, calibrated once by the parent and passed to the
//!   child, so every pool does the same work) on 2 slots, collected into a
//!   `Vec`, against rayon's `par_iter().map().collect()` on a 2-thread rayon
//!   pool; `try_map` (every closure returns `Ok`) collected into a
//!   `Result<Vec<_>, _>`; `map_unordered` for information, and the same
//!   items run serially. One child runs all of them, interleaved round by
//!   round (so a slow spell on this shared machine falls on all of them),
//!   2 warm-up rounds then 15: the median of the 15. Each round gets a
//!   fresh pool per variant (`TaskManager::builder().max_tasks(2)`, or a
//!   rayon pool of 2), built and warmed with a small map before the clock
//!   starts and closed after it stops: neither building nor closing is
//!   timed, as in compare.rs's `fresh`.
//!
//! `--runs N` repeats all of it N times (default 1); every run's numbers go
//! to target/latency.json with their run number, so a target can be judged
//! as "met in 3 of 3 runs". `scripts/bench-report` passes `--runs 3`.
//!
//! ```text
//! cargo bench -p taskwarden-bench --bench latency               # a table, and target/latency.json
//! cargo bench -p taskwarden-bench --bench latency -- --runs 3   # three runs
//! ```

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{busy_work, Floor, Pool, RayonSpawn, Threadpool};

const ROUND_TRIPS: usize = 20_000;
const WARM_UP_TRIPS: u64 = 5_000;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1e3
}

/// p50 and p99 (µs) of one spawn-and-wait, back to back.
fn round_trips(mut one: impl FnMut(u64) -> u64) -> (f64, f64) {
    // Steady state: the first few thousand tasks of a pool that keeps
    // per-task memory (taskwarden's registry batches and graveyard) grow
    // its heap, and their page faults are not what a long-lived program's
    // round trips cost. Every pool gets the same warm-up.
    for n in 0..WARM_UP_TRIPS {
        std::hint::black_box(one(n));
    }
    let mut took = Vec::with_capacity(ROUND_TRIPS);
    for n in 0..ROUND_TRIPS as u64 {
        let start = Instant::now();
        std::hint::black_box(one(n));
        took.push(start.elapsed().as_nanos() as u64);
    }
    took.sort_unstable();
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

/// A round trip through a pool that only runs jobs: the result comes back
/// on a channel.
fn pool_round_trips<P: Pool>() -> (f64, f64) {
    let pool = P::new(4);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let result = round_trips(|n| {
        let tx = tx.clone();
        pool.submit(move || tx.send(n).unwrap());
        rx.recv().unwrap()
    });
    pool.shutdown();
    result
}

fn taskwarden_round_trips() -> (f64, f64) {
    let manager = taskwarden::TaskManager::new(4);
    round_trips(|n| manager.spawn(move || n).unwrap().join().unwrap())
}

/// CPU time (ms) this process's threads have used.
fn process_cpu_ms() -> f64 {
    let mut total = 0_u64;
    for entry in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let path = entry.expect("a task").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total as f64 / 1e6
}

/// CPU used while one task a millisecond trickles in for a second.
fn trickle<P: Pool>() -> f64 {
    let pool = P::new(8);
    pool.submit(|| ());
    pool.wait();
    let before = process_cpu_ms();
    let start = Instant::now();
    for n in 1..=1_000_u32 {
        pool.submit(|| ());
        let next = start + Duration::from_millis(u64::from(n));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    pool.wait();
    let used = process_cpu_ms() - before;
    pool.shutdown();
    used
}

const NUMBERS: usize = 1_000_000;
const LEAF: usize = 1_000;

fn tw_sum(data: Arc<Vec<u64>>, lo: usize, hi: usize) -> u64 {
    if hi - lo <= LEAF {
        return data[lo..hi].iter().sum();
    }
    let mid = lo + (hi - lo) / 2;
    let spawner = taskwarden::current_spawner().expect("inside a task");
    let other = Arc::clone(&data);
    let left = spawner.spawn(move || tw_sum(other, lo, mid)).unwrap();
    let right = tw_sum(data, mid, hi);
    left.join().unwrap() + right
}

/// Spawns both halves and joins both (the caller computes nothing itself).
fn tw_sum_both(data: Arc<Vec<u64>>, lo: usize, hi: usize) -> u64 {
    if hi - lo <= LEAF {
        return data[lo..hi].iter().sum();
    }
    let mid = lo + (hi - lo) / 2;
    let spawner = taskwarden::current_spawner().expect("inside a task");
    let other = Arc::clone(&data);
    let left = spawner.spawn(move || tw_sum_both(other, lo, mid)).unwrap();
    let right = spawner.spawn(move || tw_sum_both(data, mid, hi)).unwrap();
    left.join().unwrap() + right.join().unwrap()
}

fn rayon_sum(data: &[u64]) -> u64 {
    if data.len() <= LEAF {
        return data.iter().sum();
    }
    let (left, right) = data.split_at(data.len() / 2);
    let (a, b) = rayon::join(|| rayon_sum(left), || rayon_sum(right));
    a + b
}

/// Median ms of 30 recursive sums.
fn fork_join(pool: &str) -> f64 {
    let data: Arc<Vec<u64>> = Arc::new((0..NUMBERS as u64).collect());
    let expected: u64 = data.iter().sum();
    let mut runs = Vec::new();
    let manager = taskwarden::TaskManager::new(2);
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for _ in 0..33 {
        let start = Instant::now();
        let sum = match pool {
            "taskwarden" => {
                let data = Arc::clone(&data);
                manager
                    .spawn(move || tw_sum(data, 0, NUMBERS))
                    .unwrap()
                    .join()
                    .unwrap()
            }
            "taskwarden-both" => {
                let data = Arc::clone(&data);
                manager
                    .spawn(move || tw_sum_both(data, 0, NUMBERS))
                    .unwrap()
                    .join()
                    .unwrap()
            }
            "rayon-join" => rayon_pool.install(|| rayon_sum(&data)),
            other => panic!("unknown fork-join pool {other}"),
        };
        runs.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(sum, expected);
    }
    runs.drain(..3); // warm-up
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

const MAP_ITEMS: u64 = 20_000;
const MAP_MICROS: u64 = 5;
const MAP_WARM_UP: usize = 2;
const MAP_ROUNDS: usize = 15;
/// What the map child measures, in the order it prints them.
const MAP_VARIANTS: [&str; 5] = [
    "taskwarden-map",
    "taskwarden-try-map",
    "taskwarden-map-unordered",
    "rayon-par-iter",
    "serial",
];

/// A 2-slot manager with its threads started, outside the clock.
fn warm_manager(
    work: impl Fn(u64) -> u64 + Copy + Send + Sync + 'static,
) -> taskwarden::TaskManager {
    let manager = taskwarden::TaskManager::builder()
        .max_tasks(2)
        .start()
        .expect("a valid manager");
    let warm = manager.map(0..8, work).fold(0, |a, r| a ^ r.unwrap());
    std::hint::black_box(warm);
    manager
}

/// ms of one map of `MAP_ITEMS` items by `variant`, on a fresh pool.
fn map_once(variant: &str, rounds: u64, expected: u64) -> f64 {
    use rayon::prelude::*;
    let work = move |n: u64| busy_work(rounds) ^ n;
    let (took, sum) = match variant {
        "taskwarden-map" => {
            let manager = warm_manager(work);
            let start = Instant::now();
            let out: Vec<u64> = manager
                .map(0..MAP_ITEMS, work)
                .map(Result::unwrap)
                .collect();
            let took = start.elapsed();
            manager.close();
            (took, out.iter().fold(0, |a, b| a ^ b))
        }
        "taskwarden-try-map" => {
            let manager = warm_manager(work);
            let start = Instant::now();
            let out: Vec<u64> = manager
                .try_map(0..MAP_ITEMS, move |n| {
                    Ok::<u64, taskwarden::TaskError>(work(n))
                })
                .collect::<Result<Vec<u64>, _>>()
                .unwrap();
            let took = start.elapsed();
            manager.close();
            (took, out.iter().fold(0, |a, b| a ^ b))
        }
        "taskwarden-map-unordered" => {
            let manager = warm_manager(work);
            let start = Instant::now();
            let sum = manager
                .map_unordered(0..MAP_ITEMS, work)
                .fold(0, |a, (_, r)| a ^ r.unwrap());
            let took = start.elapsed();
            manager.close();
            (took, sum)
        }
        "rayon-par-iter" => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let warm: Vec<u64> = pool.install(|| (0..8).into_par_iter().map(work).collect());
            std::hint::black_box(warm);
            let start = Instant::now();
            let out: Vec<u64> = pool.install(|| (0..MAP_ITEMS).into_par_iter().map(work).collect());
            let took = start.elapsed();
            drop(pool);
            (took, out.iter().fold(0, |a, b| a ^ b))
        }
        "serial" => {
            let start = Instant::now();
            let out: Vec<u64> = (0..MAP_ITEMS).map(work).collect();
            (start.elapsed(), out.iter().fold(0, |a, b| a ^ b))
        }
        other => panic!("unknown map variant {other}"),
    };
    assert_eq!(sum, expected, "{variant}");
    took.as_secs_f64() * 1e3
}

/// The median ms of every map variant, interleaved round by round (the
/// order rotates each round).
fn map_medians(rounds: u64) -> Vec<f64> {
    let expected = (0..MAP_ITEMS).fold(0, |a, n| a ^ (busy_work(rounds) ^ n));
    let mut took = vec![Vec::new(); MAP_VARIANTS.len()];
    for round in 0..MAP_WARM_UP + MAP_ROUNDS {
        for k in 0..MAP_VARIANTS.len() {
            let at = (round + k) % MAP_VARIANTS.len();
            let ms = map_once(MAP_VARIANTS[at], rounds, expected);
            if round >= MAP_WARM_UP {
                took[at].push(ms);
            }
        }
    }
    took.into_iter()
        .map(|mut runs| {
            runs.sort_by(f64::total_cmp);
            runs[runs.len() / 2]
        })
        .collect()
}

/// `busy_work` rounds for `MAP_MICROS` µs: the best of five calibrations
/// (the fewest interruptions), so that a preempted one does not shrink the
/// work.
fn map_rounds() -> u64 {
    let best = (0..5)
        .map(|_| common::rounds_per_microsecond())
        .max()
        .unwrap();
    best * MAP_MICROS
}

fn child(what: &str, pool: &str) {
    let out = match (what, pool) {
        ("round-trip", "taskwarden") => {
            let (p50, p99) = taskwarden_round_trips();
            format!("{p50} {p99}")
        }
        ("round-trip", "floor") => {
            let (p50, p99) = pool_round_trips::<Floor>();
            format!("{p50} {p99}")
        }
        ("round-trip", "threadpool") => {
            let (p50, p99) = pool_round_trips::<Threadpool>();
            format!("{p50} {p99}")
        }
        ("round-trip", "rayon-spawn") => {
            let (p50, p99) = pool_round_trips::<RayonSpawn>();
            format!("{p50} {p99}")
        }
        ("trickle", "taskwarden") => trickle::<common::TaskwardenDetached>().to_string(),
        ("trickle", "floor") => trickle::<Floor>().to_string(),
        ("trickle", "threadpool") => trickle::<Threadpool>().to_string(),
        ("trickle", "rayon-spawn") => trickle::<RayonSpawn>().to_string(),
        ("fork-join", pool) => fork_join(pool).to_string(),
        ("map", rounds) => {
            let medians = map_medians(rounds.parse().expect("busy_work rounds"));
            medians
                .iter()
                .map(f64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => panic!("unknown {other:?}"),
    };
    println!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        child(&args[at + 1], &args[at + 2]);
        return;
    }
    let runs: usize = args
        .iter()
        .position(|arg| arg == "--runs")
        .map(|at| args[at + 1].parse().expect("--runs N"))
        .unwrap_or(1);
    let run = |what: &str, pool: &str| -> Vec<f64> {
        common::run_child(&[what, pool])
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect()
    };
    let rounds = map_rounds();
    let mut json = vec![format!(
        "{{\"measure\": \"calibration\", \"map_items\": {MAP_ITEMS}, \"map_micros\": {MAP_MICROS}, \"busy_work_rounds\": {rounds}, \"runs\": {runs}}}"
    )];
    println!("| run | measure | pool | value |");
    println!("| ---: | --- | --- | ---: |");
    for r in 1..=runs {
        for pool in ["floor", "taskwarden", "threadpool", "rayon-spawn"] {
            let got = run("round-trip", pool);
            println!("| {r} | round trip p50 (µs) | {pool} | {:.1} |", got[0]);
            println!("| {r} | round trip p99 (µs) | {pool} | {:.1} |", got[1]);
            json.push(format!(
                "{{\"run\": {r}, \"measure\": \"round-trip\", \"pool\": \"{pool}\", \"p50_us\": {}, \"p99_us\": {}}}",
                got[0], got[1]
            ));
        }
        for pool in ["floor", "taskwarden", "threadpool", "rayon-spawn"] {
            let got = run("trickle", pool);
            println!("| {r} | trickle CPU (ms per s) | {pool} | {:.1} |", got[0]);
            json.push(format!(
                "{{\"run\": {r}, \"measure\": \"trickle\", \"pool\": \"{pool}\", \"cpu_ms\": {}}}",
                got[0]
            ));
        }
        for pool in ["taskwarden", "taskwarden-both", "rayon-join"] {
            let got = run("fork-join", pool);
            println!(
                "| {r} | fork-join sum of 1M, 1k leaves (ms) | {pool} | {:.2} |",
                got[0]
            );
            json.push(format!(
                "{{\"run\": {r}, \"measure\": \"fork-join\", \"pool\": \"{pool}\", \"ms\": {}}}",
                got[0]
            ));
        }
        let got = run("map", &rounds.to_string());
        for (pool, ms) in MAP_VARIANTS.iter().zip(got) {
            println!("| {r} | map over 20k 5us items, 2 slots (ms) | {pool} | {ms:.2} |");
            json.push(format!(
                "{{\"run\": {r}, \"measure\": \"map\", \"pool\": \"{pool}\", \"ms\": {ms}}}"
            ));
        }
    }
    let path = common::target_dir().join("latency.json");
    std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).expect("write latency.json");
    println!("written to {}", path.display());
}
