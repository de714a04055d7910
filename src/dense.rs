//! Maps keyed by dense integers (task ids, registry block numbers): hashed
//! with one multiplication instead of `std`'s DoS-resistant SipHash, which
//! costs more than the rest of a lookup. The keys are made by this crate,
//! never by an adversary.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for dense integer keys.
pub(crate) type DenseMap<K, V> = HashMap<K, V, BuildHasherDefault<DenseHasher>>;

/// Spreads an integer's bits with one multiplication by an odd constant
/// (Fibonacci hashing): consecutive keys land in distinct buckets, and the
/// high bits the table uses as tags differ too.
#[derive(Default)]
pub(crate) struct DenseHasher(u64);

impl Hasher for DenseHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_keys_spread_over_buckets_and_tags() {
        let hashes: Vec<u64> = (1..=64_u64)
            .map(|n| {
                let mut hasher = DenseHasher::default();
                hasher.write_u64(n);
                hasher.finish()
            })
            .collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 63).collect();
        let high: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(low.len(), 64, "distinct buckets for 64 consecutive keys");
        assert!(high.len() > 32, "tags vary: {}", high.len());
    }

    #[test]
    fn a_map_works_with_task_ids() {
        let mut map: DenseMap<crate::task::TaskId, u64> = DenseMap::default();
        for n in 1..=1000 {
            map.insert(crate::task::TaskId::from_raw(n).unwrap(), n * 2);
        }
        assert_eq!(map[&crate::task::TaskId::from_raw(777).unwrap()], 1554);
        assert_eq!(map.len(), 1000);
    }
}
