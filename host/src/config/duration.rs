//! Go duration strings (`"15s"`, `"2m0s"`, `"1h0m0s"`, `"200ms"`), read and written the way
//! Go's `time.ParseDuration` and `time.Duration.String` do, so a service.json written by
//! IPFS Cluster loads and one written by Cairn reads the same to an operator.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration that (de)serializes as a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// What `""` reads as until the loader puts the key's default in its place. No real
    /// duration is this long (Go's durations stop at about 292 years).
    pub(crate) const EMPTY: GoDuration = GoDuration(Duration::MAX);

    /// `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        GoDuration(Duration::from_millis(ms))
    }

    /// Whether this is zero (which, for many IPFS Cluster keys, means "disabled").
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Duration {
        d.0
    }
}

pub use cairn_go_duration::{format, parse_duration as parse};

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            // IPFS Cluster: an empty duration keeps the default. The loader replaces this
            // marker with the key's default (see `config::fill_empty_durations`).
            return Ok(GoDuration::EMPTY);
        }
        parse(&text).map(GoDuration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["0s", "15s", "2m0s", "1h0m0s", "200ms", "1.5s", "24h0m0s", "3h1m1s", "1.5µs", "500ns"] {
            let d = parse(text).expect("parses");
            assert_eq!(format(d), text);
            let json = serde_json::to_string(&GoDuration(d)).expect("serializes");
            assert_eq!(json, format!("\"{text}\""));
            let back: GoDuration = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back.0, d);
        }
    }
}
