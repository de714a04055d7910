//! The user's hooks: code the engine calls on worker threads
//! ([`Builder::on_thread_start`](crate::Builder::on_thread_start),
//! [`on_thread_stop`](crate::Builder::on_thread_stop),
//! [`on_panic`](crate::Builder::on_panic)), and [`PanicReport`], what the
//! panic hook sees. Every hook runs inside the catch boundary: a hook that
//! panics is logged, and the manager goes on.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

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
    message: &'a str,
    payload: &'a (dyn Any + Send),
}

impl<'a> PanicReport<'a> {
    pub(crate) fn new(task: TaskId, message: &'a str, payload: &'a (dyn Any + Send)) -> Self {
        PanicReport {
            task,
            message,
            payload,
        }
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
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

pub(crate) type ThreadHook = Arc<dyn Fn() + Send + Sync>;
pub(crate) type PanicHook = Arc<dyn Fn(&PanicReport<'_>) + Send + Sync>;

/// The hooks a manager was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) on_panic: Option<PanicHook>,
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
            .finish()
    }
}
