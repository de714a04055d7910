//! Cancellation that reaches, and tasks you can see: setting a task's
//! flag (with its reason, cancelling its own token), the engine as the
//! target of tokens, the per-task hooks, names in log lines, and `tasks()`.
//!
//! Everything here is paid for only by tasks that have a side-table entry
//! (a name, a token, or a manager with a per-task hook): a plain task's
//! state word says it has none, and nothing is looked up.

use std::fmt;
use std::time::Instant;

use super::Engine;
use crate::current;
use crate::extras::{Extra, Label};
use crate::hooks::{TaskEnd, TaskOutcome, TaskStart};
use crate::info::TaskInfo;
use crate::task::cell::Outcome;
use crate::task::{CancelReason, Header, TaskId, TaskState};
use crate::token::{CancelToken, TokenTarget};

impl Engine {
    /// Sets a task's cancel flag for `reason` (the first reason stays) and,
    /// if the task made its own token, cancels that token before
    /// returning. True if this call set the flag.
    pub(crate) fn flag(&self, header: &Header, reason: CancelReason) -> bool {
        let flagged = header.request_cancel(reason);
        if flagged.own_token {
            self.cancel_own_token(header);
        }
        flagged.now
    }

    /// Sets the flag for `reason`, runs `judge` (what the caller must
    /// learn of the task before it can wake), then cancels the task's own
    /// token: a task asleep on it may finish the moment it wakes, and the
    /// caller must still see it as it was when flagged.
    pub(super) fn flag_then<R>(
        &self,
        header: &Header,
        reason: CancelReason,
        judge: impl FnOnce() -> R,
    ) -> R {
        let flagged = header.request_cancel(reason);
        let judged = judge();
        if flagged.own_token {
            self.cancel_own_token(header);
        }
        judged
    }

    /// Cancels the own token of a task whose flag was just set.
    fn cancel_own_token(&self, header: &Header) {
        if let Some(own) = self.extras.own(header.id()) {
            own.cancel();
        }
    }

    /// Gives a task about to be accepted (not shared yet) its entry in the
    /// side table (made here for a per-task hook, with its acceptance
    /// time), and attaches it to its token, before it can be found by id;
    /// returns the token. Out of line: plain spawns never call it.
    #[cold]
    #[inline(never)]
    pub(super) fn register_extra(
        &self,
        header: &Header,
        extra: Option<Box<Extra>>,
    ) -> Option<CancelToken> {
        let mut extra = extra.unwrap_or_default();
        header.mark_extra();
        if self.task_hooks {
            extra.accepted = Some(Instant::now());
        }
        let id = header.id();
        let token = extra.token.clone();
        self.extras.insert(id, *extra);
        if let Some(token) = &token {
            token.attach(self.key(), id, self.me.clone());
        }
        token
    }

    /// Undoes `register_extra` for a spawn refused after it.
    #[cold]
    pub(super) fn unregister_extra(&self, id: TaskId) {
        if let Some(extra) = self.extras.remove(id) {
            if let Some(token) = &extra.token {
                token.detach(self.key(), id);
            }
        }
    }

    /// The own token of the task running on this thread (made on first
    /// use); `None` outside one of this engine's tasks.
    pub(crate) fn own_token(&self) -> Option<CancelToken> {
        current::with_task(self.key(), |header| {
            let id = header.id();
            if !header.has_extra() {
                // Only this task's own thread adds an entry to a running
                // task, and only it settles the task (later): the flag is
                // seen there.
                self.extras.ensure(id);
                header.mark_extra();
            }
            let (token, made) = self.extras.own_token(id, CancelToken::new)?;
            if made {
                token.attach(self.key(), id, self.me.clone());
                if header.mark_own_token() {
                    // The flag was set before the token existed.
                    token.cancel();
                }
            }
            Some(token)
        })
        .flatten()
    }

    /// `task-7 (name)` for log lines; looks the name up only when printed,
    /// and only for a task with an entry.
    pub(crate) fn label<'a>(&'a self, header: &'a Header) -> impl fmt::Display + 'a {
        LazyLabel(self, header)
    }

    /// The task's name, looked up only for a task with an entry.
    pub(super) fn name_of(&self, header: &Header) -> Option<crate::extras::Name> {
        if header.has_extra() {
            self.extras.name(header.id())
        } else {
            None
        }
    }

    /// Called by the thread about to run `header`'s closure (inside its
    /// task record): with a per-task hook, notes the start time in the
    /// task's entry and runs the start hook.
    #[inline]
    pub(super) fn task_starting(&self, header: &Header) {
        if self.task_hooks {
            self.run_start_hook(header);
        }
    }

    #[cold]
    #[inline(never)]
    fn run_start_hook(&self, header: &Header) {
        let now = Instant::now();
        // With a per-task hook every task has an entry.
        let (name, accepted) = self.extras.start(header.id(), now);
        self.config.hooks.task_start(&TaskStart {
            id: header.id(),
            name: name.as_deref(),
            queued_for: accepted
                .map(|accepted| now.saturating_duration_since(accepted))
                .unwrap_or_default(),
        });
    }

    /// A task's result was handed over or dropped: its entry leaves the
    /// side table (and its tokens), and the end hook runs.
    #[inline]
    pub(super) fn task_ended(&self, header: &Header, outcome: Outcome, extra: bool) {
        if extra || self.end_hook {
            self.end_extra(header, outcome, extra);
        }
    }

    #[cold]
    #[inline(never)]
    fn end_extra(&self, header: &Header, outcome: Outcome, extra: bool) {
        let hooks = &self.config.hooks;
        let id = header.id();
        let extra = if extra { self.extras.remove(id) } else { None };
        if let Some(extra) = &extra {
            for token in extra.token.iter().chain(extra.own.iter()) {
                token.detach(self.key(), id);
            }
        }
        if hooks.on_task_end.is_some() {
            let now = Instant::now();
            let accepted = extra.as_ref().and_then(|extra| extra.accepted);
            // `None` for a task that never ran.
            let started = extra.as_ref().and_then(|extra| extra.started);
            let outcome = match outcome {
                Outcome::Completed => TaskOutcome::Completed,
                Outcome::Panicked => TaskOutcome::Panicked,
                Outcome::Cancelled if header.cancel_reason() == Some(CancelReason::Deadline) => {
                    TaskOutcome::TimedOut
                }
                Outcome::Cancelled => TaskOutcome::Cancelled,
            };
            hooks.task_end(&TaskEnd {
                id,
                name: extra.as_ref().and_then(|extra| extra.name.as_deref()),
                queued_for: accepted
                    .map(|accepted| started.unwrap_or(now).saturating_duration_since(accepted))
                    .unwrap_or_default(),
                ran_for: started
                    .map(|started| now.saturating_duration_since(started))
                    .unwrap_or_default(),
                outcome,
            });
        }
    }

    /// Every task accepted and not finished, ascending by id.
    pub(crate) fn tasks(&self) -> Vec<TaskInfo> {
        let mut all = self.registry.snapshot();
        all.sort_by_key(|job| job.header().id());
        all.iter()
            .filter_map(|job| {
                let header = job.header();
                let state = header.task_state();
                if state == TaskState::Finished {
                    return None;
                }
                Some(TaskInfo {
                    id: header.id(),
                    name: self.name_of(header).map(|name| name.to_string()),
                    state,
                    parked: header.is_parked(),
                    cancel_reason: header.cancel_reason(),
                })
            })
            .collect()
    }
}

struct LazyLabel<'a>(&'a Engine, &'a Header);

impl fmt::Display for LazyLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = Label {
            id: self.1.id(),
            name: self.0.name_of(self.1),
        };
        fmt::Display::fmt(&label, f)
    }
}

impl TokenTarget for Engine {
    fn cancel_queued(&self, id: TaskId) {
        if let Some(job) = self.find(id) {
            self.cancel_if_queued(&job, CancelReason::Token, |_| ());
        }
    }

    fn own_token(&self, id: TaskId) -> Option<CancelToken> {
        self.extras.own(id)
    }

    fn flag_running(&self, id: TaskId) {
        if let Some(job) = self.find(id) {
            if job.header().is_running() {
                self.flag(job.header(), CancelReason::Token);
            }
        }
    }
}
