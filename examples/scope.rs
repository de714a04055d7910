//! Process chunks of a borrowed `Vec` in a scope: no `Arc`, no `'static`.
//!
//! ```text
//! cargo run --example scope
//! ```

use taskwarden::TaskManager;

fn main() {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default()).ok();
    let readings: Vec<f64> = (0..100_000).map(|i| ((i as f64) * 0.001).sin()).collect();
    let mut stats = [(0.0_f64, f64::MIN, f64::MAX); 8];

    TaskManager::scope(4, |s| {
        let chunk = readings.len().div_ceil(stats.len());
        for (part, out) in readings.chunks(chunk).zip(stats.iter_mut()) {
            s.spawn(move || {
                let sum: f64 = part.iter().sum();
                let max = part.iter().copied().fold(f64::MIN, f64::max);
                let min = part.iter().copied().fold(f64::MAX, f64::min);
                *out = (sum / part.len() as f64, max, min);
            });
        }
    });

    for (i, (mean, max, min)) in stats.iter().enumerate() {
        println!("chunk {i}: mean {mean:+.4}, max {max:+.4}, min {min:+.4}");
    }
    let overall = stats.iter().map(|s| s.0).sum::<f64>() / stats.len() as f64;
    println!(
        "overall mean {overall:+.4} over {} readings",
        readings.len()
    );
}
