//! The stop flag: SIGTERM (and SIGINT, for a terminal) set it; the intake
//! polls it. The handler is installed as in the repository's
//! `examples/ctrl_c.rs`: a two-line FFI declaration, no signal crate.
//!
//! Where the signal lands matters here. A signal that interrupts a thread
//! blocked in a socket read with a timeout makes that read fail with EINTR
//! (such reads are never restarted, SA_RESTART or not), and the Redis
//! client then cannot tell whether the command ran: a `BLMOVE` or a
//! completion with an unknown outcome. So on Linux the two signals are
//! blocked in the thread that installs the handler, before it starts any
//! other thread (threads inherit the mask, taskwarden's workers included),
//! and one small thread, which does nothing else, unblocks them: every
//! SIGTERM and SIGINT is delivered to it, and no Redis call sees EINTR.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
/// `SIG_ERR`, `(void (*)(int)) -1`.
const SIG_ERR: usize = usize::MAX;
static SEEN: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
}

/// Runs in signal context: a lock-free atomic store is all it may do.
extern "C" fn on_signal(_: c_int) {
    SEEN.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGTERM and SIGINT and, on Linux, routes both to
/// a thread of their own; false if the OS refused the handler. Call it
/// first in `main`, before any other thread starts.
pub fn install() -> bool {
    // SAFETY: `signal` is the C library's, declared with its C signature
    // (`sighandler_t` is a function pointer, as wide as `usize`); the
    // handler only stores to an atomic, which is async-signal-safe.
    let installed =
        unsafe { signal(SIGTERM, on_signal) != SIG_ERR && signal(SIGINT, on_signal) != SIG_ERR };
    if installed {
        route::to_own_thread();
    }
    installed
}

/// True once SIGTERM or SIGINT has arrived.
pub fn seen() -> bool {
    SEEN.load(Ordering::SeqCst)
}

#[cfg(target_os = "linux")]
mod route {
    use std::ffi::c_int;
    use std::ptr;

    use super::{SIGINT, SIGTERM};

    const SIG_BLOCK: c_int = 0;
    const SIG_UNBLOCK: c_int = 1;

    /// Room for a `sigset_t`: 128 bytes in glibc and musl. Filled only by
    /// `sigemptyset` and `sigaddset`, so its layout is the C library's.
    #[repr(C)]
    struct SigSet([u64; 16]);

    extern "C" {
        fn sigemptyset(set: *mut SigSet) -> c_int;
        fn sigaddset(set: *mut SigSet, signum: c_int) -> c_int;
        fn pthread_sigmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    }

    /// Blocks or unblocks SIGTERM and SIGINT for the calling thread.
    fn mask(how: c_int) -> bool {
        let mut set = SigSet([0; 16]);
        // SAFETY: the three are the C library's, with their C signatures;
        // `set` is a valid, writable `sigset_t`-sized buffer that lives
        // across the calls, and a null `old` is allowed.
        unsafe {
            sigemptyset(&mut set) == 0
                && sigaddset(&mut set, SIGTERM) == 0
                && sigaddset(&mut set, SIGINT) == 0
                && pthread_sigmask(how, &set, ptr::null_mut()) == 0
        }
    }

    pub fn to_own_thread() {
        if !mask(SIG_BLOCK) {
            log::warn!("signals not routed: a Redis call may see EINTR");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("signals".to_owned())
            .spawn(|| {
                if mask(SIG_UNBLOCK) {
                    // Parked for the life of the process, on purpose: this
                    // thread only receives the signals (the handler runs
                    // here and wakes it; it parks again).
                    loop {
                        std::thread::park();
                    }
                }
            });
        if spawned.is_err() {
            mask(SIG_UNBLOCK);
            log::warn!("no signal thread: a Redis call may see EINTR");
        }
    }
}

/// Elsewhere the signals land on any thread; a Redis call they interrupt
/// fails, and its job is recovered by the final sweep.
#[cfg(not(target_os = "linux"))]
mod route {
    pub fn to_own_thread() {}
}
