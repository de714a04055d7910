//! Build a manager by hand, spawn, close, and print the close report.
//!
//! ```text
//! cargo run --example manual
//! ```

use std::time::Duration;

use taskwarden::TaskManager;

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let manager = TaskManager::builder()
        .max_tasks(4)
        .close_timeout(Duration::from_millis(300))
        .thread_name("manual")
        .start()
        .expect("valid settings");

    let quick: Vec<_> = (1..=6)
        .map(|n| manager.spawn(move || n * n).expect("open"))
        .collect();
    // One task that outlives the deadline, checking for cancellation.
    let slow = manager
        .spawn(|| {
            let mut waited = Duration::ZERO;
            while !taskwarden::is_cancelled() && waited < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
                waited += Duration::from_millis(10);
            }
            format!(
                "stopped after {waited:?} (cancelled: {})",
                taskwarden::is_cancelled()
            )
        })
        .expect("open");

    let squares: Vec<i32> = quick
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    println!("squares: {squares:?}");
    println!("stats before close: {:?}", manager.stats());

    let report = manager.close();
    println!("close report: {report:#?}");
    println!(
        "slow task: {}",
        slow.join().expect("it returns once cancelled")
    );
    println!("stats after close: {:?}", manager.stats());
    match manager.spawn(|| ()) {
        Ok(_) => unreachable!("a closed manager accepts nothing"),
        Err(error) => println!("spawn after close: {error}"),
    }
}
