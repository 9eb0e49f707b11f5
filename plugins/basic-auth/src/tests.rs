//! Native unit tests of the policy logic (the host's tests run the same cases through the
//! real runtime).

use super::*;
use cairn_policy_sdk::types::{Api, BasicCredentials};

fn policy(config: &str) -> BasicAuth {
    BasicAuth::from_config(config).expect("valid config")
}

fn request(method: &str, path: &str, credentials: Credentials) -> ApiRequest {
    ApiRequest {
        api: Api::Restapi,
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: vec![],
        remote_addr: "127.0.0.1:5555".into(),
        peer_id: None,
        tls: false,
        credentials,
    }
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic(BasicCredentials { user: user.into(), password: password.into() })
}

const USERS: &str = r#"{"basic_auth_credentials":{"alice":"secret","bob":"hunter2"}}"#;

#[test]
fn config_null_and_missing_leave_the_api_open() {
    for config in ["null", "{}", r#"{"basic_auth_credentials":null}"#] {
        let p = policy(config);
        assert_eq!(
            p.authorize_request(&request("POST", "/pins/x", Credentials::None)),
            RequestDecision::Allow("anonymous".into())
        );
        assert_eq!(
            p.issue_token(&request("POST", "/token", Credentials::None)),
            TokenDecision::Deny(denial(401, "unauthorized"))
        );
    }
}

#[test]
fn empty_credentials_map_is_a_config_error() {
    let err = BasicAuth::from_config(r#"{"basic_auth_credentials":{}}"#).err().expect("error");
    assert!(err.contains("basic_auth_credentials"), "{err}");
    assert!(BasicAuth::from_config(r#"{"basic_auth_credentials":["x"]}"#).is_err());
    assert!(BasicAuth::from_config(r#"{"basic_auth_credentials":{"a":"b"},"token_lifetime":"soon"}"#).is_err());
}

#[test]
fn basic_credentials() {
    let p = policy(USERS);
    assert_eq!(
        p.authorize_request(&request("GET", "/id", basic("alice", "secret"))),
        RequestDecision::Allow("alice".into())
    );
    let denied = unauthorized("unauthorized: access denied", &[r#"Basic realm="Restricted IPFS Cluster API""#.into()]);
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("alice", "wrong"))), denied);
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("carol", "secret"))), denied);
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("", "secret"))), denied);
    assert_eq!(p.authorize_request(&request("GET", "/id", basic("alice", ""))), denied);
}

#[test]
fn no_credentials_gets_both_challenges() {
    let p = policy(USERS);
    let RequestDecision::Deny(d) = p.authorize_request(&request("GET", "/pins", Credentials::None)) else {
        panic!("must deny")
    };
    assert_eq!(d.status, 401);
    assert_eq!(d.reason, "unauthorized: no auth provided");
    assert_eq!(
        d.headers,
        vec![
            ("www-authenticate".to_string(), r#"Bearer realm="Restricted IPFS Cluster API""#.to_string()),
            ("www-authenticate".to_string(), r#"Basic realm="Restricted IPFS Cluster API""#.to_string()),
        ]
    );
}

#[test]
fn options_and_health_bypass_auth() {
    let p = policy(USERS);
    for (m, path) in [("OPTIONS", "/pins"), ("OPTIONS", "/id"), ("GET", "/health"), ("POST", "/health")] {
        assert_eq!(
            p.authorize_request(&request(m, path, Credentials::None)),
            RequestDecision::Allow("anonymous".into())
        );
    }
    assert!(matches!(
        p.authorize_request(&request("GET", "/health/graph", Credentials::None)),
        RequestDecision::Deny(_)
    ));
}

#[test]
fn token_issue_and_verify() {
    let p = policy(USERS);
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("alice", "secret"))) else {
        panic!("token expected")
    };
    // Go's jwt encodes exactly this header and these claims.
    let mut parts = token.split('.');
    assert_eq!(parts.next(), Some("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
    assert_eq!(parts.next(), Some(URL_SAFE_NO_PAD_ENCODE(r#"{"iss":"alice"}"#).as_str()));
    assert_eq!(
        p.authorize_request(&request("GET", "/pins", Credentials::Bearer(token.clone()))),
        RequestDecision::Allow("alice".into())
    );
    // Re-issue with a bearer token: for the token's issuer.
    assert!(matches!(
        p.issue_token(&request("POST", "/token", Credentials::Bearer(token.clone()))),
        TokenDecision::Token(_)
    ));
    // A token signed with another user's password is invalid.
    let forged = jwt::sign_hs256("alice", b"hunter2", None);
    let invalid = unauthorized(
        "unauthorized: invalid token",
        &[r#"Bearer realm="Restricted IPFS Cluster API", error="invalid_token""#.into()],
    );
    assert_eq!(p.authorize_request(&request("GET", "/pins", Credentials::Bearer(forged))), invalid);
    assert_eq!(p.authorize_request(&request("GET", "/pins", Credentials::Bearer("garbage".into()))), invalid);
    assert_eq!(
        p.issue_token(&request("POST", "/token", Credentials::Bearer("garbage".into()))),
        TokenDecision::Deny(denial(401, "unauthorized"))
    );
}

#[allow(non_snake_case)]
fn URL_SAFE_NO_PAD_ENCODE(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn jwt_claims_checked_only_when_present() {
    let key = b"secret".as_slice();
    let keys = |iss: &str| (iss == "alice").then_some(key);
    let make = |alg: &str, claims: &str| {
        let h = URL_SAFE_NO_PAD_ENCODE(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let c = URL_SAFE_NO_PAD_ENCODE(claims);
        let sig = jwt_mac(alg, key, format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{sig}")
    };
    let now = 1_000_000.0;
    assert_eq!(jwt::verify(&make("HS256", r#"{"iss":"alice"}"#), keys, now), Ok("alice".into()));
    assert_eq!(jwt::verify(&make("HS384", r#"{"iss":"alice"}"#), keys, now), Ok("alice".into()));
    assert_eq!(jwt::verify(&make("HS512", r#"{"iss":"alice","exp":1000001}"#), keys, now), Ok("alice".into()));
    assert_eq!(jwt::verify(&make("HS256", r#"{"iss":"alice","exp":1000000}"#), keys, now), Err(jwt::JwtError::Expired));
    assert_eq!(
        jwt::verify(&make("HS256", r#"{"iss":"alice","nbf":1000001}"#), keys, now),
        Err(jwt::JwtError::NotYetValid)
    );
    assert_eq!(
        jwt::verify(&make("HS256", r#"{"iss":"alice","iat":1000001}"#), keys, now),
        Err(jwt::JwtError::IssuedInFuture)
    );
    assert_eq!(jwt::verify(&make("HS256", r#"{"iss":"mallory"}"#), keys, now), Err(jwt::JwtError::UnknownIssuer));
    assert_eq!(jwt::verify(&make("HS256", r#"{}"#), keys, now), Err(jwt::JwtError::UnknownIssuer));
    let none =
        format!("{}.{}.", URL_SAFE_NO_PAD_ENCODE(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD_ENCODE(r#"{"iss":"alice"}"#));
    assert_eq!(jwt::verify(&none, keys, now), Err(jwt::JwtError::NotHmac));
}

fn jwt_mac(alg: &str, key: &[u8], data: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let out = match alg {
        "HS256" => Hmac::<sha2::Sha256>::new_from_slice(key).map(|mut m| {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }),
        "HS384" => Hmac::<sha2::Sha384>::new_from_slice(key).map(|mut m| {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }),
        _ => Hmac::<sha2::Sha512>::new_from_slice(key).map(|mut m| {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }),
    };
    URL_SAFE_NO_PAD_ENCODE_BYTES(&out.expect("hmac"))
}

#[allow(non_snake_case)]
fn URL_SAFE_NO_PAD_ENCODE_BYTES(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn token_lifetime_adds_expiry() {
    let p = policy(r#"{"basic_auth_credentials":{"alice":"secret"},"token_lifetime":"1h"}"#);
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("alice", "secret"))) else {
        panic!("token expected")
    };
    let now = BasicAuth::now();
    let key = b"secret".as_slice();
    assert_eq!(jwt::verify(&token, |_| Some(key), now), Ok("alice".into()));
    assert_eq!(jwt::verify(&token, |_| Some(key), now + 3601.0), Err(jwt::JwtError::Expired));
}
