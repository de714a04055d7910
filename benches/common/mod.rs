//! The pools compared in `benches/compare.rs` and `benches/memory.rs`, each
//! behind one small trait, and the raw floor: N threads pulling boxed
//! closures from an unbounded crossbeam channel with a completion counter.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A pool that runs `'static` jobs: submit many, then wait for all.
pub trait Pool: Sync {
    const NAME: &'static str;
    fn new(threads: usize) -> Self;
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F);
    fn wait(&self);
    /// Shuts the pool down and waits for its threads (W5).
    fn shutdown(self);
}

/// `spawn`, dropping the handle (the task is detached).
pub struct Taskwarden(pub taskwarden::TaskManager);

impl Pool for Taskwarden {
    const NAME: &'static str = "taskwarden";
    fn new(threads: usize) -> Self {
        Taskwarden(taskwarden::TaskManager::new(threads))
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        // The handle is dropped: the task is detached, like the others' jobs.
        drop(self.0.spawn(job).expect("open"));
    }
    fn wait(&self) {
        self.0.drain();
    }
    fn shutdown(self) {
        self.0.close();
    }
}

/// `spawn_detached`: no handle at all, like the peers' `execute`.
pub struct TaskwardenDetached(pub taskwarden::TaskManager);

impl Pool for TaskwardenDetached {
    const NAME: &'static str = "taskwarden-detached";
    fn new(threads: usize) -> Self {
        TaskwardenDetached(taskwarden::TaskManager::new(threads))
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0.spawn_detached(job).expect("open");
    }
    fn wait(&self) {
        self.0.drain();
    }
    fn shutdown(self) {
        self.0.close();
    }
}

pub struct Threadpool(threadpool::ThreadPool);

impl Pool for Threadpool {
    const NAME: &'static str = "threadpool";
    fn new(threads: usize) -> Self {
        Threadpool(threadpool::ThreadPool::new(threads))
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0.execute(job);
    }
    fn wait(&self) {
        self.0.join();
    }
    fn shutdown(self) {
        self.0.join();
    }
}

pub struct RustyPool(rusty_pool::ThreadPool);

impl Pool for RustyPool {
    const NAME: &'static str = "rusty_pool";
    fn new(threads: usize) -> Self {
        RustyPool(rusty_pool::ThreadPool::new(
            threads,
            threads,
            std::time::Duration::from_secs(60),
        ))
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.0.execute(job);
    }
    fn wait(&self) {
        self.0.join();
    }
    fn shutdown(self) {
        self.0.shutdown_join();
    }
}

/// Counts outstanding jobs; `wait` sleeps until none is left.
#[derive(Default)]
pub struct Latch {
    pending: AtomicUsize,
    lock: Mutex<()>,
    zero: Condvar,
}

impl Latch {
    pub fn add(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }
    pub fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _guard = self.lock.lock().unwrap();
            self.zero.notify_all();
        }
    }
    pub fn wait(&self) {
        let mut guard = self.lock.lock().unwrap();
        while self.pending.load(Ordering::SeqCst) != 0 {
            guard = self.zero.wait(guard).unwrap();
        }
    }
}

/// rayon's `ThreadPool::spawn`, with a completion latch.
pub struct RayonSpawn {
    pool: rayon::ThreadPool,
    latch: Arc<Latch>,
}

impl Pool for RayonSpawn {
    const NAME: &'static str = "rayon-spawn";
    fn new(threads: usize) -> Self {
        RayonSpawn {
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap(),
            latch: Arc::default(),
        }
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.latch.add();
        let latch = Arc::clone(&self.latch);
        self.pool.spawn(move || {
            job();
            latch.done();
        });
    }
    fn wait(&self) {
        self.latch.wait();
    }
    fn shutdown(self) {
        drop(self.pool);
    }
}

type Boxed = Box<dyn FnOnce() + Send>;

/// The floor: what a bare channel of boxed closures costs.
pub struct Floor {
    sender: Option<crossbeam_channel::Sender<Boxed>>,
    latch: Arc<Latch>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool for Floor {
    const NAME: &'static str = "floor (raw channel)";
    fn new(threads: usize) -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded::<Boxed>();
        let latch = Arc::new(Latch::default());
        let threads = (0..threads)
            .map(|_| {
                let (receiver, latch) = (receiver.clone(), Arc::clone(&latch));
                std::thread::spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        job();
                        latch.done();
                    }
                })
            })
            .collect();
        Floor {
            sender: Some(sender),
            latch,
            threads,
        }
    }
    fn submit<F: FnOnce() + Send + 'static>(&self, job: F) {
        self.latch.add();
        self.sender.as_ref().unwrap().send(Box::new(job)).unwrap();
    }
    fn wait(&self) {
        self.latch.wait();
    }
    fn shutdown(mut self) {
        self.sender = None;
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
    }
}

/// About one microsecond of arithmetic that the optimiser cannot remove.
pub fn busy_work(rounds: u64) -> u64 {
    let mut x = std::hint::black_box(0x9E37_79B9_u64);
    for i in 0..rounds {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// How many `busy_work` rounds take about one microsecond on this machine.
pub fn rounds_per_microsecond() -> u64 {
    let rounds = 1_000_000;
    let start = std::time::Instant::now();
    busy_work(rounds);
    let nanos = start.elapsed().as_nanos().max(1) as u64;
    (rounds * 1_000 / nanos).max(1)
}

/// Runs this bench binary again as a child (`--child ARGS..`) and returns
/// what it printed: for measures that are per process (peak RSS, CPU time),
/// each pool gets a process of its own.
#[allow(dead_code)] // not every bench measures per process
pub fn run_child(args: &[&str]) -> String {
    let me = std::env::current_exe().expect("own path");
    let output = std::process::Command::new(me)
        .arg("--child")
        .args(args)
        .output()
        .expect("child runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Where a bench writes its JSON: the workspace's target dir. Cargo runs a
/// bench in its package's directory (benches/), where a relative "target"
/// would be benches/target.
#[allow(dead_code)]
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}
