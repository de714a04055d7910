use std::time::Instant;
fn main() {
    let slots: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(32);
    let m = taskwarden::TaskManager::new(slots);
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..1_000_000 {
            m.spawn_detached(|| ()).unwrap();
        }
        m.drain();
        println!("{:.0} ns/task", t.elapsed().as_nanos() as f64 / 1e6);
    }
}
