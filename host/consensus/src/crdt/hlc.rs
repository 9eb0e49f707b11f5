//! A hybrid logical clock: wall-clock milliseconds in the high 48 bits, a counter in the low 16.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far ahead of this peer's wall clock another peer's clock may be. A day: a peer whose
/// hardware clock keeps local time instead of UTC is still in range, while a clock from the
/// far future (up to `u64::MAX`) can never drag this peer's clock to its end.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Why a clock value cannot be issued or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The highest clock seen is `u64::MAX`: no later value exists, so a write would lose to it.
    #[error(
        "the crdt clock is exhausted (highest clock seen: {last}); no later write can be versioned — \
         the pinset store holds a record from the far future"
    )]
    Exhausted {
        /// The highest clock seen.
        last: u64,
    },
    /// Another peer's clock is further ahead of this peer's wall clock than [`MAX_AHEAD`].
    #[error("clock {clock} is more than {}s ahead of this peer's wall clock", MAX_AHEAD.as_secs())]
    TooFarAhead {
        /// The clock refused.
        clock: u64,
    },
}

/// Issues strictly increasing clocks that stay close to wall time and never fall behind any
/// clock observed from another peer, so a write made after seeing another is ordered after it
/// even when the two peers' wall clocks disagree.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    /// A clock that will issue values above `floor` (the store's highest clock, so a restart
    /// never reuses a clock).
    pub fn new(floor: u64) -> Self {
        Hlc { last: AtomicU64::new(floor) }
    }

    /// The wall clock in HLC form.
    pub fn wall() -> u64 {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        ms << 16
    }

    /// A new clock value, greater than every value issued or observed before; an error once
    /// `u64::MAX` was reached (never a wrap, which would make the write lose).
    pub fn next(&self) -> Result<u64, ClockError> {
        let wall = Self::wall();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last.checked_add(1).ok_or(ClockError::Exhausted { last })?);
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(next),
                Err(seen) => last = seen,
            }
        }
    }

    /// Whether `clock`, from another peer, may be applied and observed: not more than
    /// [`MAX_AHEAD`] ahead of this peer's wall clock.
    pub fn admit(clock: u64) -> Result<(), ClockError> {
        let ahead = u64::try_from(MAX_AHEAD.as_millis()).unwrap_or(u64::MAX).saturating_mul(1 << 16);
        if clock > Self::wall().saturating_add(ahead) { Err(ClockError::TooFarAhead { clock }) } else { Ok(()) }
    }

    /// Records a clock seen from another peer (one [`admit`](Self::admit) accepted).
    pub fn observe(&self, clock: u64) {
        self.last.fetch_max(clock, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_ahead_of_observed() {
        let hlc = Hlc::new(0);
        let a = hlc.next().expect("clock");
        let b = hlc.next().expect("clock");
        assert!(b > a);
        let far = Hlc::wall() + (1 << 30);
        hlc.observe(far);
        assert!(hlc.next().expect("clock") > far);
        assert!(Hlc::new(far + 5).next().expect("clock") > far + 5);
    }

    #[test]
    fn the_last_clock_value_is_an_error_not_a_wrap() {
        let hlc = Hlc::new(u64::MAX - 1);
        assert_eq!(hlc.next(), Ok(u64::MAX));
        assert_eq!(hlc.next(), Err(ClockError::Exhausted { last: u64::MAX }));
        assert!(hlc.next().expect_err("still exhausted").to_string().contains("exhausted"));
    }

    #[test]
    fn clocks_far_ahead_of_the_wall_clock_are_not_admitted() {
        let wall = Hlc::wall();
        assert_eq!(Hlc::admit(wall), Ok(()));
        assert_eq!(Hlc::admit(0), Ok(()));
        // An hour ahead (a skewed peer) is fine; two days ahead, or u64::MAX, is not.
        assert_eq!(Hlc::admit(wall + ((3_600_000u64) << 16)), Ok(()));
        let two_days = wall + ((2 * 86_400_000u64) << 16);
        assert_eq!(Hlc::admit(two_days), Err(ClockError::TooFarAhead { clock: two_days }));
        assert!(Hlc::admit(u64::MAX).is_err());
    }
}
