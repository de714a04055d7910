//! Stress tests of idle workers, lazy thread start, keep-alive retirement
//! and resizing: each round is a race that a lost wake-up or a thread
//! started too few would lose (a task that never starts, a rendezvous that
//! times out). Rounds: `IDLE_STRESS_ROUNDS`, else the defaults below scaled by
//! `TASKWARDEN_STRESS` (see `common::stress_factor`).
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::watchdog;
use taskwarden::TaskManager;

fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `IDLE_STRESS_ROUNDS` if set (exactly that many), else `default` scaled
/// to where the suite runs (`common::scaled`).
fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| common::scaled(default))
}

/// One producer spawns a burst, then waits for every task of it to run: no
/// other spawn can wake an idle worker meanwhile, so a lost wake-up shows as
/// a task that never starts.
fn bursts(max_tasks: usize, keep_alive: Option<Duration>, rounds: usize, seed: u64) -> usize {
    let mut b = TaskManager::builder().max_tasks(max_tasks);
    if let Some(k) = keep_alive {
        b = b.keep_alive(k);
    }
    let m = b.start().unwrap();
    let mut rng = Rng(seed);
    let mut lost = 0;
    for _ in 0..rounds {
        let n = 1 + (rng.next() % 8) as usize;
        let (tx, rx) = mpsc::channel();
        for _ in 0..n {
            let tx = tx.clone();
            m.spawn_detached(move || {
                let _ = tx.send(());
            })
            .unwrap();
            spin(rng.next() % 512);
        }
        for _ in 0..n {
            if rx.recv_timeout(Duration::from_millis(500)).is_err() {
                lost += 1;
                eprintln!("lost wake-up? stats {:?}", m.stats());
                break;
            }
        }
        // Sometimes let workers fall asleep (or time out).
        if rng.next() % 4 == 0 {
            std::thread::sleep(Duration::from_micros(rng.next() % 300));
        }
    }
    assert!(m.close().is_clean());
    lost
}

#[test]
fn bursts_no_keep_alive() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 20_000);
        let mut lost = 0;
        for (i, slots) in [2, 4, 35].into_iter().enumerate() {
            lost += bursts(slots, None, rounds, 0x9E37 + i as u64);
        }
        assert_eq!(lost, 0);
    });
}

#[test]
fn bursts_keep_alive() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 20_000);
        let mut lost = 0;
        for (i, slots) in [2, 4, 35].into_iter().enumerate() {
            for (j, ka) in [
                Duration::from_nanos(1),
                Duration::from_micros(50),
                Duration::from_millis(1),
            ]
            .into_iter()
            .enumerate()
            {
                lost += bursts(slots, Some(ka), rounds / 3, 0x1234 + (i * 3 + j) as u64);
            }
        }
        assert_eq!(lost, 0);
    });
}

/// Pre-existing race (after_enqueue only grows when no thread is alive): a
/// spawn's ensure_threads sees an idle thread W, W retires (keep_alive)
/// before the send, and the new task waits behind a busy thread though the
/// limit allows another.
#[test]
fn retire_between_ensure_threads_and_send() {
    watchdog(|| {
        let m = TaskManager::builder()
            .max_tasks(4)
            .keep_alive(Duration::from_nanos(1))
            .start()
            .unwrap();
        let iters = env("IDLE_STRESS_ROUNDS", 3_000);
        let mut stuck = 0;
        for i in 0..iters {
            let (tx, rx) = mpsc::channel::<()>();
            let b = m
                .spawn(move || rx.recv_timeout(Duration::from_millis(300)).is_ok())
                .unwrap();
            m.spawn(|| ()).unwrap().join().unwrap();
            spin(((i * 7) % 200) as u64 * 8);
            let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let st = started.clone();
            let t = m.spawn(move || {
                st.store(true, Ordering::SeqCst);
                let _ = tx.send(());
            });
            let t = t.unwrap();
            let t0 = Instant::now();
            while !started.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_millis(100) {
                std::thread::yield_now();
            }
            if !started.load(Ordering::SeqCst) {
                eprintln!("iteration {i}: T not started after 100ms: {:?}", m.stats());
            }
            if !b.join().unwrap() {
                stuck += 1;
                eprintln!("iteration {i}: task waited behind a busy thread");
            }
            t.join().unwrap();
        }
        m.close();
        assert_eq!(
            stuck, 0,
            "{stuck} of {iters} spawns waited for a busy thread"
        );
    });
}

/// L tasks that must all run at once (a rendezvous with a deadline), spawned
/// right after a churn of short tasks, so that some slots are FINISHING when
/// threads_wanted runs. Too few threads shows as a rendezvous that times out.
#[test]
fn threads_wanted_never_undercounts() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 3_000);
        let mut rng = Rng(77);
        let mut fails = 0;
        for &l in &[2usize, 3, 4] {
            let m = TaskManager::builder()
                .max_tasks(l)
                .keep_alive(Duration::from_micros(200))
                .start()
                .unwrap();
            for _ in 0..rounds / 3 {
                let k = (rng.next() % 4) as usize;
                let mut hs = Vec::new();
                for _ in 0..k {
                    hs.push(m.spawn(|| spin(200)).unwrap());
                }
                if rng.next() % 2 == 0 {
                    for h in hs.drain(..) {
                        h.join().unwrap();
                    }
                }
                spin(rng.next() % 2000);
                let met = Arc::new(AtomicUsize::new(0));
                let rendezvous: Vec<_> = (0..l)
                    .map(|_| {
                        let met = met.clone();
                        m.spawn(move || {
                            met.fetch_add(1, Ordering::SeqCst);
                            let deadline = Instant::now() + Duration::from_millis(500);
                            while met.load(Ordering::SeqCst) < l {
                                if Instant::now() > deadline {
                                    return false;
                                }
                                std::thread::yield_now();
                            }
                            true
                        })
                        .unwrap()
                    })
                    .collect();
                let ok = rendezvous.into_iter().all(|h| h.join().unwrap());
                for h in hs {
                    h.join().unwrap();
                }
                if !ok {
                    fails += 1;
                    eprintln!("rendezvous of {l} failed: {:?}", m.stats());
                }
            }
            m.close();
        }
        assert_eq!(fails, 0);
    });
}

/// Lowering the limit while idle: surplus threads retire.
#[test]
fn lowering_limit_retires_surplus() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 500);
        let mut fails = 0;
        for i in 0..rounds / 5 {
            let m = TaskManager::new(6);
            let (tx, rx) = mpsc::channel::<()>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    let rx = rx.clone();
                    m.spawn(move || {
                        let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(5));
                    })
                    .unwrap()
                })
                .collect();
            while m.stats().threads < 6 {
                std::thread::yield_now();
            }
            // Lower while some are still running, some idle.
            for _ in 0..(i % 7) {
                let _ = tx.send(());
            }
            m.set_max_tasks(2);
            drop(tx);
            for h in hs {
                h.join().unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            while m.stats().threads > 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if m.stats().threads > 2 {
                fails += 1;
                eprintln!("surplus stayed: {:?}", m.stats());
            }
            let close_start = Instant::now();
            assert!(m.close().is_clean());
            assert!(close_start.elapsed() < Duration::from_secs(2));
        }
        assert_eq!(fails, 0);
    });
}

/// Close racing idle threads timing out and spawns.
#[test]
fn close_racing_keep_alive() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 2_000);
        let mut rng = Rng(5);
        for _ in 0..rounds {
            let m = TaskManager::builder()
                .max_tasks(1 + (rng.next() % 6) as usize)
                .keep_alive(Duration::from_micros(1 + rng.next() % 100))
                .start()
                .unwrap();
            for _ in 0..(rng.next() % 10) {
                m.spawn_detached(|| spin(100)).unwrap();
            }
            spin(rng.next() % 20_000);
            let report = m.close();
            assert!(report.is_clean(), "{report:?}");
        }
    });
}

/// Several producers, tasks that spawn and join children (helping waits
/// take messages outside the searcher count), a limit change now and then.
#[test]
fn multi_producer_nested() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 2_000);
        let m = Arc::new(TaskManager::builder().max_tasks(3).start().unwrap());
        let lost = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let (m, lost) = (m.clone(), lost.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(1000 + p);
                    for _ in 0..rounds {
                        let n = 1 + (rng.next() % 4) as usize;
                        let (tx, rx) = mpsc::channel();
                        for _ in 0..n {
                            let tx = tx.clone();
                            let inner = m.clone();
                            m.spawn_detached(move || {
                                let child = inner.spawn(|| spin(50)).unwrap();
                                child.join().unwrap();
                                let _ = tx.send(());
                            })
                            .unwrap();
                        }
                        for _ in 0..n {
                            if rx.recv_timeout(Duration::from_secs(2)).is_err() {
                                lost.fetch_add(1, Ordering::SeqCst);
                                eprintln!("producer {p}: lost: {:?}", m.stats());
                                break;
                            }
                        }
                        if rng.next() % 64 == 0 {
                            m.set_max_tasks(1 + (rng.next() % 4) as usize);
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(lost.load(Ordering::SeqCst), 0);
        assert!(m.close().is_clean());
    });
}

/// set_max_tasks lowering racing lazy thread starts: afterwards, idle, the
/// thread count should come down to the limit.
#[test]
fn lower_racing_grow() {
    watchdog(|| {
        let rounds = env("IDLE_STRESS_ROUNDS", 2_000);
        let mut over = 0;
        for i in 0..rounds {
            let m = Arc::new(TaskManager::new(4));
            let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let m2 = m.clone();
            let lower = std::thread::spawn(move || {
                spin((i % 50) as u64 * 40);
                m2.set_max_tasks(1);
            });
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let g = gate.clone();
                    m.spawn(move || {
                        while !g.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                    })
                    .unwrap()
                })
                .collect();
            lower.join().unwrap();
            gate.store(true, Ordering::SeqCst);
            for h in hs {
                h.join().unwrap();
            }
            let t0 = Instant::now();
            while m.stats().threads > 1 && t0.elapsed() < Duration::from_millis(300) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if m.stats().threads > 1 {
                over += 1;
                eprintln!("round {i}: {:?}", m.stats());
            }
            m.close();
        }
        assert_eq!(over, 0);
    });
}
