//! A `HashMap` with a cheap, non-cryptographic hasher.
//!
//! Every `publish` looks its session up by id, so hashing a 36-byte UUID is
//! on the hot path. SipHash (std's default) resists hash flooding, which
//! matters only for keys an attacker chooses; here every key stored is an id
//! the core minted (or the host restored), so a multiply-rotate hash in the
//! style of rustc's `FxHasher` is safe and several times faster, natively and
//! in Wasm.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` keyed with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Odd constant from rustc-hash; multiplying by it spreads input bits upward.
const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add_word(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(MULTIPLIER).rotate_left(5);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.add_word(u64::from_le_bytes(buf));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut buf = [0u8; 8];
            buf[..tail.len()].copy_from_slice(tail);
            self.add_word(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add_word(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add_word(word);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and a tag from the top
        // 7; the multiply leaves the best-mixed bits high, so move some down.
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn similar_ids_get_distinct_buckets() {
        // Ids differing in one hex digit must not pile into a few buckets.
        let build = BuildHasherDefault::<FastHasher>::default();
        let low_bits: HashSet<u64> = (0..256)
            .map(|i| format!("00000000-0000-4000-8000-0000000000{i:02x}"))
            .map(|id| build.hash_one(id.as_str()) & 0xff)
            .collect();
        assert!(
            low_bits.len() > 128,
            "only {} distinct buckets of 256",
            low_bits.len()
        );
    }

    #[test]
    fn map_finds_what_it_stored() {
        let mut map: FastMap<String, u32> = FastMap::default();
        for i in 0..1000u32 {
            map.insert(format!("session-{i}"), i);
        }
        assert!((0..1000u32).all(|i| map.get(format!("session-{i}").as_str()) == Some(&i)));
        assert_eq!(map.get("session-1000"), None);
    }
}
