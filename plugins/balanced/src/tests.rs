use cairn_policy_sdk::Allocator;
use cairn_policy_sdk::PeerMetric as Metric;
use cairn_policy_sdk::types::{AllocationRequest, PinInfo, PinMode};

/// A candidate as a row: its id and metrics (the request carries them as columns).
type Candidate = (String, Vec<Metric>);

use super::{Balanced, DEFAULT_ALLOCATE_BY};

fn metric(name: &str, value: &str, weight: i64, partitionable: bool) -> Metric {
    Metric { name: name.into(), value: value.into(), weight, partitionable, expire: i64::MAX }
}

/// A peer as the tags and disk informers publish it: `tag:group` (partitionable, weight 0)
/// and `freespace` (weight = free bytes).
fn peer(id: &str, group: &str, free: i64) -> Candidate {
    (id.into(), vec![metric("tag:group", group, 0, true), metric("freespace", &free.to_string(), free, false)])
}

fn candidate(id: &str, metrics: Vec<Metric>) -> Candidate {
    (id.into(), metrics)
}

fn request(min: i32, max: i32, current: &[&str], priority: &[&str], candidates: Vec<Candidate>) -> AllocationRequest {
    let strings = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
    AllocationRequest::from_rows(
        PinInfo {
            cid: "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
            name: String::new(),
            mode: PinMode::Recursive,
            replication_factor_min: min,
            replication_factor_max: max,
            shard_size: 0,
            user_allocations: strings(priority),
            expire_at: None,
            metadata: Vec::new(),
            origins: Vec::new(),
        },
        strings(current),
        strings(priority),
        candidates,
    )
}

fn default_allocator() -> Balanced {
    Balanced::from_config("null").expect("default config")
}

fn allocate(allocator: &Balanced, req: &AllocationRequest) -> Vec<String> {
    allocator.allocate(req).expect("allocation succeeds")
}

/// Two groups of three: group `a` holds 600 free in total, group `b` 650, though `a` has
/// the single largest peer.
fn two_groups() -> Vec<Candidate> {
    vec![
        peer("a1", "a", 100),
        peer("a2", "a", 400),
        peer("a3", "a", 100),
        peer("b1", "b", 200),
        peer("b2", "b", 250),
        peer("b3", "b", 200),
    ]
}

// --- configuration ---------------------------------------------------------------------

#[test]
fn default_config_when_null_blank_or_key_missing() {
    for config in ["null", "", "  ", "{}", r#"{"allocate_by": null}"#, r#"{"unknown": 1, "other": [true]}"#] {
        let allocator = Balanced::from_config(config).expect(config);
        assert_eq!(allocator.allocate_by(), DEFAULT_ALLOCATE_BY, "config {config:?}");
    }
}

#[test]
fn empty_allocate_by_keeps_default() {
    let allocator = Balanced::from_config(r#"{"allocate_by": []}"#).expect("config");
    assert_eq!(allocator.allocate_by(), DEFAULT_ALLOCATE_BY);
    assert_eq!(Balanced::new(Vec::new()), Balanced::default());
}

#[test]
fn custom_allocate_by_is_used() {
    let allocator = Balanced::from_config(r#"{"allocate_by": ["tag:region", "freespace"], "x": 1}"#).expect("config");
    assert_eq!(allocator.allocate_by(), ["tag:region", "freespace"]);
}

#[test]
fn bad_config_error_names_the_key() {
    for config in [
        r#"{"allocate_by": "freespace"}"#,
        r#"{"allocate_by": ["freespace", 3]}"#,
        r#"{"allocate_by": {"freespace": true}}"#,
        r#"{"allocate_by": [null]}"#,
        "[]",
        "42",
    ] {
        let err = Balanced::from_config(config).expect_err(config);
        assert!(err.contains("allocate_by"), "{config:?}: {err}");
    }
}

#[test]
fn invalid_json_config_is_an_error() {
    assert!(Balanced::from_config("{allocate_by").is_err());
}

// --- ordering ----------------------------------------------------------------------------

#[test]
fn default_order_spreads_groups_by_total_free_space() {
    let req = request(6, 6, &[], &[], two_groups());
    // Group b (650) before a (600); within a group the most free first; alternate groups.
    assert_eq!(allocate(&default_allocator(), &req), ["b2", "a2", "b1", "a1", "b3", "a3"]);
}

#[test]
fn result_is_capped_at_max() {
    let req = request(1, 2, &[], &[], two_groups());
    assert_eq!(allocate(&default_allocator(), &req), ["b2", "a2"]);
}

#[test]
fn round_robin_never_takes_twice_while_another_partition_has_peers() {
    let candidates = vec![
        peer("a1", "a", 30),
        peer("a2", "a", 20),
        peer("a3", "a", 10),
        peer("b1", "b", 5),
        peer("c1", "c", 8),
        peer("c2", "c", 7),
    ];
    let req = request(6, 6, &[], &[], candidates);
    // Totals: a 60, c 15, b 5. Once b runs dry, a and c alternate; then a alone.
    assert_eq!(allocate(&default_allocator(), &req), ["a1", "c1", "b1", "a2", "c2", "a3"]);
}

#[test]
fn nested_partitions_round_robin_at_every_level() {
    let allocator = Balanced::new(vec!["tag:region".into(), "tag:group".into(), "freespace".into()]);
    let node = |id: &str, region: &str, group: &str, free: i64| {
        candidate(
            id,
            vec![
                metric("freespace", &free.to_string(), free, false),
                metric("tag:group", group, 0, true),
                metric("tag:region", region, 0, true),
            ],
        )
    };
    let candidates = vec![
        node("p1", "r1", "g1", 100),
        node("p2", "r1", "g1", 50),
        node("p3", "r1", "g2", 80),
        node("p4", "r2", "g3", 300),
        node("p5", "r2", "g3", 10),
    ];
    let req = request(5, 5, &[], &[], candidates);
    // r2 (310) before r1 (230); inside r1, g1 (150) before g2 (80), and r1's own cursor
    // alternates g1/g2 between its turns.
    assert_eq!(allocate(&allocator, &req), ["p4", "p1", "p5", "p3", "p2"]);
}

#[test]
fn freespace_only_orders_by_weight_then_value() {
    let allocator = Balanced::new(vec!["freespace".into()]);
    let candidates = vec![
        candidate("small", vec![metric("freespace", "10", 10, false)]),
        candidate("tie-z", vec![metric("freespace", "z", 50, false)]),
        candidate("big", vec![metric("freespace", "90", 90, false)]),
        candidate("tie-a", vec![metric("freespace", "a", 50, false)]),
        candidate("same-1", vec![metric("freespace", "a", 50, false)]),
    ];
    let req = request(5, 5, &[], &[], candidates);
    // Equal weights fall back to the value string; identical ones keep request order.
    assert_eq!(allocate(&allocator, &req), ["big", "tie-a", "same-1", "tie-z", "small"]);
}

#[test]
fn non_partitionable_equal_values_do_not_merge() {
    // Three peers at 100 must not add up to outweigh one at 200.
    let allocator = Balanced::new(vec!["freespace".into()]);
    let candidates = vec![
        candidate("x", vec![metric("freespace", "100", 100, false)]),
        candidate("y", vec![metric("freespace", "100", 100, false)]),
        candidate("z", vec![metric("freespace", "100", 100, false)]),
        candidate("w", vec![metric("freespace", "200", 200, false)]),
    ];
    let req = request(1, 1, &[], &[], candidates);
    assert_eq!(allocate(&allocator, &req), ["w"]);
}

#[test]
fn partitionable_ties_order_by_value_then_request_order() {
    let allocator = Balanced::new(vec!["tag:group".into()]);
    let tagged = |id: &str, group: &str| candidate(id, vec![metric("tag:group", group, 0, true)]);
    let candidates = vec![tagged("z1", "zeta"), tagged("a1", "alpha"), tagged("z2", "zeta"), tagged("a2", "alpha")];
    let req = request(4, 4, &[], &[], candidates);
    assert_eq!(allocate(&allocator, &req), ["a1", "z1", "a2", "z2"]);
}

#[test]
fn tag_weights_rank_before_aggregated_weight() {
    let allocator = default_allocator();
    let weighted = |id: &str, group: &str, tag_weight: i64, free: i64| {
        candidate(
            id,
            vec![metric("tag:group", group, tag_weight, true), metric("freespace", &free.to_string(), free, false)],
        )
    };
    // Group "light" has far more free space but its tag weighs less.
    let candidates = vec![weighted("l1", "light", 0, 1000), weighted("h1", "heavy", 1, 1)];
    let req = request(1, 1, &[], &[], candidates);
    assert_eq!(allocate(&allocator, &req), ["h1"]);
}

#[test]
fn priority_peers_come_first_in_balanced_order() {
    // p-small and p-big are user allocations; candidates have more space but go last.
    let mut candidates = two_groups();
    candidates.push(peer("p-small", "a", 1));
    candidates.push(peer("p-big", "a", 2));
    let req = request(4, 4, &[], &["p-small", "p-big", "not-a-candidate"], candidates);
    assert_eq!(allocate(&default_allocator(), &req), ["p-big", "p-small", "b2", "a2"]);
}

#[test]
fn priority_peer_already_current_counts_as_current() {
    let req = request(2, 2, &["a1"], &["a1", "b1"], two_groups());
    assert_eq!(allocate(&default_allocator(), &req), ["a1", "b1"]);
}

// --- filtering ---------------------------------------------------------------------------

#[test]
fn peers_lacking_a_metric_are_dropped() {
    let mut candidates = two_groups();
    candidates.push(candidate("no-tag", vec![metric("freespace", "9999", 9999, false)]));
    candidates.push(candidate("no-disk", vec![metric("tag:group", "a", 0, true)]));
    candidates.push(candidate("nothing", Vec::new()));
    let req = request(6, 9, &[], &["no-tag"], candidates);
    let got = allocate(&default_allocator(), &req);
    assert_eq!(got, ["b2", "a2", "b1", "a1", "b3", "a3"]);
}

#[test]
fn allocation_fails_when_every_peer_lacks_a_metric() {
    // Tags informer off but `tag:group` still in allocate_by (reference §10 item 13).
    let candidates = vec![
        candidate("a", vec![metric("freespace", "10", 10, false)]),
        candidate("b", vec![metric("freespace", "20", 20, false)]),
    ];
    let req = request(1, 1, &[], &[], candidates);
    let err = default_allocator().allocate(&req).expect_err("no usable peer");
    assert_eq!(
        err,
        "not enough peers to allocate CID. Needed at least: 1. Wanted at most: 1. \
         Available candidates: 0. See logs for more info."
    );
}

#[test]
fn duplicate_allocate_by_name_leaves_no_usable_peer() {
    // IPFS Cluster wants len(allocate_by) distinct metrics per peer, which cannot happen.
    let allocator = Balanced::new(vec!["freespace".into(), "freespace".into()]);
    let req = request(1, 1, &[], &[], two_groups());
    assert!(allocator.allocate(&req).is_err());
}

#[test]
fn current_peer_without_metrics_is_not_current() {
    // "gone" still appears in the pin's allocations but is no longer a usable candidate.
    let req = request(2, 2, &["gone", "a1"], &[], two_groups());
    assert_eq!(allocate(&default_allocator(), &req), ["a1", "b2"]);
}

#[test]
fn duplicate_candidate_entries_count_once() {
    let mut candidates = two_groups();
    candidates.push(peer("a1", "b", 1_000_000));
    let req = request(6, 6, &[], &[], candidates);
    assert_eq!(allocate(&default_allocator(), &req), ["b2", "a2", "b1", "a1", "b3", "a3"]);
}

// --- replication bookkeeping -------------------------------------------------------------

#[test]
fn needed_not_positive_keeps_current_unchanged() {
    // min 2 met by a1 and b1; no top-up towards max 4, and the unusable "gone" stays.
    let req = request(2, 4, &["a1", "gone", "b1"], &[], two_groups());
    assert_eq!(allocate(&default_allocator(), &req), ["a1", "gone", "b1"]);
}

#[test]
fn wanted_negative_trims_current_in_order() {
    let req = request(1, 2, &["b3", "a1", "gone", "a3"], &[], two_groups());
    assert_eq!(allocate(&default_allocator(), &req), ["b3", "a1"]);
}

#[test]
fn under_replicated_pin_is_topped_up_after_current() {
    let req = request(3, 4, &["a3"], &[], two_groups());
    // Current first; the best three others follow, skipping the current peer.
    assert_eq!(allocate(&default_allocator(), &req), ["a3", "b2", "a2", "b1"]);
}

#[test]
fn not_enough_peers_error_text() {
    let req = request(4, 5, &["a1"], &["b1"], vec![peer("a1", "a", 1), peer("b1", "b", 1), peer("c1", "c", 1)]);
    let err = default_allocator().allocate(&req).expect_err("too few peers");
    assert_eq!(
        err,
        "not enough peers to allocate CID. Needed at least: 3. Wanted at most: 4. \
         Available candidates: 2. See logs for more info."
    );
}

#[test]
fn exactly_enough_peers_succeeds_below_max() {
    let req = request(2, 5, &[], &[], vec![peer("a1", "a", 1), peer("b1", "b", 2)]);
    assert_eq!(allocate(&default_allocator(), &req), ["b1", "a1"]);
}

#[test]
fn everywhere_allocates_nobody() {
    let req = request(-1, -1, &["a1"], &["b1"], Vec::new());
    assert_eq!(allocate(&default_allocator(), &req), Vec::<String>::new());
}

#[test]
fn zero_factors_are_rejected() {
    let req = request(0, 0, &[], &[], two_groups());
    assert_eq!(default_allocator().allocate(&req), Err("bad replication factors: 0/0".into()));
}
