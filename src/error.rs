//! What can go wrong, one type per operation: [`SpawnError`] hands the
//! rejected closure back, [`TaskError`] is how a task failed, and
//! [`CloseReport`] says what a close had to cancel or abandon.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::task::TaskId;

/// How a task failed, as returned by [`TaskHandle::join`](crate::TaskHandle::join).
///
/// # Examples
///
/// ```
/// use taskwarden::TaskError;
/// let manager = taskwarden::TaskManager::new(1);
/// let handle = manager.spawn(|| panic!("disk full")).unwrap();
/// let error: TaskError = handle.join().unwrap_err();
/// assert_eq!(error.to_string(), "task panicked: disk full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the panic message (or a placeholder for a payload
    /// that is not a string).
    Panicked(String),
    /// The task was cancelled before it started, so it never ran.
    Cancelled,
    /// The task's `cancel_at` passed while it was queued, so it never ran
    /// (the timer took it out of the queue at that moment).
    TimedOut,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(message) => write!(f, "task panicked: {message}"),
            TaskError::Cancelled => f.write_str("task was cancelled before it started"),
            TaskError::TimedOut => f.write_str("timed out before it started"),
        }
    }
}

impl Error for TaskError {}

/// Why a spawn was rejected.
///
/// # Examples
///
/// ```
/// use taskwarden::SpawnErrorKind;
/// let manager = taskwarden::TaskManager::new(1);
/// manager.close();
/// let error = manager.spawn(|| ()).unwrap_err();
/// assert_eq!(error.kind(), SpawnErrorKind::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// Close has begun; the manager accepts no more work.
    Closed,
    /// The queue holds `queue_capacity` tasks (only from `try_spawn`).
    Full,
    /// The manager had no worker thread and the OS refused to start one, so
    /// the task could never run.
    ThreadStart,
}

impl fmt::Display for SpawnErrorKind {
    /// `closed`, `full`, or `thread start failed`.
    ///
    /// ```
    /// assert_eq!(taskwarden::SpawnErrorKind::Full.to_string(), "full");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnErrorKind::Closed => "closed",
            SpawnErrorKind::Full => "full",
            SpawnErrorKind::ThreadStart => "thread start failed",
        })
    }
}

/// A rejected spawn, holding the closure that was not accepted.
///
/// Nothing is lost: [`into_inner`](Self::into_inner) gives the closure back.
/// `Debug` and `Display` do not require the closure to be `Debug`.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(1);
/// manager.close();
/// let error = manager.spawn(|| 7).unwrap_err();
/// assert!(error.is_closed());
/// let closure = error.into_inner();
/// assert_eq!(closure(), 7);
/// ```
pub struct SpawnError<F> {
    kind: SpawnErrorKind,
    closure: F,
    source: Option<io::Error>,
}

// SAFETY: a `SpawnError` never lends out `&F`: the closure can only be
// moved out (`into_inner`, which takes `self`), and `Debug`, `Display` and
// `Error` do not touch it. Sharing `&SpawnError<F>` between threads
// therefore shares no `&F`, so `F: Sync` is not needed; `F: Send` is, for
// the value to move with the error. (`io::Error`, the other field, is
// `Send + Sync`.) This lets `?` turn it into `Box<dyn Error + Send + Sync>`
// for every spawnable closure.
unsafe impl<F: Send> Sync for SpawnError<F> {}

impl<F> SpawnError<F> {
    pub(crate) fn from_parts(kind: SpawnErrorKind, closure: F, source: Option<io::Error>) -> Self {
        SpawnError {
            kind,
            closure,
            source,
        }
    }

    /// Why the spawn was rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().queue_capacity(1).max_tasks(1).start().unwrap();
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = manager.spawn(move || { g.wait(); }).unwrap();
    /// while manager.running().is_empty() { std::thread::yield_now(); }
    /// let queued = manager.try_spawn(|| ()).unwrap();
    /// let full = manager.try_spawn(|| ()).unwrap_err();
    /// assert_eq!(full.kind(), taskwarden::SpawnErrorKind::Full);
    /// gate.wait();
    /// # busy.join().unwrap(); queued.join().unwrap();
    /// ```
    pub fn kind(&self) -> SpawnErrorKind {
        self.kind
    }

    /// True if the spawn was rejected because close has begun.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// manager.close();
    /// assert!(manager.try_spawn(|| ()).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.kind == SpawnErrorKind::Closed
    }

    /// True if `try_spawn` was rejected because the bounded queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// manager.close();
    /// assert!(!manager.spawn(|| ()).unwrap_err().is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.kind == SpawnErrorKind::Full
    }

    /// Gives the rejected closure back.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// manager.close();
    /// let text = String::from("kept");
    /// let back = manager.spawn(move || text).unwrap_err().into_inner();
    /// assert_eq!(back(), "kept");
    /// ```
    pub fn into_inner(self) -> F {
        self.closure
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SpawnErrorKind::Closed => {
                f.write_str("spawn rejected: the task manager is closed and accepts no more tasks")
            }
            SpawnErrorKind::Full => {
                f.write_str("spawn rejected: the task queue is full (queue_capacity reached)")
            }
            SpawnErrorKind::ThreadStart => match &self.source {
                Some(source) => write!(f, "could not start a worker thread: {source}"),
                None => f.write_str("could not start a worker thread"),
            },
        }
    }
}

impl<F> Error for SpawnError<F> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

/// What a close did, returned by [`TaskManager::close`](crate::TaskManager::close).
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// manager.spawn(|| ()).unwrap();
/// let report = manager.close();
/// assert!(report.is_clean());
/// assert!(!report.timed_out);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Tasks dropped without running (still queued at the deadline, or at
    /// once by `close_now`), ascending.
    pub cancelled: Vec<TaskId>,
    /// Tasks still running at the end: flagged as cancelled and left to
    /// finish on their own threads, ascending.
    pub abandoned: Vec<TaskId>,
    /// Running tasks that `close_now` flagged and that returned within its
    /// grace, ascending. Always empty for `close` and `close_timeout` alone.
    pub stopped: Vec<TaskId>,
    /// Whether the close ended with work left: for `close`, true exactly
    /// when something was cancelled or abandoned; for `close_now` (or a
    /// close it escalated), exactly when something was abandoned.
    pub timed_out: bool,
    /// How long the close took.
    pub elapsed: Duration,
}

impl CloseReport {
    /// True if the close cancelled nothing and abandoned nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::new(1);
    /// assert!(manager.close().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.cancelled.is_empty() && self.abandoned.is_empty()
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "closed in {}: {} cancelled, {} abandoned",
            human_duration(self.elapsed),
            self.cancelled.len(),
            self.abandoned.len(),
        )?;
        if !self.stopped.is_empty() {
            write!(f, ", {} stopped", self.stopped.len())?;
        }
        if self.timed_out {
            f.write_str(" (timed out)")?;
        }
        Ok(())
    }
}

/// A duration the way a person reads it: three significant figures at most,
/// in the largest unit that keeps the number at or above 1.
///
/// `12 ns`, `850 µs`, `3.1 ms`, `2.00 s`; from a minute on, `2 min 05 s`;
/// from an hour on, `1 h 02 min`. A value that would round up to the next
/// unit's 1 is shown in that unit (`999.96 ms` reads `1.00 s`).
pub(crate) fn human_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 999_500 {
        format!("{:.0} µs", nanos as f64 / 1e3)
    } else if nanos < 999_950_000 {
        format!("{:.1} ms", nanos as f64 / 1e6)
    } else if nanos < 59_995_000_000 {
        format!("{:.2} s", nanos as f64 / 1e9)
    } else {
        let seconds = (nanos + 500_000_000) / 1_000_000_000;
        if seconds < 3_600 {
            format!("{} min {:02} s", seconds / 60, seconds % 60)
        } else {
            let minutes = (seconds + 30) / 60;
            format!("{} h {:02} min", minutes / 60, minutes % 60)
        }
    }
}
