//! A bounded queue pushing back on a fast producer: `spawn` blocks while the
//! queue is full, `try_spawn` says so and hands the closure back.
//!
//! ```text
//! cargo run --example bounded
//! ```

use std::time::{Duration, Instant};

use taskwarden::TaskManager;

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let manager = TaskManager::builder()
        .max_tasks(2)
        .queue_capacity(4)
        .start()
        .expect("valid settings");

    // try_spawn: never blocks; a full queue returns the closure.
    let mut refused = 0;
    for n in 0..20 {
        if let Err(full) =
            manager.try_spawn(move || std::thread::sleep(Duration::from_millis(20 + n)))
        {
            assert!(full.is_full());
            refused += 1;
            let _retry_later = full.into_inner(); // nothing is lost: it is ours again
        }
    }
    println!("try_spawn: {refused} of 20 refused while the queue was full");
    manager.drain();

    // spawn: blocks the producer until there is room.
    let start = Instant::now();
    let mut most_queued = 0;
    for _ in 0..40 {
        manager
            .spawn(|| std::thread::sleep(Duration::from_millis(10)))
            .expect("open");
        most_queued = most_queued.max(manager.stats().queued);
    }
    println!(
        "spawn: 40 tasks of 10 ms submitted in {:?}, never more than {most_queued} queued (capacity 4)",
        start.elapsed()
    );
    manager.drain();
    println!("stats: {:?}", manager.stats());
}
