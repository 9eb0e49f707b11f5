//! The `basic-auth` default plugin, case by case through the real runtime: IPFS Cluster's
//! `basic_auth_credentials` semantics, 401 bodies and challenges, JWTs from `/token`, and where
//! Cairn is stricter (only real preflights open, tokens minted from Basic only).

mod common;

use cairn_policy::types::*;
use cairn_policy::{AuthorizerPlugin, PluginSpec, PolicyError};
use common::{basic, request, runtime};
use serde_json::json;

const BASIC_CHALLENGE: &str = r#"Basic realm="Restricted IPFS Cluster API""#;
const BEARER_CHALLENGE: &str = r#"Bearer realm="Restricted IPFS Cluster API""#;
const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="Restricted IPFS Cluster API", error="invalid_token""#;

async fn plugin(config: serde_json::Value) -> AuthorizerPlugin {
    runtime().load_authorizer(&PluginSpec::builtin("basic-auth", config)).await.expect("load basic-auth")
}

async fn users() -> AuthorizerPlugin {
    plugin(json!({"basic_auth_credentials": {"alice": "secret", "bob": "hunter2"}})).await
}

fn deny(reason: &str, challenges: &[&str]) -> RequestDecision {
    RequestDecision::Deny(Denial {
        status: 401,
        reason: reason.into(),
        headers: challenges.iter().map(|c| ("www-authenticate".to_string(), c.to_string())).collect(),
    })
}

#[tokio::test]
async fn null_or_missing_credentials_leave_the_api_open() {
    for config in [json!(null), json!({}), json!({"basic_auth_credentials": null})] {
        let p = plugin(config).await;
        let d = p.authorize_request(&request("DELETE", "/pins/bafy", Credentials::None)).await;
        assert_eq!(d, RequestDecision::Allow("anonymous".into()));
        // POST /token with auth disabled is 401 "unauthorized".
        let t = p.issue_token(&request("POST", "/token", Credentials::None)).await;
        assert_eq!(t, TokenDecision::Deny(Denial { status: 401, reason: "unauthorized".into(), headers: vec![] }));
    }
}

#[tokio::test]
async fn empty_credentials_map_is_refused_at_load() {
    let err = runtime()
        .load_authorizer(&PluginSpec::builtin("basic-auth", json!({"basic_auth_credentials": {}})))
        .await
        .err()
        .expect("load must fail");
    assert!(matches!(err, PolicyError::Config { .. }), "{err}");
    assert!(err.to_string().contains("basic_auth_credentials should be null or have at least one entry"), "{err}");
}

#[tokio::test]
async fn basic_credentials_are_checked() {
    let p = users().await;
    assert_eq!(
        p.authorize_request(&request("GET", "/id", basic("alice", "secret"))).await,
        RequestDecision::Allow("alice".into())
    );
    assert_eq!(
        p.authorize_request(&request("GET", "/id", basic("bob", "hunter2"))).await,
        RequestDecision::Allow("bob".into())
    );
    let denied = deny("unauthorized: access denied", &[BASIC_CHALLENGE]);
    for (user, password) in
        [("alice", "hunter2"), ("carol", "secret"), ("", "secret"), ("alice", ""), ("ALICE", "secret")]
    {
        assert_eq!(
            p.authorize_request(&request("GET", "/id", basic(user, password))).await,
            denied,
            "{user}:{password}"
        );
    }
}

#[tokio::test]
async fn missing_credentials_get_both_challenges_bearer_first() {
    let p = users().await;
    let d = p.authorize_request(&request("GET", "/pins", Credentials::None)).await;
    assert_eq!(d, deny("unauthorized: no auth provided", &[BEARER_CHALLENGE, BASIC_CHALLENGE]));
}

#[tokio::test]
async fn only_real_preflights_and_health_reads_are_open() {
    let p = users().await;
    let preflight = |api: Api, path: &str| {
        let mut r = request("OPTIONS", path, Credentials::None);
        r.api = api;
        r.headers.push(("origin".into(), "https://app.example".into()));
        r.headers.push(("access-control-request-method".into(), "POST".into()));
        r
    };
    for api in [Api::Restapi, Api::Pinsvcapi, Api::Ipfsproxy] {
        let d = p.authorize_request(&preflight(api, "/pins")).await;
        assert_eq!(d, RequestDecision::Allow("anonymous".into()), "{api:?} preflight");
    }
    for (api, method) in [(Api::Restapi, "GET"), (Api::Restapi, "HEAD"), (Api::Pinsvcapi, "GET")] {
        let mut r = request(method, "/health", Credentials::None);
        r.api = api;
        assert_eq!(p.authorize_request(&r).await, RequestDecision::Allow("anonymous".into()), "{api:?} {method}");
    }
    // A bare OPTIONS is no preflight; /health is open for reads only, and not on the proxy,
    // which forwards it to the IPFS daemon.
    let mut on_proxy = request("GET", "/health", Credentials::None);
    on_proxy.api = Api::Ipfsproxy;
    let mut bare_on_proxy = request("OPTIONS", "/debug/vars", Credentials::None);
    bare_on_proxy.api = Api::Ipfsproxy;
    for r in [
        request("OPTIONS", "/pins", Credentials::None),
        request("POST", "/health", Credentials::None),
        request("GET", "/health/alerts", Credentials::None),
        on_proxy,
        bare_on_proxy,
    ] {
        let d = p.authorize_request(&r).await;
        assert_eq!(d, deny("unauthorized: no auth provided", &[BEARER_CHALLENGE, BASIC_CHALLENGE]), "{r:?}");
    }
}

#[tokio::test]
async fn token_from_basic_then_bearer_roundtrip() {
    let p = users().await;
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("alice", "secret"))).await else {
        panic!("expected a token")
    };
    // HS256, claims exactly {"iss":"alice"}, as IPFS Cluster issues them.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
    assert_eq!(parts[1], "eyJpc3MiOiJhbGljZSJ9");
    let bearer = Credentials::Bearer(token.clone());
    assert_eq!(
        p.authorize_request(&request("POST", "/pins/bafy", bearer.clone())).await,
        RequestDecision::Allow("alice".into())
    );
    // Unlike IPFS Cluster, a token cannot mint another (it would outlive `token_lifetime`).
    let TokenDecision::Deny(refused) = p.issue_token(&request("POST", "/token", bearer)).await else {
        panic!("a bearer token must not mint a token")
    };
    assert_eq!(refused.status, 401);
    assert_eq!(refused.reason, "unauthorized: tokens are issued for Basic credentials only");
    assert_eq!(refused.headers, [("www-authenticate".to_string(), BASIC_CHALLENGE.to_string())]);
    // Nor does a wrong password.
    let t = p.issue_token(&request("POST", "/token", basic("alice", "hunter2"))).await;
    assert_eq!(t, TokenDecision::Deny(Denial { status: 401, reason: "unauthorized".into(), headers: vec![] }));
}

#[tokio::test]
async fn a_token_signed_with_an_empty_password_is_refused() {
    // eve's empty password fails Basic; a JWT HMAC-signed with the empty key fails the same way.
    let p = plugin(json!({"basic_auth_credentials": {"alice": "secret", "eve": ""}})).await;
    // {"alg":"HS256","typ":"JWT"}.{"iss":"eve"}, HMAC-SHA256 with the empty key.
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJldmUifQ.bnbT-5Lq2-V7W_uTjWTo0WZzO8SiVeKK9RgDt1NXzZE";
    let d = p.authorize_request(&request("GET", "/pins", Credentials::Bearer(token.into()))).await;
    assert_eq!(d, deny("unauthorized: invalid token", &[INVALID_TOKEN_CHALLENGE]));
    let d = p.authorize_request(&request("GET", "/pins", basic("eve", ""))).await;
    assert_eq!(d, deny("unauthorized: access denied", &[BASIC_CHALLENGE]));
}

#[tokio::test]
async fn invalid_tokens_are_refused_with_the_invalid_token_challenge() {
    let p = users().await;
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("bob", "hunter2"))).await else {
        panic!("expected a token")
    };
    // Tamper with the claims: iss=alice under bob's signature.
    let forged =
        format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhbGljZSJ9.{}", token.split('.').nth(2).unwrap_or(""));
    let alg_none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJhbGljZSJ9.".to_string();
    let invalid = deny("unauthorized: invalid token", &[INVALID_TOKEN_CHALLENGE]);
    for bad in [forged, alg_none, "not-a-jwt".to_string(), String::new()] {
        assert_eq!(
            p.authorize_request(&request("GET", "/pins", Credentials::Bearer(bad.clone()))).await,
            invalid,
            "{bad}"
        );
    }
    // A token from another cluster (different password) is invalid here.
    let other = plugin(json!({"basic_auth_credentials": {"bob": "other"}})).await;
    let TokenDecision::Token(foreign) = other.issue_token(&request("POST", "/token", basic("bob", "other"))).await
    else {
        panic!("expected a token")
    };
    assert_eq!(p.authorize_request(&request("GET", "/pins", Credentials::Bearer(foreign))).await, invalid);
}

#[tokio::test]
async fn token_lifetime_sets_expiry_beyond_ipfs_cluster() {
    let p = plugin(json!({"basic_auth_credentials": {"alice": "secret"}, "token_lifetime": "1h"})).await;
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("alice", "secret"))).await else {
        panic!("expected a token")
    };
    let claims = token.split('.').nth(1).expect("claims");
    // {"iss":"alice","exp":...,"iat":...}
    assert!(claims.starts_with("eyJpc3MiOiJhbGljZSIsImV4cCI6"), "{claims}");
    assert_eq!(
        p.authorize_request(&request("GET", "/pins", Credentials::Bearer(token))).await,
        RequestDecision::Allow("alice".into())
    );
    let err = runtime()
        .load_authorizer(&PluginSpec::builtin(
            "basic-auth",
            json!({"basic_auth_credentials": {"a": "b"}, "token_lifetime": "forever"}),
        ))
        .await
        .err()
        .expect("bad lifetime");
    assert!(err.to_string().contains("token_lifetime"), "{err}");
}

#[tokio::test]
async fn basic_auth_does_not_authorize_peers() {
    let p = users().await;
    let d = p.authorize_peer(&PeerRequest { peer_id: "12D3KooWPeer".into(), action: PeerAction::Id }).await;
    assert!(matches!(d, PeerDecision::Deny(_)));
}
