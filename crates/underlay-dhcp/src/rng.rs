//! A small deterministic generator for transaction ids, jitter and nonces.
//!
//! The crate reads no entropy itself: the caller seeds it (from getrandom in the daemon, from a
//! constant in tests), so every schedule a test checks is reproducible.

use std::time::Duration;

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough to spread
/// xids and jitter; this is not a cryptographic generator and nothing here needs one.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[0, bound]` (inclusive), in whole milliseconds.
    pub(crate) fn up_to(&mut self, bound: Duration) -> Duration {
        let bound = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        if bound == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next_u64() % bound.saturating_add(1))
    }

    /// `base` moved by a uniform amount in `[-spread, +spread]`, never below `base / 2`.
    pub(crate) fn jitter(&mut self, base: Duration, spread: Duration) -> Duration {
        let offset = self.up_to(spread * 2);
        let moved = (base + offset).saturating_sub(spread);
        moved.max(base / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_covers_both_sides() {
        let mut rng = Rng::new(1);
        let base = Duration::from_millis(1000);
        let spread = Duration::from_millis(100);
        let values: Vec<Duration> = (0..1000).map(|_| rng.jitter(base, spread)).collect();
        assert!(values
            .iter()
            .all(|v| *v >= base - spread && *v <= base + spread));
        assert!(values.iter().any(|v| *v < base) && values.iter().any(|v| *v > base));
        assert_eq!(rng.jitter(base, Duration::ZERO), base);
        assert!((0..100).all(|_| rng.jitter(base, Duration::from_secs(5)) >= base / 2));
    }
}
