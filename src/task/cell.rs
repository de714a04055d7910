//! The one allocation per task, and the counted references to it.
//!
//! A task is one heap block: a [`Head`] (the functions that know its types,
//! then its [`Header`]: state word, reference count, id), its completion
//! [`Sink`], and its cell, which holds the closure, then the value it
//! returned. [`JobRef`], a thin pointer, is what the registry, the run
//! queue and the workers hold; [`TaskRef`] is the typed one a handle holds.
//!
//! For an empty closure on a plain `spawn` the block is 24 bytes (the
//! allocator's smallest chunk), and a reference 8: the registry and the run
//! queue each store one pointer per task. What a task ended with is in the
//! state word (see the parent module): the cell holds only a returned
//! value, and a panic message waits in [`Messages`] beside the task, for the
//! handle.
//!
//! # Who may touch the cell
//!
//! The cell is an `UnsafeCell` without a lock. Access is handed over by the
//! state word:
//!
//! 1. Before `PUBLISHED`, only the owner, the holder of the task's [`Claim`],
//!    touches the cell. [`JobRef::run`] and [`JobRef::discard`] consume the
//!    claim.
//! 2. The owner hands the result over with one CAS that sets `PUBLISHED`
//!    (and how the task ended) unless `DETACHED` is set. From then on the
//!    cell belongs to the handle ([`TaskRef::take`], [`TaskRef::detach`]).
//! 3. If the handle detached first, the owner drops the value itself,
//!    before the task counts as settled.
//! 4. Then the owner sets `FINISHED` (what joiners wait for), tells the
//!    sink, and last counts the task settled (what drains and closes wait
//!    for).
//! 5. Whoever drops the last reference frees the block, dropping what the
//!    state word says is left in the cell (normally nothing).
//!
//! # What a task costs
//!
//! Plain tasks have the unit sink (`()`), whose `settled` is an empty
//! inlined call: task sets and scopes on a manager pay for their sink, plain
//! `spawn` does not. A closure larger than [`INLINE_LIMIT`] travels boxed
//! ([`Boxed`]), so that the settled task, which may linger a little in the
//! graveyard's batches, is small whatever the closure captured.

use std::any::Any;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

use crate::dense::DenseMap;
use crate::error::TaskError;
use crate::panic::{self, log_safely};
use crate::sync::{Mutex, Ordering, UnsafeCell};
use crate::task::{Claim, Ending, Header, Leftover, TaskId};

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
    fn panicked(&self, header: &Header, message: &str, payload: &(dyn Any + Send));
    /// Dropping something of the task's (`what`) panicked: log it and
    /// count one more panic.
    fn drop_panicked(&self, header: &Header, what: &str, message: &str);
    /// The task is about to hand its result over: count `outcome`, and stop
    /// showing the task as running. Called once per task, before anyone can
    /// see its result.
    fn finishing(&self, id: TaskId, outcome: Outcome);
    /// The result is handed over or dropped, and the task does not read as
    /// finished yet: its side-table entry goes (`extra`: it has one), the
    /// end hook runs, and then the thread is about to be free (a spawn that
    /// comes now need not start another thread for it).
    fn released(&self, header: &Header, outcome: Outcome, extra: bool);
    /// The task is settled: what `drain`, `close` and `stats` count. Called
    /// last, once the task reads as finished and its sink was told.
    fn settled(&self);
    /// A waiter announced itself on this task: wake the parking gate.
    fn wake_waiters(&self);
    /// The timer held an event for this task, which has settled: the
    /// event is no longer needed (see `engine::timer`).
    fn forget_timers(&self) {}
    /// Where a panic message waits for the task's handle.
    fn messages(&self) -> &Messages;
}

/// How a task ended, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
    Cancelled,
}

/// Panic messages of tasks whose handle has not taken them yet, by id. A
/// panic is rare; keeping its message here rather than in every task keeps
/// the task at the allocator's smallest size.
pub(crate) struct Messages(Mutex<DenseMap<TaskId, String>>);

impl Default for Messages {
    fn default() -> Self {
        Messages(Mutex::new(DenseMap::default()))
    }
}

impl Messages {
    fn keep(&self, id: TaskId, message: String) {
        self.0.lock().insert(id, message);
    }

    fn take(&self, id: TaskId) -> Option<String> {
        self.0.lock().remove(&id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }
}

/// The lifetime a task's closure may borrow for, as a token: the registry
/// and the run queue hold tasks without a lifetime, so making a [`JobRef`]
/// of a task that borrows needs a promise that it settles in time (see
/// [`Erase::scoped`]). Invariant in `'a`, so a token cannot be stretched.
#[derive(Clone, Copy)]
pub(crate) struct Erase<'a>(PhantomData<fn(&'a ()) -> &'a ()>);

impl Erase<'static> {
    /// For tasks that borrow nothing.
    pub(crate) const STATIC: Erase<'static> = Erase(PhantomData);
}

impl<'a> Erase<'a> {
    /// For tasks that borrow for `'a`.
    ///
    /// # Safety
    ///
    /// Every task made with this token settles (its closure run or dropped,
    /// its value taken or dropped) before `'a` ends; after that, its block
    /// holds only its header and sink, which may be freed later.
    pub(crate) unsafe fn scoped() -> Erase<'a> {
        Erase(PhantomData)
    }
}

/// The functions that know a task's closure, sink and value types.
struct VTable {
    run: unsafe fn(NonNull<Head>, Claim<'_>, &dyn Context) -> Outcome,
    discard: unsafe fn(NonNull<Head>, Claim<'_>, &dyn Context) -> Outcome,
    /// Writes the value to the `MaybeUninit<Output>` given.
    take_value: unsafe fn(NonNull<Head>, *mut ()),
    drop_value: unsafe fn(NonNull<Head>) -> Result<(), String>,
    /// Drops what is left in the cell and frees the block.
    release: unsafe fn(NonNull<Head>),
}

/// The front of every task: what a [`JobRef`] points at.
#[repr(C)]
pub(crate) struct Head {
    vtable: &'static VTable,
    header: Header,
}

/// The cell: the closure until the owner takes it, then the value.
union Slot<W, T> {
    work: ManuallyDrop<W>,
    value: ManuallyDrop<T>,
}

/// How a run ended, as the owner settles it.
enum Done<T> {
    Returned(T),
    Panicked(String),
    Cancelled,
}

/// The one allocation per task.
#[repr(C)]
pub(crate) struct Task<W: Work, S> {
    head: Head,
    sink: S,
    cell: UnsafeCell<Slot<W, W::Output>>,
}

impl<W: Work, S: Sink> Task<W, S> {
    const VTABLE: VTable = VTable {
        run: Self::run_erased,
        discard: Self::discard_erased,
        take_value: Self::take_value_erased,
        drop_value: Self::drop_value_erased,
        release: Self::release_erased,
    };

    /// A queued task holding `work`; `detached` when no handle will exist.
    pub(crate) fn new(id: TaskId, work: W, sink: S, detached: bool, home: u8) -> Task<W, S> {
        Task {
            head: Head {
                vtable: &Self::VTABLE,
                header: Header::new(id, detached, home),
            },
            sink,
            cell: UnsafeCell::new(Slot {
                work: ManuallyDrop::new(work),
            }),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.head.header
    }

    /// The task behind a reference made from a `Task<W, S>`.
    ///
    /// # Safety
    ///
    /// `head` points at a live `Task<W, S>`.
    unsafe fn from_head<'t>(head: NonNull<Head>) -> &'t Task<W, S> {
        // SAFETY: `Task` is `repr(C)` with its head first, and the caller
        // vouches for the type and that the block is alive.
        unsafe { head.cast::<Task<W, S>>().as_ref() }
    }

    /// Takes the closure out, for the holder of the claim.
    fn take_work(&self, claim: Claim<'_>) -> W {
        assert!(claim.is_for(self.header()), "a claim for another task");
        // SAFETY: the claim proves this caller won the task's exit from
        // QUEUED, and nothing is published yet: it is the cell's only user,
        // and the cell still holds the closure.
        self.cell
            .with_mut(|slot| unsafe { ManuallyDrop::take(&mut (*slot).work) })
    }

    /// Stores a returned value, keeps a panic message, offers the result to
    /// the handle (or drops it), and tells the sink. Only after
    /// `take_work`, by the same owner.
    fn settle(&self, done: Done<W::Output>, outcome: Outcome, cx: &dyn Context) -> Outcome {
        let header = self.header();
        let id = header.id();
        let mut kept_message = false;
        let ending = match done {
            Done::Returned(value) => {
                // SAFETY: the owner, before publication (see `take_work`);
                // the closure was taken, so nothing is overwritten.
                self.cell.with_mut(|slot| unsafe {
                    (*slot).value = ManuallyDrop::new(value);
                });
                Ending::Returned
            }
            Done::Panicked(message) => {
                // Kept before publication, so that the handle finds it; a
                // detach in between is undone below.
                if !header.is_detached() {
                    cx.messages().keep(id, message);
                    kept_message = true;
                }
                Ending::Panicked
            }
            Done::Cancelled => Ending::Cancelled,
        };
        cx.finishing(id, outcome);
        let (handed, extra) = header.hand_over_noting(ending);
        if !handed {
            // The handle detached before it could see PUBLISHED, so it left
            // the result to the owner: still the cell's only user.
            match ending {
                Ending::Returned => {
                    // SAFETY: as above; the value was just written.
                    let value = self
                        .cell
                        .with_mut(|slot| unsafe { ManuallyDrop::take(&mut (*slot).value) });
                    if let Err(message) = panic::drop_caught(value) {
                        cx.drop_panicked(header, "its result", &message);
                    }
                }
                Ending::Panicked if kept_message => drop(cx.messages().take(id)),
                Ending::Panicked => {}
                Ending::Cancelled => {}
            }
        }
        cx.released(header, outcome, extra);
        let finished = header.finish();
        if finished.waiter {
            cx.wake_waiters();
        }
        if finished.timed {
            cx.forget_timers();
        }
        self.sink.settled(id);
        // Counted last: whoever sees the counts settle (drain, close) also
        // sees the task finished and its set or scope told.
        cx.settled();
        outcome
    }

    /// Runs the closure on this thread (a panic is caught), then hands the
    /// result to the handle or drops it, then tells the sink.
    fn run(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        let work = self.take_work(claim);
        // Calling consumes the closure, so its captured values are dropped
        // inside the boundary too.
        match panic::catch_payload(move || work.call()) {
            Ok(value) => self.settle(Done::Returned(value), Outcome::Completed, cx),
            Err(payload) => {
                let message = panic::message_of(&*payload);
                cx.panicked(self.header(), &message, &*payload);
                panic::drop_payload(payload);
                self.settle(Done::Panicked(message), Outcome::Panicked, cx)
            }
        }
    }

    /// Drops the closure of a task that never started (a panic in its drop
    /// is caught), then hands `Cancelled` to the handle and tells the sink.
    fn discard(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        let work = self.take_work(claim);
        // A panic in the closure's drop is one more panic; the task still
        // counts as cancelled.
        if let Err(message) = panic::drop_caught(work) {
            cx.drop_panicked(self.header(), "its closure", &message);
        }
        self.settle(Done::Cancelled, Outcome::Cancelled, cx)
    }

    // The `_erased` functions are what the table holds. Their safety
    // contract, each: `head` points at a live `Task<W, S>` (the table they
    // are in is only ever put in such tasks), plus what each one states.

    /// # Safety
    ///
    /// See above.
    unsafe fn run_erased(head: NonNull<Head>, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        // SAFETY: see above.
        unsafe { Self::from_head(head) }.run(claim, cx)
    }

    /// # Safety
    ///
    /// See above.
    unsafe fn discard_erased(head: NonNull<Head>, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        // SAFETY: see above.
        unsafe { Self::from_head(head) }.discard(claim, cx)
    }

    /// Moves the returned value to `out`, a `MaybeUninit<W::Output>`.
    ///
    /// # Safety
    ///
    /// See above; and the caller is the handle, the task returned, its
    /// result is published, and the value was neither taken nor dropped.
    unsafe fn take_value_erased(head: NonNull<Head>, out: *mut ()) {
        // SAFETY: the caller's contract: the cell is the handle's and holds
        // the value; `out` is a `MaybeUninit<W::Output>` the handle owns.
        unsafe {
            let task = Self::from_head(head);
            let value = task
                .cell
                .with_mut(|slot| ManuallyDrop::take(&mut (*slot).value));
            out.cast::<MaybeUninit<W::Output>>()
                .write(MaybeUninit::new(value));
        }
    }

    /// Drops the returned value, for a handle that goes away.
    ///
    /// # Safety
    ///
    /// As `take_value_erased`.
    unsafe fn drop_value_erased(head: NonNull<Head>) -> Result<(), String> {
        // SAFETY: as `take_value_erased`.
        let value = unsafe {
            Self::from_head(head)
                .cell
                .with_mut(|slot| ManuallyDrop::take(&mut (*slot).value))
        };
        panic::drop_caught(value)
    }

    /// Drops what is left in the cell, then frees the block.
    ///
    /// # Safety
    ///
    /// See above; and this was the last reference.
    unsafe fn release_erased(head: NonNull<Head>) {
        let task = head.cast::<Task<W, S>>();
        // SAFETY: the last reference: nobody else can touch the task, and
        // the acquire-release decrement in `JobRef::drop` made every earlier
        // use visible. The state word says what the cell holds. The block
        // came from `Box::new` in `JobRef::new`.
        unsafe {
            // The cell is touched only when something is left (normally
            // nothing is): under loom, whose model does not see the
            // reference count, an access here would look unordered.
            let dropped = match task.as_ref().header().leftover() {
                Leftover::Nothing => Ok(()),
                Leftover::Closure => task
                    .as_ref()
                    .cell
                    .with_mut(|slot| panic::drop_caught(ManuallyDrop::take(&mut (*slot).work))),
                Leftover::Value => task
                    .as_ref()
                    .cell
                    .with_mut(|slot| panic::drop_caught(ManuallyDrop::take(&mut (*slot).value))),
            };
            if let Err(message) = dropped {
                let id = task.as_ref().header().id();
                log_safely!(
                    Error,
                    "{id}: dropping what was left of it panicked: {message}"
                );
            }
            drop(Box::from_raw(task.as_ptr()));
        }
    }
}

/// A counted reference to a task, its types erased: one pointer.
pub(crate) struct JobRef {
    head: NonNull<Head>,
}

// SAFETY: a task is shared between threads by design: its closure and value
// are `Send` (moved to the thread that runs or takes them, one at a time, as
// the module docs lay out), its sink is `Sync`, and its header is atomics.
unsafe impl Send for JobRef {}
// SAFETY: as above; every method takes `&self` and synchronises through the
// state word.
unsafe impl Sync for JobRef {}

impl JobRef {
    /// Moves `task` to the heap; the reference returned is its first.
    pub(crate) fn new<'a, W, S>(task: Task<W, S>, lifetime: Erase<'a>) -> JobRef
    where
        W: Work + 'a,
        S: Sink + 'static,
    {
        let [job] = JobRef::new_many(task, lifetime);
        job
    }

    /// Moves `task` to the heap with `N` references to it, counted in one
    /// store rather than a read-modify-write each (for the spawn path: the
    /// registry's, the run queue's, the handle's).
    pub(crate) fn new_many<'a, W, S, const N: usize>(
        task: Task<W, S>,
        _lifetime: Erase<'a>,
    ) -> [JobRef; N]
    where
        W: Work + 'a,
        // The sink may be dropped after `'a` (see `Erase::scoped`).
        S: Sink + 'static,
    {
        const { assert!(N >= 1) };
        let block = Box::into_raw(Box::new(task));
        // SAFETY: `Box::into_raw` is never null; `Task` starts with its head.
        let head = unsafe { NonNull::new_unchecked(block) }.cast::<Head>();
        // SAFETY: the block is alive, and not shared yet.
        unsafe { head.as_ref() }.header.init_refs(N as u32);
        std::array::from_fn(|_| JobRef { head })
    }

    fn head(&self) -> &Head {
        // SAFETY: this reference keeps the block alive.
        unsafe { self.head.as_ref() }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.head().header
    }

    /// Runs the task; see `Task::run`.
    pub(crate) fn run(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        assert!(claim.is_for(self.header()), "a claim for another task");
        // SAFETY: the table was made for this block's types.
        unsafe { (self.head().vtable.run)(self.head, claim, cx) }
    }

    /// Drops the closure of a task that never started; see `Task::discard`.
    pub(crate) fn discard(&self, claim: Claim<'_>, cx: &dyn Context) -> Outcome {
        assert!(claim.is_for(self.header()), "a claim for another task");
        // SAFETY: the table was made for this block's types.
        unsafe { (self.head().vtable.discard)(self.head, claim, cx) }
    }

    /// Gives up this reference as a pointer, for the run queue's tagged
    /// messages; [`JobRef::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> NonNull<Head> {
        ManuallyDrop::new(self).head
    }

    /// # Safety
    ///
    /// `head` came from [`JobRef::into_raw`], and is taken back once.
    pub(crate) unsafe fn from_raw(head: NonNull<Head>) -> JobRef {
        JobRef { head }
    }

    /// Takes the closure back out of a task that was never shared, and
    /// frees it.
    ///
    /// # Safety
    ///
    /// The task is a `Task<W, S>`, this is its only reference, and it never
    /// left the queue.
    pub(crate) unsafe fn reclaim<W: Work, S: Sink>(self) -> W {
        assert!(self.header().is_unique() && self.header().is_queued());
        // SAFETY: the caller's contract: the task is ours alone and its
        // cell holds the closure.
        let work = unsafe {
            Task::<W, S>::from_head(self.head)
                .cell
                .with_mut(|slot| ManuallyDrop::take(&mut (*slot).work))
        };
        // Its cell is empty now: freeing it must not drop the closure.
        self.header().mark_withdrawn();
        work
    }
}

impl Clone for JobRef {
    fn clone(&self) -> JobRef {
        self.header().add_ref();
        JobRef { head: self.head }
    }
}

impl Drop for JobRef {
    fn drop(&mut self) {
        // Read before the count falls: afterwards the block may be gone.
        let release = self.head().vtable.release;
        // Acquire-release: every use of the task, on any thread, happens
        // before its memory is freed. (`Arc` uses a release decrement and
        // an acquire fence on the last one; on x86 this is the same
        // instruction, and ThreadSanitizer, which does not model fences,
        // understands it.) Only the atomic is borrowed across the decrement
        // (see `Header::refs`).
        if self.header().refs().fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: the last reference; the table was made for this block's
        // types.
        unsafe { release(self.head) }
    }
}

/// A handle's reference to its task, which knows the type of the value.
pub(crate) struct TaskRef<T> {
    job: JobRef,
    _value: PhantomData<fn() -> T>,
}

impl<T> TaskRef<T> {
    /// `job`, typed.
    ///
    /// # Safety
    ///
    /// The task's closure returns `T`.
    pub(crate) unsafe fn from_job(job: JobRef) -> TaskRef<T> {
        TaskRef {
            job,
            _value: PhantomData,
        }
    }

    pub(crate) fn job(&self) -> &JobRef {
        &self.job
    }

    pub(crate) fn header(&self) -> &Header {
        self.job.header()
    }

    /// Takes the published result; a panic message comes from `messages`.
    ///
    /// # Safety
    ///
    /// The caller is the task's one handle, has seen `is_published()`, and
    /// calls this (or `detach`) at most once.
    pub(crate) unsafe fn take(&self, messages: &Messages) -> Result<T, TaskError> {
        let header = self.header();
        let ending = header
            .ending()
            .expect("take before the result is published");
        let result = match ending {
            Ending::Returned => {
                let mut value = MaybeUninit::<T>::uninit();
                // SAFETY: published, returned, and this is the one handle
                // taking once; the table's value type is `T` (`new`).
                unsafe {
                    (self.job.head().vtable.take_value)(self.job.head, value.as_mut_ptr().cast());
                    Ok(value.assume_init())
                }
            }
            Ending::Panicked => {
                let message = messages.take(header.id());
                debug_assert!(message.is_some(), "a published panic keeps its message");
                Err(TaskError::Panicked(message.unwrap_or_default()))
            }
            Ending::Cancelled if header.timed_out() => Err(TaskError::TimedOut),
            Ending::Cancelled => Err(TaskError::Cancelled),
        };
        header.mark_taken();
        result
    }

    /// The handle goes away; drops the result if it was published already.
    /// `Err` carries the message of a panic in that drop.
    ///
    /// # Safety
    ///
    /// The caller is the task's one handle, calls this (or `take`) at most
    /// once, and never touches the task's result afterwards.
    pub(crate) unsafe fn detach(&self, messages: &Messages) -> Result<(), String> {
        let header = self.header();
        let dropped = match header.detach() {
            None | Some(Ending::Cancelled) => return Ok(()),
            Some(Ending::Panicked) => {
                drop(messages.take(header.id()));
                Ok(())
            }
            // SAFETY: PUBLISHED came first, so the owner is done and will
            // not drop the value: it is the handle's (our caller's) to drop.
            Some(Ending::Returned) => unsafe { (self.job.head().vtable.drop_value)(self.job.head) },
        };
        header.mark_taken();
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Quiet(Messages);
    impl Context for Quiet {
        fn panicked(&self, _: &Header, _: &str, _: &(dyn Any + Send)) {}
        fn drop_panicked(&self, _: &Header, _: &str, _: &str) {}
        fn finishing(&self, _: TaskId, _: Outcome) {}
        fn released(&self, _: &Header, _: Outcome, _: bool) {}
        fn settled(&self) {}
        fn wake_waiters(&self) {}
        fn messages(&self) -> &Messages {
            &self.0
        }
    }

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn id() -> TaskId {
        TaskId::from_raw(1).unwrap()
    }

    /// A task with a handle: the job and the typed reference.
    fn with_handle<W: Work + 'static>(work: W) -> (JobRef, TaskRef<W::Output>) {
        let [job, handle] = JobRef::new_many(Task::new(id(), work, (), false, 0), Erase::STATIC);
        // SAFETY: the task was made from `W` just now.
        (job, unsafe { TaskRef::from_job(handle) })
    }

    #[test]
    fn an_empty_task_is_three_words() {
        assert_eq!(std::mem::size_of::<Task<Inline<fn()>, ()>>(), 32);
        let empty = || ();
        fn size_of_task<F: FnOnce() + Send>(_: &F) -> usize {
            std::mem::size_of::<Task<Inline<F>, ()>>()
        }
        assert_eq!(size_of_task(&empty), 24);
        assert_eq!(std::mem::size_of::<JobRef>(), 8);
        assert_eq!(std::mem::size_of::<Option<JobRef>>(), 8);
    }

    #[test]
    fn run_publishes_and_take_returns() {
        let cx = Quiet::default();
        let (job, handle) = with_handle(Inline(|| 6 * 7));
        let claim = job.header().try_start().unwrap();
        assert_eq!(job.run(claim, &cx), Outcome::Completed);
        assert!(job.header().is_published() && job.header().is_done());
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { handle.take(&cx.0) }, Ok(42));
    }

    #[test]
    fn a_panic_message_waits_for_the_handle() {
        let cx = Quiet::default();
        let (job, handle) = with_handle(Inline(|| -> u8 { panic!("boom") }));
        let claim = job.header().try_start().unwrap();
        assert_eq!(job.run(claim, &cx), Outcome::Panicked);
        assert_eq!(cx.0.len(), 1);
        // SAFETY: the test is the one handle.
        assert_eq!(
            unsafe { handle.take(&cx.0) },
            Err(TaskError::Panicked("boom".into()))
        );
        assert_eq!(cx.0.len(), 0);
    }

    #[test]
    fn no_message_is_kept_for_a_detached_task_or_after_detach() {
        let cx = Quiet::default();
        let job = JobRef::new(
            Task::new(id(), Inline(|| -> u8 { panic!("boom") }), (), true, 0),
            Erase::STATIC,
        );
        let claim = job.header().try_start().unwrap();
        job.run(claim, &cx);
        assert_eq!(cx.0.len(), 0);

        let (job, handle) = with_handle(Inline(|| -> u8 { panic!("boom") }));
        let claim = job.header().try_start().unwrap();
        job.run(claim, &cx);
        // SAFETY: the test is the one handle.
        assert!(unsafe { handle.detach(&cx.0) }.is_ok());
        assert_eq!(cx.0.len(), 0);
    }

    #[test]
    fn a_detached_result_is_dropped_before_the_task_finishes() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let job = JobRef::new(
            Task::new(id(), Boxed(Box::new(move || Counted(d))), (), true, 0),
            Erase::STATIC,
        );
        let claim = job.header().try_start().unwrap();
        job.run(claim, &Quiet::default());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(job.header().is_done());
        drop(job);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped once");
    }

    #[test]
    fn discard_drops_the_closure_and_publishes_cancelled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        let cx = Quiet::default();
        let (job, handle) = with_handle(Inline(move || drop(c)));
        let claim = job.header().try_cancel().unwrap();
        assert_eq!(job.discard(claim, &cx), Outcome::Cancelled);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { handle.take(&cx.0) }, Err(TaskError::Cancelled));
    }

    #[test]
    fn detach_after_publication_drops_the_result_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let cx = Quiet::default();
        let (job, handle) = with_handle(Inline(move || Counted(d)));
        let claim = job.header().try_start().unwrap();
        job.run(claim, &cx);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        // SAFETY: the test is the one handle.
        assert!(unsafe { handle.detach(&cx.0) }.is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop((job, handle));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "not dropped again");
    }

    #[test]
    fn the_last_reference_drops_what_nobody_took() {
        let drops = Arc::new(AtomicUsize::new(0));
        // A value published and never taken (its handle leaked).
        let d = drops.clone();
        let (job, handle) = with_handle(Inline(move || Counted(d)));
        let claim = job.header().try_start().unwrap();
        job.run(claim, &Quiet::default());
        drop((job, handle));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the value");
        // A closure that never ran.
        let c = Counted(drops.clone());
        let (job, handle) = with_handle(Inline(move || drop(c)));
        drop((job, handle));
        assert_eq!(drops.load(Ordering::SeqCst), 2, "the closure");
    }

    #[test]
    fn reclaim_gives_the_closure_back_and_frees_the_task() {
        fn reclaimed<F: FnOnce() + Send + 'static>(f: F) -> F {
            let job = JobRef::new(Task::new(id(), Inline(f), (), true, 0), Erase::STATIC);
            // SAFETY: the only reference, to a queued task of these types.
            unsafe { job.reclaim::<Inline<F>, ()>() }.0
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        let work = reclaimed(move || drop(c));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(work);
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
        let cx = Quiet::default();
        let (job, handle) = with_handle(Inline(|| Bomb));
        let claim = job.header().try_start().unwrap();
        job.run(claim, &cx);
        // SAFETY: the test is the one handle.
        assert_eq!(unsafe { handle.detach(&cx.0) }, Err("bomb".to_owned()));
    }

    /// Rounds of each race: fewer under Miri, which runs them slowly (and
    /// explores a different interleaving per seed).
    const RACES: usize = if cfg!(miri) { 8 } else { 200 };

    #[test]
    fn two_last_drops_at_once_free_the_task_once() {
        for _ in 0..RACES {
            let drops = Arc::new(AtomicUsize::new(0));
            let c = Counted(drops.clone());
            let (job, handle) = with_handle(Inline(move || drop(c)));
            let other = std::thread::spawn(move || drop(handle));
            drop(job);
            other.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1, "the unrun closure, once");
        }
    }

    #[test]
    fn a_detach_racing_the_run_drops_the_value_once_and_keeps_no_message() {
        for round in 0..RACES {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let cx = Arc::new(Quiet::default());
            let panics = round % 2 == 0;
            let (job, handle) = with_handle(Inline(move || {
                let value = Counted(d);
                if panics {
                    panic!("round {round}");
                }
                value
            }));
            let owner_cx = Arc::clone(&cx);
            let owner = std::thread::spawn(move || {
                let claim = job.header().try_start().unwrap();
                job.run(claim, &*owner_cx);
            });
            // SAFETY: the test is the one handle.
            let _ = unsafe { handle.detach(&cx.0) };
            drop(handle);
            owner.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
            assert_eq!(cx.0.len(), 0, "no message left behind");
        }
    }
}
