//! The one generic path from a user's closure to an accepted task, shared
//! by `TaskManager`, `Spawner`, task sets, maps and scopes: it picks how the
//! closure is stored (in the task, or boxed when large) and turns a refusal
//! into a [`SpawnError`] that hands the closure back.

use std::sync::Arc;

use crate::engine::{Blocking, Engine, Handle};
use crate::error::SpawnError;
use crate::task::cell::{Boxed, Completion, Inline, Job, Sink, INLINE_LIMIT};
use crate::task::TaskId;

/// An accepted task: its id, and its typed side for a handle (`None` when
/// detached).
pub(crate) type Spawned<'a, T> = (TaskId, Option<Arc<dyn Completion<T> + 'a>>);

/// Makes the job the registry and the run queue carry (`'static`) out of a
/// task whose closure lives for `'a`.
pub(crate) type Erase<'a> = fn(Arc<dyn Job + 'a>) -> Arc<dyn Job>;

/// The erasure of a `'static` task: nothing to do.
pub(crate) fn keep_static(job: Arc<dyn Job>) -> Arc<dyn Job> {
    job
}

/// Submits `f` to `engine`; see the module docs.
pub(crate) fn submit<'a, F, T, S>(
    engine: &Arc<Engine>,
    f: F,
    sink: S,
    blocking: Blocking,
    handle: Handle,
    erase: Erase<'a>,
) -> Result<Spawned<'a, T>, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
    S: Sink + 'a,
{
    if std::mem::size_of::<F>() <= INLINE_LIMIT {
        engine
            .submit(Inline(f), sink, blocking, handle, |task| erase(task))
            .map(|(id, task)| (id, task.map(|task| task as Arc<dyn Completion<T> + 'a>)))
            .map_err(|rejected| {
                SpawnError::from_parts(rejected.kind, rejected.work.0, rejected.source)
            })
    } else {
        engine
            .submit(Boxed(Box::new(f)), sink, blocking, handle, |task| {
                erase(task)
            })
            .map(|(id, task)| (id, task.map(|task| task as Arc<dyn Completion<T> + 'a>)))
            .map_err(|rejected| {
                SpawnError::from_parts(rejected.kind, *rejected.work.0, rejected.source)
            })
    }
}
