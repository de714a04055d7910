//! The Python original's own example: ten tasks, at most three at a time,
//! each sleeps a moment and prints `Done n`.
//!
//! ```text
//! cargo run --example basic
//! ```

use std::time::Duration;

use taskwarden::TaskManager;

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let manager = TaskManager::builder()
        .max_tasks(3)
        .close_timeout(Duration::from_secs(10))
        .start()
        .expect("valid settings");
    for n in 0..10 {
        manager
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                println!("Done {n}");
            })
            .expect("the manager is open");
    }
    // Like leaving Python's `async with`: wait for the work, then close.
    let report = manager.close();
    println!("closed: {report}");
}
