//! Helpers shared by the integration tests: a watchdog so that a hang fails
//! instead of stalling, and a gate to hold tasks at a known point.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single test may take before it counts as hung (Miri
/// interprets the code and its clock runs with the interpreter: far longer).
pub const LIMIT: Duration = Duration::from_secs(if cfg!(miri) { 3_600 } else { 60 });

/// How much of its full work a stress loop does here: 1 natively; under
/// Miri a hundredth (each round is interpreted); elsewhere what the
/// `TASKWARDEN_STRESS` variable says (a factor such as `0.1`; `scripts/tsan`
/// sets it, since ThreadSanitizer runs each round about ten times slower).
/// One place, so that no loop of the suite comes near its watchdog on a
/// slow or loaded machine.
pub fn stress_factor() -> f64 {
    if cfg!(miri) {
        return 0.01;
    }
    match std::env::var("TASKWARDEN_STRESS") {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(factor) if factor > 0.0 && factor.is_finite() => factor,
            _ => panic!("TASKWARDEN_STRESS must be a positive number such as 0.1, not {text:?}"),
        },
        Err(_) => 1.0,
    }
}

/// `n` loop rounds scaled by [`stress_factor`], never fewer than 3.
pub fn scaled(n: usize) -> usize {
    ((n as f64 * stress_factor()).round() as usize).max(3)
}

/// Runs `body` on its own thread and fails the test if it does not finish
/// within `LIMIT`. A panic in `body` is re-raised here.
pub fn watchdog<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, finished) = mpsc::channel();
    let runner = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let result = body();
            let _ = done.send(());
            result
        })
        .expect("start the test body");
    match finished.recv_timeout(LIMIT) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test hung: no result within {LIMIT:?}"),
    }
}

/// A one-way gate: tasks `wait` until someone `open`s it. Waiting has its
/// own generous limit, so a gate that is never opened fails loudly.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.inner.0.lock().unwrap() = true;
        self.inner.1.notify_all();
    }

    pub fn wait(&self) {
        let deadline = Instant::now() + LIMIT;
        let mut open = self.inner.0.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "gate never opened");
            open = self.inner.1.wait_timeout(open, left).unwrap().0;
        }
    }
}

/// Counts how many tasks run at once, and the most seen.
#[derive(Clone, Default)]
pub struct Concurrency {
    inner: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Concurrency {
    pub fn enter(&self) -> ConcurrencyGuard {
        let now = self.inner.0.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.1.fetch_max(now, Ordering::SeqCst);
        ConcurrencyGuard(self.clone())
    }

    pub fn max(&self) -> usize {
        self.inner.1.load(Ordering::SeqCst)
    }
}

pub struct ConcurrencyGuard(Concurrency);

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.0.inner.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls `condition` until it holds; fails after `LIMIT`.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// Spawns a task that holds one slot until the returned gate opens, and
/// waits until it runs.
pub fn hold_slot(manager: &taskwarden::TaskManager) -> (Gate, taskwarden::TaskHandle<()>) {
    let gate = Gate::new();
    let held = gate.clone();
    let before = manager.running().len();
    let handle = manager
        .spawn(move || held.wait())
        .expect("the manager is open");
    wait_for("the held slot", || manager.running().len() > before);
    (gate, handle)
}

/// Spawns `n` tasks that each sleep `each`, then count themselves in the
/// returned counter.
pub fn spawn_sleepers(
    manager: &taskwarden::TaskManager,
    n: usize,
    each: std::time::Duration,
) -> Arc<AtomicUsize> {
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let done = done.clone();
        manager
            .spawn(move || {
                thread::sleep(each);
                done.fetch_add(1, Ordering::SeqCst);
            })
            .expect("the manager is open");
    }
    done
}
