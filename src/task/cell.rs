//! The one allocation per task: its [`Header`], its completion [`Sink`] and
//! its cell, which holds the closure, then the result.
//!
//! # Who may touch the cell
//!
//! The cell is an `UnsafeCell` without a lock. Access is handed over by the
//! state word (see the parent module):
//!
//! 1. Before `PUBLISHED`, only the owner, the holder of the task's [`Claim`],
//!    touches the cell. [`Job::run`] and [`Job::discard`] consume the claim.
//! 2. The owner hands the result over with one CAS that sets `PUBLISHED`
//!    unless `DETACHED` is set. From then on the cell belongs to the handle
//!    ([`Completion::take`], [`Completion::detach`]).
//! 3. If the handle detached first, the owner drops the result itself,
//!    before the task counts as settled.
//! 4. Then the owner sets `FINISHED` (what joiners wait for), tells the
//!    sink, and last counts the task settled (what drains and closes wait
//!    for).
//!
//! # What a task costs
//!
//! Plain tasks have the unit sink (`()`), whose `settled` is an empty
//! inlined call: task sets and scopes on a manager pay for their sink, plain
//! `spawn` does not. A closure larger than [`INLINE_LIMIT`] travels boxed
//! ([`Boxed`]), so that the settled task, which may linger a little in the
//! registry's batches, is small whatever the closure captured.

use std::any::Any;

use crate::error::TaskError;
use crate::panic;
use crate::sync::UnsafeCell;
use crate::task::{Claim, Header, TaskId};

/// Closures up to this size live in the task itself; larger ones are boxed.
pub(crate) const INLINE_LIMIT: usize = 256;

/// A closure as a task holds it.
pub(crate) trait Work: Send {
    type Output: Send;
    fn call(self) -> Self::Output;
}

/// A small closure, stored in the task.
pub(crate) struct Inline<F>(pub(crate) F);

impl<F, T> Work for Inline<F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    type Output = T;
    fn call(self) -> T {
        (self.0)()
    }
}

/// A large closure, stored beside the task and freed as soon as it runs.
pub(crate) struct Boxed<F>(pub(crate) Box<F>);

impl<F, T> Work for Boxed<F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    type Output = T;
    fn call(self) -> T {
        let f = *self.0;
        f()
    }
}

/// Told when a task has settled: its result handed over or dropped.
pub(crate) trait Sink: Send + Sync {
    fn settled(&self, id: TaskId);
}

impl Sink for () {
    #[inline(always)]
    fn settled(&self, _id: TaskId) {}
}

/// What a settling task needs from its engine.
pub(crate) trait Context {
    /// The task's closure panicked: log it and call the panic hook.
    fn panicked(&self, id: TaskId, message: &str, payload: &(dyn Any + Send));
    /// Dropping something of the task's (`what`) panicked: log it and
    /// count one more panic.
    fn drop_panicked(&self, id: TaskId, what: &str, message: &str);
    /// The task is about to hand its result over: count `outcome`, and stop
    /// showing the task as running. Called once per task, before anyone can
    /// see its result.
    fn finishing(&self, id: TaskId, outcome: Outcome);
    /// The result is handed over or dropped: the thread is about to be free
    /// (a spawn that comes now need not start another thread for it).
    fn released(&self);
    /// The task is settled: what `drain`, `close` and `stats` count. Called
    /// last, once the task reads as finished and its sink was told.
    fn settled(&self);
    /// A waiter announced itself on this task: wake the parking gate.
    fn wake_waiters(&self);
}

/// How a task ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Cancelled,
}

/// A task with its closure type erased: what the channel, the registry and
/// the workers hold.
pub(crate) trait Job: Send + Sync {
    fn header(&self) -> &Header;

    /// Runs the closure on this thread (a panic is caught), then hands the
    /// result to the handle or drops it, then tells the sink.
    fn run(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome;

    /// Drops the closure of a task that never started (a panic in its drop
    /// is caught), then hands `Cancelled` to the handle and tells the sink.
    fn discard(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome;
}

/// The typed side of a task: what its handle needs.
pub(crate) trait Completion<T>: Job {
    /// Takes the published result.
    ///
    /// # Safety
    ///
    /// The caller is the task's one handle, has seen `is_published()`, and
    /// calls this (or `detach`) at most once.
    unsafe fn take(&self) -> Result<T, TaskError>;

    /// The handle goes away; drops the result if it was published already.
    /// `Err` carries the message of a panic in that drop.
    ///
    /// # Safety
    ///
    /// The caller is the task's one handle, calls this (or `take`) at most
    /// once, and never touches the task's result afterwards.
    unsafe fn detach(&self) -> Result<(), String>;
}

enum Stage<W, T> {
    Pending(W),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

/// The one allocation per task.
pub(crate) struct Task<W: Work, S> {
    header: Header,
    sink: S,
    cell: UnsafeCell<Stage<W, W::Output>>,
}

// SAFETY: the cell is only ever accessed by one thread at a time, as the
// module docs lay out: the claim holder before PUBLISHED, the handle after
// it, and a DETACHED/PUBLISHED race is decided by one RMW on the state word.
// The values that cross threads (the closure, the result) are `Send`, and
// the sink is `Sync`.
unsafe impl<W: Work, S: Sync> Sync for Task<W, S> {}

impl<W: Work, S: Sink> Task<W, S> {
    /// A queued task holding `work`; `detached` when no handle will exist.
    pub(crate) fn new(id: TaskId, work: W, sink: S, detached: bool, home: u8) -> Task<W, S> {
        Task {
            header: Header::new(id, detached, home),
            sink,
            cell: UnsafeCell::new(Stage::Pending(work)),
        }
    }

    /// Takes the closure back out of a task that was never shared.
    pub(crate) fn into_work(self) -> W {
        match self.cell.into_inner() {
            Stage::Pending(work) => work,
            _ => unreachable!("a task that was never shared still holds its closure"),
        }
    }

    /// Replaces the stage, returning the old one.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the cell under the protocol of
    /// the module docs.
    unsafe fn replace(&self, stage: Stage<W, W::Output>) -> Stage<W, W::Output> {
        // SAFETY: exclusive access is the caller's contract.
        self.cell
            .with_mut(|cell| unsafe { std::mem::replace(&mut *cell, stage) })
    }

    /// Takes the closure out, for the holder of the claim.
    fn take_work(&self, claim: Claim<'_>) -> W {
        assert!(claim.is_for(&self.header), "a claim for another task");
        // SAFETY: the claim proves this caller won the task's exit from
        // QUEUED, and nothing is published yet: it is the cell's only user.
        match unsafe { self.replace(Stage::Running) } {
            Stage::Pending(work) => work,
            _ => unreachable!("only the winner of the task's state takes its closure"),
        }
    }

    /// Stores the result, offers it to the handle (or drops it), and tells
    /// the sink. Only after `take_work`, by the same owner.
    fn settle(
        &self,
        result: Result<W::Output, TaskError>,
        outcome: Outcome,
        cx: &dyn Context,
    ) -> Outcome {
        // SAFETY: the owner, before publication (see `take_work`).
        unsafe { self.replace(Stage::Done(result)) };
        cx.finishing(self.header.id(), outcome);
        if !self.header.hand_over() {
            // SAFETY: the handle detached before it could see PUBLISHED, so
            // it left the result to the owner: still the cell's only user.
            let stage = unsafe { self.replace(Stage::Taken) };
            if let Err(message) = panic::drop_caught(stage) {
                cx.drop_panicked(self.header.id(), "its result", &message);
            }
        }
        cx.released();
        if self.header.finish() {
            cx.wake_waiters();
        }
        self.sink.settled(self.header.id());
        // Counted last: whoever sees the counts settle (drain, close) also
        // sees the task finished and its set or scope told.
        cx.settled();
        outcome
    }
}

impl<W: Work, S: Sink> Job for Task<W, S> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        let work = self.take_work(claim);
        // Calling consumes the closure, so its captured values are dropped
        // inside the boundary too.
        match panic::catch_payload(move || work.call()) {
            Ok(value) => self.settle(Ok(value), Outcome::Completed, cx),
            Err(payload) => {
                let message = panic::message_of(&*payload);
                cx.panicked(self.header.id(), &message, &*payload);
                panic::drop_payload(payload);
                self.settle(Err(TaskError::Panicked(message)), Outcome::Panicked, cx)
            }
        }
    }

    fn discard(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        let work = self.take_work(claim);
        // A panic in the closure's drop is one more panic; the task still
        // counts as cancelled.
        if let Err(message) = panic::drop_caught(work) {
            cx.drop_panicked(self.header.id(), "its closure", &message);
        }
        self.settle(Err(TaskError::Cancelled), Outcome::Cancelled, cx)
    }
}

impl<W: Work, S: Sink> Completion<W::Output> for Task<W, S> {
    unsafe fn take(&self) -> Result<W::Output, TaskError> {
        assert!(
            self.header.is_published(),
            "take before the result is published"
        );
        // SAFETY: PUBLISHED is set (acquire) and the caller is the one
        // handle: the owner is done with the cell and it is the handle's.
        match unsafe { self.replace(Stage::Taken) } {
            Stage::Done(result) => result,
            _ => unreachable!("a published task holds its result until it is taken"),
        }
    }

    unsafe fn detach(&self) -> Result<(), String> {
        if !self.header.detach() {
            return Ok(());
        }
        // SAFETY: PUBLISHED came first, so the owner is done and will not
        // drop the result: it is the handle's (our caller's) to drop.
        let stage = unsafe { self.replace(Stage::Taken) };
        panic::drop_caught(stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Quiet;
    impl Context for Quiet {
        fn panicked(&self, _: TaskId, _: &str, _: &(dyn Any + Send)) {}
        fn drop_panicked(&self, _: TaskId, _: &str, _: &str) {}
        fn finishing(&self, _: TaskId, _: Outcome) {}
        fn released(&self) {}
        fn settled(&self) {}
        fn wake_waiters(&self) {}
    }

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn id() -> TaskId {
        TaskId::new(1).unwrap()
    }

    #[test]
    fn run_publishes_and_take_returns() {
        let task = Task::new(id(), Inline(|| 6 * 7), (), false, 0);
        let claim = task.header().try_start().unwrap();
        assert_eq!(task.run(claim, &Quiet), Outcome::Completed);
        assert!(task.header().is_published() && task.header().is_done());
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { task.take() }, Ok(42));
    }

    #[test]
    fn a_detached_result_is_dropped_before_the_task_finishes() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = Task::new(id(), Boxed(Box::new(move || Counted(d))), (), true, 0);
        let claim = task.header().try_start().unwrap();
        task.run(claim, &Quiet);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(task.header().is_done());
    }

    #[test]
    fn discard_drops_the_closure_and_publishes_cancelled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        let task = Task::new(id(), Inline(move || drop(c)), (), false, 0);
        let claim = task.header().try_cancel().unwrap();
        assert_eq!(task.discard(claim, &Quiet), Outcome::Cancelled);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { task.take() }, Err(TaskError::Cancelled));
    }

    #[test]
    fn detach_after_publication_drops_the_result_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = Task::new(id(), Inline(move || Counted(d)), (), false, 0);
        let claim = task.header().try_start().unwrap();
        task.run(claim, &Quiet);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        // SAFETY: the test is the one handle.
        assert!(unsafe { task.detach() }.is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_result_drop_on_detach_is_caught() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb");
            }
        }
        let task = Task::new(id(), Inline(|| Bomb), (), false, 0);
        let claim = task.header().try_start().unwrap();
        task.run(claim, &Quiet);
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { task.detach() }, Err("bomb".to_owned()));
    }
}
