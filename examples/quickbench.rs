use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

struct Latch { pending: AtomicUsize, lock: Mutex<()>, cv: Condvar }
impl Latch {
    fn add(&self) { self.pending.fetch_add(1, Ordering::SeqCst); }
    fn done(&self) { if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 { let _g = self.lock.lock().unwrap(); self.cv.notify_all(); } }
    fn wait(&self) { let mut g = self.lock.lock().unwrap(); while self.pending.load(Ordering::SeqCst) != 0 { g = self.cv.wait(g).unwrap(); } }
}

fn main() {
    let n = 1_000_000;
    let slots: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(2);
    for _ in 0..3 {
        // floor
        let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        let latch = Arc::new(Latch { pending: AtomicUsize::new(0), lock: Mutex::new(()), cv: Condvar::new() });
        let threads: Vec<_> = (0..slots).map(|_| { let rx = rx.clone(); std::thread::spawn(move || { while let Ok(job) = rx.recv() { job() } }) }).collect();
        let t = Instant::now();
        for _ in 0..n { let l = latch.clone(); latch.add(); tx.send(Box::new(move || l.done())).unwrap(); }
        latch.wait();
        let floor = t.elapsed();
        drop(tx); for th in threads { th.join().unwrap(); }

        let m = taskwarden::TaskManager::new(slots);
        m.spawn(|| ()).unwrap().join().unwrap();
        let t = Instant::now();
        for _ in 0..n { drop(m.spawn(|| ()).unwrap()); }
        m.drain();
        let tw = t.elapsed();

        let p = threadpool::ThreadPool::new(slots);
        let t = Instant::now();
        for _ in 0..n { p.execute(|| ()); }
        p.join();
        let tp = t.elapsed();
        println!("slots {slots}: floor {:.0} ns/task, taskwarden {:.0} ns/task, threadpool {:.0} ns/task", floor.as_nanos() as f64 / n as f64, tw.as_nanos() as f64 / n as f64, tp.as_nanos() as f64/ n as f64);
    }
}
