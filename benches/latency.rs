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
//!   leaves (spawn one half, compute the other, join), on 2 threads, against
//!   `rayon::join`: the median of 30 runs.
//!
//! ```text
//! cargo bench -p taskwarden-bench --bench latency   # a table, and target/latency.json
//! ```

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Floor, Pool, RayonSpawn, Threadpool};

const ROUND_TRIPS: usize = 20_000;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1e3
}

/// p50 and p99 (µs) of one spawn-and-wait, back to back.
fn round_trips(mut one: impl FnMut(u64) -> u64) -> (f64, f64) {
    for n in 0..1_000 {
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
            _ => rayon_pool.install(|| rayon_sum(&data)),
        };
        runs.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(sum, expected);
    }
    runs.drain(..3); // warm-up
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
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
    let run = |what: &str, pool: &str| -> Vec<f64> {
        common::run_child(&[what, pool])
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect()
    };
    let mut json = Vec::new();
    println!("| measure | pool | value |");
    println!("| --- | --- | ---: |");
    for pool in ["floor", "taskwarden", "threadpool", "rayon-spawn"] {
        let got = run("round-trip", pool);
        println!("| round trip p50 (µs) | {pool} | {:.1} |", got[0]);
        println!("| round trip p99 (µs) | {pool} | {:.1} |", got[1]);
        json.push(format!(
            "{{\"measure\": \"round-trip\", \"pool\": \"{pool}\", \"p50_us\": {}, \"p99_us\": {}}}",
            got[0], got[1]
        ));
    }
    for pool in ["floor", "taskwarden", "threadpool", "rayon-spawn"] {
        let got = run("trickle", pool);
        println!("| trickle CPU (ms per s) | {pool} | {:.1} |", got[0]);
        json.push(format!(
            "{{\"measure\": \"trickle\", \"pool\": \"{pool}\", \"cpu_ms\": {}}}",
            got[0]
        ));
    }
    for pool in ["taskwarden", "rayon-join"] {
        let got = run("fork-join", pool);
        println!(
            "| fork-join sum of 1M, 1k leaves (ms) | {pool} | {:.2} |",
            got[0]
        );
        json.push(format!(
            "{{\"measure\": \"fork-join\", \"pool\": \"{pool}\", \"ms\": {}}}",
            got[0]
        ));
    }
    let path = common::target_dir().join("latency.json");
    std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).expect("write latency.json");
    println!("written to {}", path.display());
}
