//! [`CancelToken`]: cancellation that can be handed around, grouped and
//! nested, and that wakes whoever waits on it.
//!
//! A token is a node of a tree: `child()` hangs a new node under it.
//! Cancelling a node cancels its whole subtree (never its ancestors) and
//! wakes every `wait_timeout` on those nodes. Tasks attach to a node
//! ([`CancelToken::attach`], from `TaskOptions::cancel_with`, and a task's
//! own token) by a weak reference to their engine and their id, and leave
//! it when they settle, so a token never grows with the tasks it has seen
//! and keeps none alive. A child leaves its parent when its last clone is
//! dropped.
//!
//! Cancelling a subtree goes in four steps:
//!
//! 1. each node still live is marked *cancelling* by this thread, under its
//!    lock, and its tasks and children are collected (an attach or a
//!    `child()` under the same lock either came before, and is collected,
//!    or sees the mark);
//! 2. outside every lock, the queued tasks are cancelled, then the running
//!    ones flagged, so that a slot freed by a task that stops on its flag
//!    never starts a task the token was about to cancel;
//! 3. each node is marked *cancelled* and its waiters woken: a task woken
//!    from `sleep` or `wait_timeout` finds its flag set already;
//! 4. nodes that another thread was cancelling are waited for, so that
//!    every `cancel` has taken effect when it returns. A thread waits only
//!    once its own nodes are cancelled, and a `cancel` nested in another
//!    one's step 2 (a closure's `Drop`, an end hook) never waits, so no two
//!    threads wait for each other; a nested cancel may return before a
//!    node another thread is cancelling is done.
//!
//! The own token of a running task attached to the subtree is part of the
//! subtree (step 1 follows it), so the children a task spawned with its
//! own token are cancelled in the queue before any task is flagged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::sync::thread::{self, ThreadId};
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};
use crate::task::TaskId;

/// What a token reaches its tasks through: their engine.
pub(crate) trait TokenTarget: Send + Sync {
    /// Cancels task `id` if it is still queued (reason `Token`).
    fn cancel_queued(&self, id: TaskId);
    /// Sets task `id`'s cancel flag if it still runs (reason `Token`).
    fn flag_running(&self, id: TaskId);
    /// Task `id`'s own token, if it made one.
    fn own_token(&self, id: TaskId) -> Option<CancelToken>;
}

crate::sync::thread_local_cell! {
    /// How many cancels this thread is inside step 2 of.
    static NESTED: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// Marks this thread as running a cancel's step 2 until dropped.
struct Nested;

impl Nested {
    fn enter() -> Nested {
        NESTED.with(|depth| depth.set(depth.get() + 1));
        Nested
    }

    fn depth() -> usize {
        NESTED.with(std::cell::Cell::get)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTED.with(|depth| depth.set(depth.get() - 1));
    }
}

/// A task attached to a node: which engine, which id.
type TaskKey = (usize, TaskId);

struct Node {
    /// Set once, in step 3 (see the module docs), under `state`'s lock;
    /// read without it by `is_cancelled`.
    cancelled: AtomicBool,
    state: Mutex<NodeState>,
    wake: Condvar,
    /// Strong: a grandchild keeps the path to its root alive, even when
    /// every clone of the middle token is gone.
    parent: Option<Arc<Node>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Live,
    /// A thread is cancelling its tasks (steps 1 to 3).
    Cancelling(ThreadId),
    Cancelled,
}

struct NodeState {
    phase: Phase,
    children: HashMap<usize, Weak<Node>>,
    tasks: HashMap<TaskKey, Weak<dyn TokenTarget>>,
}

impl Node {
    fn new(parent: Option<Arc<Node>>, cancelled: bool) -> Node {
        Node {
            cancelled: AtomicBool::new(cancelled),
            state: Mutex::new(NodeState {
                phase: if cancelled {
                    Phase::Cancelled
                } else {
                    Phase::Live
                },
                children: HashMap::new(),
                tasks: HashMap::new(),
            }),
            wake: Condvar::new(),
            parent,
        }
    }

    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The last clone of a child is gone: it leaves its parent's list.
        if let Some(parent) = &self.parent {
            let me = self as *const Node as usize;
            parent.state.lock().children.remove(&me);
        }
    }
}

/// A cancellation signal that can be shared, nested and waited on.
///
/// Cancelling is one-way: once [`cancel`](Self::cancel) is called,
/// [`is_cancelled`](Self::is_cancelled) stays true and every
/// [`wait_timeout`](Self::wait_timeout) on it returns. Tasks spawned with
/// [`TaskOptions::cancel_with`](crate::TaskOptions::cancel_with) are
/// cancelled with it: before `cancel` returns, those still queued are
/// finished without running (`Err(Cancelled)`) and those running are
/// flagged, with [`CancelReason::Token`](crate::CancelReason::Token). A
/// [`child`](Self::child) is cancelled with its parent, never the other way.
/// Inside a task, [`cancel_token`](crate::cancel_token) gives the task's
/// own token, to hand to code outside it.
///
/// A token keeps no task alive (a task that settles leaves its token), and
/// dropping a token, or all its clones, never cancels anything.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskwarden::{CancelToken, TaskManager, TaskOptions};
///
/// let manager = TaskManager::new(2);
/// let batch = CancelToken::new();
/// let handles: Vec<_> = (0..4)
///     .map(|_| {
///         let options = TaskOptions::new().cancel_with(&batch);
///         manager.spawn_with(options, || taskwarden::sleep(Duration::from_secs(30))).unwrap()
///     })
///     .collect();
/// batch.cancel(); // the running two wake at once, the queued two never run
/// for handle in handles {
///     assert!(matches!(handle.join(), Ok(false) | Err(taskwarden::TaskError::Cancelled)));
/// }
/// ```
#[derive(Clone)]
pub struct CancelToken {
    node: Arc<Node>,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = taskwarden::CancelToken::new();
    /// assert!(!token.is_cancelled());
    /// ```
    #[must_use]
    pub fn new() -> CancelToken {
        CancelToken {
            node: Arc::new(Node::new(None, false)),
        }
    }

    /// Cancels this token and its children (and theirs): their queued
    /// tasks are finished and their running tasks flagged before this
    /// returns, and every waiter wakes. Cancelling twice does nothing more.
    ///
    /// # Examples
    ///
    /// ```
    /// let parent = taskwarden::CancelToken::new();
    /// let child = parent.child();
    /// parent.cancel();
    /// assert!(child.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        let me = thread::current().id();
        let mut mine = Vec::new();
        let mut others = Vec::new();
        let mut tasks: Vec<(Arc<dyn TokenTarget>, TaskId)> = Vec::new();
        let mut next = vec![Arc::clone(&self.node)];
        while let Some(node) = next.pop() {
            let mut state = node.state.lock();
            match state.phase {
                Phase::Live => {
                    state.phase = Phase::Cancelling(me);
                    let found = tasks.len();
                    tasks.extend(
                        state
                            .tasks
                            .iter()
                            .filter_map(|(&(_, id), target)| Some((target.upgrade()?, id))),
                    );
                    next.extend(state.children.values().filter_map(Weak::upgrade));
                    drop(state);
                    // A running task's own token is part of the subtree: the
                    // children it spawned with it are queued tasks this
                    // cancel reaches, to be cancelled before any task is
                    // flagged (and frees a slot).
                    for (target, id) in &tasks[found..] {
                        next.extend(target.own_token(*id).map(|own| own.node));
                    }
                    mine.push(node);
                }
                Phase::Cancelling(other) if other != me => {
                    drop(state);
                    others.push(node);
                }
                // Cancelled already, or being cancelled by a `cancel` this
                // one is nested in.
                _ => {}
            }
        }
        // Outside every lock: cancelling runs user code (a closure's drop,
        // an end hook), which may cancel tokens itself.
        {
            let _nested = Nested::enter();
            for (target, id) in &tasks {
                target.cancel_queued(*id);
            }
            for (target, id) in &tasks {
                target.flag_running(*id);
            }
        }
        for node in &mine {
            let mut state = node.state.lock();
            state.phase = Phase::Cancelled;
            node.cancelled.store(true, Ordering::SeqCst);
            node.wake.notify_all();
        }
        // A cancel nested in another one's step 2 does not wait: the outer
        // one may be what the other thread waits for.
        if Nested::depth() > 0 {
            return;
        }
        for node in &others {
            let mut state = node.state.lock();
            while state.phase != Phase::Cancelled {
                node.wake.wait(&mut state);
            }
        }
    }

    /// Whether this token (or an ancestor) has been cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = taskwarden::CancelToken::new();
    /// token.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.node.cancelled.load(Ordering::Acquire)
    }

    /// A new token that is cancelled when this one is, or by itself
    /// (never the other way). A child of a cancelled token starts
    /// cancelled. Dropping every clone of a child takes it off its parent.
    ///
    /// # Examples
    ///
    /// ```
    /// let parent = taskwarden::CancelToken::new();
    /// let child = parent.child();
    /// child.cancel();
    /// assert!(!parent.is_cancelled());
    /// ```
    #[must_use]
    pub fn child(&self) -> CancelToken {
        let mut state = self.node.state.lock();
        let cancelled = state.phase != Phase::Live;
        let child = Arc::new(Node::new(Some(Arc::clone(&self.node)), cancelled));
        if !cancelled {
            state.children.insert(child.key(), Arc::downgrade(&child));
        }
        CancelToken { node: child }
    }

    /// Waits until the token is cancelled or `timeout` passes: true once
    /// cancelled (at once if it is already), false when the time ran out
    /// first. It returns within a few milliseconds of the `cancel`, whatever
    /// thread calls it. Inside a task, it keeps the task's slot (wrap it in
    /// [`lend_slot`](crate::lend_slot) to lend it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let token = taskwarden::CancelToken::new();
    /// assert!(!token.wait_timeout(Duration::from_millis(5)));
    /// let remote = token.clone();
    /// std::thread::spawn(move || remote.cancel());
    /// assert!(token.wait_timeout(Duration::from_secs(30)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.is_cancelled() {
            return true;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.node.state.lock();
        loop {
            if self.node.cancelled.load(Ordering::SeqCst) {
                return true;
            }
            match deadline {
                None => self.node.wake.wait(&mut state),
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    let _ = self.node.wake.wait_until(&mut state, deadline);
                }
            }
        }
    }

    /// Attaches task `id` of the engine `target` (whose address is
    /// `engine`): a `cancel` from now on reaches it. The caller checks
    /// [`is_cancelled_now`](Self::is_cancelled_now) once the task can be
    /// found by id, and detaches it when it settles.
    pub(crate) fn attach(&self, engine: usize, id: TaskId, target: Weak<dyn TokenTarget>) {
        let mut state = self.node.state.lock();
        state.tasks.insert((engine, id), target);
    }

    /// The task settled: the token forgets it.
    pub(crate) fn detach(&self, engine: usize, id: TaskId) {
        let mut state = self.node.state.lock();
        state.tasks.remove(&(engine, id));
        // Give the memory of a table that emptied back.
        if state.tasks.is_empty() && state.tasks.capacity() > 64 {
            state.tasks.shrink_to_fit();
        }
    }

    /// Whether a cancel has begun, read under its lock: a task attached
    /// and made findable before this call is reached by any `cancel` this
    /// misses (the cancel marks the node under the same lock, then looks
    /// its tasks up).
    pub(crate) fn is_cancelled_now(&self) -> bool {
        self.node.state.lock().phase != Phase::Live
    }

    /// Whether two tokens are the same (clones of one).
    pub(crate) fn same(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// How many tasks are attached now (for tests of memory).
    #[cfg(test)]
    pub(crate) fn attached(&self) -> usize {
        self.node.state.lock().tasks.len()
    }

    /// How many children are listed now (for tests of memory).
    #[cfg(test)]
    fn children(&self) -> usize {
        self.node.state.lock().children.len()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Mutex<Vec<(&'static str, TaskId)>>);

    impl TokenTarget for Recorder {
        fn cancel_queued(&self, id: TaskId) {
            self.0.lock().push(("queued", id));
        }
        fn flag_running(&self, id: TaskId) {
            self.0.lock().push(("running", id));
        }
        fn own_token(&self, _id: TaskId) -> Option<CancelToken> {
            None
        }
    }

    fn id(n: u64) -> TaskId {
        TaskId::from_raw(n).unwrap()
    }

    #[test]
    fn cancel_reaches_the_subtree_queued_first_and_never_the_parent() {
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        let target: Arc<dyn TokenTarget> = recorder.clone();
        let root = CancelToken::new();
        let child = root.child();
        let grandchild = child.child();
        root.attach(1, id(1), Arc::downgrade(&target));
        grandchild.attach(1, id(2), Arc::downgrade(&target));
        child.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        assert!(!root.is_cancelled());
        assert_eq!(
            *recorder.0.lock(),
            vec![("queued", id(2)), ("running", id(2))]
        );
        root.cancel();
        assert_eq!(recorder.0.lock().len(), 4, "task 1 now, task 2 not again");
        assert!(root.child().is_cancelled(), "born cancelled");
    }

    #[test]
    fn tasks_and_children_leave_their_token() {
        let recorder: Arc<dyn TokenTarget> = Arc::new(Recorder(Mutex::new(Vec::new())));
        let root = CancelToken::new();
        for n in 1..=1000 {
            root.attach(7, id(n), Arc::downgrade(&recorder));
            root.detach(7, id(n));
        }
        assert_eq!(root.attached(), 0);
        for _ in 0..1000 {
            drop(root.child());
        }
        assert_eq!(root.children(), 0);
        let kept = root.child();
        let clone = kept.clone();
        drop(kept);
        assert_eq!(root.children(), 1, "a clone keeps the child listed");
        drop(clone);
        assert_eq!(root.children(), 0);
    }

    /// A target that cancels the token again from inside the cancel (a
    /// closure's `Drop` may): the nested cancel does not wait for itself.
    struct Again(Mutex<Option<CancelToken>>);

    impl TokenTarget for Again {
        fn cancel_queued(&self, _id: TaskId) {
            let token = self.0.lock().take();
            if let Some(token) = token {
                token.cancel();
                assert!(!token.is_cancelled(), "the outer cancel is not done yet");
            }
        }
        fn flag_running(&self, _id: TaskId) {}
        fn own_token(&self, _id: TaskId) -> Option<CancelToken> {
            None
        }
    }

    #[test]
    fn a_cancel_nested_in_its_own_cancel_returns() {
        let token = CancelToken::new();
        let target: Arc<dyn TokenTarget> = Arc::new(Again(Mutex::new(Some(token.clone()))));
        token.attach(1, id(1), Arc::downgrade(&target));
        token.cancel();
        assert!(token.is_cancelled());
    }

    #[test]
    fn wait_timeout_wakes_on_cancel_from_another_thread() {
        let token = CancelToken::new();
        assert!(!token.wait_timeout(Duration::from_millis(1)));
        let remote = token.child();
        let parent = token.clone();
        let waiter = std::thread::spawn(move || remote.wait_timeout(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(10));
        let started = Instant::now();
        parent.cancel();
        assert!(waiter.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(token.wait_timeout(Duration::ZERO), "at once once cancelled");
    }
}
