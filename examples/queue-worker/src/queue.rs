//! The Redis side: one list as the queue, one processing list per worker,
//! and a hash of completion counts.
//!
//! A job is a list element (here a job id). It is always in exactly one of
//! three places: the queue (`jobs`), one worker's `processing:<worker>`
//! list, or counted in the `done` hash. Every move between them is one
//! atomic server-side step:
//!
//! - take: `BLMOVE jobs processing:<w>` (the reliable-queue pattern: a
//!   worker that dies holds its jobs in a list that names it);
//! - complete: a Lua script that removes the job from `processing:<w>` and,
//!   only if it was there, counts it in `done`;
//! - requeue: a Lua script that removes the job from `processing:<w>` and,
//!   only if it was there, pushes it back on the queue.
//!
//! The element in `processing:<w>` is the job's one token: whichever of
//! complete and requeue removes it wins, the other does nothing. That is
//! what keeps the count exact when a task finishes its work at the moment
//! the worker gives its job back (finished but not yet acknowledged at
//! SIGTERM): it is either counted done, or back in the queue, never both.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::{Client, Connection, RedisResult};

/// How long a connect may take: a server that does not answer must not
/// hang the worker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read and write timeout of every connection. Longer than the server-side
/// block of `BLMOVE` (`TAKE_BLOCK`), so a quiet queue is not an error.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `BLMOVE` waits on the server for a job: short, so the
/// intake sees its stop flag within this time.
const TAKE_BLOCK: Duration = Duration::from_millis(100);

/// KEYS: processing list, done hash, worker stats hash; ARGV: job.
const COMPLETE: &str = "\
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], 'done', 1)
return 1";

/// KEYS: processing list, queue; ARGV: job. Pushed on the end that `take`
/// pops from, so a requeued job is the next one taken.
const REQUEUE: &str = "\
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1";

/// One worker's view of the queue, with a small pool of connections for its
/// tasks (a `redis::Connection` is not `Sync`; at most one per slot is open).
pub struct Queue {
    client: Client,
    queue: String,
    processing: String,
    stats: String,
    idle: Mutex<Vec<Connection>>,
}

impl Queue {
    pub fn new(url: &str, queue: &str, worker: &str) -> RedisResult<Queue> {
        Ok(Queue {
            client: Client::open(url)?,
            queue: queue.to_owned(),
            processing: format!("processing:{worker}"),
            stats: format!("stats:{worker}"),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A new connection, with every wait on it bounded.
    pub fn connect(&self) -> RedisResult<Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// Moves one job from the queue to this worker's processing list,
    /// waiting up to `TAKE_BLOCK` for one; `None` if the queue stayed empty.
    pub fn take(&self, con: &mut Connection) -> RedisResult<Option<String>> {
        redis::cmd("BLMOVE")
            .arg(&self.queue)
            .arg(&self.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(TAKE_BLOCK.as_secs_f64())
            .query(con)
    }

    /// Counts `job` done and acknowledges it, atomically; false (and nothing
    /// counted) if the job was no longer this worker's (it was requeued).
    /// Runs on a pooled connection, from inside a task.
    pub fn complete(&self, job: &str) -> RedisResult<bool> {
        self.with_pooled(|con| {
            redis::cmd("EVAL")
                .arg(COMPLETE)
                .arg(3)
                .arg(&self.processing)
                .arg("done")
                .arg(&self.stats)
                .arg(job)
                .query(con)
        })
    }

    /// Gives `job` back to the queue, atomically; false (and nothing moved)
    /// if it was no longer in the processing list (its task completed it).
    pub fn requeue(&self, con: &mut Connection, job: &str) -> RedisResult<bool> {
        redis::cmd("EVAL")
            .arg(REQUEUE)
            .arg(2)
            .arg(&self.processing)
            .arg(&self.queue)
            .arg(job)
            .query(con)
    }

    /// Moves whatever is still in this worker's processing list back to the
    /// queue and returns those jobs. At start it recovers the jobs of an
    /// earlier run of the same worker that was killed outright; at the end
    /// it is the safety net for a job no task holds any more (its task
    /// panicked, or a reply was lost), and should find nothing.
    pub fn sweep(&self, con: &mut Connection) -> RedisResult<Vec<String>> {
        let mut moved = Vec::new();
        // Bounded by the list's length when we start: jobs only leave it
        // (the intake is not running), so this ends.
        let len: usize = redis::cmd("LLEN").arg(&self.processing).query(con)?;
        for _ in 0..len {
            let job: Option<String> = redis::cmd("LMOVE")
                .arg(&self.processing)
                .arg(&self.queue)
                .arg("RIGHT")
                .arg("RIGHT")
                .query(con)?;
            match job {
                Some(job) => moved.push(job),
                None => break,
            }
        }
        Ok(moved)
    }

    /// Runs `f` on an idle pooled connection (or a new one); a connection
    /// that saw an error is dropped, since a timed-out reply may still come.
    fn with_pooled<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut con = match idle {
            Some(con) => con,
            None => self.connect()?,
        };
        let result = f(&mut con);
        if result.is_ok() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(con);
        }
        result
    }
}
