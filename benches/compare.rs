//! Side-by-side benchmarks: taskwarden against threadpool, rayon,
//! rusty_pool, a raw crossbeam-channel pool (the floor), and
//! `std::thread::scope`, on the same workloads in one run.
//!
//! ```text
//! cargo bench -p taskwarden-bench --bench compare         # everything (a few minutes)
//! cargo bench -p taskwarden-bench --bench compare -- W1   # one workload
//! scripts/bench-report                                    # run, then print the table and draw the chart
//! ```
//!
//! Workloads (per iteration; criterion reports the median of the samples,
//! each sample on a pool of its own: see `fresh`):
//! - W1: 1,000,000 empty tasks from one producer, submit all then wait all,
//!   with 2 slots and with 35 (taskwarden's default size); for taskwarden
//!   also with every handle kept, then all joined (`taskwarden-joined`).
//! - W2: 200,000 tasks of about 1 µs of arithmetic on 2 slots.
//! - W3: 2,000 tasks that sleep 1 ms on 32 slots (ideal 62.5 ms).
//! - W4: 2, 4 and 8 producers submitting 1,000,000 empty tasks between
//!   them, 2 slots.
//! - W1c and W4c: W1 (2 and 35 slots) and W4 (2, 4 and 8 producers) with closures
//!   that capture one word. An empty closure is zero-sized: `Box::new`
//!   allocates nothing for it, so on W1 and W4 the floor and the peers make
//!   no allocation per task while taskwarden allocates its task. A closure
//!   that captures anything (nearly every real one) is allocated by every
//!   pool; these rows show the pools on that footing.
//! - W5: build a 32-slot pool, run one task, shut down.
//! - W6: taskwarden's `close_timeout(50 ms)` against a task that ignores
//!   cancellation (the report subtracts the 50 ms: the overshoot).
//! - W7: 10,000 tiny scoped tasks borrowing a slice, 2 slots, against
//!   `std::thread::scope` (one thread per task) and a rayon scope; and the
//!   same 10,000 on an existing 2-slot manager (`scoped`).
//! - W8: 100,000 empty tasks taken as they finish from a `TaskSet`, against
//!   spawn-all then join-all of `TaskHandle`s, 2 slots; and the same set fed
//!   by four threads through `SetSpawner`s while the owner takes results.
//! - W9: `map` over 200,000 items of about 1 µs, 2 slots, against rayon's
//!   `par_iter().map().collect()` and a hand-written spawn/join loop; and
//!   `try_map` collecting into `Result<Vec<_>, _>` (no slower per item).

mod common;

use std::time::{Duration, Instant};

use common::{
    busy_work, rounds_per_microsecond, Floor, Pool, RayonSpawn, RustyPool, Taskwarden,
    TaskwardenDetached, Threadpool,
};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(elements));
    group
}

/// A new pool of `slots` threads, warmed up (untimed) with a few rounds of
/// `job` so that lazily started threads are running.
///
/// Each sample gets a pool of its own: on this shared 2-core machine a
/// pool's threads can settle into a fast or a slow placement that lasts as
/// long as the pool (the same pool measured 110 or 300 ns per task from one
/// run to the next), and a fresh pool per sample makes the median one over
/// placements rather than one placement's.
fn fresh<P: Pool>(slots: usize, job: impl Fn() + Copy + Send + 'static) -> P {
    let pool = P::new(slots);
    for _ in 0..4 * slots {
        pool.submit(job);
    }
    pool.wait();
    pool
}

/// One producer submits `n` copies of `job`, then waits for all.
fn submit_all<P: Pool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    slots: usize,
    n: u64,
    job: impl Fn() + Copy + Send + 'static,
) {
    group.bench_function(P::NAME, |b| {
        b.iter_custom(|iters| {
            let pool = fresh::<P>(slots, job);
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..n {
                    pool.submit(job);
                }
                pool.wait();
            }
            let elapsed = start.elapsed();
            pool.shutdown();
            elapsed
        })
    });
}

/// rayon's scope: the natural way to submit a batch and wait for it.
fn rayon_scope(
    group: &mut BenchmarkGroup<'_, WallTime>,
    slots: usize,
    n: u64,
    job: impl Fn() + Copy + Send + Sync,
) {
    group.bench_function("rayon-scope", |b| {
        b.iter_custom(|iters| {
            // A pool per sample, as `fresh` (rayon starts its threads at once).
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(slots)
                .build()
                .unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                pool.scope(|s| {
                    for _ in 0..n {
                        s.spawn(move |_| job());
                    }
                });
            }
            start.elapsed()
        })
    });
}

/// taskwarden with every handle kept: spawn all, then join all.
fn spawn_then_join_all(
    group: &mut BenchmarkGroup<'_, WallTime>,
    slots: usize,
    n: u64,
    job: impl Fn() + Copy + Send + 'static,
) {
    group.bench_function("taskwarden-joined", |b| {
        b.iter_custom(|iters| {
            let pool = fresh::<Taskwarden>(slots, job);
            let manager = &pool.0;
            let start = Instant::now();
            for _ in 0..iters {
                let handles: Vec<_> = (0..n).map(|_| manager.spawn(job).expect("open")).collect();
                for handle in handles {
                    handle.join().expect("an empty task");
                }
            }
            let elapsed = start.elapsed();
            pool.shutdown();
            elapsed
        })
    });
}

fn every_pool(
    c: &mut Criterion,
    name: &str,
    slots: usize,
    n: u64,
    job: impl Fn() + Copy + Send + Sync + 'static,
) {
    let mut group = group(c, name, n);
    submit_all::<Floor>(&mut group, slots, n, job);
    submit_all::<Taskwarden>(&mut group, slots, n, job);
    submit_all::<TaskwardenDetached>(&mut group, slots, n, job);
    spawn_then_join_all(&mut group, slots, n, job);
    submit_all::<Threadpool>(&mut group, slots, n, job);
    submit_all::<RustyPool>(&mut group, slots, n, job);
    submit_all::<RayonSpawn>(&mut group, slots, n, job);
    rayon_scope(&mut group, slots, n, job);
    group.finish();
}

fn w1_empty_tasks(c: &mut Criterion) {
    every_pool(c, "W1 1M empty tasks, 2 slots", 2, 1_000_000, || ());
    every_pool(c, "W1 1M empty tasks, 35 slots", 35, 1_000_000, || ());
}

fn w2_microsecond_tasks(c: &mut Criterion) {
    let rounds = rounds_per_microsecond();
    every_pool(c, "W2 200k 1us tasks, 2 slots", 2, 200_000, move || {
        busy_work(rounds);
    });
}

fn w3_sleeping_tasks(c: &mut Criterion) {
    every_pool(c, "W3 2000 1ms sleeps, 32 slots", 32, 2_000, || {
        std::thread::sleep(Duration::from_millis(1))
    });
}

fn producers<P: Pool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    producers: u64,
    total: u64,
    job: impl Fn() + Copy + Send + Sync + 'static,
) {
    let per_producer = total / producers;
    group.bench_function(P::NAME, |b| {
        b.iter_custom(|iters| {
            let pool = fresh::<P>(2, job);
            let start = Instant::now();
            for _ in 0..iters {
                std::thread::scope(|s| {
                    for _ in 0..producers {
                        s.spawn(|| {
                            for _ in 0..per_producer {
                                pool.submit(job);
                            }
                        });
                    }
                });
                pool.wait();
            }
            let elapsed = start.elapsed();
            pool.shutdown();
            elapsed
        })
    });
}

/// Every pool on `name`: `count` producers submit `total` copies of `job`.
fn every_pool_producers(
    c: &mut Criterion,
    name: &str,
    count: u64,
    total: u64,
    job: impl Fn() + Copy + Send + Sync + 'static,
) {
    let mut group = group(c, name, total);
    producers::<Floor>(&mut group, count, total, job);
    producers::<Taskwarden>(&mut group, count, total, job);
    producers::<TaskwardenDetached>(&mut group, count, total, job);
    producers::<Threadpool>(&mut group, count, total, job);
    producers::<RustyPool>(&mut group, count, total, job);
    producers::<RayonSpawn>(&mut group, count, total, job);
    group.finish();
}

fn w4_many_producers(c: &mut Criterion) {
    for count in [2, 4, 8] {
        let name = format!("W4 1M empty tasks, {count} producers, 2 slots");
        every_pool_producers(c, &name, count, 1_000_000, || ());
    }
}

/// A closure that captures one word (see W1c and W4c in the module docs).
fn one_word_job() -> impl Fn() + Copy + Send + Sync + 'static {
    let word = std::hint::black_box(7_u64);
    move || {
        std::hint::black_box(word);
    }
}

fn w1c_w4c_one_word_tasks(c: &mut Criterion) {
    every_pool(
        c,
        "W1c 1M one-word tasks, 2 slots",
        2,
        1_000_000,
        one_word_job(),
    );
    every_pool(
        c,
        "W1c 1M one-word tasks, 35 slots",
        35,
        1_000_000,
        one_word_job(),
    );
    for count in [2, 4, 8] {
        let name = format!("W4c 1M one-word tasks, {count} producers, 2 slots");
        every_pool_producers(c, &name, count, 1_000_000, one_word_job());
    }
}

fn lifecycle<P: Pool>(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function(P::NAME, |b| {
        b.iter(|| {
            let pool = P::new(32);
            pool.submit(|| ());
            pool.wait();
            pool.shutdown();
        })
    });
}

fn w5_lifecycle(c: &mut Criterion) {
    let mut group = group(c, "W5 build 32 slots, one task, shut down", 1);
    group.sampling_mode(SamplingMode::Auto);
    lifecycle::<Floor>(&mut group);
    lifecycle::<Taskwarden>(&mut group);
    lifecycle::<TaskwardenDetached>(&mut group);
    lifecycle::<Threadpool>(&mut group);
    lifecycle::<RustyPool>(&mut group);
    lifecycle::<RayonSpawn>(&mut group);
    group.finish();
}

fn w6_close_deadline(c: &mut Criterion) {
    let mut group = group(c, "W6 close_timeout 50ms with a stubborn task", 1);
    group.bench_function("taskwarden", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let manager = taskwarden::TaskManager::new(2);
                let started = std::sync::Arc::new(std::sync::Barrier::new(2));
                let s = started.clone();
                manager
                    .spawn(move || {
                        s.wait();
                        std::thread::sleep(Duration::from_millis(80)); // ignores cancellation
                    })
                    .ok()
                    .unwrap();
                started.wait();
                let start = Instant::now();
                let report = manager.close_timeout(Duration::from_millis(50));
                total += start.elapsed();
                assert_eq!(report.abandoned.len(), 1);
            }
            total
        })
    });
    group.finish();
}

fn w7_scoped(c: &mut Criterion) {
    let data: Vec<u64> = (0..100_000).collect();
    let tasks = 10_000;
    let chunk = data.len() / tasks;
    let mut group = group(c, "W7 10k scoped tasks borrowing a slice", tasks as u64);
    group.bench_function("taskwarden-scope", |b| {
        b.iter(|| {
            taskwarden::TaskManager::scope(2, |s| {
                for part in data.chunks(chunk) {
                    s.spawn(move || part.iter().sum::<u64>());
                }
            })
        })
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    group.bench_function("rayon-scope", |b| {
        b.iter(|| {
            pool.scope(|s| {
                for part in data.chunks(chunk) {
                    s.spawn(move |_| {
                        std::hint::black_box(part.iter().sum::<u64>());
                    });
                }
            })
        })
    });
    let manager = taskwarden::TaskManager::new(2);
    group.bench_function("taskwarden-scoped-on-manager", |b| {
        b.iter(|| {
            manager.scoped(|s| {
                for part in data.chunks(chunk) {
                    s.spawn(move || part.iter().sum::<u64>());
                }
            })
        })
    });
    group.bench_function("std-thread-scope", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for part in data.chunks(chunk) {
                    s.spawn(move || part.iter().sum::<u64>());
                }
            })
        })
    });
    group.finish();
}

fn w8_task_set(c: &mut Criterion) {
    let tasks = 100_000;
    let mut group = group(
        c,
        "W8 100k empty tasks, results as they finish, 2 slots",
        tasks,
    );
    let manager = taskwarden::TaskManager::new(2);
    group.bench_function("taskwarden-handles", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..tasks)
                .map(|n| manager.spawn(move || n).unwrap())
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .fold(0, u64::wrapping_add)
        })
    });
    group.bench_function("taskwarden-task-set", |b| {
        b.iter(|| {
            let mut set = manager.task_set();
            for n in 0..tasks {
                set.spawn(move || n).unwrap();
            }
            let mut total = 0_u64;
            while let Some((_, result)) = set.join_next() {
                total = total.wrapping_add(result.unwrap());
            }
            total
        })
    });
    group.bench_function("taskwarden-task-set-4-feeders", |b| {
        b.iter(|| {
            let mut set = manager.task_set();
            std::thread::scope(|s| {
                for feeder in 0..4_u64 {
                    let spawner = set.spawner();
                    s.spawn(move || {
                        for n in (feeder..tasks).step_by(4) {
                            spawner.spawn(move || n).unwrap();
                        }
                    });
                }
                let mut total = 0_u64;
                while let Some((_, result)) = set.join_next() {
                    total = total.wrapping_add(result.unwrap());
                }
                total
            })
        })
    });
    group.finish();
}

fn w9_map(c: &mut Criterion) {
    use rayon::prelude::*;
    let items = 200_000_u64;
    let rounds = rounds_per_microsecond();
    let work = move |n: u64| busy_work(rounds) ^ n;
    let mut group = group(c, "W9 map over 200k 1us items, 2 slots", items);
    let manager = taskwarden::TaskManager::new(2);
    group.bench_function("taskwarden-map", |b| {
        b.iter(|| {
            manager
                .map(0..items, work)
                .map(Result::unwrap)
                .collect::<Vec<u64>>()
        })
    });
    group.bench_function("taskwarden-try-map", |b| {
        b.iter(|| {
            manager
                .try_map(0..items, move |n| Ok::<u64, taskwarden::TaskError>(work(n)))
                .collect::<Result<Vec<u64>, _>>()
                .unwrap()
        })
    });
    group.bench_function("taskwarden-map-unordered", |b| {
        b.iter(|| {
            manager
                .map_unordered(0..items, work)
                .map(|(_, r)| r.unwrap())
                .fold(0, u64::wrapping_add)
        })
    });
    group.bench_function("taskwarden-spawn-join-loop", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..items)
                .map(|n| manager.spawn(move || work(n)).unwrap())
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<u64>>()
        })
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    group.bench_function("rayon-par-iter", |b| {
        b.iter(|| pool.install(|| (0..items).into_par_iter().map(work).collect::<Vec<u64>>()))
    });
    group.finish();
}

criterion_group!(
    benches,
    w1_empty_tasks,
    w2_microsecond_tasks,
    w3_sleeping_tasks,
    w4_many_producers,
    w1c_w4c_one_word_tasks,
    w5_lifecycle,
    w6_close_deadline,
    w7_scoped,
    w8_task_set,
    w9_map
);
criterion_main!(benches);
