//! Native unit tests of the policy (`cases.toml` runs the same rules through Cairn's runtime).

use super::*;
use cairn_policy_sdk::PeerMetric;
use cairn_policy_sdk::types::{PinInfo, PinMode};

const GIB: u64 = 1 << 30;

fn pin(min: i32, max: i32) -> PinInfo {
    PinInfo {
        cid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
        name: String::new(),
        mode: PinMode::Recursive,
        replication_factor_min: min,
        replication_factor_max: max,
        shard_size: 0,
        user_allocations: vec![],
        expire_at: None,
        metadata: vec![],
        origins: vec![],
    }
}

/// A candidate: id, region (None = no tag), free bytes.
type Row<'a> = (&'a str, Option<&'a str>, u64);

fn request(min: i32, max: i32, current: &[&str], priority: &[&str], rows: &[Row<'_>]) -> AllocationRequest {
    let rows = rows
        .iter()
        .map(|(id, region, free)| {
            let mut metrics = vec![PeerMetric::new(FREESPACE_METRIC, &free.to_string(), 0, false)];
            if let Some(region) = region {
                metrics.push(PeerMetric::new(REGION_METRIC, region, 0, true));
            }
            (id.to_string(), metrics)
        })
        .collect();
    let strings = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
    AllocationRequest::from_rows(pin(min, max), strings(current), strings(priority), rows)
}

fn policy(min_free_bytes: u64) -> RegionSpread {
    RegionSpread::from_config(&format!(r#"{{"min_free_bytes": {min_free_bytes}}}"#)).expect("valid config")
}

fn ok(peers: &[&str]) -> Result<Vec<String>, String> {
    Ok(peers.iter().map(|s| s.to_string()).collect())
}

const ROWS: &[Row<'static>] = &[
    ("eu-1", Some("eu"), 50 * GIB),
    ("eu-2", Some("eu"), 90 * GIB),
    ("us-1", Some("us"), 20 * GIB),
    ("ap-1", Some("ap"), 5 * GIB),
    ("lab", None, 500 * GIB),
];

#[test]
fn one_replica_per_region_most_free_space_first() {
    let p = policy(0);
    assert_eq!(p.allocate(&request(3, 3, &[], &[], ROWS)), ok(&["eu-2", "us-1", "ap-1"]));
    assert_eq!(p.allocate(&request(2, 2, &[], &[], ROWS)), ok(&["eu-2", "us-1"]));
}

#[test]
fn peers_below_the_floor_and_without_a_region_are_skipped() {
    let p = policy(10 * GIB);
    assert_eq!(p.allocate(&request(2, 3, &[], &[], ROWS)), ok(&["eu-2", "us-1"]));
    let err = p.allocate(&request(3, 3, &[], &[], ROWS)).expect_err("only two regions have room");
    assert!(err.contains("not enough regions"), "{err}");
    assert!(err.contains("1 have no `tag:region` metric and 1 have less than 10737418240 bytes"), "{err}");
}

#[test]
fn current_peers_stay_but_never_two_in_a_region() {
    let p = policy(10 * GIB);
    // ap-1 is below the floor but already holds the data, so it stays.
    assert_eq!(p.allocate(&request(2, 2, &["ap-1", "eu-1"], &[], ROWS)), ok(&["ap-1", "eu-1"]));
    // Two current peers in one region: the second is replaced by another region's peer.
    assert_eq!(p.allocate(&request(2, 2, &["eu-1", "eu-2"], &[], ROWS)), ok(&["eu-1", "us-1"]));
}

#[test]
fn priority_peers_come_first_within_the_rules() {
    let p = policy(10 * GIB);
    assert_eq!(p.allocate(&request(2, 2, &[], &["eu-1"], ROWS)), ok(&["eu-1", "us-1"]));
    // A priority peer below the floor is skipped like any other.
    assert_eq!(p.allocate(&request(2, 2, &[], &["ap-1"], ROWS)), ok(&["eu-2", "us-1"]));
}

#[test]
fn replication_everywhere_and_bad_factors() {
    let p = policy(0);
    assert_eq!(p.allocate(&request(-1, -1, &[], &[], ROWS)), ok(&[]));
    assert!(p.allocate(&request(0, 0, &[], &[], ROWS)).is_err());
}

#[test]
fn config() {
    assert_eq!(RegionSpread::from_config("null"), Ok(RegionSpread { min_free_bytes: 0 }));
    assert_eq!(RegionSpread::from_config("{}"), Ok(RegionSpread { min_free_bytes: 0 }));
    assert!(RegionSpread::from_config(r#"{"min_free": 1}"#).is_err());
    assert!(RegionSpread::from_config(r#"{"min_free_bytes": -1}"#).is_err());
}
