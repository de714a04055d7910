//! The `catch_unwind` boundary: running user code (closures, drops, hooks,
//! and the user's logger) so that a panic in it never unwinds through the
//! engine's bookkeeping.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, handing back the payload of a panic.
pub(crate) fn catch_payload<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Runs `f`, turning a panic into its message (the payload is dropped here,
/// see [`drop_payload`]).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_payload(f).map_err(|payload| {
        let message = message_of(&*payload);
        drop_payload(payload);
        message
    })
}

/// Drops `value`, turning a panic in its `Drop` into a message.
pub(crate) fn drop_caught<V>(value: V) -> Result<(), String> {
    catch(move || drop(value))
}

/// Runs `f` and ignores a panic in it: for the user's logger, which must
/// never break the engine's state machine.
pub(crate) fn quietly(f: impl FnOnce()) {
    if let Err(payload) = catch_payload(f) {
        drop_payload(payload);
    }
}

/// The message of a panic payload: the `&str` or `String` it carries, or a
/// placeholder for any other type.
pub(crate) fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any> (a non-string panic payload)".to_owned()
    }
}

/// Drops a panic payload whose destructor may itself panic. The payload of
/// that second panic is dropped the same way, a few times over; a payload
/// chain that never ends is leaked rather than allowed to unwind.
pub(crate) fn drop_payload(mut payload: Box<dyn Any + Send>) {
    for _ in 0..8 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(next) => payload = next,
        }
    }
    std::mem::forget(payload);
}

crate::sync::thread_local_cell! {
    /// Set while this thread is inside the user's logger on our behalf.
    static LOGGING: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// Runs `log` (a call into the user's logger) unless this thread is already
/// inside one: a logger that spawns on the manager it logs for would
/// otherwise re-enter it for ever. A panic in the logger is swallowed.
pub(crate) fn log_once(log: impl FnOnce()) {
    if LOGGING.with(|inside| inside.replace(true)) {
        return;
    }
    quietly(log);
    LOGGING.with(|inside| inside.set(false));
}

/// Logs through the `log` facade, catching a panic in the user's logger
/// and refusing to re-enter it (see [`log_once`]). The level test comes
/// first, so a disabled level costs one load.
macro_rules! log_safely {
    ($level:ident, $($arg:tt)+) => {
        if log::Level::$level <= log::max_level() {
            $crate::panic::log_once(|| log::log!(log::Level::$level, $($arg)+));
        }
    };
}
pub(crate) use log_safely;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_common_payloads() {
        assert_eq!(catch(|| panic!("static")).unwrap_err(), "static");
        assert_eq!(catch(|| panic!("{}", 42)).unwrap_err(), "42");
        let other = catch(|| std::panic::panic_any(7_u32)).unwrap_err();
        assert!(other.contains("non-string"), "{other}");
        assert_eq!(catch(|| 5).unwrap(), 5);
    }

    #[test]
    fn payload_whose_drop_panics_is_contained() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb went off");
            }
        }
        let message = catch(|| std::panic::panic_any(Bomb)).unwrap_err();
        assert!(message.contains("non-string"));
        assert_eq!(drop_caught(Bomb).unwrap_err(), "bomb went off");
    }

    #[test]
    fn quietly_swallows_a_panic() {
        quietly(|| panic!("a logger that panics"));
    }

    #[test]
    fn logging_does_not_re_enter_itself() {
        let mut depth = 0;
        log_once(|| {
            depth += 1;
            log_once(|| panic!("never called: re-entered"));
        });
        assert_eq!(depth, 1);
        log_once(|| depth += 1);
        assert_eq!(depth, 2, "the guard is released");
    }
}
