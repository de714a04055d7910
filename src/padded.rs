//! [`Padded`]: a value on cache lines of its own.

use std::ops::Deref;

/// Keeps a value on its own cache lines (128 bytes: two lines, against the
/// adjacent-line prefetcher), so that threads writing neighbouring values do
/// not slow each other down (false sharing).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
