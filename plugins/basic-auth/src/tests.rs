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

fn with_headers(mut req: ApiRequest, headers: &[(&str, &str)]) -> ApiRequest {
    req.headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    req
}

fn on(api: Api, mut req: ApiRequest) -> ApiRequest {
    req.api = api;
    req
}

#[test]
fn only_real_preflights_and_health_reads_are_open() {
    let p = policy(USERS);
    let anonymous = RequestDecision::Allow("anonymous".into());
    let preflight_headers = [("origin", "https://app.example"), ("access-control-request-method", "POST")];
    for api in [Api::Restapi, Api::Pinsvcapi, Api::Ipfsproxy, Api::Libp2pHttp] {
        let preflight = on(api, with_headers(request("OPTIONS", "/debug/vars", Credentials::None), &preflight_headers));
        assert_eq!(p.authorize_request(&preflight), anonymous, "{api:?} preflight");
    }
    for api in [Api::Restapi, Api::Pinsvcapi, Api::Libp2pHttp] {
        for method in ["GET", "HEAD"] {
            let health = on(api, request(method, "/health", Credentials::None));
            assert_eq!(p.authorize_request(&health), anonymous, "{api:?} {method} /health");
        }
    }
    let must_deny = [
        // Not a preflight: no Access-Control-Request-Method, or no Origin.
        request("OPTIONS", "/debug/vars", Credentials::None),
        with_headers(request("OPTIONS", "/pins", Credentials::None), &[("origin", "https://app.example")]),
        with_headers(request("OPTIONS", "/pins", Credentials::None), &[("access-control-request-method", "GET")]),
        with_headers(
            request("OPTIONS", "/pins", Credentials::None),
            &[("origin", "https://app.example"), ("access-control-request-method", "")],
        ),
        // A preflight's headers on another method.
        with_headers(request("POST", "/pins/x", Credentials::None), &preflight_headers),
        request("POST", "/health", Credentials::None),
        request("DELETE", "/health", Credentials::None),
        request("GET", "/health/graph", Credentials::None),
        // The proxy forwards /health to the IPFS daemon: never open there.
        on(Api::Ipfsproxy, request("GET", "/health", Credentials::None)),
        on(Api::Ipfsproxy, request("OPTIONS", "/debug/pprof/heap", Credentials::None)),
    ];
    for req in must_deny {
        assert!(
            matches!(p.authorize_request(&req), RequestDecision::Deny(Denial { status: 401, .. })),
            "{:?} {} {} {:?} must need credentials",
            req.api,
            req.method,
            req.path,
            req.headers
        );
    }
}

#[test]
fn jwt_signed_with_an_empty_password_is_refused() {
    // Basic refuses an empty password (and an empty user); a token signed with one is refused too.
    let p = policy(r#"{"basic_auth_credentials":{"alice":"secret","eve":"","":"nobody"}}"#);
    assert!(matches!(p.authorize_request(&request("GET", "/id", basic("eve", ""))), RequestDecision::Deny(_)));
    for token in [jwt::sign_hs256("eve", b"", None), jwt::sign_hs256("", b"nobody", None)] {
        assert!(
            matches!(
                p.authorize_request(&request("GET", "/id", Credentials::Bearer(token.clone()))),
                RequestDecision::Deny(_)
            ),
            "{token}"
        );
    }
    let keys = |_: &str| Some(b"".as_slice());
    assert_eq!(jwt::verify(&jwt::sign_hs256("eve", b"", None), keys, 0.0), Err(jwt::JwtError::EmptyKey));
}

#[test]
fn tokens_are_minted_from_basic_credentials_only() {
    let p = policy(USERS);
    let TokenDecision::Token(token) = p.issue_token(&request("POST", "/token", basic("alice", "secret"))) else {
        panic!("token expected")
    };
    // A token cannot mint a fresh one: otherwise `token_lifetime` could be extended forever.
    let TokenDecision::Deny(d) = p.issue_token(&request("POST", "/token", Credentials::Bearer(token))) else {
        panic!("a bearer token must not mint a token")
    };
    assert_eq!(d.status, 401);
    assert!(d.reason.contains("Basic"), "{}", d.reason);
    // The password is checked here too, not only by the request authorization before it.
    for (user, password) in [("alice", "wrong"), ("carol", "secret"), ("alice", ""), ("", "")] {
        assert_eq!(
            p.issue_token(&request("POST", "/token", basic(user, password))),
            TokenDecision::Deny(denial(401, "unauthorized")),
            "{user}:{password}"
        );
    }
}

#[test]
fn secrets_compare_in_constant_time_by_digest() {
    assert!(secrets_equal("secret", "secret"));
    assert!(!secrets_equal("secret", "secreT"));
    assert!(!secrets_equal("secret", "secret2"));
    assert!(!secrets_equal("", "x"));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
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
    // A token signed with another user's password is invalid.
    let forged = jwt::sign_hs256("alice", b"hunter2", None);
    let invalid = unauthorized(
        "unauthorized: invalid token",
        &[r#"Bearer realm="Restricted IPFS Cluster API", error="invalid_token""#.into()],
    );
    assert_eq!(p.authorize_request(&request("GET", "/pins", Credentials::Bearer(forged))), invalid);
    assert_eq!(p.authorize_request(&request("GET", "/pins", Credentials::Bearer("garbage".into()))), invalid);
    assert!(matches!(
        p.issue_token(&request("POST", "/token", Credentials::Bearer("garbage".into()))),
        TokenDecision::Deny(Denial { status: 401, .. })
    ));
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

/// A small deterministic PRNG (xorshift64*), so the JWT fuzz test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte flips, inserts, deletes and splices of `input`, some of them of JWT punctuation.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    const INTERESTING: &[u8] = b".{}\":,-_=0123456789eyJ\\\x00\xff";
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 => input.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < input.len() => {
                input.remove(at);
            }
            3 => {
                let from = rng.below(input.len() + 1);
                let len = rng.below(64).min(input.len() - from);
                let chunk: Vec<u8> = input[from..from + len].to_vec();
                input.splice(at..at, chunk);
            }
            _ => input.truncate(at),
        }
    }
}

/// JWT fuzzing on the stable toolchain: valid tokens (every HMAC algorithm, claims of every
/// kind) mutated as bytes, and their claims mutated then signed again so that the claims
/// parser is reached past the signature check, for `CAIRN_FUZZ_SECS` (default 5) seconds.
/// No input may panic, and a mutant the verifier accepts must be one of the users.
#[test]
fn jwt_fuzz() {
    let secs: f64 = std::env::var("CAIRN_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0);
    let seed = std::env::var("CAIRN_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64) | 1
    });
    let mut rng = Rng(seed);
    let key = b"secret".as_slice();
    let keys = |iss: &str| (iss == "alice" || iss == "bob").then_some(key);
    let claims = [
        r#"{"iss":"alice"}"#,
        r#"{"iss":"bob","exp":2000000,"nbf":1,"iat":2}"#,
        r#"{"iss":"alice","exp":1e308,"nbf":-1e308,"iat":null,"aud":["x"],"nested":{"a":[[[]]]}}"#,
    ];
    let seeds: Vec<(String, String)> = ["HS256", "HS384", "HS512"]
        .iter()
        .flat_map(|alg| claims.iter().map(move |c| (alg.to_string(), c.to_string())))
        .collect();
    let sign = |alg: &str, claims: &[u8]| {
        let h = URL_SAFE_NO_PAD_ENCODE(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let c = URL_SAFE_NO_PAD_ENCODE_BYTES(claims);
        let sig = jwt_mac(alg, key, format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{sig}")
    };
    let started = std::time::Instant::now();
    let mut execs = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let (alg, claims) = &seeds[rng.below(seeds.len())];
        let mut input = if rng.below(2) == 0 {
            sign(alg, claims.as_bytes()).into_bytes()
        } else {
            let mut c = claims.clone().into_bytes();
            mutate(&mut rng, &mut c);
            sign(alg, &c).into_bytes()
        };
        mutate(&mut rng, &mut input);
        let token = String::from_utf8_lossy(&input);
        let outcome = std::panic::catch_unwind(|| jwt::verify(&token, keys, 1_000_000.0));
        match outcome {
            Ok(Ok(user)) => assert!(user == "alice" || user == "bob", "seed {seed}: accepted {token:?} as {user:?}"),
            Ok(Err(_)) => {}
            Err(_) => panic!("seed {seed}: jwt::verify panicked on {token:?}"),
        }
        execs += 1;
    }
    println!("fuzz jwt: {execs} execs in {secs} s, seed {seed}");
}
