//! The timer: one thread per engine at most, started by the first timed
//! task, that moves delayed tasks into the run queue when their time comes
//! and sets (or enforces) cancel deadlines. It does not count as a worker.
//!
//! Events wait in a heap ordered by (time, sequence); a delayed task's
//! sequence is its id, so equal start times keep id order. The thread
//! sleeps on a condition variable until the earliest event and fires an
//! event only once its time has come (a wait that wakes early just sleeps
//! again): never early.
//!
//! # Forgetting
//!
//! A task can settle long before its events are due (a `cancel_after(1 h)`
//! task that returns at once, a delayed task that is cancelled). Each event
//! marks its task TIMED (`Header::mark_timed`); a TIMED task tells the
//! timer when it settles (`forget_settled`), and once the settled tasks
//! told outnumber half the heap, the heap drops every event whose task has
//! settled. So the memory the timer holds stays proportional to the timed
//! tasks still pending (at most about twice), never to all that ever were,
//! at an amortised constant cost per timed task.
//!
//! # Close never waits for user code here
//!
//! Firing an event may run user code: a `cancel_at` that passes while its
//! task is queued drops the closure on this thread. Close stops the timer
//! and joins the thread only when it is not firing; otherwise it leaves the
//! thread to finish that event and exit on its own, as it leaves a worker
//! whose task still runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use super::Engine;
use crate::panic::log_safely;
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{Condvar, Mutex};
use crate::task::cell::JobRef;
use crate::task::CancelReason;

/// What the timer does when an event's time comes, to which task.
pub(crate) enum Event {
    /// A delayed task's start time: put it in the run queue.
    Start(JobRef),
    /// `cancel_at`: cancel the task if queued, flag it if running.
    CancelAt(JobRef),
    /// `cancel_after`: flag the task if it still runs.
    Flag(JobRef),
}

impl Event {
    fn job(&self) -> &JobRef {
        match self {
            Event::Start(job) | Event::CancelAt(job) | Event::Flag(job) => job,
        }
    }
}

struct Entry {
    at: Instant,
    sequence: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    /// For events that are not a task's start (after every id).
    next_sequence: u64,
    /// Timed tasks that settled since the heap was last swept (some of
    /// their events may have fired already: an upper bound).
    settled: usize,
    /// The thread is firing an event (it may be running user code).
    firing: bool,
    stopped: bool,
    thread: Option<JoinHandle<()>>,
}

/// Below this many events the heap is never swept: small is cheap.
const SWEEP_FLOOR: usize = 64;

impl State {
    /// Takes out the events of settled tasks, for the caller to drop
    /// outside the lock.
    fn sweep(&mut self) -> Vec<Reverse<Entry>> {
        self.settled = 0;
        let (dead, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .partition(|Reverse(entry)| entry.event.job().header().is_done());
        self.heap = BinaryHeap::from(live);
        dead
    }
}

/// An engine's timer; see the module docs.
#[derive(Default)]
pub(crate) struct Timer {
    state: Mutex<State>,
    wake: Condvar,
}

impl Timer {
    /// Schedules `event` at `at`, starting the timer thread if this is the
    /// first. False if the engine is stopping (the event is dropped).
    pub(crate) fn schedule(&self, engine: &Arc<Engine>, at: Instant, event: Event) -> bool {
        let mut state = self.state.lock();
        if state.stopped {
            return false;
        }
        if !event.job().header().mark_timed() {
            // Settled already: nothing left to do at `at`.
            return true;
        }
        let sequence = match &event {
            Event::Start(job) => job.header().id().get(),
            _ => {
                state.next_sequence += 1;
                u64::MAX / 2 + state.next_sequence
            }
        };
        let earliest = state.heap.peek().is_none_or(|Reverse(first)| at < first.at);
        state.heap.push(Reverse(Entry {
            at,
            sequence,
            event,
        }));
        if state.thread.is_none() {
            let engine = Arc::clone(engine);
            let name = format!("{}-timer", engine.config.thread_name);
            match thread::Builder::new()
                .name(name)
                .spawn(move || Timer::run(&engine))
            {
                Ok(thread) => state.thread = Some(thread),
                Err(error) => {
                    drop(state);
                    log_safely!(Error, "could not start the timer thread: {error}");
                    return true;
                }
            }
        }
        drop(state);
        if earliest {
            self.wake.notify_one();
        }
        true
    }

    /// The delayed tasks whose start time is after `deadline`, taken out of
    /// the heap (close cancels them at once).
    pub(crate) fn take_starts_after(&self, deadline: Instant) -> Vec<JobRef> {
        let mut state = self.state.lock();
        let (late, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut state.heap)
            .into_vec()
            .into_iter()
            .partition(|Reverse(entry)| {
                entry.at > deadline && matches!(entry.event, Event::Start(_))
            });
        state.heap = keep.into_iter().collect();
        late.into_iter()
            .filter_map(|Reverse(entry)| match entry.event {
                Event::Start(job) => Some(job),
                _ => None,
            })
            .collect()
    }

    /// A timed task settled: once enough have, the heap forgets the events
    /// of settled tasks (see the module docs).
    pub(crate) fn forget_settled(&self) {
        let dead = {
            let mut state = self.state.lock();
            state.settled += 1;
            let len = state.heap.len();
            if len < SWEEP_FLOOR || state.settled * 2 < len {
                return;
            }
            state.sweep()
        };
        // Dropped outside the lock: the last reference frees the task.
        drop(dead);
    }

    /// Stops the thread (pending events are dropped: close has settled
    /// their tasks) and joins it, unless this is the timer thread itself or
    /// it is firing an event (which may run user code: a closure's `Drop`):
    /// that thread exits on its own once the event is done.
    pub(crate) fn stop(&self) {
        let (thread, pending, firing) = {
            let mut state = self.state.lock();
            state.stopped = true;
            let pending = std::mem::take(&mut state.heap);
            (state.thread.take(), pending, state.firing)
        };
        self.wake.notify_all();
        drop(pending);
        if let Some(thread) = thread {
            if !firing && thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// The timer thread's loop. It holds the engine until close stops it
    /// (every engine is closed: its manager's `Drop` closes it).
    fn run(engine: &Arc<Engine>) {
        let timer = &engine.timer;
        loop {
            let event = {
                let mut state = timer.state.lock();
                state.firing = false;
                loop {
                    if state.stopped {
                        return;
                    }
                    let now = Instant::now();
                    match state.heap.peek() {
                        Some(Reverse(first)) if first.at <= now => {
                            let Reverse(entry) = state.heap.pop().expect("peeked");
                            state.firing = true;
                            break entry.event;
                        }
                        Some(Reverse(first)) => {
                            let at = first.at;
                            let _ = timer.wake.wait_until(&mut state, at);
                        }
                        None => timer.wake.wait(&mut state),
                    }
                }
            };
            engine.fire(event);
        }
    }
}

impl Engine {
    fn fire(self: &Arc<Self>, event: Event) {
        match event {
            Event::Start(job) => {
                let header = job.header();
                if header.is_queued() {
                    header.mark_due();
                    log_safely!(Trace, "{} is due", header.id());
                    self.enqueue(job);
                    let _ = self.ensure_threads();
                }
            }
            Event::CancelAt(job) => {
                self.cancel_job(&job, CancelReason::Deadline);
            }
            Event::Flag(job) => {
                if job.header().is_running() {
                    self.flag(job.header(), CancelReason::Deadline);
                }
            }
        }
    }
}
