//! The `balanced` default allocator, case by case through the real runtime: IPFS Cluster
//! v1.1.6's `allocator.balanced` ordering and `allocate.go`'s replication bookkeeping
//! (reference §8.2, §10 item 13). Every call goes through the embedded component and the
//! host's answer check; no test may count a failed or malformed call.

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;

use cairn_policy::PeerMetric as Metric;
use cairn_policy::types::*;
use cairn_policy::{AllocatorPlugin, PluginSpec, PolicyError, PolicyRuntime};

/// A candidate as a row: its id and metrics (the request carries them as columns).
type Candidate = (String, Vec<Metric>);
use serde_json::json;

const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

// --- builders ------------------------------------------------------------------------------

fn metric(name: &str, value: &str, weight: i64, partitionable: bool) -> Metric {
    Metric { name: name.into(), value: value.into(), weight, partitionable, expire: i64::MAX }
}

/// A peer as the tags and disk informers publish it: `tag:group` (partitionable, weight 0)
/// and `freespace` (weight = free bytes, value the same number as a string).
fn peer(id: &str, group: &str, free: i64) -> Candidate {
    (id.into(), vec![metric("tag:group", group, 0, true), metric("freespace", &free.to_string(), free, false)])
}

/// A peer that publishes only `freespace`.
fn disk_only(id: &str, free: i64) -> Candidate {
    candidate(id, vec![metric("freespace", &free.to_string(), free, false)])
}

fn candidate(id: &str, metrics: Vec<Metric>) -> Candidate {
    (id.into(), metrics)
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// A request for `CID` with the given factors, current allocations, user allocations
/// (priority) and candidates.
fn request(min: i32, max: i32, current: &[&str], priority: &[&str], candidates: Vec<Candidate>) -> AllocationRequest {
    AllocationRequest::from_rows(
        PinInfo {
            cid: CID.into(),
            name: "test-pin".into(),
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

/// Two groups of three: group `a` holds 600 free in total, group `b` 650, though `a` has
/// the single largest peer (a2, 400).
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

/// The default order of `two_groups()`: b (650) before a (600), most free first inside a
/// group, groups alternating.
const TWO_GROUPS_DEFAULT_ORDER: [&str; 6] = ["b2", "a2", "b1", "a1", "b3", "a3"];

/// The `["freespace"]` order of `two_groups()`: one partition per peer, by free space;
/// equal weights and values keep request order.
const TWO_GROUPS_FREESPACE_ORDER: [&str; 6] = ["a2", "b2", "b1", "b3", "a1", "a3"];

// --- plugin helpers ------------------------------------------------------------------------

/// One runtime with the default limits for the whole test binary, so the component is
/// compiled once rather than by every test at the same time.
fn rt() -> &'static PolicyRuntime {
    static RT: OnceLock<PolicyRuntime> = OnceLock::new();
    RT.get_or_init(common::runtime)
}

async fn plugin(config: serde_json::Value) -> AllocatorPlugin {
    match rt().load_allocator(&PluginSpec::builtin("balanced", config.clone())).await {
        Ok(p) => p,
        Err(e) => panic!("config {config} rejected: {e}"),
    }
}

async fn default_plugin() -> AllocatorPlugin {
    plugin(json!(null)).await
}

/// The allocation, which must succeed.
async fn allocate(p: &AllocatorPlugin, req: &AllocationRequest) -> Vec<String> {
    match p.allocate(req).await {
        Ok(peers) => peers,
        Err(e) => panic!("allocation failed: {e} (stats {:?})", p.stats()),
    }
}

/// The plugin's own error message, which the allocation must end with.
async fn allocate_err(p: &AllocatorPlugin, req: &AllocationRequest) -> String {
    match p.allocate(req).await {
        Ok(peers) => panic!("allocation should fail, got {peers:?}"),
        Err(e) => e,
    }
}

/// Every call so far reached the plugin and came back well-formed.
fn assert_clean(p: &AllocatorPlugin, calls: u64) {
    let s = p.stats();
    assert_eq!(s.calls, calls, "{s:?}");
    assert_eq!(s.failures, 0, "{s:?}");
    assert_eq!(s.malformed, 0, "{s:?}");
    assert_eq!((s.deadline, s.out_of_memory, s.traps), (0, 0, 0), "{s:?}");
}

async fn load_err(config: serde_json::Value) -> PolicyError {
    rt().load_allocator(&PluginSpec::builtin("balanced", config.clone()))
        .await
        .err()
        .unwrap_or_else(|| panic!("config {config} should be refused"))
}

fn not_enough(needed: i64, wanted: i64, available: usize) -> String {
    format!(
        "not enough peers to allocate CID. Needed at least: {needed}. Wanted at most: {wanted}. \
         Available candidates: {available}. See logs for more info."
    )
}

// --- configuration -------------------------------------------------------------------------

#[tokio::test]
async fn missing_null_or_unknown_config_uses_default_allocate_by() {
    for config in [json!(null), json!({}), json!({"allocate_by": null}), json!({"unknown": 1, "other": [true]})] {
        let p = plugin(config.clone()).await;
        let got = allocate(&p, &request(6, 6, &[], &[], two_groups())).await;
        assert_eq!(got, TWO_GROUPS_DEFAULT_ORDER, "config {config}");
        assert_clean(&p, 1);
    }
}

#[tokio::test]
async fn empty_allocate_by_keeps_default() {
    let p = plugin(json!({"allocate_by": []})).await;
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], two_groups())).await, TWO_GROUPS_DEFAULT_ORDER);
    // Default includes `tag:group`: a peer without tags is still dropped.
    let err = allocate_err(&p, &request(1, 1, &[], &[], vec![disk_only("x", 10)])).await;
    assert_eq!(err, not_enough(1, 1, 0));
    assert_clean(&p, 2);
}

#[tokio::test]
async fn custom_allocate_by_freespace_only() {
    let p = plugin(json!({"allocate_by": ["freespace"]})).await;
    // No group spreading: the biggest disks first, whatever their group.
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], two_groups())).await, TWO_GROUPS_FREESPACE_ORDER);
    // Peers without tags are usable now.
    let got =
        allocate(&p, &request(2, 2, &[], &[], vec![disk_only("x", 10), disk_only("y", 30), disk_only("z", 20)])).await;
    assert_eq!(got, ["y", "z"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn custom_allocate_by_single_tag() {
    let p = plugin(json!({"allocate_by": ["tag:group"]})).await;
    // Both groups weigh 0 and there is no sub-metric: groups order by value ("a" < "b"),
    // peers inside a group keep request order.
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], two_groups())).await, ["a1", "b1", "a2", "b2", "a3", "b3"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn bad_config_is_refused_at_load_naming_allocate_by() {
    for config in [
        json!({"allocate_by": "freespace"}),
        json!({"allocate_by": ["freespace", 3]}),
        json!({"allocate_by": {"freespace": true}}),
        json!({"allocate_by": [null]}),
        json!({"allocate_by": true}),
        json!([]),
        json!(["freespace"]),
        json!(42),
        json!("freespace"),
    ] {
        let err = load_err(config.clone()).await;
        assert!(matches!(err, PolicyError::Config { .. }), "config {config}: {err}");
        assert!(err.to_string().contains("allocate_by"), "config {config}: {err}");
        assert!(err.to_string().contains("balanced"), "{err}");
    }
}

#[tokio::test]
async fn bad_config_messages_say_what_was_wrong() {
    let err = load_err(json!({"allocate_by": "freespace"})).await.to_string();
    assert!(err.contains("`allocate_by` must be a list of metric names, got a string"), "{err}");
    let err = load_err(json!({"allocate_by": ["freespace", 3]})).await.to_string();
    assert!(err.contains("`allocate_by` must be a list of metric names, found a number"), "{err}");
    let err = load_err(json!(42)).await.to_string();
    assert!(err.contains("must be an object with an `allocate_by` list, got a number"), "{err}");
}

// --- ordering ------------------------------------------------------------------------------

#[tokio::test]
async fn default_order_spreads_groups_by_total_free_space() {
    let p = default_plugin().await;
    // Group b (650 total) before a (600) even though a2 is the largest peer; most free
    // first within a group; groups alternate.
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], two_groups())).await, TWO_GROUPS_DEFAULT_ORDER);
    // Reversed request: the ranking is the same, only exact ties (b1/b3 at 200, a1/a3 at
    // 100) follow request order.
    let mut reversed = two_groups();
    reversed.reverse();
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], reversed)).await, ["b2", "a2", "b3", "a3", "b1", "a1"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn result_is_capped_at_max() {
    let p = default_plugin().await;
    assert_eq!(allocate(&p, &request(1, 2, &[], &[], two_groups())).await, ["b2", "a2"]);
    assert_eq!(allocate(&p, &request(1, 3, &[], &[], two_groups())).await, ["b2", "a2", "b1"]);
    // Fewer peers than max but at least min: everybody, in order.
    assert_eq!(allocate(&p, &request(2, 10, &[], &[], two_groups())).await, TWO_GROUPS_DEFAULT_ORDER);
    assert_clean(&p, 3);
}

#[tokio::test]
async fn round_robin_never_takes_twice_while_another_partition_has_peers() {
    let p = default_plugin().await;
    let candidates = vec![
        peer("a1", "a", 30),
        peer("a2", "a", 20),
        peer("a3", "a", 10),
        peer("b1", "b", 5),
        peer("c1", "c", 8),
        peer("c2", "c", 7),
    ];
    // Totals: a 60, c 15, b 5. Once b runs dry, a and c alternate; then a alone.
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], candidates)).await, ["a1", "c1", "b1", "a2", "c2", "a3"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn every_group_gets_one_replica_before_any_gets_two() {
    let p = default_plugin().await;
    // One huge group and three small ones: replicas still spread over all four groups.
    let candidates = vec![
        peer("big1", "big", 10_000),
        peer("big2", "big", 9_000),
        peer("big3", "big", 8_000),
        peer("s1", "s", 3),
        peer("t1", "t", 2),
        peer("u1", "u", 1),
    ];
    assert_eq!(allocate(&p, &request(4, 4, &[], &[], candidates)).await, ["big1", "s1", "t1", "u1"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn nested_partitions_round_robin_at_every_level() {
    let p = plugin(json!({"allocate_by": ["tag:region", "tag:group", "freespace"]})).await;
    let node = |id: &str, region: &str, group: &str, free: i64| {
        candidate(
            id,
            vec![
                // Metric order in the request does not matter; allocate_by order does.
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
    // r2 (310) before r1 (230); inside r1, g1 (150) before g2 (80), and r1's own cursor
    // alternates g1/g2 between its turns.
    assert_eq!(allocate(&p, &request(5, 5, &[], &[], candidates)).await, ["p4", "p1", "p5", "p3", "p2"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn freespace_only_orders_by_weight_then_value_then_request_order() {
    let p = plugin(json!({"allocate_by": ["freespace"]})).await;
    let candidates = vec![
        candidate("small", vec![metric("freespace", "10", 10, false)]),
        candidate("tie-z", vec![metric("freespace", "z", 50, false)]),
        candidate("big", vec![metric("freespace", "90", 90, false)]),
        candidate("tie-a", vec![metric("freespace", "a", 50, false)]),
        candidate("same-1", vec![metric("freespace", "a", 50, false)]),
    ];
    assert_eq!(allocate(&p, &request(5, 5, &[], &[], candidates)).await, ["big", "tie-a", "same-1", "tie-z", "small"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn non_partitionable_equal_values_do_not_add_up() {
    let p = plugin(json!({"allocate_by": ["freespace"]})).await;
    // Three peers at 100 must not merge into one 300 bucket that outweighs 200.
    let candidates = vec![disk_only("x", 100), disk_only("y", 100), disk_only("z", 100), disk_only("w", 200)];
    assert_eq!(allocate(&p, &request(1, 1, &[], &[], candidates)).await, ["w"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn tag_weight_ranks_before_aggregated_free_space() {
    let p = default_plugin().await;
    let weighted = |id: &str, group: &str, tag_weight: i64, free: i64| {
        candidate(
            id,
            vec![metric("tag:group", group, tag_weight, true), metric("freespace", &free.to_string(), free, false)],
        )
    };
    // "light" has far more free space but its tag weighs less.
    let candidates = vec![weighted("l1", "light", 0, 1000), weighted("h1", "heavy", 1, 1)];
    assert_eq!(allocate(&p, &request(2, 2, &[], &[], candidates)).await, ["h1", "l1"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn extreme_weights_wrap_like_go_int64_without_trapping() {
    let p = default_plugin().await;
    // Group a's free space sums past i64::MAX and wraps negative, as Go's int64 does, so
    // the tiny group b ranks first. The point is no overflow trap in the guest.
    let candidates = vec![peer("a1", "a", i64::MAX), peer("a2", "a", i64::MAX), peer("b1", "b", 1)];
    assert_eq!(allocate(&p, &request(3, 3, &[], &[], candidates)).await, ["b1", "a1", "a2"]);
    assert_clean(&p, 1);
}

// --- priority (user_allocations) ----------------------------------------------------------

#[tokio::test]
async fn priority_peers_come_first_in_balanced_order() {
    let p = default_plugin().await;
    // p-small and p-big are user allocations with almost no space, yet go first, ordered
    // among themselves; "not-a-candidate" has no metrics and is ignored.
    let mut candidates = two_groups();
    candidates.push(peer("p-small", "a", 1));
    candidates.push(peer("p-big", "a", 2));
    let req = request(4, 4, &[], &["p-small", "p-big", "not-a-candidate"], candidates);
    assert_eq!(allocate(&p, &req).await, ["p-big", "p-small", "b2", "a2"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn priority_peers_are_balanced_across_their_groups() {
    let p = default_plugin().await;
    let req = request(3, 3, &[], &["a1", "a2", "b3"], two_groups());
    // Priority alone: group a (500) before b (200), most free first, alternating.
    assert_eq!(allocate(&p, &req).await, ["a2", "b3", "a1"]);
    // Room for more than the priority peers: the rest follow, ranked among themselves
    // (b1+b2 = 450 now beats a3 = 100).
    let req = request(5, 5, &[], &["a1", "a2", "b3"], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a2", "b3", "a1", "b2", "a3"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn priority_peer_already_current_counts_as_current() {
    let p = default_plugin().await;
    let req = request(2, 2, &["a1"], &["a1", "b1"], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a1", "b1"]);
    assert_clean(&p, 1);
}

// --- filtering -----------------------------------------------------------------------------

#[tokio::test]
async fn peers_lacking_any_allocate_by_metric_are_dropped() {
    let p = default_plugin().await;
    let mut candidates = two_groups();
    candidates.push(disk_only("no-tag", 9999));
    candidates.push(candidate("no-disk", vec![metric("tag:group", "a", 0, true)]));
    candidates
        .push(candidate("other-metrics", vec![metric("pinqueue", "0", 0, false), metric("tag:region", "x", 0, true)]));
    candidates.push(candidate("nothing", Vec::new()));
    // no-tag is even a user allocation; max 10 leaves room for everybody usable.
    let req = request(6, 10, &[], &["no-tag"], candidates);
    assert_eq!(allocate(&p, &req).await, TWO_GROUPS_DEFAULT_ORDER);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn tags_informer_off_with_default_allocate_by_fails_every_pin() {
    // Reference §10 item 13: no `tag:group` anywhere means no usable peer.
    let p = default_plugin().await;
    let candidates = vec![disk_only("a", 10), disk_only("b", 20), disk_only("c", 30)];
    let err = allocate_err(&p, &request(1, 1, &[], &[], candidates.clone())).await;
    assert_eq!(err, not_enough(1, 1, 0));
    let err = allocate_err(&p, &request(2, 3, &[], &["a"], candidates.clone())).await;
    assert_eq!(err, not_enough(2, 3, 0));
    // The same peers work with allocate_by ["freespace"] (a missing allocator section).
    let fs = plugin(json!({"allocate_by": ["freespace"]})).await;
    assert_eq!(allocate(&fs, &request(1, 1, &[], &[], candidates)).await, ["c"]);
    // A plugin's own "not enough peers" answer is a decision, not a failed call.
    assert_clean(&p, 2);
    assert_clean(&fs, 1);
}

#[tokio::test]
async fn duplicate_allocate_by_name_leaves_no_usable_peer() {
    // IPFS Cluster wants len(allocate_by) distinct metrics per peer, which cannot happen.
    let p = plugin(json!({"allocate_by": ["freespace", "freespace"]})).await;
    let err = allocate_err(&p, &request(1, 1, &[], &[], two_groups())).await;
    assert_eq!(err, not_enough(1, 1, 0));
    assert_clean(&p, 1);
}

#[tokio::test]
async fn current_peer_without_metrics_is_not_current() {
    let p = default_plugin().await;
    // "gone" is still in the pin's allocations but no longer a usable candidate: it does
    // not count towards min and is replaced.
    assert_eq!(allocate(&p, &request(2, 2, &["gone", "a1"], &[], two_groups())).await, ["a1", "b2"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn duplicate_candidate_entries_count_once() {
    let p = default_plugin().await;
    let mut candidates = two_groups();
    // A second entry for a1 (first one wins) must not be returned twice.
    candidates.push(peer("a1", "b", 1_000_000));
    assert_eq!(allocate(&p, &request(6, 6, &[], &[], candidates)).await, TWO_GROUPS_DEFAULT_ORDER);
    // Duplicates in current and priority count once too.
    // (The remaining candidates rank on their own: a2+a3 = 500 beats b2+b3 = 450.)
    let req = request(3, 3, &["a1", "a1"], &["b1", "b1"], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a1", "b1", "a2"]);
    assert_clean(&p, 2);
}

// --- replication bookkeeping (allocate.go) --------------------------------------------------

#[tokio::test]
async fn needed_not_positive_keeps_current_unchanged() {
    let p = default_plugin().await;
    // min 2 met by a1 and b1: no top-up towards max 4, and the stale "gone" stays as it was.
    let req = request(2, 4, &["a1", "gone", "b1"], &[], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a1", "gone", "b1"]);
    // Exactly min == max == current: unchanged, order kept.
    let req = request(3, 3, &["a3", "b3", "a1"], &["b2"], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a3", "b3", "a1"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn wanted_negative_trims_current_in_order() {
    let p = default_plugin().await;
    // Three usable current peers over max 2: keep the first two usable ones.
    let req = request(1, 2, &["b3", "a1", "gone", "a3"], &[], two_groups());
    assert_eq!(allocate(&p, &req).await, ["b3", "a1"]);
    let req = request(1, 1, &["a3", "a2", "a1", "b1", "b2", "b3"], &["b2"], two_groups());
    assert_eq!(allocate(&p, &req).await, ["a3"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn under_replicated_pin_is_topped_up_after_current() {
    let p = default_plugin().await;
    // Current first; the best others follow (up to max), skipping the current peer.
    assert_eq!(allocate(&p, &request(3, 4, &["a3"], &[], two_groups())).await, ["a3", "b2", "a2", "b1"]);
    // The top-up ranks only the peers not yet allocated: without a1 and b1, group a
    // (a2+a3 = 500) outweighs b (b2+b3 = 450).
    assert_eq!(allocate(&p, &request(3, 3, &["a1", "b1"], &[], two_groups())).await, ["a1", "b1", "a2"]);
    assert_clean(&p, 2);
}

#[tokio::test]
async fn not_enough_peers_error_text() {
    let p = default_plugin().await;
    // a1 is current (needed 3, wanted 4); only b1 (priority) and c1 are available.
    let req = request(4, 5, &["a1"], &["b1"], vec![peer("a1", "a", 1), peer("b1", "b", 1), peer("c1", "c", 1)]);
    let err = allocate_err(&p, &req).await;
    assert_eq!(
        err,
        "not enough peers to allocate CID. Needed at least: 3. Wanted at most: 4. \
         Available candidates: 2. See logs for more info."
    );
    // Nobody at all.
    let err = allocate_err(&p, &request(2, 3, &[], &[], Vec::new())).await;
    assert_eq!(err, not_enough(2, 3, 0));
    // The plugin's message is passed through untouched: it is not a failed call.
    assert_clean(&p, 2);
}

#[tokio::test]
async fn exactly_enough_peers_succeeds_below_max() {
    let p = default_plugin().await;
    let req = request(2, 5, &[], &[], vec![peer("a1", "a", 1), peer("b1", "b", 2)]);
    assert_eq!(allocate(&p, &req).await, ["b1", "a1"]);
    assert_clean(&p, 1);
}

#[tokio::test]
async fn everywhere_allocates_nobody() {
    let p = default_plugin().await;
    assert_eq!(allocate(&p, &request(-1, -1, &["a1"], &["b1"], two_groups())).await, Vec::<String>::new());
    assert_eq!(allocate(&p, &request(-1, -1, &[], &[], Vec::new())).await, Vec::<String>::new());
    assert_clean(&p, 2);
}

#[tokio::test]
async fn zero_factors_are_rejected() {
    let p = default_plugin().await;
    assert_eq!(p.allocate(&request(0, 0, &[], &[], two_groups())).await, Err("bad replication factors: 0/0".into()));
    assert_clean(&p, 1);
}

// --- scale and reuse -----------------------------------------------------------------------

/// 100 peers `p0`..`p99` in ten groups (`g{i % 10}`), peer i with (i + 1) * 10 free, listed
/// in a scrambled order. Group g9 holds the most free space in total and g0 the least, and
/// inside group g the biggest peer is p(90 + g), then p(80 + g), ...
fn hundred_peers() -> Vec<Candidate> {
    (0..100)
        .map(|k| (k * 37) % 100)
        .map(|i| peer(&format!("p{i}"), &format!("g{}", i % 10), (i as i64 + 1) * 10))
        .collect()
}

#[tokio::test]
async fn hundred_candidates_give_max_distinct_peers() {
    let p = default_plugin().await;
    let candidates = hundred_peers();
    assert_eq!(candidates.iter().map(|c| c.0.clone()).collect::<HashSet<_>>().len(), 100);
    let offered: HashSet<String> = candidates.iter().map(|c| c.0.clone()).collect();

    for (min, max) in [(1, 1), (3, 10), (5, 20), (50, 100), (2, 150)] {
        let got = allocate(&p, &request(min, max, &[], &[], candidates.clone())).await;
        let want = max.min(100) as usize;
        assert_eq!(got.len(), want, "min {min} max {max}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), want, "duplicates in {got:?}");
        assert!(got.iter().all(|peer| offered.contains(peer)), "{got:?}");
    }

    // Exact order: one replica per group, heaviest group first, then the next round.
    let got = allocate(&p, &request(5, 20, &[], &[], candidates.clone())).await;
    let expected: Vec<String> = (80..100).rev().map(|i| format!("p{i}")).collect();
    assert_eq!(got, expected);

    // With two current peers the top-up keeps them first and adds max - 2 others.
    let got = allocate(&p, &request(5, 20, &["p0", "p1"], &[], candidates)).await;
    assert_eq!(got.len(), 20);
    assert_eq!(got[..2], ["p0", "p1"]);
    let expected: Vec<String> = (82..100).rev().map(|i| format!("p{i}")).collect();
    assert_eq!(got[2..], expected[..]);
    assert_clean(&p, 7);
}

#[tokio::test]
async fn concurrent_calls_on_one_plugin_agree() {
    // Many instances of one plugin answer at once; no call sees another's state.
    let p = default_plugin().await;
    let round_robin = || {
        vec![
            peer("a1", "a", 30),
            peer("a2", "a", 20),
            peer("a3", "a", 10),
            peer("b1", "b", 5),
            peer("c1", "c", 8),
            peer("c2", "c", 7),
        ]
    };
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let p = p.clone();
        let req = match i % 4 {
            0 => request(6, 6, &[], &[], two_groups()),
            1 => request(6, 6, &[], &[], round_robin()),
            2 => request(3, 4, &["a3"], &[], two_groups()),
            _ => request(5, 20, &[], &[], hundred_peers()),
        };
        tasks.push(tokio::spawn(async move { (i, p.allocate(&req).await) }));
    }
    let hundred: Vec<String> = (80..100).rev().map(|i| format!("p{i}")).collect();
    for task in tasks {
        let (i, got) = task.await.expect("task");
        let got = got.unwrap_or_else(|e| panic!("call {i}: {e}"));
        let want: Vec<&str> = match i % 4 {
            0 => TWO_GROUPS_DEFAULT_ORDER.to_vec(),
            1 => vec!["a1", "c1", "b1", "a2", "c2", "a3"],
            2 => vec!["a3", "b2", "a2", "b1"],
            _ => hundred.iter().map(String::as_str).collect(),
        };
        assert_eq!(got, want, "call {i}");
    }
    assert_clean(&p, 32);
}

/// A call's deadline counts only the ticks during which it runs, so a burst of large
/// allocations on one executor thread (the allocations of a repin after a peer failure,
/// say) all finish even though each waits behind the others.
#[tokio::test]
async fn burst_of_large_allocations_meets_the_default_deadline() {
    let p = rt().load_allocator(&PluginSpec::builtin("balanced", json!(null))).await.expect("load balanced");
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move { (i, p.allocate(&request(5, 20, &[], &[], hundred_peers())).await) }));
    }
    let want: Vec<String> = (80..100).rev().map(|i| format!("p{i}")).collect();
    for task in tasks {
        let (i, got) = task.await.expect("task");
        assert_eq!(got.as_ref(), Ok(&want), "call {i} (stats {:?})", p.stats());
    }
    assert_clean(&p, 32);
}
