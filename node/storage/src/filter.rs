//! An in-memory filter of the ingest keys stored in `ingest_keys`: "absent" without a database
//! lookup for nearly every new record.
//!
//! The ingest writer looks up every submitted record's key, and nearly all of them are new.
//! RocksDB answers "absent" only after probing the memtables and then, for each L0 file and each
//! deeper level, finding the file and checking its bloom filter: about eight files under load,
//! and a tenth of the dev node's CPU (a profile in docs/benchmarks.md, eleventh round). This
//! filter answers "absent" with one cache line per segment; only the keys it may hold (a false
//! positive now and then, or a real re-submission) go to the database.
//!
//! A split block bloom filter (the layout of Apache Parquet's bloom filters): a key picks one
//! 256-bit block and sets one bit in each of its eight 32-bit words. Ingest keys are BLAKE3
//! digests, uniform already, so their first twelve bytes are the hash. At 12 bits per key a full
//! segment answers "may hold" for about 0.5 % of absent keys.
//!
//! It grows in segments: when the newest is full, a new one twice its size is added, and a lookup
//! checks every segment (a handful: the first is sized from the column's key count when it is
//! loaded). Keys are never removed (ingest keys are never deleted); there are no false negatives.

/// Bits of filter per key a segment is sized for.
const BITS_PER_KEY: u64 = 12;

/// Keys the smallest segment is sized for (6 MiB at 12 bits per key).
const MIN_SEGMENT_KEYS: u64 = 1 << 22;
// The size the comment above gives.
const _: () = assert!(MIN_SEGMENT_KEYS * BITS_PER_KEY / 8 == 6 * 1024 * 1024);

/// Bits of one block: eight 32-bit words, one bit set in each per key.
const BLOCK_BITS: u64 = 256;
const _: () = assert!(BLOCK_BITS == 8 * u32::BITS as u64);

/// The multipliers of Parquet's split block bloom filter: one per word of a block, each giving
/// an independent bit position from the same 32-bit hash.
const SALT: [u32; 8] =
    [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31];

type Block = [u32; 8];

#[derive(Debug)]
struct Segment {
    /// The bit array, one 256-bit block per ~21 keys at capacity.
    blocks: Vec<Block>,
    /// Keys inserted.
    len: u64,
    /// Keys it is sized for: past this, a new segment takes the inserts.
    capacity: u64,
}

impl Segment {
    fn new(capacity: u64) -> Segment {
        let blocks = capacity.saturating_mul(BITS_PER_KEY).div_ceil(BLOCK_BITS).max(1);
        Segment { blocks: vec![[0; 8]; usize::try_from(blocks).unwrap_or(usize::MAX)], len: 0, capacity }
    }

    /// The block of `key` and the bit pattern to set or test in it.
    fn locate(&self, key: &[u8; 32]) -> (usize, Block) {
        let [a, b, c, d, e, f, g, h, x0, x1, x2, x3, ..] = *key;
        let high = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let low = u32::from_le_bytes([x0, x1, x2, x3]);
        // Multiply-shift maps the 64-bit hash onto 0..blocks without a division.
        let index = ((u128::from(high) * self.blocks.len() as u128) >> 64) as usize;
        debug_assert!(index < self.blocks.len(), "multiply-shift maps below the length");
        let mut mask = [0u32; 8];
        for (word, salt) in mask.iter_mut().zip(SALT) {
            *word = 1 << (low.wrapping_mul(salt) >> 27);
        }
        (index, mask)
    }

    fn insert(&mut self, key: &[u8; 32]) {
        let (index, mask) = self.locate(key);
        if let Some(block) = self.blocks.get_mut(index) {
            for (word, bit) in block.iter_mut().zip(mask) {
                *word |= bit;
            }
        }
        self.len += 1;
    }

    fn may_contain(&self, key: &[u8; 32]) -> bool {
        let (index, mask) = self.locate(key);
        // `index` is below the length by construction; a block not found would be a bug, and
        // answering "may hold" keeps the caller correct (it then asks the database).
        self.blocks.get(index).is_none_or(|block| block.iter().zip(mask).all(|(word, bit)| word & bit != 0))
    }
}

/// The filter: segments, newest last.
#[derive(Debug, Default)]
pub(crate) struct KeyFilter {
    /// Every segment is checked on lookup; only the last takes inserts.
    segments: Vec<Segment>,
}

impl KeyFilter {
    /// Makes room for about `expected` more keys in one segment, so that loading a large column
    /// does not leave a trail of small segments for every lookup to check.
    pub(crate) fn reserve(&mut self, expected: u64) {
        let room = self.segments.last().map_or(0, |s| s.capacity.saturating_sub(s.len));
        if expected > room {
            let capacity = expected.saturating_add(expected / 4).max(MIN_SEGMENT_KEYS);
            self.segments.push(Segment::new(capacity));
        }
    }

    pub(crate) fn insert(&mut self, key: &[u8; 32]) {
        let full = self.segments.last().is_none_or(|s| s.len >= s.capacity);
        if full {
            let capacity = self.segments.last().map_or(MIN_SEGMENT_KEYS, |s| s.capacity.saturating_mul(2));
            self.segments.push(Segment::new(capacity));
        }
        if let Some(segment) = self.segments.last_mut() {
            segment.insert(key);
        }
    }

    /// False only if `key` was never inserted.
    pub(crate) fn may_contain(&self, key: &[u8; 32]) -> bool {
        self.segments.iter().any(|segment| segment.may_contain(key))
    }

    /// Keys inserted (counting repeats).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Bytes of filter held.
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.blocks.len() as u64 * (BLOCK_BITS / 8)).sum()
    }

    #[cfg(test)]
    fn with_first_segment(capacity: u64) -> KeyFilter {
        KeyFilter { segments: vec![Segment::new(capacity)] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A uniform 32-byte key for `n`, as a digest would be (SplitMix64 outputs).
    fn key(n: u64) -> [u8; 32] {
        let mut state = n;
        let mut out = [0u8; 32];
        for word in out.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out
    }

    proptest! {
        /// Whatever the segment sizes and however far past them the filter grows, every key
        /// inserted is reported as possibly held.
        #[test]
        fn no_inserted_key_is_ever_reported_absent(first in 1u64..64, count in 0u64..2_000, salt: u64) {
            let mut filter = KeyFilter::with_first_segment(first);
            let keys: Vec<_> = (0..count).map(|n| key(n ^ salt)).collect();
            for k in &keys {
                filter.insert(k);
            }
            prop_assert_eq!(filter.len(), count);
            for k in &keys {
                prop_assert!(filter.may_contain(k));
            }
        }
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let filter = KeyFilter::default();
        assert!(!filter.may_contain(&key(1)));
        assert_eq!(filter.bytes(), 0);
    }

    #[test]
    fn a_full_segment_rarely_reports_an_absent_key() {
        let capacity = 100_000;
        let mut filter = KeyFilter::with_first_segment(capacity);
        for n in 0..capacity {
            filter.insert(&key(n));
        }
        assert_eq!(filter.segments.len(), 1, "filled to capacity, not beyond");
        let trials = 200_000;
        let false_positives = (capacity..capacity + trials).filter(|&n| filter.may_contain(&key(n))).count();
        // About 0.5 % at 12 bits per key; a broken hash (one block, or bits that collide) gives
        // tens of percent.
        let rate = false_positives as f64 / trials as f64;
        assert!(rate < 0.01, "false positive rate {rate}");
    }

    #[test]
    fn growth_doubles_and_reserve_sizes_one_segment() {
        let mut filter = KeyFilter::default();
        filter.reserve(10 * MIN_SEGMENT_KEYS);
        assert_eq!(filter.segments.len(), 1);
        assert_eq!(filter.segments[0].capacity, 10 * MIN_SEGMENT_KEYS + 10 * MIN_SEGMENT_KEYS / 4);
        // Room left: no new segment.
        filter.reserve(MIN_SEGMENT_KEYS);
        assert_eq!(filter.segments.len(), 1);

        let mut small = KeyFilter::with_first_segment(4);
        for n in 0..5 {
            small.insert(&key(n));
        }
        assert_eq!(small.segments.iter().map(|s| s.capacity).collect::<Vec<_>>(), [4, 8]);
    }
}
