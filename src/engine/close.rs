//! The close state machine: `close`, `close_timeout`, `close_now`, `Drop`.
//!
//! An engine is in one of three states, kept under one mutex:
//!
//! - **Open**: spawns are accepted.
//! - **Closing**: one caller, the *closer*, runs the close. It sets the
//!   `closing` flag (from now on every spawn is rejected), wakes every
//!   waiter (blocked spawners see the flag), and waits (lending its slot if
//!   it is itself a task) until every task that drains and closes wait for has
//!   settled or the one deadline passes. Then it cancels what is still
//!   queued, flags what still runs, and stops the threads. Another caller
//!   of a close waits for the closer (parked as a close, so a task that does
//!   this is excluded and the closer does not wait for it), then returns
//!   the closer's report; a close called on the closer's own thread (by a
//!   task it runs inline, or a closure it drops) returns at once what the
//!   close has cancelled so far.
//! - **Closed**: the report is kept; every later close returns a copy.
//!
//! `close_now(grace)` cancels every queued task and flags every running one
//! at once, then waits up to `grace`. Called while a close is in progress it
//! *escalates* it: the closer does the same at once and ends by
//! `now + grace` at the latest. Running tasks flagged by `close_now` that
//! return in time are `stopped`; those still running at the end are
//! `abandoned`.
//!
//! If anything in the closer unwinds (it should not: user code and logging
//! run inside the catch boundary), a drop guard still moves the state to
//! Closed, so that no other close waits forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engine, NoTasks, Park};
use crate::error::{human_duration, CloseReport};
use crate::extras::{Label, Name};
use crate::panic::log_safely;
use crate::sync::thread::{self, ThreadId};
use crate::sync::Ordering;
use crate::task::{CancelReason, TaskId};

/// Which close.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CloseMode {
    /// `close`, `close_timeout`, `Drop`: wait, then cancel what is left.
    Deadline,
    /// `close_now`: cancel and flag at once, then wait out the grace.
    Now,
}

pub(crate) enum CloseState {
    Open,
    Closing(Closing),
    Closed(CloseReport),
}

pub(crate) struct Closing {
    closer: ThreadId,
    started: Instant,
    /// Cancelled so far, for a close on the closer's own thread.
    cancelled: Vec<TaskId>,
    /// The names of the cancelled tasks that had one, for the log line
    /// (their entries are gone once they settle).
    names: Vec<(TaskId, Name)>,
    /// `Some` once a `close_now` asked to stop now; its deadline (`None`:
    /// a grace that never ends).
    escalation: Option<Option<Instant>>,
}

impl Closing {
    fn partial_report(&self) -> CloseReport {
        let mut cancelled = self.cancelled.clone();
        cancelled.sort_unstable();
        CloseReport {
            timed_out: !cancelled.is_empty(),
            cancelled,
            abandoned: Vec::new(),
            stopped: Vec::new(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// How long a close waits before it says, once, what it waits for.
const SLOW_CLOSE: Duration = Duration::from_secs(1);

/// The earlier of two deadlines (`None` is never).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Makes sure the state reaches Closed even if the closer unwinds.
struct Finish<'a> {
    engine: &'a Engine,
    armed: bool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if self.armed {
            let engine = self.engine;
            engine.stopping.store(true, Ordering::SeqCst);
            engine.counts.slots().stop();
            let mut state = engine.close.lock();
            if let CloseState::Closing(closing) = &*state {
                let report = closing.partial_report();
                *state = CloseState::Closed(report);
            }
            drop(state);
            engine.parking.notify_all();
        }
    }
}

impl Engine {
    /// Every close goes through here; see the module docs.
    pub(crate) fn close(self: &Arc<Self>, timeout: Duration, mode: CloseMode) -> CloseReport {
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        let me = thread::current().id();
        {
            let mut state = self.close.lock();
            match &mut *state {
                CloseState::Open => {
                    *state = CloseState::Closing(Closing {
                        closer: me,
                        started,
                        cancelled: Vec::new(),
                        names: Vec::new(),
                        escalation: (mode == CloseMode::Now).then_some(deadline),
                    });
                }
                CloseState::Closing(closing) => {
                    if closing.closer == me {
                        return closing.partial_report();
                    }
                    drop(state);
                    let escalate = (mode == CloseMode::Now).then_some(deadline);
                    return self.await_report(escalate);
                }
                CloseState::Closed(report) => return report.clone(),
            }
        }
        let mut finish = Finish {
            engine: self,
            armed: true,
        };
        let report = self.run_close(started, deadline, timeout);
        finish.armed = false;
        report
    }

    fn escalation(&self) -> Option<Option<Instant>> {
        match &*self.close.lock() {
            CloseState::Closing(closing) => closing.escalation,
            _ => None,
        }
    }

    fn run_close(
        &self,
        started: Instant,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> CloseReport {
        let name = &self.config.thread_name;
        log_safely!(Debug, "closing {name} with a deadline of {timeout:?}");
        self.closing.store(true, Ordering::SeqCst);
        self.registry.barrier();
        // Blocked spawners see the flag; waiters see that closing began.
        self.parking.notify_all();

        // Delayed tasks that could not start before the deadline never will.
        if let Some(deadline) = deadline {
            for job in self.timer.take_starts_after(deadline) {
                self.cancel_if_queued(&job, CancelReason::Closing, |id| self.note_cancelled(id));
            }
        }

        let stack = self.thread_stack();
        let mut flagged: Option<Vec<TaskId>> = None;
        // Judged inside the wait, where the closer's own task is excluded.
        let mut idle = false;
        // A close still waiting after this long says once what for.
        let mut warn_at = started.checked_add(SLOW_CLOSE);
        loop {
            let mut until = deadline;
            if let Some(escalated) = self.escalation() {
                if flagged.is_none() {
                    flagged = Some(self.stop_now(&stack));
                }
                until = earlier(deadline, escalated);
            }
            let end = until;
            let escalated = flagged.is_some();
            self.wait_until(
                Park::Close,
                earlier(until, warn_at),
                &mut |_| {
                    idle = self.idle_reached(&stack);
                    idle || (!escalated && self.escalation().is_some())
                },
                &mut NoTasks,
            );
            let now = Instant::now();
            if idle || end.is_some_and(|end| now >= end) {
                break;
            }
            if warn_at.is_some_and(|at| now >= at) {
                warn_at = None;
                self.warn_slow_close(&stack, end, now);
            }
        }

        let mut abandoned = Vec::new();
        if !idle {
            // Claims stop first, then the sweep: every task it finds
            // running held its slot before the deadline, and no task starts
            // while it cancels the rest.
            self.stopping.store(true, Ordering::SeqCst);
            self.counts.slots().stop();
            self.drop_deferred();
            let mut excluded = self.excluded_now();
            excluded.extend(self.waiting_on(&stack));
            let mut all = self.registry.snapshot();
            all.sort_by_key(|job| job.header().id());
            for job in &all {
                let header = job.header();
                let id = header.id();
                if stack.contains(&id) || excluded.contains(&id) {
                    continue;
                }
                // The own token is woken only after the task is judged: a
                // task asleep on it may finish at once, and it was running
                // at the deadline.
                let running = self.flag_then(header, CancelReason::Closing, || {
                    !self.cancel_if_queued(job, CancelReason::Closing, |id| self.note_cancelled(id))
                        && header.is_running()
                });
                if running {
                    abandoned.push(id);
                }
            }
        }
        // Every flagged task that is not abandoned has settled (or is
        // excluded now, parked in a drain or close: it stopped its work).
        let mut stopped: Vec<TaskId> = flagged
            .iter()
            .flatten()
            .copied()
            .filter(|id| !abandoned.contains(id))
            .collect();
        stopped.sort_unstable();

        self.stopping.store(true, Ordering::SeqCst);
        self.counts.slots().stop();
        self.drop_deferred();
        self.timer.stop();
        self.stop_workers();
        self.graveyard.free_all();

        let (mut cancelled, names) = match &mut *self.close.lock() {
            CloseState::Closing(closing) => (
                closing.cancelled.clone(),
                std::mem::take(&mut closing.names),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        cancelled.sort_unstable();
        // `close_now`: timed out exactly when something was abandoned. A
        // plain close: when its deadline passed before the work it waits
        // for had settled (not when it only cancelled far-delayed tasks).
        let timed_out = if flagged.is_some() {
            !abandoned.is_empty()
        } else {
            !idle
        };
        let report = CloseReport {
            cancelled,
            abandoned,
            stopped,
            timed_out,
            elapsed: started.elapsed(),
        };
        if report.timed_out {
            log_safely!(
                Warn,
                "close of {name} timed out: cancelled {} queued task(s) [{}], abandoned {} running task(s) [{}]",
                report.cancelled.len(),
                self.label_list(&report.cancelled, &names),
                report.abandoned.len(),
                self.label_list(&report.abandoned, &names),
            );
        }
        log_safely!(Debug, "closed {name}: {report}");
        *self.close.lock() = CloseState::Closed(report.clone());
        self.parking.notify_all();
        report
    }

    /// `close_now`'s first act: cancels every queued task, flags every
    /// running one (the caller's own too), and returns the running ones it
    /// will wait for (not the caller's, not excluded ones).
    fn stop_now(&self, stack: &[TaskId]) -> Vec<TaskId> {
        let mut all = self.registry.snapshot();
        all.sort_by_key(|job| job.header().id());
        for job in &all {
            self.cancel_if_queued(job, CancelReason::Closing, |id| self.note_cancelled(id));
        }
        let mut excluded = self.excluded_now();
        excluded.extend(self.waiting_on(stack));
        let mut flagged = Vec::new();
        for job in &all {
            let header = job.header();
            if header.is_running() {
                self.flag(header, CancelReason::Closing);
                let id = header.id();
                if !stack.contains(&id) && !excluded.contains(&id) {
                    flagged.push(id);
                }
            }
        }
        flagged
    }

    /// One warn line for a close that is still waiting after
    /// `SLOW_CLOSE`: the tasks it waits for (running or queued), and until
    /// when.
    fn warn_slow_close(&self, stack: &[TaskId], end: Option<Instant>, now: Instant) {
        let mut left_out = self.excluded_now();
        left_out.extend(self.waiting_on(stack));
        left_out.extend_from_slice(stack);
        let mut all = self.registry.snapshot();
        all.sort_by_key(|job| job.header().id());
        let (mut running, mut queued) = (Vec::new(), Vec::new());
        for job in &all {
            let header = job.header();
            if left_out.contains(&header.id()) || header.is_done() {
                continue;
            }
            if header.is_queued() {
                queued.push(header.id());
            } else {
                running.push(header.id());
            }
        }
        let until = match end {
            Some(end) => format!(
                "until its deadline in {}",
                human_duration(end.saturating_duration_since(now))
            ),
            None => "with no deadline".to_owned(),
        };
        log_safely!(
            Warn,
            "close of {} is waiting for {} running task(s) [{}] and {} queued [{}], {until}",
            self.config.thread_name,
            running.len(),
            self.label_list(&running, &[]),
            queued.len(),
            self.label_list(&queued, &[]),
        );
    }

    fn note_cancelled(&self, id: TaskId) {
        let name = self.extras.name(id);
        if let CloseState::Closing(closing) = &mut *self.close.lock() {
            closing.cancelled.push(id);
            if let Some(name) = name {
                closing.names.push((id, name));
            }
        }
    }

    /// `task-1, task-2 (fetch b)` for a log line: names from `names` (the
    /// cancelled tasks') or from the side table (tasks still running).
    fn label_list(&self, ids: &[TaskId], names: &[(TaskId, Name)]) -> String {
        ids.iter()
            .map(|&id| {
                let name = names
                    .iter()
                    .find(|(named, _)| *named == id)
                    .map(|(_, name)| name.clone())
                    .or_else(|| self.extras.name(id));
                Label { id, name }.to_string()
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits, parked as a close, until the closer publishes its report.
    /// `escalate` (a `close_now`'s deadline) asks the closer to stop now,
    /// once the caller is parked: a task that escalates is excluded before
    /// the closer can see the escalation, so it is neither waited for nor
    /// listed. It flags its own task (and those below it on its thread)
    /// itself, since the closer may have flagged the running tasks already.
    fn await_report(&self, escalate: Option<Option<Instant>>) -> CloseReport {
        let closed = |engine: &Engine| match &*engine.close.lock() {
            CloseState::Closed(report) => Some(report.clone()),
            _ => None,
        };
        let mut on_parked = || {
            let Some(deadline) = escalate else {
                return;
            };
            for id in self.thread_stack() {
                if let Some(job) = self.find(id) {
                    self.flag(job.header(), CancelReason::Closing);
                }
            }
            let mut state = self.close.lock();
            if let CloseState::Closing(closing) = &mut *state {
                let sooner = match closing.escalation {
                    Some(before) => earlier(before, deadline),
                    None => deadline,
                };
                closing.escalation = Some(sooner);
                drop(state);
                self.parking.notify_all();
            }
        };
        self.wait_parked(
            Park::Close,
            None,
            &mut on_parked,
            &mut |_| closed(self).is_some(),
            &mut NoTasks,
        );
        closed(self).expect("the close finished")
    }
}
