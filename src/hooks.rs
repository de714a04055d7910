//! The user's hooks: code the engine calls on worker threads
//! ([`Builder::on_thread_start`](crate::Builder::on_thread_start),
//! [`on_thread_stop`](crate::Builder::on_thread_stop),
//! [`on_panic`](crate::Builder::on_panic)) and per task
//! ([`on_task_start`](crate::Builder::on_task_start),
//! [`on_task_end`](crate::Builder::on_task_end)), and what they see:
//! [`PanicReport`], [`TaskStart`], [`TaskEnd`]. Every hook runs inside the
//! catch boundary and outside every lock of the crate: a hook that panics
//! is logged, and the manager goes on.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::panic::{self, log_safely};
use crate::task::TaskId;

/// What an [`on_panic`](crate::Builder::on_panic) hook sees of a task that
/// panicked: its id, the panic message, and the original payload.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let manager = taskwarden::TaskManager::builder()
///     .on_panic(move |report| {
///         let code = report.payload().downcast_ref::<u32>().copied();
///         log.lock().unwrap().push((report.task(), report.message().to_owned(), code));
///     })
///     .start()
///     .unwrap();
/// let handle = manager.spawn(|| std::panic::panic_any(7_u32)).unwrap();
/// let id = handle.id();
/// assert!(handle.join().is_err());
/// manager.drain();
/// assert_eq!(seen.lock().unwrap()[0].0, id);
/// assert_eq!(seen.lock().unwrap()[0].2, Some(7));
/// ```
pub struct PanicReport<'a> {
    task: TaskId,
    name: Option<&'a str>,
    message: &'a str,
    payload: &'a (dyn Any + Send),
}

impl<'a> PanicReport<'a> {
    pub(crate) fn new(
        task: TaskId,
        name: Option<&'a str>,
        message: &'a str,
        payload: &'a (dyn Any + Send),
    ) -> Self {
        PanicReport {
            task,
            name,
            message,
            payload,
        }
    }

    /// The task's name, if it was spawned with one
    /// ([`TaskOptions::name`](crate::TaskOptions::name)).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_panic(|report| assert_eq!(report.name(), Some("resize a.jpg")))
    ///     .start()
    ///     .unwrap();
    /// let options = TaskOptions::new().name("resize a.jpg");
    /// let _ = manager.spawn_with(options, || panic!("corrupt")).unwrap().join();
    /// ```
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name
    }

    /// The task that panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_panic(|report| assert_eq!(report.task().get(), 1))
    ///     .start()
    ///     .unwrap();
    /// let _ = manager.spawn(|| panic!("first task")).unwrap().join();
    /// ```
    #[must_use]
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The panic message (the `&str` or `String` payload, or a placeholder
    /// for another payload type): what `join` returns in
    /// [`TaskError::Panicked`](crate::TaskError::Panicked).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_panic(|report| assert_eq!(report.message(), "disk full"))
    ///     .start()
    ///     .unwrap();
    /// let _ = manager.spawn(|| panic!("disk full")).unwrap().join();
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        self.message
    }

    /// The original panic payload, for `downcast_ref`.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_panic(|report| assert!(report.payload().is::<&str>()))
    ///     .start()
    ///     .unwrap();
    /// let _ = manager.spawn(|| panic!("text")).unwrap().join();
    /// ```
    #[must_use]
    pub fn payload(&self) -> &(dyn Any + Send) {
        self.payload
    }
}

impl fmt::Debug for PanicReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicReport")
            .field("task", &self.task)
            .field("name", &self.name)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// How a task ended, as [`TaskEnd::outcome`] says.
///
/// `Cancelled` and `TimedOut` are for tasks that never ran; a task that ran
/// is `Completed` or `Panicked`, flagged or not.
///
/// # Examples
///
/// ```
/// use taskwarden::TaskOutcome;
/// assert_ne!(TaskOutcome::Completed, TaskOutcome::Panicked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// Its closure returned.
    Completed,
    /// Its closure panicked.
    Panicked,
    /// It was cancelled before it started.
    Cancelled,
    /// Its `cancel_at` passed while it was queued.
    TimedOut,
}

/// What an [`on_task_start`](crate::Builder::on_task_start) hook sees: the
/// task about to run, on the thread that runs it.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let waits = Arc::new(Mutex::new(Vec::new()));
/// let seen = waits.clone();
/// let manager = taskwarden::TaskManager::builder()
///     .on_task_start(move |start| seen.lock().unwrap().push((start.id(), start.queued_for())))
///     .start()
///     .unwrap();
/// manager.spawn(|| ()).unwrap().join().unwrap();
/// assert_eq!(waits.lock().unwrap().len(), 1);
/// ```
pub struct TaskStart<'a> {
    pub(crate) id: TaskId,
    pub(crate) name: Option<&'a str>,
    pub(crate) queued_for: Duration,
}

impl TaskStart<'_> {
    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_start(|start| assert_eq!(start.id().get(), 1))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_start(|start| assert_eq!(start.name(), Some("fetch")))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn_with(TaskOptions::new().name("fetch"), || ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name
    }

    /// How long it waited between its acceptance and now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_start(|start| assert!(start.queued_for() < Duration::from_secs(3600)))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn queued_for(&self) -> Duration {
        self.queued_for
    }
}

impl fmt::Debug for TaskStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStart")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("queued_for", &self.queued_for)
            .finish()
    }
}

/// What an [`on_task_end`](crate::Builder::on_task_end) hook sees: a task
/// that settled, once for every accepted task.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskwarden::TaskOutcome;
/// let ends = Arc::new(Mutex::new(Vec::new()));
/// let seen = ends.clone();
/// let manager = taskwarden::TaskManager::builder()
///     .on_task_end(move |end| seen.lock().unwrap().push(end.outcome()))
///     .start()
///     .unwrap();
/// let _ = manager.spawn(|| panic!("no")).unwrap().join();
/// manager.drain();
/// assert_eq!(*ends.lock().unwrap(), vec![TaskOutcome::Panicked]);
/// ```
pub struct TaskEnd<'a> {
    pub(crate) id: TaskId,
    pub(crate) name: Option<&'a str>,
    pub(crate) queued_for: Duration,
    pub(crate) ran_for: Duration,
    pub(crate) outcome: TaskOutcome,
}

impl TaskEnd<'_> {
    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(|end| assert_eq!(end.id().get(), 1))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskOptions;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(|end| assert_eq!(end.name(), Some("upload")))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn_with(TaskOptions::new().name("upload"), || ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name
    }

    /// From acceptance to start (to settling, for a task that never ran).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(|end| assert!(end.queued_for() < Duration::from_secs(3600)))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn queued_for(&self) -> Duration {
        self.queued_for
    }

    /// From start to settling; zero for a task that never ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(|end| assert!(end.ran_for() >= Duration::from_millis(5)))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| std::thread::sleep(Duration::from_millis(5))).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn ran_for(&self) -> Duration {
        self.ran_for
    }

    /// How it ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskwarden::TaskOutcome;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(|end| assert_eq!(end.outcome(), TaskOutcome::Completed))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// ```
    #[must_use]
    pub fn outcome(&self) -> TaskOutcome {
        self.outcome
    }
}

impl fmt::Debug for TaskEnd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskEnd")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("queued_for", &self.queued_for)
            .field("ran_for", &self.ran_for)
            .field("outcome", &self.outcome)
            .finish()
    }
}

pub(crate) type ThreadHook = Arc<dyn Fn() + Send + Sync>;
pub(crate) type PanicHook = Arc<dyn Fn(&PanicReport<'_>) + Send + Sync>;
pub(crate) type StartHook = Arc<dyn Fn(&TaskStart<'_>) + Send + Sync>;
pub(crate) type EndHook = Arc<dyn Fn(&TaskEnd<'_>) + Send + Sync>;

/// The hooks a manager was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) on_panic: Option<PanicHook>,
    pub(crate) on_task_start: Option<StartHook>,
    pub(crate) on_task_end: Option<EndHook>,
}

impl Hooks {
    /// Runs a thread hook, catching and logging a panic in it.
    pub(crate) fn thread_hook(hook: &Option<ThreadHook>, which: &str) {
        if let Some(hook) = hook {
            if let Err(message) = panic::catch(|| hook()) {
                log_safely!(Error, "the {which} hook panicked: {message}");
            }
        }
    }

    /// Whether a per-task hook is set (every task then records when it
    /// was accepted).
    pub(crate) fn per_task(&self) -> bool {
        self.on_task_start.is_some() || self.on_task_end.is_some()
    }

    /// Runs the start hook, catching and logging a panic in it.
    pub(crate) fn task_start(&self, start: &TaskStart<'_>) {
        if let Some(hook) = &self.on_task_start {
            if let Err(message) = panic::catch(|| hook(start)) {
                log_safely!(Error, "the on_task_start hook panicked: {message}");
            }
        }
    }

    /// Runs the end hook, catching and logging a panic in it.
    pub(crate) fn task_end(&self, end: &TaskEnd<'_>) {
        if let Some(hook) = &self.on_task_end {
            if let Err(message) = panic::catch(|| hook(end)) {
                log_safely!(Error, "the on_task_end hook panicked: {message}");
            }
        }
    }

    /// Runs the panic hook, catching and logging a panic in it.
    pub(crate) fn panic_hook(&self, report: &PanicReport<'_>) {
        if let Some(hook) = &self.on_panic {
            if let Err(message) = panic::catch(|| hook(report)) {
                log_safely!(Error, "the on_panic hook panicked: {message}");
            }
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_thread_start", &self.on_thread_start.is_some())
            .field("on_thread_stop", &self.on_thread_stop.is_some())
            .field("on_panic", &self.on_panic.is_some())
            .field("on_task_start", &self.on_task_start.is_some())
            .field("on_task_end", &self.on_task_end.is_some())
            .finish()
    }
}
