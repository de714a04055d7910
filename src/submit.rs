//! The one generic path from a user's closure to an accepted task, shared
//! by `TaskManager`, `Spawner`, task sets, maps and scopes: it picks how the
//! closure is stored (in the task, or boxed when large), wraps it for a
//! `cancel_after` when there is one, and turns a refusal into a
//! [`SpawnError`] that hands the closure back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{current_engine, Blocking, Engine, Event, Handle, Plan};
use crate::error::SpawnError;
use crate::extras::Extra;
use crate::options::TaskOptions;
use crate::task::cell::{Boxed, Erase, Inline, Sink, TaskRef, Work, INLINE_LIMIT};
use crate::task::TaskId;

/// An accepted task: its id, and its typed reference for a handle (`None`
/// when detached).
pub(crate) type Spawned<T> = (TaskId, Option<TaskRef<T>>);

/// A closure with a `cancel_after`: when it starts, it asks the timer to
/// flag its task `after` later. Only timed tasks carry this.
pub(crate) struct FlagAfter<W> {
    work: W,
    after: Duration,
}

impl<W: Work> Work for FlagAfter<W> {
    type Output = W::Output;

    fn call(self) -> W::Output {
        if let (Some(engine), Some(id)) = (current_engine(), crate::current_task()) {
            if let (Some(at), Some(job)) = (Instant::now().checked_add(self.after), engine.find(id))
            {
                engine.schedule(at, Event::Flag(job));
            }
        }
        self.work.call()
    }
}

/// Submits `f` to `engine` at once; see the module docs.
pub(crate) fn submit<'a, F, T, S>(
    engine: &Arc<Engine>,
    f: F,
    sink: S,
    blocking: Blocking,
    handle: Handle,
    erase: Erase<'a>,
) -> Result<Spawned<T>, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
    S: Sink + 'static,
{
    if std::mem::size_of::<F>() <= INLINE_LIMIT {
        submit_work(
            engine,
            Inline(f),
            sink,
            blocking,
            handle,
            Plan::default(),
            erase,
            |w| w.0,
        )
    } else {
        submit_work(
            engine,
            Boxed(Box::new(f)),
            sink,
            blocking,
            handle,
            Plan::default(),
            erase,
            |w| *w.0,
        )
    }
}

/// Submits `f` to `engine` with `options` (a delay, cancel deadlines).
#[allow(clippy::too_many_arguments)]
pub(crate) fn submit_with<'a, F, T, S>(
    engine: &Arc<Engine>,
    options: TaskOptions,
    f: F,
    sink: S,
    blocking: Blocking,
    handle: Handle,
    erase: Erase<'a>,
) -> Result<Spawned<T>, SpawnError<F>>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
    S: Sink + 'static,
{
    if options.is_plain() {
        return submit(engine, f, sink, blocking, handle, erase);
    }
    // A name or a token alone reads no clock.
    let start = if options.is_untimed() {
        None
    } else {
        options.start(Instant::now())
    };
    let TaskOptions {
        cancel_after,
        cancel_at,
        token,
        name,
        ..
    } = options;
    let extra = (token.is_some() || name.is_some()).then(|| {
        Box::new(Extra {
            name,
            token,
            ..Extra::default()
        })
    });
    let plan = || Plan { start, extra };
    let boxed = std::mem::size_of::<F>() > INLINE_LIMIT;
    let spawned = match (cancel_after, boxed) {
        (None, false) => submit_work(
            engine,
            Inline(f),
            sink,
            blocking,
            handle,
            plan(),
            erase,
            |w| w.0,
        ),
        (None, true) => submit_work(
            engine,
            Boxed(Box::new(f)),
            sink,
            blocking,
            handle,
            plan(),
            erase,
            |w| *w.0,
        ),
        (Some(after), false) => submit_work(
            engine,
            FlagAfter {
                work: Inline(f),
                after,
            },
            sink,
            blocking,
            handle,
            plan(),
            erase,
            |w| w.work.0,
        ),
        (Some(after), true) => submit_work(
            engine,
            FlagAfter {
                work: Boxed(Box::new(f)),
                after,
            },
            sink,
            blocking,
            handle,
            plan(),
            erase,
            |w| *w.work.0,
        ),
    }?;
    if let Some(at) = cancel_at {
        // A task that settled already (it ran, or was cancelled) needs none.
        if let Some(job) = engine.find(spawned.0) {
            engine.schedule(at, Event::CancelAt(job));
        }
    }
    Ok(spawned)
}

#[allow(clippy::too_many_arguments)]
fn submit_work<'a, W, T, S, F>(
    engine: &Arc<Engine>,
    work: W,
    sink: S,
    blocking: Blocking,
    handle: Handle,
    plan: Plan,
    erase: Erase<'a>,
    unwrap: impl FnOnce(W) -> F,
) -> Result<Spawned<T>, SpawnError<F>>
where
    W: Work<Output = T> + 'a,
    T: Send + 'a,
    S: Sink + 'static,
{
    match engine.submit(work, sink, blocking, handle, plan, erase) {
        Ok(accepted) => Ok(accepted),
        Err(rejected) => Err(SpawnError::from_parts(
            rejected.kind,
            unwrap(rejected.work),
            rejected.source,
        )),
    }
}
