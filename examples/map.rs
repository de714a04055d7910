//! A function over an iterator, on the manager, in a bounded window:
//! Python's `Executor.map`, rayon's `par_iter().map()`.
//!
//! 1. `manager.map` checksums 10,000 items on 4 slots and yields the results
//!    in input order. An `inspect` on the input counts the items pulled: at
//!    every point at most `2 × max_tasks` = 8 are pulled but not yet yielded.
//! 2. `map_unordered` yields `(input index, result)` as the items finish.
//! 3. `manager.scoped(|s| s.map(..))` maps over slices of a local `Vec`
//!    with a closure that borrows a local threshold: nothing is `'static`.
//! 4. `try_map` parses records with a fallible function and collects
//!    straight into `Result<Vec<_>, E>`: all values in input order, or the
//!    first failure, after which what is still in flight is cancelled.
//!    `map_with` applies one `TaskOptions` (a name, a per-item timeout) to
//!    every item.
//! 5. A map over the endless input `0..` ends once another thread closes
//!    the manager with `close_now`: the items it dropped from the queue come
//!    back as `Err(Cancelled)`, the running ones with their results.
//!
//! ```text
//! cargo run --example map
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskwarden::{TaskError, TaskManager, TaskOptions};

/// A record that did not parse, or a task that failed (`try_map` turns a
/// panic or a cancel into this error with `From<TaskError>`).
#[derive(Debug)]
enum ParseFailed {
    #[allow(dead_code)] // shown with {:?}
    Record(std::num::ParseIntError),
    #[allow(dead_code)]
    Task(TaskError),
}

impl From<std::num::ParseIntError> for ParseFailed {
    fn from(error: std::num::ParseIntError) -> Self {
        ParseFailed::Record(error)
    }
}

impl From<TaskError> for ParseFailed {
    fn from(error: TaskError) -> Self {
        ParseFailed::Task(error)
    }
}

/// Small CPU work: a checksum of the item, 200 rounds of xorshift.
fn checksum(item: u64) -> u64 {
    let mut state = item.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    state
}

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let pulled = AtomicUsize::new(0);
    let manager = TaskManager::builder()
        .max_tasks(4)
        .thread_name("map")
        .start()
        .expect("valid settings");

    // 1. In input order, with the window visible.
    println!(
        "1. map over 10,000 items, max_tasks {}",
        manager.max_tasks()
    );
    let input = (0..10_000_u64).inspect(|_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    });
    let mut results = manager.map(input, checksum);
    println!(
        "   map returned: {} items pulled, 0 yielded",
        pulled.load(Ordering::Relaxed)
    );
    let mut total = 0_u64;
    let mut widest = pulled.load(Ordering::Relaxed);
    for (yielded, result) in (1..).zip(&mut results) {
        let value = result.expect("checksum never panics");
        assert_eq!(value, checksum(yielded as u64 - 1), "input order");
        total = total.wrapping_add(value);
        let pulled_now = pulled.load(Ordering::Relaxed);
        widest = widest.max(pulled_now - yielded);
        if [1, 100, 5_000].contains(&yielded) {
            println!("   {yielded:>5} yielded: {pulled_now:>5} pulled");
        }
    }
    drop(results);
    println!(
        "   10,000 yielded in input order, total {total:#018x}; at most {widest} pulled and not yet yielded (2 × max_tasks = {})",
        2 * manager.max_tasks()
    );

    // 2. As they finish, with their input index: later items are shorter.
    let order: Vec<usize> = manager
        .map_unordered(0..12_u64, |n| {
            std::thread::sleep(Duration::from_millis(5 * (12 - n)));
            n * n
        })
        .map(|(index, result)| {
            assert_eq!(result, Ok((index * index) as u64));
            index
        })
        .collect();
    println!("2. map_unordered, indices in completion order: {order:?}");

    // 3. On a scope: borrowed slices, a borrowing closure.
    let readings: Vec<u32> = (0..100_000).map(|n| n / 100).collect();
    let threshold = 900; // borrowed by the closure below
    let above: Vec<usize> = manager.scoped(|s| {
        s.map(readings.chunks(25_000), |chunk: &[u32]| {
            chunk.iter().filter(|&&r| r > threshold).count()
        })
        .map(|result| result.expect("counting never panics"))
        .collect()
    });
    println!(
        "3. scoped map over 4 borrowed chunks: readings above {threshold} per chunk {above:?}"
    );

    // 4. Fallible items: collect into Result<Vec<_>, E> directly.
    let good = ["12", "7", "30"];
    let parsed: Result<Vec<u32>, ParseFailed> = manager
        .try_map(good, |record: &str| {
            record.parse::<u32>().map_err(ParseFailed::from)
        })
        .collect();
    println!("4. try_map over {good:?}: {parsed:?}");
    let bad = ["12", "7", "x3", "30"];
    let parsed: Result<Vec<u32>, ParseFailed> = manager
        .try_map(bad, |record: &str| {
            record.parse::<u32>().map_err(ParseFailed::from)
        })
        .collect();
    println!("   try_map over {bad:?}: {parsed:?}");
    let options = TaskOptions::new()
        .name("lookup")
        .cancel_after(Duration::from_millis(50));
    let lookups: Vec<&str> = manager
        .map_with(options, [5_u64, 500, 10], |ms| {
            if taskwarden::sleep(Duration::from_millis(ms)) {
                "answered"
            } else {
                "timed out (flagged at 50 ms)"
            }
        })
        .map(|result| result.expect("lookups never panic"))
        .collect();
    println!("   map_with a 50 ms cancel_after per item: {lookups:?}");

    // 5. An endless input, stopped by a close from another thread.
    let start = Instant::now();
    let (mut done, mut cancelled) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(150));
            let report = manager.close_now(Duration::from_millis(100));
            println!(
                "   {:>3} ms  another thread: close_now: {report}, {} stopped",
                start.elapsed().as_millis(),
                report.stopped.len()
            );
        });
        for result in manager.map(0_u64.., |n| {
            std::thread::sleep(Duration::from_millis(1));
            checksum(n)
        }) {
            match result {
                Ok(_) => done += 1,
                Err(TaskError::Cancelled) => cancelled += 1,
                Err(other) => panic!("unexpected: {other}"),
            }
        }
        println!(
            "5. map over 0.. ended at {} ms: {done} results, {cancelled} cancelled",
            start.elapsed().as_millis()
        );
    });
}
