//! Spinning before sleeping, for idle workers (`idle`) and waits (`wait`).

use std::time::Duration;

/// How many rounds a wait spins at least before it sleeps on the gate (a
/// wait for particular tasks spins longer: `WAIT_SPIN`, `TASK_WAIT_SPIN`),
/// and an idle worker before it sleeps on the idle condvar (`idle`): most
/// waits for a short task end within a few microseconds, and a sleep and
/// wake-up costs more than that. None under loom, where every spin would
/// be a branch of the model.
pub(super) const SPIN_ROUNDS: u32 = if cfg!(loom) { 0 } else { 10 };

/// How long a thread outside the manager that waits for particular tasks
/// (a `join`, a set's `join_next`, a map's `next`) spins before it sleeps.
/// It waits for a result it wants at once, on its own core: a sleep costs
/// it a wake-up of tens of microseconds on a virtual machine, and a spawn
/// that follows at once then finds the worker asleep too. Waits inside a
/// task lend their slot instead, after `TASK_WAIT_SPIN`.
pub(super) const WAIT_SPIN: Duration = if cfg!(loom) {
    Duration::ZERO
} else {
    Duration::from_micros(50)
};

/// How long a task waiting for particular tasks (a `join`, a set's
/// `join_next`, a map's `next`, `wait_all`) spins before it lends its slot
/// and sleeps, once nothing it waits for can run on its thread. Parking
/// costs a lend, a sleep, and a wake-up of the parked thread and of the
/// thread the slot goes to: tens of microseconds on a virtual machine,
/// where a sleeping core must be woken too. Spinning about as long as a
/// park costs is the classic choice that is never worse than twice the
/// better of the two; most waits in a fork-join end within it (a recursive
/// sum on 2 slots switched threads about half as often and took about a
/// third less time: `docs/perf-notes.md`). The slot stays held while it
/// spins, so a queued task may start up to this much later. None under
/// loom.
pub(super) const TASK_WAIT_SPIN: Duration = if cfg!(loom) {
    Duration::ZERO
} else {
    Duration::from_micros(50)
};

/// One round of a spin: gives the core away (`yield_now`) rather than
/// busy-waiting on it. A pool nearly always has more threads than cores
/// (the spawner besides the workers; up to 35 workers with the default
/// `max_tasks`), and the thread a spinner waits for (the spawner that will
/// send the next task, the worker that will finish the awaited one) may be
/// waiting for that very core: a busy-wait holds it for its whole spin.
/// rayon's idle workers yield the same way. Measured in
/// `docs/perf-notes.md`.
pub(super) fn spin() {
    std::thread::yield_now();
}

/// Rounds of busy-waiting (`pause` loops of 1, 2, 4, .. 32: about 1.6 µs in
/// all on this project's machine) before the yields, for a thread that has
/// a core to itself: an idle worker when no task runs and no other worker
/// searches (`idle`), a thread outside the manager waiting for a result
/// while fewer tasks run and workers search than there are cores (`wait`).
/// A hand-over between two threads on two cores then takes a fraction of
/// a microsecond instead of a system call per look: one task at a time, a
/// round trip's median fell from 0.8-1.0 µs to 0.55 µs (`docs/perf-notes.md`).
/// None under loom.
pub(super) const BUSY_ROUNDS: u32 = if cfg!(loom) { 0 } else { 6 };

/// Round `round` of the busy phase: 2^round `pause`s.
pub(super) fn busy(round: u32) {
    for _ in 0..1u32 << round {
        std::hint::spin_loop();
    }
}

/// The machine's cores (read once), for the busy-wait's condition: where
/// every core is taken (a spawner and two workers on two cores), a
/// busy-wait would hold the core the awaited thread needs, which is why
/// the other rounds yield (see `spin`).
pub(super) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
