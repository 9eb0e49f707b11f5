//! Native unit tests of the policy (`cases.toml` runs the same rules through Cairn's runtime).

use super::*;
use cairn_policy_sdk::types::BasicCredentials;

const CONFIG: &str = r#"{
    "users": {
        "alice": { "role": "admin", "password": "alice-pw" },
        "bob": { "role": "pinner", "password": "bob-pw" },
        "carol": { "role": "reader", "password": "carol-pw" }
    },
    "token_secret": "0123456789abcdef0123456789abcdef",
    "token_lifetime_secs": 600
}"#;

fn policy() -> ScopedTokens {
    ScopedTokens::from_config(CONFIG).expect("valid config")
}

fn request(api: Api, method: &str, path: &str, credentials: Credentials) -> ApiRequest {
    ApiRequest {
        api,
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: vec![],
        remote_addr: "127.0.0.1:40000".into(),
        peer_id: None,
        tls: false,
        credentials,
    }
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic(BasicCredentials { user: user.into(), password: password.into() })
}

fn status(decision: &RequestDecision) -> Option<u16> {
    match decision {
        RequestDecision::Allow(_) => None,
        RequestDecision::Deny(d) => Some(d.status),
    }
}

#[test]
fn actions_are_classified_by_api_method_and_path() {
    let action = |api, method, path| Action::of(&request(api, method, path, Credentials::None));
    assert_eq!(action(Api::Restapi, "GET", "/pins"), Action::Read);
    assert_eq!(action(Api::Restapi, "POST", "/pins/bafyx"), Action::Pin);
    assert_eq!(action(Api::Restapi, "POST", "/add"), Action::Pin);
    assert_eq!(action(Api::Restapi, "DELETE", "/pins/bafyx"), Action::Unpin);
    assert_eq!(action(Api::Restapi, "POST", "/token"), Action::Token);
    assert_eq!(action(Api::Restapi, "DELETE", "/peers/12D3KooW"), Action::Admin);
    assert_eq!(action(Api::Restapi, "POST", "/pinsx"), Action::Admin);
    assert_eq!(action(Api::Pinsvcapi, "POST", "/pins"), Action::Pin);
    assert_eq!(action(Api::Ipfsproxy, "POST", "/api/v0/pin/add"), Action::Pin);
    assert_eq!(action(Api::Ipfsproxy, "POST", "/api/v0/pin/rm"), Action::Unpin);
    assert_eq!(action(Api::Ipfsproxy, "POST", "/api/v0/pin/ls"), Action::Read);
    assert_eq!(action(Api::Ipfsproxy, "POST", "/api/v0/repo/gc"), Action::Admin);
}

#[test]
fn roles_grant_what_they_say() {
    let p = policy();
    let cid = "/pins/bafyx";
    let decide = |method, path, who: (&str, &str)| {
        p.authorize_request(&request(Api::Restapi, method, path, basic(who.0, who.1)))
    };
    let (alice, bob, carol) = (("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw"));

    assert_eq!(decide("GET", "/pins", carol), RequestDecision::Allow("carol".into()));
    assert_eq!(status(&decide("POST", cid, carol)), Some(403));
    assert_eq!(decide("POST", cid, bob), RequestDecision::Allow("bob".into()));
    assert_eq!(status(&decide("DELETE", cid, bob)), Some(403));
    assert_eq!(decide("DELETE", cid, alice), RequestDecision::Allow("alice".into()));
    assert_eq!(decide("POST", "/token", carol), RequestDecision::Allow("carol".into()));

    let RequestDecision::Deny(denied) = decide("DELETE", cid, bob) else { panic!("bob may not unpin") };
    assert!(denied.reason.contains("\"pinner\"") && denied.reason.contains("may not unpin"), "{}", denied.reason);
}

#[test]
fn missing_or_wrong_credentials_get_401_with_a_challenge() {
    let p = policy();
    let RequestDecision::Deny(none) = p.authorize_request(&request(Api::Restapi, "GET", "/pins", Credentials::None))
    else {
        panic!("no credentials")
    };
    assert_eq!(none.status, 401);
    assert!(none.headers.contains(&("www-authenticate".into(), "Basic realm=\"cairn\"".into())));
    let wrong = p.authorize_request(&request(Api::Restapi, "GET", "/pins", basic("bob", "nope")));
    assert_eq!(status(&wrong), Some(401));
    let unknown = p.authorize_request(&request(Api::Restapi, "GET", "/pins", basic("mallory", "bob-pw")));
    assert_eq!(status(&unknown), Some(401));
    // Preflights and health checks need nothing.
    for (method, path) in [("OPTIONS", "/pins"), ("GET", "/health")] {
        let open = p.authorize_request(&request(Api::Restapi, method, path, Credentials::None));
        assert_eq!(open, RequestDecision::Allow(ANONYMOUS.into()));
    }
}

#[test]
fn issued_tokens_carry_the_role_and_expire() {
    let p = policy();
    let TokenDecision::Token(token) = p.issue_token(&request(Api::Restapi, "POST", "/token", basic("bob", "bob-pw")))
    else {
        panic!("bob gets a token")
    };
    let claims = token::verify(&token, &p.secret, now()).expect("valid token");
    assert_eq!((claims.sub.as_str(), claims.role.as_str(), claims.exp - claims.iat), ("bob", "pinner", 600));
    assert_eq!(token::verify(&token, &p.secret, claims.exp), Err(TokenError::Expired));
    assert_eq!(token::verify(&token, b"another secret of 32 bytes......", now()), Err(TokenError::BadSignature));

    let bearer =
        |method, path| p.authorize_request(&request(Api::Restapi, method, path, Credentials::Bearer(token.clone())));
    assert_eq!(bearer("POST", "/pins/bafyx"), RequestDecision::Allow("bob".into()));
    assert_eq!(status(&bearer("DELETE", "/pins/bafyx")), Some(403));

    // No token for a token, a wrong password or nobody.
    for credentials in [Credentials::Bearer(token.clone()), basic("bob", "nope"), Credentials::None] {
        let decision = p.issue_token(&request(Api::Restapi, "POST", "/token", credentials));
        assert!(matches!(decision, TokenDecision::Deny(Denial { status: 401, .. })), "{decision:?}");
    }
}

#[test]
fn tokens_are_revoked_by_a_role_change_and_forgeries_fail() {
    let p = policy();
    let promoted = Claims { sub: "bob".into(), role: "admin".into(), iat: 0, exp: u64::MAX };
    let forged = token::sign(&promoted, &p.secret).expect("sign");
    let decision = p.authorize_request(&request(Api::Restapi, "DELETE", "/pins/x", Credentials::Bearer(forged)));
    let RequestDecision::Deny(denied) = decision else { panic!("role mismatch") };
    assert!(denied.reason.contains("revoked"), "{}", denied.reason);

    for token in ["", "a.b", "a.b.c", "a.b.c.d", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ."] {
        let decision = p.authorize_request(&request(Api::Restapi, "GET", "/pins", Credentials::Bearer(token.into())));
        assert_eq!(status(&decision), Some(401), "{token:?}");
    }
}

#[test]
fn bad_configs_are_refused_at_load() {
    for (config, why) in [
        ("null", "needs a config"),
        (r#"{"users": {}, "token_secret": "0123456789abcdef0123456789abcdef"}"#, "empty"),
        (
            r#"{"users": {"a": {"role": "owner", "password": "x"}}, "token_secret": "0123456789abcdef0123456789abcdef"}"#,
            "unknown variant",
        ),
        (
            r#"{"users": {"a": {"role": "admin", "password": ""}}, "token_secret": "0123456789abcdef0123456789abcdef"}"#,
            "empty password",
        ),
        (
            r#"{"users": {"a:b": {"role": "admin", "password": "x"}}, "token_secret": "0123456789abcdef0123456789abcdef"}"#,
            "without ':'",
        ),
        (r#"{"users": {"a": {"role": "admin", "password": "x"}}, "token_secret": "short"}"#, "at least 32"),
        (
            r#"{"users": {"a": {"role": "admin", "password": "x"}}, "token_secret": "0123456789abcdef0123456789abcdef", "token_lifetime_secs": 0}"#,
            "positive",
        ),
        (
            r#"{"users": {"a": {"role": "admin", "password": "x"}}, "token_secret": "0123456789abcdef0123456789abcdef", "lifetime": 5}"#,
            "unknown field",
        ),
    ] {
        let err = ScopedTokens::from_config(config).err().unwrap_or_else(|| panic!("{config} should be refused"));
        assert!(err.contains(why), "{config}: {err}");
    }
}
