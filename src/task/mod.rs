//! One task: its id, its state word, and the single allocation that holds
//! its closure, its flags and its result slot (`cell`).
//!
//! Nothing here is public but [`TaskId`] and [`TaskState`]; the engine
//! (`crate::engine`) drives the protocol, the handles (`crate::handle`) read
//! its results.
//!
//! # The task state word
//!
//! Everything a task's parties need to agree on is in one atomic `u32`: a
//! phase in the low two bits, and four flags.
//!
//! ```text
//!             try_start (a worker, or a waiting task that helps)
//!   QUEUED ───────────────────────────────▶ RUNNING ──finish──▶ FINISHED
//!      │                                                          ▲
//!      └──try_cancel ──▶ CANCELLED ──────────finish───────────────┘
//!   (try_cancel: cancel, cancel_all, close, a timer)
//!
//!   flags: CANCEL_REQUESTED  read by is_cancelled()
//!          PUBLISHED         the result belongs to the handle
//!          DETACHED          the handle is gone
//!          JOIN_WAITING      someone sleeps on the engine's parking gate for it
//!          DELAYED           queued, but not before its start time: only
//!                            the timer may put it in the run queue
//!   fields:  OUTCOME         how it ended (completed, panicked, cancelled):
//!                            written with PUBLISHED, read by the handle
//!          TAKEN             the handle took or dropped the result
//!          TIMED             the timer holds an event for it: settling
//!                            tells the timer, which forgets it
//!          REASON            why CANCEL_REQUESTED was set (the first
//!                            reason wins: written with the flag)
//!          PARKED            its task waits in a wait or `lend_slot`
//!          EXTRA             it has an entry in the engine's side table
//!                            (a name, a token, hook times)
//!          OWN_TOKEN         its own token exists: setting the cancel
//!                            flag must cancel that token too
//!          HOME (high byte)  the registry shard it lives in; never changes
//! ```
//!
//! The word sits beside the task's reference count and id in [`Header`],
//! 16 bytes at the front of the task's one allocation (see `cell`).
//!
//! Leaving `QUEUED` is a compare-and-swap, so exactly one party wins it and
//! receives a [`Claim`]: the proof, checked by the type system, that it alone
//! may take the closure out of the cell (to run it or to drop it) and write
//! the result. A task is therefore run at most once and settled exactly once.
//!
//! A task stays `RUNNING` until it is settled: its result handed to its
//! handle (`PUBLISHED`) or dropped, and the task counted. A result whose
//! `Drop` is slow, or spawns, is still part of its task, as far as
//! `state()`, `drain` and `close` can see; and whoever sees `FINISHED` (a
//! joiner) also sees the task gone from the counts.

pub(crate) mod cell;

use std::fmt;
use std::num::NonZeroU64;

use crate::sync::{AtomicU32, Ordering};

/// The id of a task: its number within its manager, and which manager
/// issued it.
///
/// Ids increase in the order in which tasks are accepted, and the first task
/// of a manager is `task-1`. An id also records its manager: passing one
/// manager's id to another is never mistaken for one of that manager's
/// tasks (`cancel` returns false, `state` returns `None`). Ids of different
/// managers compare unequal, ordered by manager, then by number.
///
/// An id is one word: the manager's tag in its high 16 bits, the number in
/// the low 48 (2.8 × 10¹⁴ tasks per manager). Managers alive at the same
/// time never share a tag; a tag is reused only after it is free again and
/// the other 65,534 have been handed out since.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// let first = manager.spawn(|| ()).unwrap();
/// let second = manager.spawn(|| ()).unwrap();
/// assert_eq!(first.id().get(), 1);
/// assert!(first.id() < second.id());
/// assert_eq!(second.id().to_string(), "task-2");
///
/// let other = taskwarden::TaskManager::new(2);
/// let elsewhere = other.spawn(|| ()).unwrap();
/// assert_eq!(elsewhere.id().get(), 1);
/// assert_ne!(elsewhere.id(), first.id(), "same number, another manager");
/// assert!(!manager.cancel(elsewhere.id()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(NonZeroU64);

/// Bits of an id that hold its number; the rest hold its manager's tag.
const NUMBER_BITS: u32 = 48;
const NUMBER_MASK: u64 = (1 << NUMBER_BITS) - 1;

impl TaskId {
    /// The id from its whole word (tag and number), as `raw` gave it.
    pub(crate) fn from_raw(raw: u64) -> Option<TaskId> {
        NonZeroU64::new(raw).map(TaskId)
    }

    /// The whole word: tag and number (never 0).
    pub(crate) fn raw(self) -> u64 {
        self.0.get()
    }

    /// The tag of the manager that issued it.
    fn tag(self) -> u64 {
        self.0.get() >> NUMBER_BITS
    }

    /// The number behind the id, starting at 1 for a manager's first task.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert_eq!(manager.spawn(|| ()).unwrap().id().get(), 1);
    /// ```
    #[must_use]
    pub fn get(self) -> u64 {
        self.0.get() & NUMBER_MASK
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.get())
    }
}

impl fmt::Display for TaskId {
    /// `task-17`; honours width and alignment (`{:>10}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() {
            f.pad(&format!("task-{}", self.get()))
        } else {
            write!(f, "task-{}", self.get())
        }
    }
}

/// The tags of the managers alive now (one bit each), and where the search
/// for the next free one starts. A plain std mutex: taken only when a
/// manager is made or dropped.
struct Tags {
    in_use: Vec<u64>,
    next: u64,
}

static TAGS: std::sync::Mutex<Tags> = std::sync::Mutex::new(Tags {
    in_use: Vec::new(),
    next: 1,
});

/// Tags run from 1 to this (0 is never used, so tags stay visible).
const MAX_TAG: u64 = (1 << (64 - NUMBER_BITS)) - 1;

/// One manager's ids: its tag, held while it lives.
pub(crate) struct IdSpace {
    /// The tag, shifted into place.
    high: u64,
}

impl IdSpace {
    /// Takes the next tag that no living manager holds (round-robin, so a
    /// dropped manager's tag comes back last). With every tag in use (65,535
    /// managers alive at once) the next one is shared, and said so.
    pub(crate) fn new() -> IdSpace {
        let mut tags = TAGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if tags.in_use.is_empty() {
            tags.in_use = vec![0; (MAX_TAG as usize + 1).div_ceil(64)];
        }
        let start = tags.next;
        let mut tag = start;
        loop {
            let (word, bit) = ((tag / 64) as usize, tag % 64);
            if tags.in_use[word] & (1 << bit) == 0 {
                tags.in_use[word] |= 1 << bit;
                break;
            }
            tag = if tag == MAX_TAG { 1 } else { tag + 1 };
            if tag == start {
                crate::panic::log_safely!(
                    Warn,
                    "{MAX_TAG} task managers alive at once: task ids of two of them share a tag"
                );
                break;
            }
        }
        tags.next = if tag == MAX_TAG { 1 } else { tag + 1 };
        IdSpace {
            high: tag << NUMBER_BITS,
        }
    }

    /// The id of this manager's task number `number` (from 1).
    ///
    /// # Panics
    ///
    /// Past 2⁴⁸ − 1 tasks (about nine years at a million tasks a second).
    #[inline]
    pub(crate) fn id(&self, number: u64) -> TaskId {
        assert!(
            number != 0 && number <= NUMBER_MASK,
            "task ids of this manager are used up"
        );
        TaskId(NonZeroU64::new(self.high | number).expect("the number is not 0"))
    }

    /// Whether this manager issued `id`.
    #[inline]
    pub(crate) fn owns(&self, id: TaskId) -> bool {
        id.tag() == self.high >> NUMBER_BITS
    }
}

impl Drop for IdSpace {
    fn drop(&mut self) {
        let tag = self.high >> NUMBER_BITS;
        let mut tags = TAGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (word, bit) = ((tag / 64) as usize, tag % 64);
        if let Some(word) = tags.in_use.get_mut(word) {
            *word &= !(1 << bit);
        }
    }
}

/// Where a task is in its life, from [`TaskManager::state`](crate::TaskManager::state).
///
/// # Examples
///
/// ```
/// use taskwarden::{TaskManager, TaskState};
/// let manager = TaskManager::new(1);
/// let handle = manager.spawn(|| 1).unwrap();
/// let id = handle.id();
/// handle.join().unwrap();
/// assert_eq!(manager.state(id), Some(TaskState::Finished));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Accepted and not started: waiting for a slot, or for its start time.
    Queued,
    /// Running: its closure has been called and its result is not yet
    /// handed over or dropped. A task parked in a wait reads `Running` too.
    Running,
    /// Returned, panicked, cancelled, or rejected at spawn.
    Finished,
}

const PHASE: u32 = 0b11;
const QUEUED: u32 = 0;
const RUNNING: u32 = 1;
const CANCELLED: u32 = 2;
const FINISHED: u32 = 3;
const CANCEL_REQUESTED: u32 = 1 << 2;
const PUBLISHED: u32 = 1 << 3;
const DETACHED: u32 = 1 << 4;
const JOIN_WAITING: u32 = 1 << 5;
const DELAYED: u32 = 1 << 6;
const OUTCOME: u32 = 0b11 << 7;
const TAKEN: u32 = 1 << 9;
const TIMED: u32 = 1 << 10;
const REASON_SHIFT: u32 = 11;
const REASON: u32 = 0b11 << REASON_SHIFT;
const PARKED: u32 = 1 << 13;
const EXTRA: u32 = 1 << 14;
const OWN_TOKEN: u32 = 1 << 15;
const HOME_SHIFT: u32 = 24;

/// Why a task's cancel flag is set, from
/// [`cancel_reason`](crate::cancel_reason) and [`TaskInfo`](crate::TaskInfo).
/// The first reason to set the flag is the one kept.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::{CancelReason, TaskManager, TaskOptions};
///
/// let manager = TaskManager::new(1);
/// let options = TaskOptions::new().cancel_after(Duration::from_millis(10));
/// let handle = manager
///     .spawn_with(options, || {
///         taskwarden::sleep(Duration::from_secs(30));
///         taskwarden::cancel_reason()
///     })
///     .unwrap();
/// assert_eq!(handle.join(), Ok(Some(CancelReason::Deadline)));
/// assert_eq!(CancelReason::Deadline.to_string(), "deadline");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// `cancel(id)`, a handle's `cancel`, `cancel_all`, or a task set or map
    /// cancelling its own tasks.
    Requested,
    /// A `cancel_after` or `cancel_at` deadline passed.
    Deadline,
    /// A token the task was spawned with (`TaskOptions::cancel_with`), or
    /// the task's own token, was cancelled.
    Token,
    /// `close`, `close_now`, or the manager's drop.
    Closing,
}

impl CancelReason {
    fn bits(self) -> u32 {
        (match self {
            CancelReason::Requested => 0,
            CancelReason::Deadline => 1,
            CancelReason::Token => 2,
            CancelReason::Closing => 3,
        }) << REASON_SHIFT
    }

    fn from_state(state: u32) -> Option<CancelReason> {
        if state & CANCEL_REQUESTED == 0 {
            return None;
        }
        Some(match (state & REASON) >> REASON_SHIFT {
            0 => CancelReason::Requested,
            1 => CancelReason::Deadline,
            2 => CancelReason::Token,
            _ => CancelReason::Closing,
        })
    }
}

impl fmt::Display for CancelReason {
    /// `requested`, `deadline`, `token` or `closing`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            CancelReason::Requested => "requested",
            CancelReason::Deadline => "deadline",
            CancelReason::Token => "token",
            CancelReason::Closing => "closing",
        })
    }
}

/// How a task ended, as the state word's OUTCOME field holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its closure returned: the cell holds the value.
    Returned,
    /// Its closure panicked: the message is kept beside the task.
    Panicked,
    /// It never started.
    Cancelled,
}

impl Ending {
    fn bits(self) -> u32 {
        (match self {
            Ending::Returned => 1,
            Ending::Panicked => 2,
            Ending::Cancelled => 3,
        }) << 7
    }

    fn from_bits(state: u32) -> Option<Ending> {
        match (state & OUTCOME) >> 7 {
            1 => Some(Ending::Returned),
            2 => Some(Ending::Panicked),
            3 => Some(Ending::Cancelled),
            _ => None,
        }
    }
}

/// What a task's cell holds when its memory is freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leftover {
    Nothing,
    Closure,
    Value,
}

/// The exclusive right to a task's cell, won by leaving `QUEUED`. Only
/// [`Header::try_start`] and [`Header::try_cancel`] make one, and the cell's
/// owner-only operations consume it, so that "only the winner touches the
/// cell" is checked by the compiler rather than promised by a comment.
#[must_use = "a claim must be used to run or discard its task"]
pub(crate) struct Claim<'a> {
    header: &'a Header,
}

impl Claim<'_> {
    /// Whether this claim is for the task with this header.
    pub(crate) fn is_for(&self, header: &Header) -> bool {
        std::ptr::eq(self.header, header)
    }
}

/// What [`Header::request_cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flagged {
    /// This call set the flag.
    pub(crate) now: bool,
    /// The task's own token exists: cancel it too.
    pub(crate) own_token: bool,
}

/// What [`Header::finish`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    /// A waiter announced itself: wake the parking gate.
    pub(crate) waiter: bool,
    /// The timer holds an event for the task: tell it to forget.
    pub(crate) timed: bool,
}

/// What every task has whatever its closure and result types: its state
/// word, its reference count and its id (16 bytes).
#[repr(C)]
pub(crate) struct Header {
    state: AtomicU32,
    /// References to the task: the registry's, the run queue's, the
    /// handle's, and any a caller holds for a moment (see `cell::JobRef`).
    /// `std`'s even under loom, as `Arc`'s count was: as a modelled atomic
    /// every reference would be a branch point of every model, and the
    /// count follows `Arc`'s protocol, which Miri checks here.
    refs: std::sync::atomic::AtomicU32,
    id: TaskId,
}

impl Header {
    /// A queued task with one reference; `detached` when no handle will
    /// ever exist; `home` is its registry shard.
    pub(crate) fn new(id: TaskId, detached: bool, home: u8) -> Header {
        let flags = if detached { DETACHED } else { QUEUED };
        Header {
            state: AtomicU32::new(flags | u32::from(home) << HOME_SHIFT),
            refs: std::sync::atomic::AtomicU32::new(1),
            id,
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// The registry shard the task lives in (set at spawn, never changed).
    pub(crate) fn home(&self) -> u8 {
        (self.state.load(Ordering::Relaxed) >> HOME_SHIFT) as u8
    }

    /// One more reference. Relaxed, as for `Arc`: a new reference is made
    /// from an existing one, which keeps the task alive meanwhile.
    pub(crate) fn add_ref(&self) {
        let before = self.refs.fetch_add(1, Ordering::Relaxed);
        // A count near overflow means references leak: stop rather than
        // free a task that is still referenced.
        if before > u32::MAX / 2 {
            std::process::abort();
        }
    }

    /// The reference count itself, for the one place that lowers it
    /// (`JobRef`'s drop). Lowering it through a method taking `&Header`
    /// would be unsound: the block may be freed by another thread while
    /// that reference, a function argument, is still live.
    pub(crate) fn refs(&self) -> &std::sync::atomic::AtomicU32 {
        &self.refs
    }

    /// Sets the count of a task nobody else can see yet.
    pub(crate) fn init_refs(&self, refs: u32) {
        self.refs.store(refs, Ordering::Relaxed);
    }

    /// Whether the caller holds the only reference.
    pub(crate) fn is_unique(&self) -> bool {
        self.refs.load(Ordering::Acquire) == 1
    }

    fn phase(&self) -> u32 {
        self.state.load(Ordering::Acquire) & PHASE
    }

    /// QUEUED → RUNNING: the caller now owns the closure. Acquire on
    /// success: the owner sees the closure the spawner wrote (through the
    /// channel, or through this word for a task claimed by a helper).
    /// Release: a worker's slot store made before is visible to whoever
    /// later reads `RUNNING`.
    pub(crate) fn try_start(&self) -> Option<Claim<'_>> {
        self.leave_queue(RUNNING)
    }

    /// QUEUED → CANCELLED: the caller must discard the closure.
    pub(crate) fn try_cancel(&self) -> Option<Claim<'_>> {
        self.leave_queue(CANCELLED)
    }

    fn leave_queue(&self, to: u32) -> Option<Claim<'_>> {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if current & PHASE != QUEUED {
                return None;
            }
            // Other flags may change under us (a cancel request, a detach):
            // keep them, change only the phase.
            match self.state.compare_exchange_weak(
                current,
                current | to,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Claim { header: self }),
                Err(now) => current = now,
            }
        }
    }

    /// The owner offers the stored result to the handle: sets `PUBLISHED`
    /// unless the handle is gone; true if it did (the result is the
    /// handle's now), false if the owner must drop it.
    ///
    /// The detach RMW and this CAS are totally ordered on the one word:
    /// either the handle sees `PUBLISHED` and takes or drops the result
    /// itself, or this sees `DETACHED` and the owner drops it.
    /// `ending` is written with the flag, for the handle to read.
    #[cfg(test)]
    pub(crate) fn hand_over(&self, ending: Ending) -> bool {
        self.hand_over_noting(ending).0
    }

    /// `hand_over`, also saying whether the task has a side-table entry
    /// (EXTRA), read from the word it loaded anyway: the settling owner
    /// learns it without another access.
    pub(crate) fn hand_over_noting(&self, ending: Ending) -> (bool, bool) {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let extra = current & EXTRA != 0;
            if current & DETACHED != 0 {
                return (false, extra);
            }
            match self.state.compare_exchange_weak(
                current,
                current | PUBLISHED | ending.bits(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (true, extra),
                Err(now) => current = now,
            }
        }
    }

    /// The task is settled (its result handed over or dropped, and counted):
    /// RUNNING or CANCELLED → FINISHED. An RMW, since a cancel request or a
    /// waiter may race in; says whether a waiter announced itself (wake the
    /// gate) and whether the timer holds an event for the task.
    pub(crate) fn finish(&self) -> Finished {
        let before = self.state.fetch_or(FINISHED, Ordering::AcqRel);
        debug_assert!(before & PHASE != QUEUED);
        Finished {
            waiter: before & JOIN_WAITING != 0,
            timed: before & TIMED != 0,
        }
    }

    /// The timer is about to hold an event for this task; false if the
    /// task has settled already (the event is not needed). The RMW orders
    /// this against `finish`: whichever comes second sees the other, so a
    /// settling task whose event the timer keeps always tells it.
    pub(crate) fn mark_timed(&self) -> bool {
        self.state.fetch_or(TIMED, Ordering::AcqRel) & PHASE != FINISHED
    }

    /// The handle goes away: how the task ended if the result was already
    /// published (and the handle must drop it), `None` if not.
    pub(crate) fn detach(&self) -> Option<Ending> {
        let before = self.state.fetch_or(DETACHED, Ordering::AcqRel);
        if before & PUBLISHED != 0 {
            Ending::from_bits(before)
        } else {
            None
        }
    }

    /// Whether the handle has gone away (the owner then keeps no panic
    /// message for it).
    pub(crate) fn is_detached(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DETACHED != 0
    }

    /// How a published task ended (acquire: the result is visible then);
    /// `None` before publication.
    pub(crate) fn ending(&self) -> Option<Ending> {
        let state = self.state.load(Ordering::Acquire);
        if state & PUBLISHED != 0 {
            Ending::from_bits(state)
        } else {
            None
        }
    }

    /// The handle took or dropped the result: the cell is empty.
    pub(crate) fn mark_taken(&self) {
        self.state.fetch_or(TAKEN, Ordering::Relaxed);
    }

    /// What the cell holds when the last reference goes: the closure if the
    /// task never left the queue, the value if it returned, was published
    /// and the handle neither took nor dropped it.
    pub(crate) fn leftover(&self) -> Leftover {
        // The caller holds the last reference, and the count's acquire
        // decrement makes every earlier change visible to a plain load. loom
        // does not model the count (see `refs`), so there a read-modify-
        // write, which reads the latest value, stands in for that order.
        let state = if cfg!(loom) {
            self.state.fetch_or(0, Ordering::AcqRel)
        } else {
            self.state.load(Ordering::Acquire)
        };
        if state & PHASE == QUEUED {
            Leftover::Closure
        } else if state & (PUBLISHED | TAKEN) == PUBLISHED
            && Ending::from_bits(state) == Some(Ending::Returned)
        {
            Leftover::Value
        } else {
            Leftover::Nothing
        }
    }

    /// A task that was never shared gives its closure back: it reads as
    /// settled with nothing in its cell.
    pub(crate) fn mark_withdrawn(&self) {
        self.state.fetch_or(FINISHED | TAKEN, Ordering::Relaxed);
    }

    /// A waiter announces itself before sleeping on the parking gate; true
    /// if the task is finished already. The RMW orders the announcement
    /// against the owner's `finish` RMW: whichever comes second sees the
    /// other.
    pub(crate) fn announce_waiter(&self) -> bool {
        self.state.fetch_or(JOIN_WAITING, Ordering::AcqRel) & PHASE == FINISHED
    }

    /// Marks a task that is not to start before its start time. Only
    /// before the task is shared.
    pub(crate) fn mark_delayed(&self) {
        self.state.fetch_or(DELAYED, Ordering::Relaxed);
    }

    /// The start time came (the timer, before it queues the task).
    pub(crate) fn mark_due(&self) {
        self.state.fetch_and(!DELAYED, Ordering::AcqRel);
    }

    /// Queued and due: a task waiting for it may claim it.
    pub(crate) fn is_claimable(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        state & PHASE == QUEUED && state & DELAYED == 0
    }

    pub(crate) fn is_queued(&self) -> bool {
        self.phase() == QUEUED
    }

    pub(crate) fn is_running(&self) -> bool {
        self.phase() == RUNNING
    }

    /// Settled for good: ran (or was cancelled), its result handed over or
    /// dropped, and counted. Acquire: a published result is visible then.
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & PHASE == FINISHED
    }

    /// What `TaskManager::state` says of this task. `Finished` is decided
    /// at one point for `state` and the handle alike: the FINISHED phase
    /// (`is_done`). A task being cancelled (CANCELLED: its closure is
    /// being dropped) still reads `Queued`, as its handle is not finished.
    pub(crate) fn task_state(&self) -> TaskState {
        match self.phase() {
            QUEUED | CANCELLED => TaskState::Queued,
            RUNNING => TaskState::Running,
            _ => TaskState::Finished,
        }
    }

    /// Sets the flag that `is_cancelled` reads, with its reason, unless it
    /// is set already (the first reason stays). An RMW on the shared word,
    /// so it never loses another party's flag.
    pub(crate) fn request_cancel(&self, reason: CancelReason) -> Flagged {
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if current & CANCEL_REQUESTED != 0 {
                return Flagged {
                    now: false,
                    own_token: false,
                };
            }
            // AcqRel: ordered against `mark_own_token` (see there).
            match self.state.compare_exchange_weak(
                current,
                current | CANCEL_REQUESTED | reason.bits(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Flagged {
                        now: true,
                        own_token: current & OWN_TOKEN != 0,
                    }
                }
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CANCEL_REQUESTED != 0
    }

    /// Why the flag is set; `None` while it is not.
    pub(crate) fn cancel_reason(&self) -> Option<CancelReason> {
        CancelReason::from_state(self.state.load(Ordering::Acquire))
    }

    /// A task that never ran because its `cancel_at` passed in the queue:
    /// cancelled with the deadline as the reason.
    pub(crate) fn timed_out(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        Ending::from_bits(state) == Some(Ending::Cancelled)
            && CancelReason::from_state(state) == Some(CancelReason::Deadline)
    }

    /// The task's own token now exists (registered before this call);
    /// true if the flag was set already (the caller cancels the token
    /// itself). The RMW orders this against `request_cancel`: whichever
    /// comes second sees the other, so the token is always cancelled.
    pub(crate) fn mark_own_token(&self) -> bool {
        self.state.fetch_or(OWN_TOKEN, Ordering::AcqRel) & CANCEL_REQUESTED != 0
    }

    /// Marks a task with an entry in the side table. Only before the task
    /// is shared.
    pub(crate) fn mark_extra(&self) {
        self.state.fetch_or(EXTRA, Ordering::Relaxed);
    }

    /// Whether the task has an entry in the side table.
    pub(crate) fn has_extra(&self) -> bool {
        self.state.load(Ordering::Relaxed) & EXTRA != 0
    }

    /// The task parks in a wait (true) or resumes (false); returns whether
    /// it was parked before. Release, paired with `is_parked`: whoever sees
    /// the task parked also sees what its thread did before (its slot
    /// cleared, so `running()` no longer lists it).
    pub(crate) fn set_parked(&self, parked: bool) -> bool {
        let before = if parked {
            self.state.fetch_or(PARKED, Ordering::AcqRel)
        } else {
            self.state.fetch_and(!PARKED, Ordering::AcqRel)
        };
        before & PARKED != 0
    }

    /// Whether the task waits in a wait or `lend_slot`.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) & PARKED != 0
    }

    /// The result is ready for the handle (acquire: the cell's contents
    /// are visible once this is true). Never true of a task whose handle
    /// detached before the hand-over.
    pub(crate) fn is_published(&self) -> bool {
        self.state.load(Ordering::Acquire) & PUBLISHED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header::new(TaskId::from_raw(1).unwrap(), false, 0)
    }

    #[test]
    fn exactly_one_claim_leaves_the_queue() {
        let h = header();
        assert!(h.try_start().is_some());
        assert!(h.try_start().is_none());
        assert!(h.try_cancel().is_none());
        assert_eq!(h.task_state(), TaskState::Running);
    }

    #[test]
    fn hand_over_then_detach_leaves_the_result_to_the_handle() {
        let h = header();
        let _claim = h.try_start().unwrap();
        assert!(h.hand_over(Ending::Returned));
        assert_eq!(h.task_state(), TaskState::Running, "until settled");
        assert!(!h.finish().waiter);
        assert_eq!(h.task_state(), TaskState::Finished);
        assert_eq!(h.leftover(), Leftover::Value);
        assert_eq!(
            h.detach(),
            Some(Ending::Returned),
            "the handle drops a published result"
        );
    }

    #[test]
    fn detach_then_hand_over_leaves_the_result_to_the_owner() {
        let h = header();
        let _claim = h.try_start().unwrap();
        assert_eq!(h.detach(), None);
        assert!(!h.hand_over(Ending::Returned));
        assert_eq!(h.leftover(), Leftover::Nothing);
        assert!(!h.announce_waiter());
        assert!(h.finish().waiter, "the waiter is woken");
        assert!(h.announce_waiter(), "and sees the task done");
    }

    #[test]
    fn a_cancelled_task_finishes() {
        let h = header();
        let _claim = h.try_cancel().unwrap();
        assert_eq!(
            h.task_state(),
            TaskState::Queued,
            "not finished while its closure is being dropped"
        );
        assert!(h.hand_over(Ending::Cancelled));
        assert!(!h.is_done());
        h.finish();
        assert!(h.is_published() && h.is_done());
        assert_eq!(h.task_state(), TaskState::Finished);
        assert_eq!(h.ending(), Some(Ending::Cancelled));
        assert_eq!(h.leftover(), Leftover::Nothing);
    }

    #[test]
    fn the_first_reason_wins_and_a_queued_deadline_is_a_time_out() {
        let h = header();
        assert_eq!(h.cancel_reason(), None);
        assert!(h.request_cancel(CancelReason::Deadline).now);
        assert!(!h.request_cancel(CancelReason::Requested).now);
        assert_eq!(h.cancel_reason(), Some(CancelReason::Deadline));
        assert!(!h.timed_out(), "not before it is cancelled");
        let _claim = h.try_cancel().unwrap();
        h.hand_over(Ending::Cancelled);
        assert!(h.timed_out());
    }

    #[test]
    fn the_own_token_and_the_flag_see_each_other() {
        let h = header();
        assert!(!h.mark_own_token());
        assert!(h.request_cancel(CancelReason::Token).own_token);
        let h = header();
        h.request_cancel(CancelReason::Requested);
        assert!(h.mark_own_token(), "the flag came first");
    }

    #[test]
    fn the_home_survives_every_flag() {
        let h = Header::new(TaskId::from_raw(9).unwrap(), true, 31);
        assert_eq!(h.home(), 31);
        h.request_cancel(CancelReason::Closing);
        let _claim = h.try_start().unwrap();
        h.hand_over(Ending::Panicked);
        h.finish();
        assert_eq!(h.home(), 31);
        assert_eq!(h.cancel_reason(), Some(CancelReason::Closing));
        assert_eq!(h.leftover(), Leftover::Nothing);
        assert_eq!(h.ending(), None, "a detached task publishes nothing");
    }
}
