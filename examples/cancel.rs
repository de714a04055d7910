//! Cooperative cancellation: a long task stopped by its handle, and a queued
//! task cancelled by id before it ever starts.
//!
//! ```text
//! cargo run --example cancel
//! ```

use std::time::{Duration, Instant};

use taskwarden::{TaskError, TaskManager};

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let manager = TaskManager::new(1);

    let long = manager
        .spawn(|| {
            let start = Instant::now();
            let mut rounds = 0_u64;
            while !taskwarden::is_cancelled() {
                rounds += 1; // a unit of work
                std::thread::sleep(Duration::from_millis(5));
            }
            format!(
                "long task stopped cooperatively after {rounds} rounds in {:?}",
                start.elapsed()
            )
        })
        .expect("open");
    let queued = manager.spawn(|| "this never prints").expect("open");

    while manager.running().is_empty() {
        std::thread::yield_now();
    }
    println!(
        "running: {:?}, queued: {}",
        manager.running(),
        manager.stats().queued
    );

    println!(
        "cancel {} by id: was live = {}",
        queued.id(),
        manager.cancel(queued.id())
    );
    assert_eq!(queued.join(), Err(TaskError::Cancelled));
    println!("the queued task never ran: join gave Cancelled");

    std::thread::sleep(Duration::from_millis(100));
    long.cancel();
    println!("{}", long.join().expect("it returns its own value"));
    println!("stats: {:?}", manager.stats());
}
