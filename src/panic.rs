//! The `catch_unwind` boundary: turning a panic payload into a message and
//! dropping it without letting a second panic escape.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into its message. The payload is dropped here,
/// and a panic from the payload's own `Drop` is swallowed too (that payload is
/// leaked, because dropping it would only panic again).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) => Err(take_message(payload)),
    }
}

/// Drops `value`, turning a panic in its `Drop` into a message.
pub(crate) fn drop_caught<V>(value: V) -> Result<(), String> {
    catch(move || drop(value))
}

/// The message of a panic payload: the `&str` or `String` it carries, or a
/// placeholder for any other type.
pub(crate) fn take_message(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any> (a non-string panic payload)".to_owned()
    };
    drop_payload(payload);
    message
}

/// Drops a panic payload whose destructor may itself panic. The payload of
/// that second panic is dropped the same way, a few times over; a payload
/// chain that never ends is leaked rather than allowed to unwind.
fn drop_payload(mut payload: Box<dyn Any + Send>) {
    for _ in 0..8 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(next) => payload = next,
        }
    }
    std::mem::forget(payload);
}

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
}
