//! A quick, rotated A/B run of the hot-path workloads, for profiling and
//! for comparing two builds between criterion runs (not a benchmark of
//! record: `cargo bench` is).
//!
//! ```text
//! cargo run --release -p taskwarden-bench --example hotpath -- w4 5
//! perf record -g target/release/examples/hotpath w4-tw 20
//! ```
//!
//! Workloads: `w1` (1M empty tasks, one producer, 2 slots), `w1-35` (the
//! same on 35 slots; `w1-256` on 256), `w4` (2 producers x 500k, 2 slots),
//! `w4-8` (8 producers); a `-tw` suffix runs taskwarden-detached alone (for
//! `perf`), `-twh` taskwarden with handles, `-twj` with handles kept then
//! joined, `-floor` the floor alone; a `c` after the name (`w1c`, `w4c-tw`)
//! makes each closure capture one word, so that every pool allocates per
//! task. `w2` runs W2's taskwarden-detached side alone, `w8-set` W8's task
//! set (`w8-feeders`: fed by four threads through `SetSpawner`s); `w9-map`,
//! `w9-try` (`try_map`), `w9-unordered` and `w9-loop` W9's `map`, `map_unordered`
//! and spawn/join loop (`-empty` after them: items that do no work).

#[path = "../common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Floor, Pool, RustyPool, Taskwarden, TaskwardenDetached};

/// Submits `total` tasks from `producers` threads and waits for them. With
/// `capture`, each closure captures one word (so that the floor's `Box`
/// allocates too, as it does for any closure that is not empty).
fn run<P: Pool>(pool: &P, producers: usize, total: u64, capture: bool) -> f64 {
    let per_producer = total / producers as u64;
    let submit_all = || {
        for i in 0..per_producer {
            if capture {
                pool.submit(move || {
                    std::hint::black_box(i);
                });
            } else {
                pool.submit(|| ());
            }
        }
    };
    let start = Instant::now();
    if producers == 1 {
        submit_all();
    } else {
        std::thread::scope(|s| {
            for _ in 0..producers {
                s.spawn(submit_all);
            }
        });
    }
    pool.wait();
    start.elapsed().as_nanos() as f64 / (per_producer * producers as u64) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "w1".into());
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("rounds"));
    if let Some(kind) = workload.strip_prefix("w9-") {
        // W9's taskwarden side alone: 200k items of about 1 µs on 2 slots,
        // by `map` (in input order), `map_unordered`, or a spawn/join loop.
        let manager = taskwarden::TaskManager::new(2);
        // `-empty` after the variant: items that do no work (the overhead alone).
        let (kind, rounds_per_us) = match kind.strip_suffix("-empty") {
            Some(kind) => (kind, 0),
            None => (kind, common::rounds_per_microsecond()),
        };
        let work = move |n: u64| common::busy_work(rounds_per_us) ^ n;
        let items = 200_000_u64;
        for _ in 0..rounds {
            let start = Instant::now();
            let total = match kind {
                "map" => manager
                    .map(0..items, work)
                    .map(Result::unwrap)
                    .fold(0, u64::wrapping_add),
                "try" => manager
                    .try_map(0..items, move |n| Ok::<u64, taskwarden::TaskError>(work(n)))
                    .map(Result::unwrap)
                    .fold(0, u64::wrapping_add),
                "unordered" => manager
                    .map_unordered(0..items, work)
                    .map(|(_, result)| result.unwrap())
                    .fold(0, u64::wrapping_add),
                "loop" => {
                    let handles: Vec<_> = (0..items)
                        .map(|n| manager.spawn(move || work(n)).expect("open"))
                        .collect();
                    handles
                        .into_iter()
                        .map(|handle| handle.join().unwrap())
                        .fold(0, u64::wrapping_add)
                }
                other => panic!("unknown W9 variant {other}"),
            };
            std::hint::black_box(total);
            println!(
                "w9-{kind:9} {:7.1} ns/item",
                start.elapsed().as_nanos() as f64 / items as f64
            );
        }
        return;
    }
    if workload == "w2" {
        // W2's taskwarden-detached side alone: 200k tasks of about 1 µs.
        let rounds_per_us = common::rounds_per_microsecond();
        let pool = TaskwardenDetached::new(2);
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..200_000 {
                pool.submit(move || {
                    common::busy_work(rounds_per_us);
                });
            }
            pool.wait();
            println!("w2 {:7.1} ns/task", start.elapsed().as_nanos() as f64 / 2e5);
        }
        return;
    }
    if workload == "w8-feeders" {
        // W8 fed by four threads through SetSpawners while this one takes
        // the results: 100k empty tasks.
        let manager = taskwarden::TaskManager::new(2);
        for _ in 0..rounds {
            let start = Instant::now();
            let mut set = manager.task_set();
            std::thread::scope(|s| {
                for feeder in 0..4_u64 {
                    let spawner = set.spawner();
                    s.spawn(move || {
                        for _ in (feeder..100_000).step_by(4) {
                            spawner.spawn(|| ()).expect("open");
                        }
                    });
                }
                while let Some((_, result)) = set.join_next() {
                    result.expect("an empty task");
                }
            });
            println!(
                "w8-feeders {:7.1} ns/task",
                start.elapsed().as_nanos() as f64 / 1e5
            );
        }
        return;
    }
    if workload == "w8-set" {
        // W8's TaskSet side alone: 100k empty tasks, results as they finish.
        let manager = taskwarden::TaskManager::new(2);
        for _ in 0..rounds {
            let start = Instant::now();
            let mut set = manager.task_set();
            for _ in 0..100_000 {
                set.spawn(|| ()).expect("open");
            }
            while let Some((_, result)) = set.join_next() {
                result.expect("an empty task");
            }
            println!(
                "w8-set {:7.1} ns/result",
                start.elapsed().as_nanos() as f64 / 1e5
            );
        }
        return;
    }
    // 0: every pool; 1: taskwarden-detached alone; 2: taskwarden alone;
    // 3: taskwarden with every handle kept, then joined.
    let (name, alone) = if let Some(name) = workload.strip_suffix("-floor") {
        (name.to_owned(), 4)
    } else if let Some(name) = workload.strip_suffix("-twj") {
        (name.to_owned(), 3)
    } else if let Some(name) = workload.strip_suffix("-twh") {
        (name.to_owned(), 2)
    } else if let Some(name) = workload.strip_suffix("-tw") {
        (name.to_owned(), 1)
    } else {
        (workload.clone(), 0)
    };
    // A `c` suffix on the name (`w1c`, `w4c`): each closure captures a word.
    let (name, capture) = match name.strip_suffix('c') {
        Some(name) => (name.to_owned(), true),
        None => (name, false),
    };
    let (slots, producers) = match name.as_str() {
        "w1" => (2, 1),
        "w1-35" => (35, 1),
        "w1-256" => (256, 1),
        "w4" => (2, 2),
        "w4-4" => (2, 4),
        "w4-8" => (2, 8),
        other => panic!("unknown workload {other}"),
    };
    let total = 1_000_000;
    let floor = Floor::new(slots);
    let detached = TaskwardenDetached::new(slots);
    let handles = Taskwarden::new(slots);
    let rusty = RustyPool::new(slots);
    let mut times: Vec<(&str, Vec<f64>)> = vec![
        ("floor", vec![]),
        ("taskwarden-detached", vec![]),
        ("taskwarden", vec![]),
        ("rusty_pool", vec![]),
    ];
    for _ in 0..rounds {
        if alone == 1 {
            times[1].1.push(run(&detached, producers, total, capture));
            continue;
        }
        if alone == 3 {
            let start = Instant::now();
            let handles: Vec<_> = (0..total)
                .map(|_| handles.0.spawn(|| ()).expect("open"))
                .collect();
            for handle in handles {
                handle.join().expect("an empty task");
            }
            times[2]
                .1
                .push(start.elapsed().as_nanos() as f64 / total as f64);
            continue;
        }
        if alone == 4 {
            times[0].1.push(run(&floor, producers, total, capture));
            continue;
        }
        if alone == 2 {
            times[2].1.push(run(&handles, producers, total, capture));
            continue;
        }
        times[0].1.push(run(&floor, producers, total, capture));
        times[1].1.push(run(&detached, producers, total, capture));
        times[2].1.push(run(&handles, producers, total, capture));
        times[3].1.push(run(&rusty, producers, total, capture));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    // NaN when the floor was not run (`median` of nothing).
    let floor_ns = median(&mut times[0].1);
    for (pool, samples) in &mut times {
        if samples.is_empty() {
            continue;
        }
        let ns = median(samples);
        println!(
            "{workload:8} {pool:20} {ns:7.1} ns/task  {:5.2}x floor",
            ns / floor_ns
        );
    }
}
