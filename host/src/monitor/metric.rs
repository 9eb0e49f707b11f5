//! IPFS Cluster's `Metric` and `Alert` objects (REST JSON field names, §1.4 of the reference)
//! and the time encodings they use: Unix nanoseconds, and RFC 3339 for `triggered_at`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One measurement a peer published about itself: the REST API's `Metric`, which is also what
/// travels on the metrics topic.
pub use cairn_api::Metric;

/// A metric that expired without a fresh one replacing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The expired metric, as last received.
    #[serde(flatten)]
    pub metric: Metric,
    /// When the alert was raised (RFC 3339 with nanoseconds, UTC).
    pub triggered_at: String,
}

/// The current time in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// Unix nanoseconds as Go's `time.RFC3339Nano` in UTC (what a Go `time.Time` marshals to):
/// `2024-05-01T12:00:03.5Z`, trailing zeros of the fraction dropped.
pub fn rfc3339_nanos(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`), so no date crate is needed for one format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nanos(1_714_564_803_500_000_000), "2024-05-01T12:00:03.5Z");
        assert_eq!(rfc3339_nanos(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339_nanos(-1_000_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn metric_and_alert_json_use_ipfs_cluster_field_names() {
        let mut m = Metric::new("ping", "12D3KooWA", "{}", Duration::from_secs(2), 1_000);
        m.received_at = 5;
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"name": "ping", "peer": "12D3KooWA", "value": "{}", "expire": 2_000_001_000i64,
                "valid": true, "weight": 0, "partitionable": false, "received_at": 5})
        );
        let alert = Alert { metric: m, triggered_at: rfc3339_nanos(0) };
        let v = serde_json::to_value(&alert).expect("json");
        assert_eq!(v["triggered_at"], "1970-01-01T00:00:00Z");
        assert_eq!(v["name"], "ping");
        let back: Alert = serde_json::from_value(v).expect("decode");
        assert_eq!(back, alert);
    }
}
