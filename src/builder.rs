//! [`Builder`]: the manager's settings, their validation, and [`BuildError`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::manager::TaskManager;

/// The largest `max_tasks` and `queue_capacity`: each count is kept in 32
/// bits of one atomic word.
const LIMIT: usize = u32::MAX as usize / 2;

/// The validated settings a manager runs with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_tasks: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
}

/// Settings for a [`TaskManager`], checked by [`start`](Builder::start).
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
    pub fn max_tasks(mut self, n: usize) -> Builder {
        self.config.max_tasks = n;
        self
    }

    /// The deadline [`TaskManager::close`] and `Drop` use. Default 10 s;
    /// must not be zero (pass `Duration::ZERO` to
    /// [`TaskManager::close_timeout`] for an immediate close).
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
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.config.stack_size = Some(bytes);
        self
    }

    /// Checks the settings and starts the manager. No thread starts until
    /// the first task arrives.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting when `max_tasks` or
    /// `queue_capacity` is 0 or above 2³¹, `close_timeout` is zero, or the
    /// thread name is empty or holds a NUL byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = taskwarden::TaskManager::builder().max_tasks(0).start().unwrap_err();
    /// assert_eq!(error.setting(), "max_tasks");
    /// ```
    pub fn start(self) -> Result<TaskManager, BuildError> {
        let config = self.config;
        let fail = |setting, problem| Err(BuildError { setting, problem });
        if config.max_tasks == 0 {
            return fail("max_tasks", "must be at least 1, got 0".to_owned());
        }
        if config.max_tasks > LIMIT {
            return fail(
                "max_tasks",
                format!("must be at most {LIMIT}, got {}", config.max_tasks),
            );
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
        Ok(TaskManager::from_config(config))
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
