//! Case-by-case checks against rs/cors v1.11.1 as IPFS Cluster v1.1.6 configures it.
//! Expected headers follow rs/cors's own test table (cors_test.go) where it has a case.

use super::*;
use cairn_policy_sdk::types::Api;

/// The `cors_*` keys exactly as `ipfs-cluster-service init` writes them.
const INIT: &str = r#"{
    "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9094",
    "read_timeout": "0s",
    "headers": {},
    "cors_allowed_origins": ["*"],
    "cors_allowed_methods": ["GET"],
    "cors_allowed_headers": [],
    "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
    "cors_allow_credentials": true,
    "cors_max_age": "0s"
}"#;

const INIT_EXPOSED: &str = "Content-Type, X-Stream-Output, X-Chunked-Output, X-Content-Length";

fn policy(json: &str) -> CorsPolicy {
    match CorsPolicy::from_config(json) {
        Ok(p) => p,
        Err(e) => panic!("config {json} rejected: {e}"),
    }
}

fn config_err(json: &str) -> String {
    match CorsPolicy::from_config(json) {
        Ok(p) => panic!("config {json} accepted: {p:?}"),
        Err(e) => e,
    }
}

fn pf(p: &CorsPolicy, origin: &str, method: &str, headers: &[&str]) -> Vec<Header> {
    p.preflight(&PreflightRequest {
        api: Api::Restapi,
        origin: origin.to_string(),
        method: method.to_string(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
    })
}

fn act(p: &CorsPolicy, origin: &str, method: &str) -> Vec<Header> {
    p.actual(&CorsRequest { api: Api::Pinsvcapi, origin: origin.to_string(), method: method.to_string() })
}

fn hs(pairs: &[(&str, &str)]) -> Vec<Header> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn pf_refused() -> Vec<Header> {
    hs(&[("vary", PREFLIGHT_VARY)])
}

fn act_refused() -> Vec<Header> {
    hs(&[("vary", "Origin")])
}

const O: &str = "https://app.example.com";

// ---- defaults written by init ------------------------------------------------------

#[test]
fn init_preflight_get_is_allowed_with_star_and_credentials() {
    let p = policy(INIT);
    assert_eq!(
        pf(&p, O, "GET", &[]),
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET"),
            ("access-control-allow-credentials", "true"),
        ])
    );
}

#[test]
fn init_preflight_post_and_delete_are_refused() {
    let p = policy(INIT);
    assert_eq!(pf(&p, O, "POST", &[]), pf_refused());
    assert_eq!(pf(&p, O, "DELETE", &[]), pf_refused());
    assert_eq!(pf(&p, O, "HEAD", &[]), pf_refused());
}

#[test]
fn init_empty_headers_list_means_rs_cors_defaults() {
    let p = policy(INIT);
    let ok = pf(&p, O, "GET", &["content-type"]);
    assert!(ok.contains(&("access-control-allow-headers".into(), "content-type".into())));
    let all3 = pf(&p, O, "GET", &["accept", "content-type", "x-requested-with"]);
    assert!(all3.contains(&("access-control-allow-headers".into(), "accept,content-type,x-requested-with".into())));
    // Not in the defaults, and Origin is not implicitly allowed in v1.11.1.
    assert_eq!(pf(&p, O, "GET", &["authorization"]), pf_refused());
    assert_eq!(pf(&p, O, "GET", &["origin"]), pf_refused());
}

#[test]
fn init_actual_get_gets_star_exposed_and_credentials() {
    let p = policy(INIT);
    assert_eq!(
        act(&p, O, "GET"),
        hs(&[
            ("vary", "Origin"),
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", INIT_EXPOSED),
            ("access-control-allow-credentials", "true"),
        ])
    );
}

#[test]
fn init_actual_with_disallowed_method_gets_only_vary() {
    let p = policy(INIT);
    assert_eq!(act(&p, O, "POST"), act_refused());
    assert_eq!(act(&p, O, "DELETE"), act_refused());
}

#[test]
fn options_is_always_an_allowed_method() {
    let p = policy(INIT);
    // A non-preflight OPTIONS (no Access-Control-Request-Method) is an actual request.
    assert_eq!(act(&p, O, "OPTIONS")[1], ("access-control-allow-origin".into(), "*".into()));
    // A preflight announcing OPTIONS is allowed too.
    assert_eq!(pf(&p, O, "OPTIONS", &[]).len(), 4);
}

// ---- missing keys: rs/cors's own defaults ------------------------------------------

#[test]
fn missing_keys_use_rs_cors_defaults() {
    for json in ["{}", "null", " null ", r#"{"http_listen_multiaddress":"/ip4/0.0.0.0/tcp/9094"}"#] {
        let p = policy(json);
        for m in ["GET", "POST", "HEAD"] {
            assert_eq!(
                pf(&p, O, m, &[]),
                hs(&[
                    ("vary", PREFLIGHT_VARY),
                    ("access-control-allow-origin", "*"),
                    ("access-control-allow-methods", m),
                ]),
                "{json} {m}"
            );
            assert_eq!(act(&p, O, m), hs(&[("vary", "Origin"), ("access-control-allow-origin", "*")]));
        }
        assert_eq!(pf(&p, O, "PUT", &[]), pf_refused());
        assert_eq!(pf(&p, O, "DELETE", &[]), pf_refused());
        assert_eq!(act(&p, O, "DELETE"), act_refused());
        assert_eq!(
            pf(&p, O, "POST", &["content-type"])[3],
            ("access-control-allow-headers".into(), "content-type".into())
        );
    }
}

#[test]
fn empty_lists_behave_like_missing_keys() {
    let empty = policy(
        r#"{"cors_allowed_origins":[],"cors_allowed_methods":[],"cors_allowed_headers":[],"cors_exposed_headers":[]}"#,
    );
    let nulls = policy(
        r#"{"cors_allowed_origins":null,"cors_allowed_methods":null,"cors_allowed_headers":null,"cors_exposed_headers":null,"cors_allow_credentials":null,"cors_max_age":null}"#,
    );
    assert_eq!(empty, policy("{}"));
    assert_eq!(nulls, policy("{}"));
}

// ---- origins -----------------------------------------------------------------------

#[test]
fn specific_origin_allowed_echoes_origin_as_sent() {
    let p = policy(r#"{"cors_allowed_origins":["https://App.Example.com"],"cors_allowed_methods":["GET"]}"#);
    assert_eq!(
        pf(&p, O, "GET", &[]),
        hs(&[("vary", PREFLIGHT_VARY), ("access-control-allow-origin", O), ("access-control-allow-methods", "GET"),])
    );
    // Comparison is case-insensitive; the echoed value keeps the request's spelling.
    let upper = "HTTPS://APP.EXAMPLE.COM";
    assert_eq!(act(&p, upper, "GET"), hs(&[("vary", "Origin"), ("access-control-allow-origin", upper)]));
}

#[test]
fn specific_origin_denied_gets_only_vary() {
    let p = policy(r#"{"cors_allowed_origins":["https://app.example.com"]}"#);
    for origin in ["https://evil.example", "http://app.example.com", "https://app.example.com:443", "null"] {
        assert_eq!(pf(&p, origin, "GET", &[]), pf_refused(), "{origin}");
        assert_eq!(act(&p, origin, "GET"), act_refused(), "{origin}");
    }
}

#[test]
fn empty_origin_gets_only_vary() {
    for json in [INIT, "{}", r#"{"cors_allowed_origins":["https://app.example.com"]}"#] {
        let p = policy(json);
        assert_eq!(pf(&p, "", "GET", &[]), pf_refused());
        assert_eq!(act(&p, "", "GET"), act_refused());
    }
}

#[test]
fn star_anywhere_in_the_list_allows_all_and_answers_star() {
    let p = policy(r#"{"cors_allowed_origins":["https://a.example","*","https://*.b.example"]}"#);
    assert_eq!(act(&p, "https://whatever.test", "GET")[1], ("access-control-allow-origin".into(), "*".into()));
}

#[test]
fn subdomain_wildcard() {
    let p = policy(r#"{"cors_allowed_origins":["https://*.example.com"],"cors_allow_credentials":true}"#);
    for ok in ["https://a.example.com", "https://a.b.example.com", "https://.example.com", "HTTPS://X.EXAMPLE.COM"] {
        assert_eq!(
            act(&p, ok, "GET"),
            hs(&[
                ("vary", "Origin"),
                ("access-control-allow-origin", ok),
                ("access-control-allow-credentials", "true"),
            ]),
            "{ok}"
        );
        assert_eq!(pf(&p, ok, "GET", &[])[1], ("access-control-allow-origin".into(), ok.into()));
    }
    for bad in [
        "https://example.com",
        "http://a.example.com",
        "https://evilexample.com",
        "https://a.example.com.evil.net",
        "https://a.example.com:8443",
    ] {
        assert_eq!(act(&p, bad, "GET"), act_refused(), "{bad}");
        assert_eq!(pf(&p, bad, "GET", &[]), pf_refused(), "{bad}");
    }
}

#[test]
fn wildcard_prefix_and_suffix_do_not_overlap() {
    // rs/cors utils_test.go: foo*oof must not match foof.
    let p = policy(r#"{"cors_allowed_origins":["foo*oof"]}"#);
    assert_eq!(act(&p, "foof", "GET"), act_refused());
    assert_eq!(act(&p, "foooof", "GET").len(), 2);
}

#[test]
fn only_the_first_star_is_a_wildcard() {
    let p = policy(r#"{"cors_allowed_origins":["https://*.*.example.com"]}"#);
    assert_eq!(act(&p, "https://a.b.example.com", "GET"), act_refused());
    assert_eq!(act(&p, "https://a.*.example.com", "GET").len(), 2);
}

#[test]
fn mixed_exact_and_wildcard_origins() {
    let p = policy(r#"{"cors_allowed_origins":["http://localhost:3000","https://*.example.org"]}"#);
    assert_eq!(act(&p, "http://localhost:3000", "GET").len(), 2);
    assert_eq!(act(&p, "https://ui.example.org", "GET").len(), 2);
    assert_eq!(act(&p, "http://localhost:3001", "GET"), act_refused());
}

// ---- methods -----------------------------------------------------------------------

#[test]
fn configured_methods_are_exact_and_case_sensitive() {
    let p = policy(r#"{"cors_allowed_methods":["GET","DELETE"]}"#);
    assert_eq!(pf(&p, O, "DELETE", &[])[2], ("access-control-allow-methods".into(), "DELETE".into()));
    assert_eq!(act(&p, O, "DELETE").len(), 2);
    assert_eq!(pf(&p, O, "POST", &[]), pf_refused());
    assert_eq!(act(&p, O, "POST"), act_refused());
    assert_eq!(pf(&p, O, "delete", &[]), pf_refused());

    let lower = policy(r#"{"cors_allowed_methods":["get"]}"#);
    assert_eq!(pf(&lower, O, "GET", &[]), pf_refused());
    assert_eq!(act(&lower, O, "GET"), act_refused());
    assert_eq!(pf(&lower, O, "get", &[])[2], ("access-control-allow-methods".into(), "get".into()));
}

// ---- requested headers -------------------------------------------------------------

#[test]
fn configured_headers_are_lower_cased_and_replace_defaults() {
    let p = policy(r#"{"cors_allowed_headers":["X-Custom","AUTHORIZATION"]}"#);
    assert_eq!(
        pf(&p, O, "POST", &["authorization", "x-custom"]),
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-headers", "authorization,x-custom"),
        ])
    );
    assert_eq!(pf(&p, O, "POST", &["x-custom"]).len(), 4);
    // The defaults are not merged in.
    assert_eq!(pf(&p, O, "POST", &["content-type"]), pf_refused());
    assert_eq!(pf(&p, O, "POST", &["authorization", "x-other"]), pf_refused());
}

#[test]
fn requested_header_names_must_be_lower_case() {
    // rs/cors v1.11.1 lower-cases the config but compares the request byte for byte.
    let p = policy(r#"{"cors_allowed_headers":["x-custom"]}"#);
    assert_eq!(pf(&p, O, "GET", &["X-Custom"]), pf_refused());
    assert_eq!(pf(&p, O, "GET", &["x-custom"]).len(), 4);
}

#[test]
fn requested_headers_must_be_sorted_and_unique() {
    let p = policy(r#"{"cors_allowed_headers":["a-one","b-two"]}"#);
    assert_eq!(pf(&p, O, "GET", &["b-two", "a-one"]), pf_refused());
    assert_eq!(pf(&p, O, "GET", &["a-one", "a-one"]), pf_refused());
    assert_eq!(pf(&p, O, "GET", &["a-one", "b-two"]).len(), 4);
}

#[test]
fn star_allows_any_requested_header() {
    let p = policy(r#"{"cors_allowed_headers":["x-a","*"]}"#);
    assert_eq!(
        pf(&p, O, "GET", &["Z-Thing", "a-thing", "Z-Thing"])[3],
        ("access-control-allow-headers".into(), "Z-Thing,a-thing,Z-Thing".into())
    );
}

#[test]
fn no_requested_headers_means_no_allow_headers() {
    let p = policy(r#"{"cors_allowed_headers":["x-a"]}"#);
    assert!(!pf(&p, O, "GET", &[]).iter().any(|(n, _)| n == "access-control-allow-headers"));
    // Present but empty: accepted, and still no Allow-Headers.
    assert_eq!(pf(&p, O, "GET", &[""]).len(), 3);
}

#[test]
fn empty_elements_and_whitespace_follow_rs_cors_limits() {
    let p = policy(r#"{"cors_allowed_headers":["authorization","content-type"]}"#);
    // rs/cors test MultipleACRHHeadersWithOWSAndEmptyElements.
    assert_eq!(pf(&p, O, "GET", &["authorization\t", " ", " content-type"]).len(), 4);
    // Up to 16 empty elements are tolerated, the 17th is not.
    let mut sixteen = vec![""; 16];
    sixteen.push("authorization");
    assert_eq!(pf(&p, O, "GET", &sixteen).len(), 4);
    let mut seventeen = vec![""; 17];
    seventeen.push("authorization");
    assert_eq!(pf(&p, O, "GET", &seventeen), pf_refused());
    // At most one byte of OWS on each side.
    assert_eq!(pf(&p, O, "GET", &["  authorization"]), pf_refused());
    assert_eq!(pf(&p, O, "GET", &["authorization  "]), pf_refused());
    // Unsplit values are split on commas as rs/cors does.
    assert_eq!(pf(&p, O, "GET", &["authorization,content-type"]).len(), 4);
    assert_eq!(pf(&p, O, "GET", &["content-type,authorization"]), pf_refused());
}

#[test]
fn trim_ows_limits() {
    assert_eq!(trim_ows(" a\t", 1), Some("a"));
    assert_eq!(trim_ows("  a", 1), None);
    assert_eq!(trim_ows("a  ", 1), None);
    assert_eq!(trim_ows("  ", 1), Some(""));
    assert_eq!(trim_ows("", 1), Some(""));
}

#[test]
fn header_check_only_after_origin_and_method() {
    let p = policy(r#"{"cors_allowed_origins":["https://ok.test"],"cors_allowed_methods":["PUT"]}"#);
    assert_eq!(pf(&p, "https://no.test", "PUT", &["content-type"]), pf_refused());
    assert_eq!(pf(&p, "https://ok.test", "GET", &["content-type"]), pf_refused());
    assert_eq!(pf(&p, "https://ok.test", "PUT", &["content-type"]).len(), 4);
}

// ---- max age -----------------------------------------------------------------------

#[test]
fn max_age_is_whole_seconds_and_sent_only_when_positive() {
    let cases: &[(&str, Option<&str>)] = &[
        (r#""0s""#, None),
        (r#""0""#, None),
        (r#""""#, None),
        ("null", None),
        (r#""300ms""#, None),
        (r#""999ms""#, None),
        (r#""-0s""#, None),
        (r#""1s""#, Some("1")),
        (r#""1.5s""#, Some("1")),
        (r#""10m0s""#, Some("600")),
        (r#""1h""#, Some("3600")),
        (r#""2h45m30.9s""#, Some("9930")),
        (r#""+10s""#, Some("10")),
    ];
    for &(v, want) in cases {
        let p = policy(&format!(r#"{{"cors_max_age":{v}}}"#));
        let got = pf(&p, O, "GET", &[]);
        let max_age = got.iter().find(|(n, _)| n == "access-control-max-age").map(|(_, v)| v.as_str());
        assert_eq!(max_age, want, "cors_max_age {v}");
        if let Some(w) = want {
            assert_eq!(got.last(), Some(&("access-control-max-age".to_string(), w.to_string())));
        }
        // Never on actual responses.
        assert!(!act(&p, O, "GET").iter().any(|(n, _)| n == "access-control-max-age"));
    }
}

#[test]
fn max_age_not_sent_on_refused_preflight() {
    let p = policy(r#"{"cors_allowed_methods":["GET"],"cors_max_age":"10m0s"}"#);
    assert_eq!(pf(&p, O, "PUT", &[]), pf_refused());
}

// ---- credentials and exposed headers ----------------------------------------------

#[test]
fn credentials_with_listed_origin_and_full_preflight_order() {
    let p = policy(
        r#"{"cors_allowed_origins":["https://app.example.com"],"cors_allowed_methods":["GET","POST"],
            "cors_allowed_headers":["Content-Type"],"cors_allow_credentials":true,"cors_max_age":"1m"}"#,
    );
    assert_eq!(
        pf(&p, O, "POST", &["content-type"]),
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", O),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-allow-credentials", "true"),
            ("access-control-max-age", "60"),
        ])
    );
}

#[test]
fn credentials_false_sends_no_credentials_header() {
    let p = policy(r#"{"cors_allow_credentials":false,"cors_exposed_headers":["x-a"]}"#);
    assert!(!pf(&p, O, "GET", &[]).iter().any(|(n, _)| n == "access-control-allow-credentials"));
    assert_eq!(
        act(&p, O, "GET"),
        hs(&[("vary", "Origin"), ("access-control-allow-origin", "*"), ("access-control-expose-headers", "X-A"),])
    );
}

#[test]
fn exposed_headers_are_canonicalised_and_joined() {
    // rs/cors test ExposedHeader.
    let p =
        policy(r#"{"cors_allowed_origins":["http://foobar.com"],"cors_exposed_headers":["X-Header-1","x-header-2"]}"#);
    assert_eq!(
        act(&p, "http://foobar.com", "GET"),
        hs(&[
            ("vary", "Origin"),
            ("access-control-allow-origin", "http://foobar.com"),
            ("access-control-expose-headers", "X-Header-1, X-Header-2"),
        ])
    );
    let odd = policy(r#"{"cors_exposed_headers":["x-STREAM-output","bad name","*"]}"#);
    assert_eq!(act(&odd, O, "GET")[2].1, "X-Stream-Output, bad name, *");
    // Exposed headers never go on preflight answers.
    assert!(!pf(&p, "http://foobar.com", "GET", &[]).iter().any(|(n, _)| n == "access-control-expose-headers"));
}

#[test]
fn exposed_list_of_one_empty_name_sends_an_empty_value() {
    // len(list) > 0, so rs/cors sets the header to the join of [""], i.e. "".
    let p = policy(r#"{"cors_exposed_headers":[""]}"#);
    assert_eq!(act(&p, O, "GET")[2], ("access-control-expose-headers".into(), String::new()));
}

#[test]
fn returned_header_names_are_lower_case_and_acceptable_to_the_host() {
    let p = policy(
        r#"{"cors_allowed_origins":["https://app.example.com"],"cors_allowed_methods":["GET"],
            "cors_exposed_headers":["X-A"],"cors_allow_credentials":true,"cors_max_age":"5s"}"#,
    );
    let all: Vec<Header> = pf(&p, O, "GET", &["accept"]).into_iter().chain(act(&p, O, "GET")).collect();
    assert_eq!(all.len(), 10);
    for (name, _) in all {
        assert_eq!(name, name.to_ascii_lowercase());
        assert!(name == "vary" || name.starts_with("access-control-"), "{name}");
    }
}

// ---- config decoding ---------------------------------------------------------------

#[test]
fn bad_max_age_errors_name_the_key() {
    for v in [r#""abc""#, r#""10""#, r#""1d""#, r#""1 s""#, r#""-1s""#, r#""-1ns""#, "10", "true", "[]"] {
        let e = config_err(&format!(r#"{{"cors_max_age":{v}}}"#));
        assert!(e.contains("cors_max_age"), "{v}: {e}");
    }
    assert!(config_err(r#"{"cors_max_age":"abc"}"#).contains(r#"time: invalid duration "abc""#));
    assert!(config_err(r#"{"cors_max_age":"-5s"}"#).contains("invalid"));
}

#[test]
fn wrong_types_error_naming_the_key() {
    let cases = [
        (r#"{"cors_allowed_origins":"*"}"#, KEY_ORIGINS),
        (r#"{"cors_allowed_origins":[1]}"#, KEY_ORIGINS),
        (r#"{"cors_allowed_methods":{"GET":true}}"#, KEY_METHODS),
        (r#"{"cors_allowed_methods":[true]}"#, KEY_METHODS),
        (r#"{"cors_allowed_headers":7}"#, KEY_HEADERS),
        (r#"{"cors_exposed_headers":[["x"]]}"#, KEY_EXPOSED),
        (r#"{"cors_allow_credentials":"true"}"#, KEY_CREDENTIALS),
        (r#"{"cors_allow_credentials":1}"#, KEY_CREDENTIALS),
        (r#"{"CORS_ALLOW_CREDENTIALS":1}"#, KEY_CREDENTIALS),
    ];
    for (json, key) in cases {
        let e = config_err(json);
        assert!(e.contains(key), "{json}: {e}");
    }
}

#[test]
fn non_object_or_malformed_config_is_rejected() {
    for json in ["[]", "\"x\"", "1", "true", "", "{", r#"{"cors_allowed_origins":["*"]} x"#] {
        config_err(json);
    }
}

#[test]
fn keys_match_case_insensitively_and_last_duplicate_wins() {
    let p = policy(r#"{"CORS_Allowed_Methods":["PUT"],"cors_allow_credentials":true,"Cors_Allow_Credentials":false}"#);
    assert_eq!(pf(&p, O, "PUT", &[]).len(), 3);
    assert_eq!(pf(&p, O, "GET", &[]), pf_refused());
    // null leaves a bool alone but resets a list to nil (= rs/cors defaults).
    let q = policy(
        r#"{"cors_allow_credentials":true,"cors_allow_credentials":null,"cors_allowed_methods":["PUT"],"cors_allowed_methods":null}"#,
    );
    assert_eq!(
        pf(&q, O, "POST", &[]),
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-credentials", "true"),
        ])
    );
}

#[test]
fn null_list_element_is_an_empty_string() {
    let raw = RawConfig::from_json(r#"{"cors_allowed_origins":[null,"https://a.test"]}"#);
    assert_eq!(raw.map(|r| r.allowed_origins), Ok(Some(vec![String::new(), "https://a.test".to_string()])));
}

#[test]
fn raw_config_of_init_defaults() {
    assert_eq!(
        RawConfig::from_json(INIT),
        Ok(RawConfig {
            allowed_origins: Some(vec!["*".into()]),
            allowed_methods: Some(vec!["GET".into()]),
            allowed_headers: Some(vec![]),
            exposed_headers: Some(
                ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"].map(String::from).to_vec()
            ),
            allow_credentials: true,
            max_age: "0s".into(),
        })
    );
}
