//! Rate-limited warnings for events a remote party or a plugin can repeat at will (denied
//! peer RPCs, failed plugin calls): the first of a burst is logged, the repeats within a
//! window are only counted — their totals are in the metrics — and the next line logged
//! says how many were left out.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lets one log line through per window and counts the ones it holds back.
#[derive(Debug)]
pub struct LogThrottle {
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last line was let through.
    last: Option<Instant>,
    /// Lines held back since then.
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle letting one line through per `window`; `const`, so it can be a `static`.
    pub const fn new(window: Duration) -> Self {
        LogThrottle { window, state: Mutex::new(State { last: None, suppressed: 0 }) }
    }

    /// Whether to log now: `Some(n)` to log, mentioning the `n` lines held back since the
    /// last one; `None` to skip this one (it is counted for the next).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`LogThrottle::admit`] at a given instant.
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        // The state is two plain fields, valid whatever a panicking holder left.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.window => {
                state.suppressed = state.suppressed.saturating_add(1);
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_window_give_one_line_then_a_summary() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        let admitted: Vec<Option<u64>> =
            (0..100).map(|i| throttle.admit_at(start + Duration::from_millis(i * 50))).collect();
        assert_eq!(admitted[0], Some(0));
        assert!(admitted[1..].iter().all(Option::is_none), "{admitted:?}");
        // The first line after the window reports the 99 left out, and starts a new window.
        assert_eq!(throttle.admit_at(start + Duration::from_secs(10)), Some(99));
        assert_eq!(throttle.admit_at(start + Duration::from_secs(11)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn a_static_throttle_lets_the_first_line_through() {
        static THROTTLE: LogThrottle = LogThrottle::new(Duration::from_secs(60));
        assert_eq!(THROTTLE.admit(), Some(0));
        assert_eq!(THROTTLE.admit(), None);
    }
}
