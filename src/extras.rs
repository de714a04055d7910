//! What a few tasks have beyond their closure: a name, a token, the time
//! they were accepted (for the per-task hooks), their own token once they
//! ask for it. Kept in a side table by id, not in the task, so that a
//! plain task stays at the allocator's smallest size and a plain spawn
//! touches none of it; a task with an entry has the EXTRA flag in its
//! state word, and only such tasks are looked up.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use crate::dense::DenseMap;
use crate::padded::Padded;
use crate::sync::Mutex;
use crate::task::TaskId;
use crate::token::CancelToken;

/// A task's name: a `&'static str` as given, an owned one shared, so that
/// the options of a map clone it per item without copying the text.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl From<Cow<'static, str>> for Name {
    fn from(name: Cow<'static, str>) -> Name {
        match name {
            Cow::Borrowed(name) => Name::Static(name),
            Cow::Owned(name) => Name::Shared(name.into()),
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// `task-7` or `task-7 (resize a.jpg)`: how log lines name a task.
pub(crate) struct Label {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Name>,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} ({})", self.id, &**name),
            None => write!(f, "{}", self.id),
        }
    }
}

/// One task's entry.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) name: Option<Name>,
    /// The token of `TaskOptions::cancel_with`.
    pub(crate) token: Option<CancelToken>,
    /// The task's own token, made on the first `cancel_token()` or `sleep`.
    pub(crate) own: Option<CancelToken>,
    /// When it was accepted (only with a per-task hook).
    pub(crate) accepted: Option<Instant>,
    /// When it started (only with a per-task hook).
    pub(crate) started: Option<Instant>,
}

const SHARDS: usize = 16;

/// One shard of the side table.
type Shard = Mutex<DenseMap<TaskId, Extra>>;

/// The side table, in shards by id.
pub(crate) struct Extras {
    shards: Box<[Padded<Shard>]>,
}

impl Default for Extras {
    fn default() -> Self {
        Extras {
            shards: (0..SHARDS)
                .map(|_| Padded(Mutex::new(DenseMap::default())))
                .collect(),
        }
    }
}

impl Extras {
    fn shard(&self, id: TaskId) -> &Shard {
        &self.shards[(id.get() % SHARDS as u64) as usize]
    }

    pub(crate) fn insert(&self, id: TaskId, extra: Extra) {
        self.shard(id).lock().insert(id, extra);
    }

    /// Takes the entry out (the task settled, or was withdrawn).
    pub(crate) fn remove(&self, id: TaskId) -> Option<Extra> {
        let mut shard = self.shard(id).lock();
        let extra = shard.remove(&id);
        if shard.is_empty() && shard.capacity() > 256 {
            shard.shrink_to_fit();
        }
        extra
    }

    pub(crate) fn name(&self, id: TaskId) -> Option<Name> {
        self.shard(id).lock().get(&id)?.name.clone()
    }

    /// Notes that the task started `at`; its name and acceptance time, for
    /// the start hook.
    pub(crate) fn start(&self, id: TaskId, at: Instant) -> (Option<Name>, Option<Instant>) {
        match self.shard(id).lock().get_mut(&id) {
            Some(extra) => {
                extra.started = Some(at);
                (extra.name.clone(), extra.accepted)
            }
            None => (None, None),
        }
    }

    /// The task's own token, made by `make` if it has none yet; `None` if
    /// the task has no entry (it settled). The second value is true when
    /// this call made it.
    pub(crate) fn own_token(
        &self,
        id: TaskId,
        make: impl FnOnce() -> CancelToken,
    ) -> Option<(CancelToken, bool)> {
        let mut shard = self.shard(id).lock();
        let extra = shard.get_mut(&id)?;
        match &extra.own {
            Some(own) => Some((own.clone(), false)),
            None => {
                let own = make();
                extra.own = Some(own.clone());
                Some((own, true))
            }
        }
    }

    /// Makes an entry for a running task that had none (its first
    /// `cancel_token()`); the caller sets the EXTRA flag afterwards.
    pub(crate) fn ensure(&self, id: TaskId) {
        self.shard(id).lock().entry(id).or_default();
    }

    /// The own token, if the task made one.
    pub(crate) fn own(&self, id: TaskId) -> Option<CancelToken> {
        self.shard(id).lock().get(&id)?.own.clone()
    }
}
