//! [`Builder`]: the manager's settings, their validation, and [`BuildError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::config::{check_max_tasks, Config, LIMIT};
use crate::hooks::{Hooks, PanicReport, TaskEnd, TaskStart};

/// Settings for a [`TaskManager`](crate::TaskManager), checked by
/// [`start`](Builder::start).
///
/// Every setter takes and returns the builder, so they chain.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let manager = taskwarden::TaskManager::builder()
///     .max_tasks(8)
///     .close_timeout(Duration::from_secs(2))
///     .queue_capacity(1_000)
///     .thread_name("ingest")
///     .start()
///     .expect("valid settings");
/// assert_eq!(manager.spawn(|| 1 + 1).unwrap().join(), Ok(2));
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    config: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: Config {
                max_tasks: 35,
                close_timeout: Duration::from_secs(10),
                queue_capacity: None,
                thread_name: "taskwarden".to_owned(),
                stack_size: None,
                keep_alive: None,
                hooks: Hooks::default(),
            },
        }
    }
}

impl Builder {
    /// A builder with the defaults: 35 tasks at once, a 10 s close timeout,
    /// an unbounded queue, threads named `taskwarden-{n}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::Builder::new().start().unwrap();
    /// # drop(manager);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// How many tasks may run at once (and so how many threads may exist).
    /// Default 35; must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().max_tasks(3).start().unwrap();
    /// # drop(manager);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn max_tasks(mut self, n: usize) -> Builder {
        self.config.max_tasks = n;
        self
    }

    /// The deadline [`TaskManager::close`](crate::TaskManager::close) and
    /// `Drop` use. Default 10 s; must not be zero (pass `Duration::ZERO` to
    /// [`TaskManager::close_timeout`](crate::TaskManager::close_timeout) for
    /// an immediate close).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder()
    ///     .close_timeout(std::time::Duration::from_millis(500))
    ///     .start()
    ///     .unwrap();
    /// # drop(manager);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn close_timeout(mut self, d: Duration) -> Builder {
        self.config.close_timeout = d;
        self
    }

    /// How many tasks may wait in the queue. When it is full, `spawn` blocks
    /// and `try_spawn` returns a full error. Default: unbounded; must be at
    /// least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().queue_capacity(64).start().unwrap();
    /// # drop(manager);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn queue_capacity(mut self, n: usize) -> Builder {
        self.config.queue_capacity = Some(n);
        self
    }

    /// The prefix of the worker threads' names: they are `{prefix}-{n}`,
    /// numbered from 0. Default `"taskwarden"`; must not be empty or hold a
    /// NUL byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().thread_name("fetch").start().unwrap();
    /// let name = manager.spawn(|| std::thread::current().name().map(str::to_owned)).unwrap();
    /// assert_eq!(name.join().unwrap().as_deref(), Some("fetch-0"));
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.config.thread_name = prefix.into();
        self
    }

    /// The stack size of each worker thread, in bytes. Default: the
    /// standard library's default.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = taskwarden::TaskManager::builder().stack_size(4 << 20).start().unwrap();
    /// # drop(manager);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.config.stack_size = Some(bytes);
        self
    }

    /// How long an idle worker thread waits for work before it exits; new
    /// work starts threads again. Default: never (threads live until
    /// close); must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = taskwarden::TaskManager::builder()
    ///     .keep_alive(Duration::from_millis(20))
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// while manager.stats().threads > 0 { std::thread::sleep(Duration::from_millis(5)); }
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn keep_alive(mut self, d: Duration) -> Builder {
        self.config.keep_alive = Some(d);
        self
    }

    /// Runs `hook` on each worker thread before its first task, with the
    /// thread's name set. A panic in it is caught and logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = started.clone();
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_thread_start(move || { count.fetch_add(1, Ordering::SeqCst); })
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// assert_eq!(started.load(Ordering::SeqCst), 1);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn on_thread_start<H: Fn() + Send + Sync + 'static>(mut self, hook: H) -> Builder {
        self.config.hooks.on_thread_start = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on each worker thread as it exits (close, keep-alive, or
    /// resize; for a thread whose task a close abandoned, after that close
    /// returned). A panic in it is caught and logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let stopped = Arc::new(AtomicUsize::new(0));
    /// let count = stopped.clone();
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_thread_stop(move || { count.fetch_add(1, Ordering::SeqCst); })
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// manager.close();
    /// assert_eq!(stopped.load(Ordering::SeqCst), 1);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn on_thread_stop<H: Fn() + Send + Sync + 'static>(mut self, hook: H) -> Builder {
        self.config.hooks.on_thread_stop = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on the worker right after a task panics (after the error
    /// log), with the task's id, the message and the original payload
    /// ([`PanicReport`]). `join` still returns the message. A panic in the
    /// hook is caught and logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let panics = Arc::new(AtomicUsize::new(0));
    /// let count = panics.clone();
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_panic(move |_report| { count.fetch_add(1, Ordering::SeqCst); })
    ///     .start()
    ///     .unwrap();
    /// let _ = manager.spawn(|| panic!("oops")).unwrap().join();
    /// manager.drain();
    /// assert_eq!(panics.load(Ordering::SeqCst), 1);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn on_panic<H>(mut self, hook: H) -> Builder
    where
        H: Fn(&PanicReport<'_>) + Send + Sync + 'static,
    {
        self.config.hooks.on_panic = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on the thread that runs each task, just before its
    /// closure, with the task's id, name and how long it was queued
    /// ([`TaskStart`]). It runs outside every lock of the crate, so it may
    /// spawn or cancel on the same manager; a panic in it is caught and
    /// logged, and the task still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let starts = Arc::new(AtomicUsize::new(0));
    /// let count = starts.clone();
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_start(move |_start| { count.fetch_add(1, Ordering::SeqCst); })
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// assert_eq!(starts.load(Ordering::SeqCst), 1);
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn on_task_start<H>(mut self, hook: H) -> Builder
    where
        H: Fn(&TaskStart<'_>) + Send + Sync + 'static,
    {
        self.config.hooks.on_task_start = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` once for every accepted task as it settles
    /// ([`TaskEnd`]: id, name, time queued, time run, outcome): on the
    /// thread that ran it, after its result was handed over or dropped
    /// and before a `join`, `drain` or `close` sees it finished; for a task
    /// that never ran (cancelled or timed out while queued), on the thread
    /// that cancelled it, with `ran_for` zero and no start hook before. It
    /// runs outside every lock of the crate; a panic in it is caught and
    /// logged.
    ///
    /// With neither task hook (and no names or tokens), a spawn reads no
    /// clock and allocates nothing beyond the task.
    ///
    /// To spawn or cancel from a hook, use
    /// [`current_spawner`](crate::current_spawner) (in a hook on the thread
    /// that ran the task, it is the task's manager). A hook that owns a
    /// [`Spawner`](crate::Spawner) of its own manager keeps that manager
    /// alive for good: a reference cycle that never frees it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let slow = Arc::new(Mutex::new(Vec::new()));
    /// let log = slow.clone();
    /// let manager = taskwarden::TaskManager::builder()
    ///     .on_task_end(move |end| {
    ///         if end.ran_for() > std::time::Duration::from_secs(1) {
    ///             log.lock().unwrap().push(end.id());
    ///         }
    ///     })
    ///     .start()
    ///     .unwrap();
    /// manager.spawn(|| ()).unwrap().join().unwrap();
    /// assert!(slow.lock().unwrap().is_empty());
    /// ```
    #[must_use = "a builder setter returns the new builder"]
    pub fn on_task_end<H>(mut self, hook: H) -> Builder
    where
        H: Fn(&TaskEnd<'_>) + Send + Sync + 'static,
    {
        self.config.hooks.on_task_end = Some(std::sync::Arc::new(hook));
        self
    }

    /// Checks the settings: the [`Config`] they make, or the error that
    /// names the first bad one ([`start`](Builder::start) uses it).
    pub(crate) fn validate(self) -> Result<Config, BuildError> {
        let config = self.config;
        let fail = |setting, problem| Err(BuildError { setting, problem });
        if let Err(problem) = check_max_tasks(config.max_tasks) {
            return fail("max_tasks", problem);
        }
        if config.close_timeout.is_zero() {
            return fail(
                "close_timeout",
                "must be longer than zero (use TaskManager::close_timeout(Duration::ZERO) for an immediate close)".to_owned(),
            );
        }
        match config.queue_capacity {
            Some(0) => return fail("queue_capacity", "must be at least 1, got 0".to_owned()),
            Some(n) if n > LIMIT => {
                return fail(
                    "queue_capacity",
                    format!("must be at most {LIMIT}, got {n}"),
                );
            }
            _ => {}
        }
        if config.thread_name.is_empty() || config.thread_name.contains('\0') {
            return fail(
                "thread_name",
                "must be non-empty and hold no NUL byte".to_owned(),
            );
        }
        if config.stack_size == Some(0) {
            return fail("stack_size", "must be at least 1 byte, got 0".to_owned());
        }
        if config.keep_alive == Some(Duration::ZERO) {
            return fail(
                "keep_alive",
                "must be longer than zero (leave it unset to keep threads until close)".to_owned(),
            );
        }
        Ok(config)
    }
}

/// A setting given to [`Builder`] that cannot work; it names the setting.
///
/// # Examples
///
/// ```
/// let error = taskwarden::TaskManager::builder().queue_capacity(0).start().unwrap_err();
/// assert_eq!(error.setting(), "queue_capacity");
/// assert!(error.to_string().contains("queue_capacity"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    setting: &'static str,
    problem: String,
}

impl BuildError {
    /// The name of the bad setting, as the builder method that sets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let error = taskwarden::TaskManager::builder()
    ///     .close_timeout(Duration::ZERO)
    ///     .start()
    ///     .unwrap_err();
    /// assert_eq!(error.setting(), "close_timeout");
    /// ```
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid taskwarden setting `{}`: {}",
            self.setting, self.problem
        )
    }
}

impl Error for BuildError {}
