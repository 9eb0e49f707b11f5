//! A hybrid logical clock: wall-clock milliseconds in the high 48 bits, a counter in the low 16.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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

    /// A new clock value, greater than every value issued or observed before.
    pub fn next(&self) -> u64 {
        let wall = Self::wall();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last + 1);
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Records a clock seen from another peer.
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
        let a = hlc.next();
        let b = hlc.next();
        assert!(b > a);
        let far = Hlc::wall() + (1 << 30);
        hlc.observe(far);
        assert!(hlc.next() > far);
        assert!(Hlc::new(far + 5).next() > far + 5);
    }
}
