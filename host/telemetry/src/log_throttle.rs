//! Rate-limited warnings for events a remote party or a plugin can repeat at will (denied
//! peer RPCs, failed plugin calls): the first of a burst is logged, the repeats within a
//! window are only counted — their totals are in the metrics — and the next line logged
//! says how many were left out.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Distinct kinds of event tracked at once; past this, new kinds share one window, so a
/// party inventing kinds cannot make the throttle grow.
const MAX_KINDS: usize = 256;

/// The kind that [`LogThrottle::admit`] uses, and that new kinds share once the map is full.
const SHARED: u64 = u64::MAX;

/// Lets one log line through per window and kind of event, and counts the ones it holds back.
#[derive(Debug)]
pub struct LogThrottle {
    window: Duration,
    state: Mutex<BTreeMap<u64, Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// When the last line of this kind was let through.
    last: Instant,
    /// Lines of this kind held back since then.
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle letting one line through per `window`; `const`, so it can be a `static`.
    pub const fn new(window: Duration) -> Self {
        LogThrottle { window, state: Mutex::new(BTreeMap::new()) }
    }

    /// Whether to log now: `Some(n)` to log, mentioning the `n` lines held back since the
    /// last one; `None` to skip this one (it is counted for the next).
    pub fn admit(&self) -> Option<u64> {
        self.admit_kind_at(SHARED, Instant::now())
    }

    /// [`LogThrottle::admit`] for one kind of event (e.g. a peer and a method): each kind has
    /// its own window, so a flood of one kind does not hide the first line of another.
    pub fn admit_kind(&self, kind: impl Hash) -> Option<u64> {
        let mut hasher = DefaultHasher::new();
        kind.hash(&mut hasher);
        // SHARED is the shared window, never a kind's own.
        self.admit_kind_at(hasher.finish().min(SHARED - 1), Instant::now())
    }

    /// [`LogThrottle::admit`] at a given instant.
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        self.admit_kind_at(SHARED, now)
    }

    fn admit_kind_at(&self, kind: u64, now: Instant) -> Option<u64> {
        // The map holds plain values, valid whatever a panicking holder left.
        let mut slots = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.window;
        let kind = if slots.contains_key(&kind) || slots.len() < MAX_KINDS {
            kind
        } else {
            // Forget kinds whose window is over (their held-back count is in the metrics).
            slots.retain(|k, slot| *k == SHARED || now.saturating_duration_since(slot.last) < window);
            if slots.len() < MAX_KINDS { kind } else { SHARED }
        };
        match slots.get_mut(&kind) {
            Some(slot) if now.saturating_duration_since(slot.last) < window => {
                slot.suppressed = slot.suppressed.saturating_add(1);
                None
            }
            Some(slot) => {
                slot.last = now;
                Some(std::mem::take(&mut slot.suppressed))
            }
            None => {
                slots.insert(kind, Slot { last: now, suppressed: 0 });
                Some(0)
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

    #[test]
    fn each_kind_has_its_own_window_and_kinds_are_bounded() {
        let throttle = LogThrottle::new(Duration::from_secs(60));
        assert_eq!(throttle.admit_kind(("peer-a", "Crdt.Fingerprints")), Some(0));
        assert_eq!(throttle.admit_kind(("peer-a", "Crdt.Fingerprints")), None);
        // Another method of the same peer is a new kind: its first line is logged.
        assert_eq!(throttle.admit_kind(("peer-a", "Consensus.LogPin")), Some(0));
        // Inventing kinds: past MAX_KINDS they share one window, and the map stays bounded.
        let admitted = (0..10_000).filter(|i| throttle.admit_kind(i).is_some()).count();
        assert!(admitted <= MAX_KINDS + 1, "{admitted} lines for 10 000 invented kinds");
        assert!(throttle.state.lock().expect("lock").len() <= MAX_KINDS + 1);
    }
}
