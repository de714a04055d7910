//! The timer: one thread per engine at most, started by the first timed
//! task, that moves delayed tasks into the run queue when their time comes
//! and sets (or enforces) cancel deadlines. It does not count as a worker.
//!
//! Events wait in a heap ordered by (time, sequence); a delayed task's
//! sequence is its id, so equal start times keep id order. The thread
//! sleeps on a condition variable until the earliest event and fires an
//! event only once its time has come (a wait that wakes early just sleeps
//! again): never early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use super::Engine;
use crate::panic::log_safely;
use crate::sync::thread::{self, JoinHandle};
use crate::sync::{Condvar, Mutex};
use crate::task::cell::JobRef;
use crate::task::TaskId;

/// What the timer does when an event's time comes.
pub(crate) enum Event {
    /// A delayed task's start time: put it in the run queue.
    Start(JobRef),
    /// `cancel_at`: cancel the task if queued, flag it if running.
    CancelAt(TaskId),
    /// `cancel_after`: flag the task if it still runs.
    Flag(TaskId),
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
    stopped: bool,
    thread: Option<JoinHandle<()>>,
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

    /// Stops the thread (pending events are dropped: close has settled
    /// their tasks) and joins it, unless this is the timer thread itself.
    pub(crate) fn stop(&self) {
        let thread = {
            let mut state = self.state.lock();
            state.stopped = true;
            state.heap.clear();
            state.thread.take()
        };
        self.wake.notify_all();
        if let Some(thread) = thread {
            if thread.thread().id() != thread::current().id() {
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
                loop {
                    if state.stopped {
                        return;
                    }
                    let now = Instant::now();
                    match state.heap.peek() {
                        Some(Reverse(first)) if first.at <= now => {
                            let Reverse(entry) = state.heap.pop().expect("peeked");
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
            Event::CancelAt(id) => {
                if let Some(job) = self.find(id) {
                    self.cancel_job(&job);
                }
            }
            Event::Flag(id) => {
                if let Some(job) = self.find(id) {
                    if job.header().is_running() {
                        job.header().request_cancel();
                    }
                }
            }
        }
    }
}
