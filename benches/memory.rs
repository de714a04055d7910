//! Memory: the peak RSS of W1 (1,000,000 empty tasks, 2 slots, submit all
//! then wait) and the bytes one queued task costs, per pool. Each pool is
//! measured in a child process of its own, since peak RSS is per process.
//!
//! ```text
//! cargo bench -p taskwarden-bench --bench memory     # prints a table, writes target/memory.json
//! ```

mod common;

use std::sync::{Arc, Barrier};

use common::{Floor, Pool, RayonSpawn, RustyPool, Taskwarden, TaskwardenDetached, Threadpool};

const TASKS: usize = 1_000_000;

/// A line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes per task while `TASKS` empty tasks wait behind one busy slot.
fn queued_bytes<P: Pool>() -> f64 {
    let pool = P::new(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    pool.submit(move || {
        g.wait();
    });
    let before = status_kib("VmRSS:");
    for _ in 0..TASKS {
        pool.submit(|| ());
    }
    let after = status_kib("VmRSS:");
    gate.wait();
    pool.wait();
    pool.shutdown();
    (after.saturating_sub(before) * 1024) as f64 / TASKS as f64
}

/// Peak RSS (KiB) of one W1 run.
fn w1_peak<P: Pool>() -> u64 {
    let pool = P::new(2);
    for _ in 0..TASKS {
        pool.submit(|| ());
    }
    pool.wait();
    let peak = status_kib("VmHWM:");
    pool.shutdown();
    peak
}

fn child(name: &str, mode: &str) {
    macro_rules! measure {
        ($pool:ty) => {
            match mode {
                "queued" => println!("{}", queued_bytes::<$pool>()),
                _ => println!("{}", w1_peak::<$pool>()),
            }
        };
    }
    match name {
        "floor" => measure!(Floor),
        "taskwarden" => measure!(Taskwarden),
        "taskwarden-detached" => measure!(TaskwardenDetached),
        "threadpool" => measure!(Threadpool),
        "rusty_pool" => measure!(RustyPool),
        "rayon-spawn" => measure!(RayonSpawn),
        other => panic!("unknown pool {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        child(&args[at + 1], &args[at + 2]);
        return;
    }
    let run = |name: &str, mode: &str| -> f64 {
        common::run_child(&[name, mode]).parse().expect("a number")
    };
    let names = [
        "floor",
        "taskwarden",
        "taskwarden-detached",
        "threadpool",
        "rusty_pool",
        "rayon-spawn",
    ];
    let mut json = Vec::new();
    println!("| pool | W1 peak RSS (MiB) | bytes per queued empty task |");
    println!("| --- | ---: | ---: |");
    for name in names {
        let peak_kib = run(name, "peak");
        let queued = run(name, "queued");
        println!("| {name} | {:.1} | {queued:.0} |", peak_kib / 1024.0);
        json.push(format!(
            "{{\"pool\": \"{name}\", \"w1_peak_kib\": {peak_kib}, \"queued_task_bytes\": {queued:.1}}}"
        ));
    }
    let path = common::target_dir().join("memory.json");
    std::fs::write(&path, format!("[{}]\n", json.join(",\n"))).expect("write memory.json");
    println!("written to {}", path.display());
}
