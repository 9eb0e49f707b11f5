//! The `trusted-peers` default plugin through the real runtime: IPFS Cluster's crdt
//! `trusted_peers` and its RPC policy for untrusted peers.

mod common;

use cairn_policy::types::*;
use cairn_policy::{AuthorizerPlugin, PluginSpec};
use common::{request, runtime};
use serde_json::json;

const TRUSTED: &str = "12D3KooWTrusted";
const STRANGER: &str = "12D3KooWStranger";

async fn plugin(config: serde_json::Value) -> AuthorizerPlugin {
    runtime().load_authorizer(&PluginSpec::builtin("trusted-peers", config)).await.expect("load trusted-peers")
}

fn all_actions() -> Vec<PeerAction> {
    vec![
        PeerAction::Id,
        PeerAction::Version,
        PeerAction::PinsetWrite,
        PeerAction::StatusSync,
        PeerAction::AddContent,
        PeerAction::Other("Cluster.PeerRemove".into()),
        PeerAction::Other("Cluster.IDStream".into()),
        PeerAction::Other("Cluster.PeerAdd".into()),
    ]
}

async fn allowed(p: &AuthorizerPlugin, peer: &str, action: PeerAction) -> bool {
    matches!(p.authorize_peer(&PeerRequest { peer_id: peer.into(), action }).await, PeerDecision::Allow)
}

#[tokio::test]
async fn trusted_peers_may_do_everything() {
    let p = plugin(json!({"trusted_peers": [TRUSTED]})).await;
    for action in all_actions() {
        assert!(allowed(&p, TRUSTED, action.clone()).await, "{action:?}");
    }
}

#[tokio::test]
async fn untrusted_peers_get_id_version_and_what_ipfs_cluster_leaves_open() {
    let p = plugin(json!({"trusted_peers": [TRUSTED]})).await;
    let open = [
        PeerAction::Id,
        PeerAction::Version,
        PeerAction::Other("Cluster.IDStream".into()),
        PeerAction::Other("Cluster.PeerAdd".into()),
    ];
    for action in all_actions() {
        assert_eq!(allowed(&p, STRANGER, action.clone()).await, open.contains(&action), "{action:?}");
    }
    let d = p.authorize_peer(&PeerRequest { peer_id: STRANGER.into(), action: PeerAction::PinsetWrite }).await;
    assert_eq!(d, PeerDecision::Deny(format!("peer {STRANGER} is not trusted for pinset-write")));
}

#[tokio::test]
async fn star_trusts_everyone() {
    let p = plugin(json!({"trusted_peers": ["12D3KooWSomeone", "*"]})).await;
    for action in all_actions() {
        assert!(allowed(&p, STRANGER, action.clone()).await, "{action:?}");
    }
}

#[tokio::test]
async fn empty_or_missing_list_trusts_nobody() {
    for config in [json!({"trusted_peers": []}), json!({}), json!(null), json!({"trusted_peers": null})] {
        let p = plugin(config.clone()).await;
        assert!(!allowed(&p, TRUSTED, PeerAction::PinsetWrite).await, "{config}");
        assert!(allowed(&p, TRUSTED, PeerAction::Version).await, "{config}");
    }
}

#[tokio::test]
async fn bad_config_is_refused_naming_the_key() {
    let err = runtime()
        .load_authorizer(&PluginSpec::builtin("trusted-peers", json!({"trusted_peers": "everyone"})))
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("trusted_peers"), "{err}");
}

#[tokio::test]
async fn api_requests_are_not_its_business() {
    let p = plugin(json!({"trusted_peers": ["*"]})).await;
    let d = p.authorize_request(&request("GET", "/id", Credentials::None)).await;
    assert!(matches!(d, RequestDecision::Deny(Denial { status: 403, .. })));
}
