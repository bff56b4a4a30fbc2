//! Time as an input: the caller's clock, in milliseconds.

use std::fmt;
use std::ops::Add;
pub use std::time::Duration;

/// A point in time: milliseconds since an epoch the caller chooses.
///
/// The lease-keeper passes wall-clock Unix milliseconds, so that a persisted [`crate::v4::Lease4`]
/// or [`crate::v6::Lease6`] can be compared with "now" after a restart. Tests pass small numbers.
/// Arithmetic saturates: `Instant(u64::MAX)` stands for "never" (see [`INFINITE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

/// The lifetime of an infinite lease (DHCPv4 0xffffffff, DHCPv6 0xffffffff lifetimes).
pub const INFINITE: Duration = Duration::MAX;

impl Instant {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis)
    }

    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this instant is, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// True for the saturated "never" instant that an infinite lifetime produces.
    pub const fn is_never(self) -> bool {
        self.0 == u64::MAX
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Sub-millisecond parts are dropped; an infinite duration saturates to "never".
    fn add(self, rhs: Duration) -> Instant {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// `d * num / den` in whole milliseconds, without overflow; an infinite duration stays infinite.
pub(crate) fn scale(d: Duration, num: u32, den: u32) -> Duration {
    if d == INFINITE {
        return INFINITE;
    }
    let millis = d.as_millis() * u128::from(num) / u128::from(den);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addition_saturates_and_drops_sub_millisecond_parts() {
        assert_eq!(Instant(5) + Duration::from_micros(2500), Instant(7));
        assert_eq!(Instant(5) + INFINITE, Instant(u64::MAX));
        assert!((Instant(u64::MAX - 1) + Duration::from_secs(1)).is_never());
    }

    #[test]
    fn duration_since_is_zero_for_a_later_instant() {
        assert_eq!(
            Instant(10).saturating_duration_since(Instant(4)),
            Duration::from_millis(6)
        );
        assert_eq!(
            Instant(4).saturating_duration_since(Instant(10)),
            Duration::ZERO
        );
    }

    #[test]
    fn scale_keeps_precision_and_infinity() {
        assert_eq!(
            scale(Duration::from_secs(3600), 7, 8),
            Duration::from_millis(3_150_000)
        );
        assert_eq!(
            scale(Duration::from_secs(u32::MAX as u64), 1, 2).as_secs(),
            2_147_483_647
        );
        assert_eq!(scale(INFINITE, 1, 2), INFINITE);
    }
}
