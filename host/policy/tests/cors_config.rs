//! The `cors-config` default plugin, case by case through the real runtime: IPFS Cluster
//! v1.1.6's REST / Pinning Service API CORS behaviour, which is rs/cors v1.11.1 configured
//! from the API section's `cors_*` keys (reference §1.1, §1.8, §10 item 5).
//!
//! Every call goes through the compiled component (`try_preflight` / `try_actual`, so a
//! failed call is reported instead of masquerading as "no CORS headers"). Expected header
//! lists are exact: lower-case names, in the order the plugin emits them.

mod common;

use std::sync::OnceLock;

use cairn_policy::types::*;
use cairn_policy::{CorsPlugin, PluginSpec, PolicyError, PolicyRuntime};
use serde_json::{Value, json};

/// `Vary` on every preflight answer, allowed or refused.
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
/// `Vary` on every actual response, allowed or refused.
const ACTUAL_VARY: &str = "Origin";
/// `cors_exposed_headers` written by `init`, as rs/cors joins them.
const INIT_EXPOSED: &str = "Content-Type, X-Stream-Output, X-Chunked-Output, X-Content-Length";

const O: &str = "https://app.example.com";

/// One runtime for the whole test binary, so the component is compiled once.
fn rt() -> &'static PolicyRuntime {
    static RT: OnceLock<PolicyRuntime> = OnceLock::new();
    RT.get_or_init(common::runtime)
}

/// The API section exactly as `ipfs-cluster-service init` writes it (CORS keys plus a
/// few of the section's other keys, which the plugin must ignore).
fn init_config() -> Value {
    json!({
        "http_listen_multiaddress": "/ip4/127.0.0.1/tcp/9094",
        "read_timeout": "0s",
        "headers": {},
        "cors_allowed_origins": ["*"],
        "cors_allowed_methods": ["GET"],
        "cors_allowed_headers": [],
        "cors_exposed_headers": ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"],
        "cors_allow_credentials": true,
        "cors_max_age": "0s"
    })
}

async fn plugin(config: Value) -> CorsPlugin {
    match rt().load_cors(&PluginSpec::builtin("cors-config", config.clone())).await {
        Ok(p) => p,
        Err(e) => panic!("config {config} rejected: {e}"),
    }
}

async fn init() -> CorsPlugin {
    plugin(init_config()).await
}

/// Loading must fail with `PolicyError::Config`; returns its Display text.
async fn config_err(config: Value) -> String {
    match rt().load_cors(&PluginSpec::builtin("cors-config", config.clone())).await {
        Ok(_) => panic!("config {config} accepted"),
        Err(e @ PolicyError::Config { .. }) => e.to_string(),
        Err(e) => panic!("config {config}: expected a Config error, got {e}"),
    }
}

fn preflight_req(api: Api, origin: &str, method: &str, headers: &[&str]) -> PreflightRequest {
    PreflightRequest {
        api,
        origin: origin.to_string(),
        method: method.to_string(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
    }
}

async fn pf_api(p: &CorsPlugin, api: Api, origin: &str, method: &str, headers: &[&str]) -> Vec<Header> {
    let req = preflight_req(api, origin, method, headers);
    match p.try_preflight(&req).await {
        Ok(h) => h,
        Err(e) => panic!("preflight {req:?} failed: {e}"),
    }
}

async fn pf(p: &CorsPlugin, origin: &str, method: &str, headers: &[&str]) -> Vec<Header> {
    pf_api(p, Api::Restapi, origin, method, headers).await
}

async fn act_api(p: &CorsPlugin, api: Api, origin: &str, method: &str) -> Vec<Header> {
    let req = CorsRequest { api, origin: origin.to_string(), method: method.to_string() };
    match p.try_actual(&req).await {
        Ok(h) => h,
        Err(e) => panic!("actual {req:?} failed: {e}"),
    }
}

async fn act(p: &CorsPlugin, origin: &str, method: &str) -> Vec<Header> {
    act_api(p, Api::Restapi, origin, method).await
}

fn hs(pairs: &[(&str, &str)]) -> Vec<Header> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn pf_refused() -> Vec<Header> {
    hs(&[("vary", PREFLIGHT_VARY)])
}

fn act_refused() -> Vec<Header> {
    hs(&[("vary", ACTUAL_VARY)])
}

fn value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

// ---- the defaults `init` writes ----------------------------------------------------

#[tokio::test]
async fn init_preflight_get_is_allowed_with_star_and_credentials() {
    let p = init().await;
    let want = hs(&[
        ("vary", PREFLIGHT_VARY),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "GET"),
        ("access-control-allow-credentials", "true"),
    ]);
    assert_eq!(pf(&p, O, "GET", &[]).await, want);
    // Any origin gets the literal `*`, not an echo.
    assert_eq!(pf(&p, "http://localhost:5001", "GET", &[]).await, want);
    // "0s" max age: no Access-Control-Max-Age.
    assert_eq!(value(&pf(&p, O, "GET", &[]).await, "access-control-max-age"), None);
}

#[tokio::test]
async fn init_preflight_post_delete_and_others_are_refused_with_only_vary() {
    let p = init().await;
    for method in ["POST", "DELETE", "PUT", "PATCH", "HEAD", "get"] {
        assert_eq!(pf(&p, O, method, &[]).await, pf_refused(), "{method}");
    }
    // Even with requested headers that would otherwise be fine.
    assert_eq!(pf(&p, O, "POST", &["content-type"]).await, pf_refused());
}

#[tokio::test]
async fn init_empty_allowed_headers_means_rs_cors_default_headers() {
    let p = init().await;
    assert_eq!(
        pf(&p, O, "GET", &["content-type"]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-allow-credentials", "true"),
        ])
    );
    assert_eq!(
        value(&pf(&p, O, "GET", &["accept", "content-type", "x-requested-with"]).await, "access-control-allow-headers"),
        Some("accept,content-type,x-requested-with")
    );
    // Not among the defaults; Origin is not implicitly allowed in v1.11.1.
    for h in ["authorization", "origin", "x-custom"] {
        assert_eq!(pf(&p, O, "GET", &[h]).await, pf_refused(), "{h}");
    }
    assert_eq!(pf(&p, O, "GET", &["accept", "authorization"]).await, pf_refused());
}

#[tokio::test]
async fn init_actual_get_gets_star_exposed_headers_and_credentials() {
    let p = init().await;
    let want = hs(&[
        ("vary", ACTUAL_VARY),
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", INIT_EXPOSED),
        ("access-control-allow-credentials", "true"),
    ]);
    // Same answer on both HTTP APIs that use this section layout.
    assert_eq!(act_api(&p, Api::Restapi, O, "GET").await, want);
    assert_eq!(act_api(&p, Api::Pinsvcapi, O, "GET").await, want);
    assert_eq!(act(&p, "http://127.0.0.1:8080", "GET").await, want);
}

#[tokio::test]
async fn init_actual_with_disallowed_method_gets_only_vary() {
    let p = init().await;
    for method in ["POST", "DELETE", "PUT", "HEAD"] {
        assert_eq!(act(&p, O, method).await, act_refused(), "{method}");
    }
}

#[tokio::test]
async fn options_is_always_an_allowed_method() {
    let p = init().await;
    // A non-preflight OPTIONS request is an actual request and is always allowed.
    assert_eq!(
        act(&p, O, "OPTIONS").await,
        hs(&[
            ("vary", ACTUAL_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", INIT_EXPOSED),
            ("access-control-allow-credentials", "true"),
        ])
    );
    // So is a preflight announcing OPTIONS.
    assert_eq!(
        pf(&p, O, "OPTIONS", &[]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "OPTIONS"),
            ("access-control-allow-credentials", "true"),
        ])
    );
}

#[tokio::test]
async fn every_api_gets_the_same_answers() {
    let p = init().await;
    for api in [Api::Restapi, Api::Pinsvcapi, Api::Ipfsproxy, Api::Libp2pHttp] {
        assert_eq!(pf_api(&p, api, O, "GET", &[]).await, pf(&p, O, "GET", &[]).await, "{api:?}");
        assert_eq!(pf_api(&p, api, O, "POST", &[]).await, pf_refused(), "{api:?}");
        assert_eq!(act_api(&p, api, O, "GET").await, act(&p, O, "GET").await, "{api:?}");
    }
}

// ---- missing keys: rs/cors's own defaults ------------------------------------------

#[tokio::test]
async fn missing_keys_use_rs_cors_defaults() {
    for config in [json!(null), json!({}), json!({"http_listen_multiaddress": "/ip4/0.0.0.0/tcp/9094"})] {
        let p = plugin(config.clone()).await;
        for m in ["GET", "POST", "HEAD"] {
            // No credentials, no max age, no exposed headers.
            assert_eq!(
                pf(&p, O, m, &[]).await,
                hs(&[
                    ("vary", PREFLIGHT_VARY),
                    ("access-control-allow-origin", "*"),
                    ("access-control-allow-methods", m),
                ]),
                "{config} {m}"
            );
            assert_eq!(
                act(&p, O, m).await,
                hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*")]),
                "{config} {m}"
            );
        }
        for m in ["PUT", "DELETE", "PATCH"] {
            assert_eq!(pf(&p, O, m, &[]).await, pf_refused(), "{config} {m}");
            assert_eq!(act(&p, O, m).await, act_refused(), "{config} {m}");
        }
        // Default request headers: accept, content-type, x-requested-with.
        assert_eq!(
            pf(&p, O, "POST", &["accept", "content-type", "x-requested-with"]).await,
            hs(&[
                ("vary", PREFLIGHT_VARY),
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "POST"),
                ("access-control-allow-headers", "accept,content-type,x-requested-with"),
            ]),
            "{config}"
        );
        assert_eq!(pf(&p, O, "POST", &["authorization"]).await, pf_refused(), "{config}");
    }
}

#[tokio::test]
async fn empty_and_null_lists_behave_like_missing_keys() {
    let empty = plugin(json!({
        "cors_allowed_origins": [], "cors_allowed_methods": [],
        "cors_allowed_headers": [], "cors_exposed_headers": []
    }))
    .await;
    let nulls = plugin(json!({
        "cors_allowed_origins": null, "cors_allowed_methods": null, "cors_allowed_headers": null,
        "cors_exposed_headers": null, "cors_allow_credentials": null, "cors_max_age": null
    }))
    .await;
    let missing = plugin(json!({})).await;
    for p in [&empty, &nulls] {
        for m in ["GET", "POST", "HEAD", "DELETE"] {
            assert_eq!(
                pf(p, "https://any.test", m, &["content-type"]).await,
                pf(&missing, "https://any.test", m, &["content-type"]).await,
                "{m}"
            );
            assert_eq!(act(p, "https://any.test", m).await, act(&missing, "https://any.test", m).await, "{m}");
        }
    }
    assert_eq!(act(&empty, O, "POST").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*")]));
}

// ---- origins -----------------------------------------------------------------------

#[tokio::test]
async fn specific_origin_is_allowed_and_echoed_as_sent() {
    let p = plugin(json!({"cors_allowed_origins": ["https://App.Example.com"], "cors_allowed_methods": ["GET"]})).await;
    assert_eq!(
        pf(&p, O, "GET", &[]).await,
        hs(&[("vary", PREFLIGHT_VARY), ("access-control-allow-origin", O), ("access-control-allow-methods", "GET"),])
    );
    assert_eq!(act(&p, O, "GET").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", O)]));
    // Matching is case-insensitive; the echo keeps the request's spelling.
    let upper = "HTTPS://APP.EXAMPLE.COM";
    assert_eq!(act(&p, upper, "GET").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", upper)]));
    assert_eq!(value(&pf(&p, upper, "GET", &[]).await, "access-control-allow-origin"), Some(upper));
}

#[tokio::test]
async fn specific_origin_denied_gets_only_vary() {
    let p = plugin(json!({"cors_allowed_origins": ["https://app.example.com"], "cors_allow_credentials": true})).await;
    for origin in [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com:443",
        "https://app.example.com/",
        "https://sub.app.example.com",
        "null",
    ] {
        assert_eq!(pf(&p, origin, "GET", &[]).await, pf_refused(), "{origin}");
        assert_eq!(act(&p, origin, "GET").await, act_refused(), "{origin}");
    }
}

#[tokio::test]
async fn empty_origin_gets_only_vary() {
    for config in [init_config(), json!({}), json!({"cors_allowed_origins": ["https://app.example.com"]})] {
        let p = plugin(config.clone()).await;
        assert_eq!(pf(&p, "", "GET", &[]).await, pf_refused(), "{config}");
        assert_eq!(act(&p, "", "GET").await, act_refused(), "{config}");
    }
}

#[tokio::test]
async fn star_anywhere_in_the_origin_list_allows_all_and_answers_star() {
    let p = plugin(json!({"cors_allowed_origins": ["https://a.example", "*", "https://*.b.example"]})).await;
    for origin in ["https://whatever.test", "https://a.example", "null"] {
        assert_eq!(
            act(&p, origin, "GET").await,
            hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*")]),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn subdomain_wildcard_origin() {
    let p = plugin(json!({"cors_allowed_origins": ["https://*.example.com"], "cors_allow_credentials": true})).await;
    for ok in ["https://a.example.com", "https://a.b.example.com", "https://.example.com", "HTTPS://X.EXAMPLE.COM"] {
        assert_eq!(
            act(&p, ok, "GET").await,
            hs(&[
                ("vary", ACTUAL_VARY),
                ("access-control-allow-origin", ok),
                ("access-control-allow-credentials", "true"),
            ]),
            "{ok}"
        );
        assert_eq!(
            pf(&p, ok, "GET", &[]).await,
            hs(&[
                ("vary", PREFLIGHT_VARY),
                ("access-control-allow-origin", ok),
                ("access-control-allow-methods", "GET"),
                ("access-control-allow-credentials", "true"),
            ]),
            "{ok}"
        );
    }
    for bad in [
        "https://example.com",
        "http://a.example.com",
        "https://evilexample.com",
        "https://a.example.com.evil.net",
        "https://a.example.com:8443",
    ] {
        assert_eq!(act(&p, bad, "GET").await, act_refused(), "{bad}");
        assert_eq!(pf(&p, bad, "GET", &[]).await, pf_refused(), "{bad}");
    }
}

#[tokio::test]
async fn wildcard_edge_cases_follow_rs_cors() {
    // Prefix and suffix may not overlap: foo*oof does not match foof.
    let p = plugin(json!({"cors_allowed_origins": ["foo*oof"]})).await;
    assert_eq!(act(&p, "foof", "GET").await, act_refused());
    assert_eq!(act(&p, "foooof", "GET").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "foooof")]));
    // Only the first `*` is a wildcard; a later one is literal.
    let p = plugin(json!({"cors_allowed_origins": ["https://*.*.example.com"]})).await;
    assert_eq!(act(&p, "https://a.b.example.com", "GET").await, act_refused());
    assert_eq!(
        act(&p, "https://a.*.example.com", "GET").await,
        hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "https://a.*.example.com")])
    );
}

#[tokio::test]
async fn mixed_exact_and_wildcard_origins() {
    let p = plugin(json!({"cors_allowed_origins": ["http://localhost:3000", "https://*.example.org"]})).await;
    for ok in ["http://localhost:3000", "https://ui.example.org"] {
        assert_eq!(act(&p, ok, "GET").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", ok)]));
    }
    for bad in ["http://localhost:3001", "https://example.org", "http://ui.example.org"] {
        assert_eq!(act(&p, bad, "GET").await, act_refused(), "{bad}");
    }
}

// ---- methods -----------------------------------------------------------------------

#[tokio::test]
async fn configured_methods_are_exact_and_case_sensitive() {
    let p = plugin(json!({"cors_allowed_methods": ["GET", "DELETE"]})).await;
    assert_eq!(
        pf(&p, O, "DELETE", &[]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "DELETE"),
        ])
    );
    assert_eq!(act(&p, O, "DELETE").await, hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*")]));
    // The configured list replaces the defaults.
    assert_eq!(pf(&p, O, "POST", &[]).await, pf_refused());
    assert_eq!(act(&p, O, "POST").await, act_refused());
    assert_eq!(pf(&p, O, "delete", &[]).await, pf_refused());

    let lower = plugin(json!({"cors_allowed_methods": ["get"]})).await;
    assert_eq!(pf(&lower, O, "GET", &[]).await, pf_refused());
    assert_eq!(act(&lower, O, "GET").await, act_refused());
    assert_eq!(value(&pf(&lower, O, "get", &[]).await, "access-control-allow-methods"), Some("get"));
}

// ---- requested headers -------------------------------------------------------------

#[tokio::test]
async fn configured_request_headers_are_allowed_and_replace_defaults() {
    let p = plugin(json!({"cors_allowed_headers": ["X-Custom", "AUTHORIZATION"]})).await;
    assert_eq!(
        pf(&p, O, "POST", &["authorization", "x-custom"]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-headers", "authorization,x-custom"),
        ])
    );
    assert_eq!(value(&pf(&p, O, "POST", &["x-custom"]).await, "access-control-allow-headers"), Some("x-custom"));
    // Defaults are not merged in; one unknown name refuses the whole preflight.
    assert_eq!(pf(&p, O, "POST", &["content-type"]).await, pf_refused());
    assert_eq!(pf(&p, O, "POST", &["authorization", "x-other"]).await, pf_refused());
}

#[tokio::test]
async fn requested_headers_are_compared_byte_for_byte_sorted_and_unique() {
    // rs/cors v1.11.1 lower-cases the config but not the request.
    let p = plugin(json!({"cors_allowed_headers": ["x-custom"]})).await;
    assert_eq!(pf(&p, O, "GET", &["X-Custom"]).await, pf_refused());
    assert_eq!(value(&pf(&p, O, "GET", &["x-custom"]).await, "access-control-allow-headers"), Some("x-custom"));
    // Names must come sorted and without duplicates, as browsers send them.
    let p = plugin(json!({"cors_allowed_headers": ["a-one", "b-two"]})).await;
    assert_eq!(pf(&p, O, "GET", &["b-two", "a-one"]).await, pf_refused());
    assert_eq!(pf(&p, O, "GET", &["a-one", "a-one"]).await, pf_refused());
    assert_eq!(
        value(&pf(&p, O, "GET", &["a-one", "b-two"]).await, "access-control-allow-headers"),
        Some("a-one,b-two")
    );
}

#[tokio::test]
async fn star_allows_any_requested_header_and_echoes_it() {
    let p = plugin(json!({"cors_allowed_headers": ["x-a", "*"]})).await;
    assert_eq!(
        pf(&p, O, "GET", &["Z-Thing", "a-thing", "Z-Thing"]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET"),
            ("access-control-allow-headers", "Z-Thing,a-thing,Z-Thing"),
        ])
    );
}

#[tokio::test]
async fn no_requested_headers_means_no_allow_headers() {
    let p = plugin(json!({"cors_allowed_headers": ["x-a"]})).await;
    let want =
        hs(&[("vary", PREFLIGHT_VARY), ("access-control-allow-origin", "*"), ("access-control-allow-methods", "GET")]);
    assert_eq!(pf(&p, O, "GET", &[]).await, want);
    // Present but empty: accepted, still no Allow-Headers.
    assert_eq!(pf(&p, O, "GET", &[""]).await, want);
}

#[tokio::test]
async fn whitespace_and_empty_elements_follow_rs_cors_limits() {
    let p = plugin(json!({"cors_allowed_headers": ["authorization", "content-type"]})).await;
    // rs/cors test MultipleACRHHeadersWithOWSAndEmptyElements: echoed raw.
    assert_eq!(
        value(&pf(&p, O, "GET", &["authorization\t", " ", " content-type"]).await, "access-control-allow-headers"),
        Some("authorization\t, , content-type")
    );
    // Up to 16 empty elements are tolerated, the 17th is not.
    let mut sixteen = vec![""; 16];
    sixteen.push("authorization");
    assert_eq!(pf(&p, O, "GET", &sixteen).await.len(), 4);
    let mut seventeen = vec![""; 17];
    seventeen.push("authorization");
    assert_eq!(pf(&p, O, "GET", &seventeen).await, pf_refused());
    // At most one byte of optional whitespace on each side.
    assert_eq!(pf(&p, O, "GET", &["  authorization"]).await, pf_refused());
    assert_eq!(pf(&p, O, "GET", &["authorization  "]).await, pf_refused());
    // Unsplit values are split on commas, order still matters.
    assert_eq!(
        value(&pf(&p, O, "GET", &["authorization,content-type"]).await, "access-control-allow-headers"),
        Some("authorization,content-type")
    );
    assert_eq!(pf(&p, O, "GET", &["content-type,authorization"]).await, pf_refused());
}

#[tokio::test]
async fn headers_are_checked_only_after_origin_and_method() {
    let p = plugin(json!({"cors_allowed_origins": ["https://ok.test"], "cors_allowed_methods": ["PUT"]})).await;
    assert_eq!(pf(&p, "https://no.test", "PUT", &["content-type"]).await, pf_refused());
    assert_eq!(pf(&p, "https://ok.test", "GET", &["content-type"]).await, pf_refused());
    assert_eq!(
        pf(&p, "https://ok.test", "PUT", &["content-type"]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "https://ok.test"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "content-type"),
        ])
    );
}

#[tokio::test]
async fn oversized_echoed_request_headers_fail_safe_to_no_headers() {
    // With `*` the plugin echoes whatever was requested; a value over the host's 4096-byte
    // header limit is a malformed answer, which the host turns into no CORS headers at all.
    let p = plugin(json!({"cors_allowed_headers": ["*"]})).await;
    let long = "x".repeat(5000);
    let req = preflight_req(Api::Restapi, O, "GET", &[long.as_str()]);
    let r = p.try_preflight(&req).await;
    assert!(matches!(r, Err(cairn_policy::CallFailure::Malformed(_))), "{r:?}");
    assert_eq!(p.preflight(&req).await, Vec::<Header>::new());
    // The plugin keeps working afterwards.
    assert_eq!(value(&pf(&p, O, "GET", &["x-ok"]).await, "access-control-allow-headers"), Some("x-ok"));
}

// ---- max age -----------------------------------------------------------------------

#[tokio::test]
async fn positive_max_age_is_sent_in_whole_seconds_last() {
    let cases: &[(Value, Option<&str>)] = &[
        (json!("0s"), None),
        (json!("0"), None),
        (json!(""), None),
        (json!(null), None),
        (json!("300ms"), None),
        (json!("999ms"), None),
        (json!("-0s"), None),
        (json!("1s"), Some("1")),
        (json!("1.5s"), Some("1")),
        (json!("10m0s"), Some("600")),
        (json!("1h"), Some("3600")),
        (json!("2h45m30.9s"), Some("9930")),
        (json!("+10s"), Some("10")),
    ];
    for (v, want) in cases {
        let p = plugin(json!({"cors_max_age": v})).await;
        let got = pf(&p, O, "GET", &[]).await;
        let mut expected = hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET"),
        ]);
        if let Some(w) = want {
            expected.push(("access-control-max-age".into(), w.to_string()));
        }
        assert_eq!(got, expected, "cors_max_age {v}");
        // Never on actual responses.
        assert_eq!(value(&act(&p, O, "GET").await, "access-control-max-age"), None, "cors_max_age {v}");
    }
}

#[tokio::test]
async fn max_age_is_not_sent_on_refused_preflights() {
    let p = plugin(json!({"cors_allowed_methods": ["GET"], "cors_max_age": "10m0s"})).await;
    assert_eq!(pf(&p, O, "PUT", &[]).await, pf_refused());
    assert_eq!(value(&pf(&p, O, "GET", &[]).await, "access-control-max-age"), Some("600"));
}

// ---- credentials and exposed headers ----------------------------------------------

#[tokio::test]
async fn full_preflight_answer_in_order() {
    let p = plugin(json!({
        "cors_allowed_origins": ["https://app.example.com"],
        "cors_allowed_methods": ["GET", "POST"],
        "cors_allowed_headers": ["Content-Type"],
        "cors_exposed_headers": ["X-Stream-Output"],
        "cors_allow_credentials": true,
        "cors_max_age": "1m"
    }))
    .await;
    assert_eq!(
        pf(&p, O, "POST", &["content-type"]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", O),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-allow-credentials", "true"),
            ("access-control-max-age", "60"),
        ])
    );
    assert_eq!(
        act(&p, O, "POST").await,
        hs(&[
            ("vary", ACTUAL_VARY),
            ("access-control-allow-origin", O),
            ("access-control-expose-headers", "X-Stream-Output"),
            ("access-control-allow-credentials", "true"),
        ])
    );
}

#[tokio::test]
async fn credentials_false_sends_no_credentials_header() {
    let p = plugin(json!({"cors_allow_credentials": false, "cors_exposed_headers": ["x-a"]})).await;
    assert_eq!(
        pf(&p, O, "GET", &[]).await,
        hs(&[("vary", PREFLIGHT_VARY), ("access-control-allow-origin", "*"), ("access-control-allow-methods", "GET"),])
    );
    assert_eq!(
        act(&p, O, "GET").await,
        hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*"), ("access-control-expose-headers", "X-A"),])
    );
}

#[tokio::test]
async fn exposed_headers_are_canonicalised_and_joined() {
    // rs/cors test ExposedHeader.
    let p = plugin(json!({
        "cors_allowed_origins": ["http://foobar.com"],
        "cors_exposed_headers": ["X-Header-1", "x-header-2"]
    }))
    .await;
    assert_eq!(
        act(&p, "http://foobar.com", "GET").await,
        hs(&[
            ("vary", ACTUAL_VARY),
            ("access-control-allow-origin", "http://foobar.com"),
            ("access-control-expose-headers", "X-Header-1, X-Header-2"),
        ])
    );
    // Exposed headers never go on preflight answers.
    assert_eq!(value(&pf(&p, "http://foobar.com", "GET", &[]).await, "access-control-expose-headers"), None);
    // Names that are not tokens are kept as written; a list of one empty name gives "".
    let odd = plugin(json!({"cors_exposed_headers": ["x-STREAM-output", "bad name", "*"]})).await;
    assert_eq!(
        value(&act(&odd, O, "GET").await, "access-control-expose-headers"),
        Some("X-Stream-Output, bad name, *")
    );
    let empty = plugin(json!({"cors_exposed_headers": [""]})).await;
    assert_eq!(
        act(&empty, O, "GET").await,
        hs(&[("vary", ACTUAL_VARY), ("access-control-allow-origin", "*"), ("access-control-expose-headers", ""),])
    );
}

// ---- config decoding ---------------------------------------------------------------

#[tokio::test]
async fn bad_max_age_fails_loading_naming_the_key() {
    for v in [
        json!("abc"),
        json!("10"),
        json!("1d"),
        json!("1 s"),
        json!("-1s"),
        json!("-1ns"),
        json!(10),
        json!(true),
        json!([]),
    ] {
        let e = config_err(json!({"cors_max_age": v})).await;
        assert!(e.contains("cors_max_age"), "{v}: {e}");
        assert!(e.contains("cors-config"), "{v}: {e}");
    }
    let e = config_err(json!({"cors_max_age": "abc"})).await;
    assert!(e.contains(r#"time: invalid duration "abc""#), "{e}");
    let e = config_err(json!({"cors_max_age": "-5s"})).await;
    assert!(e.contains("cors_max_age is invalid"), "{e}");
}

#[tokio::test]
async fn wrong_types_fail_loading_naming_the_key() {
    let cases = [
        (json!({"cors_allowed_origins": "*"}), "cors_allowed_origins"),
        (json!({"cors_allowed_origins": [1]}), "cors_allowed_origins"),
        (json!({"cors_allowed_methods": {"GET": true}}), "cors_allowed_methods"),
        (json!({"cors_allowed_methods": [true]}), "cors_allowed_methods"),
        (json!({"cors_allowed_headers": 7}), "cors_allowed_headers"),
        (json!({"cors_exposed_headers": [["x"]]}), "cors_exposed_headers"),
        (json!({"cors_allow_credentials": "true"}), "cors_allow_credentials"),
        (json!({"cors_allow_credentials": 1}), "cors_allow_credentials"),
        // Keys match case-insensitively, errors use the canonical name.
        (json!({"CORS_ALLOW_CREDENTIALS": 1}), "cors_allow_credentials"),
    ];
    for (config, key) in cases {
        let e = config_err(config.clone()).await;
        assert!(e.contains(key), "{config}: {e}");
    }
}

#[tokio::test]
async fn non_object_config_fails_loading() {
    for config in [json!([]), json!("x"), json!(1), json!(true)] {
        config_err(config).await;
    }
}

#[tokio::test]
async fn keys_match_case_insensitively() {
    let p = plugin(json!({"CORS_Allowed_Methods": ["PUT"], "Cors_Allow_Credentials": true})).await;
    assert_eq!(
        pf(&p, O, "PUT", &[]).await,
        hs(&[
            ("vary", PREFLIGHT_VARY),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-credentials", "true"),
        ])
    );
    assert_eq!(pf(&p, O, "GET", &[]).await, pf_refused());
}

// ---- through the runtime, repeatedly -------------------------------------------------

#[tokio::test]
async fn many_calls_in_a_row_give_the_same_answer() {
    let p = init().await;
    let ok = preflight_req(Api::Restapi, O, "GET", &["content-type"]);
    let refused = preflight_req(Api::Restapi, O, "DELETE", &[]);
    let actual = CorsRequest { api: Api::Pinsvcapi, origin: O.into(), method: "GET".into() };
    let first_ok = p.try_preflight(&ok).await.expect("preflight");
    let first_actual = p.try_actual(&actual).await.expect("actual");
    assert_eq!(value(&first_ok, "access-control-allow-headers"), Some("content-type"));
    for i in 0..1000 {
        assert_eq!(p.try_preflight(&ok).await.as_ref(), Ok(&first_ok), "call {i}");
        assert_eq!(p.try_preflight(&refused).await, Ok(pf_refused()), "call {i}");
        assert_eq!(p.try_actual(&actual).await.as_ref(), Ok(&first_actual), "call {i}");
    }
    let stats = p.stats();
    assert_eq!(stats.calls, 3002, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    // Sequential calls reuse one instance.
    assert_eq!(stats.instances_created, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_the_same_answer() {
    let p = init().await;
    let want = pf(&p, O, "GET", &[]).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (p, want) = (p.clone(), want.clone());
        tasks.push(tokio::spawn(async move {
            let req = preflight_req(Api::Restapi, O, "GET", &[]);
            for _ in 0..100 {
                assert_eq!(p.try_preflight(&req).await.as_ref(), Ok(&want));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(p.stats().failures, 0);
}
