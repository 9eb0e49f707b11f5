//! The REST API over real HTTP/1.1: authorization and CORS order, routes, streams and trailers,
//! errors, limits, listeners and shutdown.

mod common;

use std::time::Duration;

use cairn_api::*;
use common::*;
use serde_json::json;

const NO_AUTH_BODY: &str = "{\"code\":401,\"message\":\"unauthorized: no auth provided\"}\n";

#[tokio::test]
async fn no_credentials_is_401_with_both_challenges_and_no_cors() {
    let h = start(local_config()).await;
    let r = send(h.addr, "GET", "/id", &[("origin", "https://app.example")], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), NO_AUTH_BODY);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header_all("www-authenticate"),
        [
            "Bearer realm=\"Restricted IPFS Cluster API\"".to_owned(),
            "Basic realm=\"Restricted IPFS Cluster API\"".to_owned()
        ]
    );
    // Auth sits outside CORS: a denial carries no CORS headers.
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("vary").is_none());
    h.server.shutdown().await;
}

#[tokio::test]
async fn bad_basic_and_bad_bearer_are_refused_with_their_reasons() {
    let h = start(local_config()).await;
    // admin:wrong
    let r = send(h.addr, "GET", "/id", &[("authorization", "Basic YWRtaW46d3Jvbmc=")], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "{\"code\":401,\"message\":\"unauthorized: access denied\"}\n");
    assert_eq!(r.header_all("www-authenticate"), ["Basic realm=\"Restricted IPFS Cluster API\"".to_owned()]);

    let r = send(h.addr, "GET", "/id", &[("authorization", "Bearer nope")], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "{\"code\":401,\"message\":\"unauthorized: invalid token\"}\n");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"Restricted IPFS Cluster API\", error=\"invalid_token\"")
    );

    // A malformed Basic header is no credentials at all, as in Go.
    let r = send(h.addr, "GET", "/id", &[("authorization", "Basic !!!")], "").await;
    assert_eq!(r.text(), NO_AUTH_BODY);
    h.server.shutdown().await;
}

#[tokio::test]
async fn token_is_issued_then_accepted() {
    let h = start(local_config()).await;
    let r = send(h.addr, "POST", "/token", &[("authorization", ADMIN_BASIC)], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"token\":\"tok-admin\"}\n");

    let token: serde_json::Value = r.json();
    let bearer = format!("bearer {}", token["token"].as_str().expect("token"));
    let r = send(h.addr, "GET", "/id", &[("authorization", &bearer)], "").await;
    assert_eq!(r.status, 200);
    let id = r.json();
    assert_eq!(id["id"], PEER);
    assert_eq!(id["version"], "1.1.6");
    let seen = h.policy.last_request().expect("authorized");
    assert_eq!(seen.credentials, Credentials::Bearer("tok-admin".into()));
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/id");
    assert!(!seen.tls);
    assert!(seen.remote_addr.starts_with("127.0.0.1:"));
    assert!(seen.headers.iter().any(|(k, v)| k == "authorization" && v == &bearer));
    h.server.shutdown().await;
}

#[tokio::test]
async fn preflight_is_answered_by_the_policy_without_auth() {
    let h = start(local_config()).await;
    let r = send(
        h.addr,
        "OPTIONS",
        "/pins/x",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, authorization"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(r.header("vary"), Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"));
    assert!(r.header("content-type").is_none());
    let preflight = h.policy.preflights.lock().expect("lock").pop().expect("asked");
    assert_eq!(preflight.headers, ["content-type", "authorization"]);
    assert_eq!(preflight.api, Api::Restapi);
    assert!(h.policy.authorized.lock().expect("lock").is_empty(), "a preflight is not authorized");

    // OPTIONS without Access-Control-Request-Method is no preflight: it needs credentials
    // (IPFS Cluster lets every OPTIONS through), then reaches the router: 405, CORS headers on.
    let r = send(h.addr, "OPTIONS", "/pins", &[("origin", "https://app.example")], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), NO_AUTH_BODY);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = send(h.addr, "OPTIONS", "/pins", &[("origin", "https://app.example"), ("authorization", ADMIN_BASIC)], "")
        .await;
    assert_eq!(r.status, 405);
    assert!(r.body.is_empty());
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    h.server.shutdown().await;
}

/// `//host/` must not become `Location: //host`, which a browser follows to another site.
#[tokio::test]
async fn redirects_stay_on_this_host() {
    let h = start(local_config()).await;
    let auth = [("authorization", ADMIN_BASIC)];
    for (target, expected) in [
        ("//evil.example/", "/evil.example"),
        ("//evil.example/?a=1", "/evil.example?a=1"),
        ("///evil.example/", "/evil.example"),
        ("/%2Fevil.example/", "/evil.example"),
        ("/./evil.example/", "/evil.example"),
        ("/pins/../id/", "/id"),
    ] {
        for method in ["GET", "POST"] {
            let r = send(h.addr, method, target, &auth, "").await;
            assert_eq!(r.status, 307, "{method} {target}");
            assert_eq!(r.header("location"), Some(expected), "{method} {target}");
        }
    }
    // The clean-path redirect never starts with `//` either.
    let r = send(h.addr, "GET", "//evil.example", &auth, "").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/evil.example")));
    h.server.shutdown().await;
}

#[tokio::test]
async fn unknown_route_wrong_method_and_redirects() {
    let mut config = local_config();
    config.headers.insert("X-Custom".into(), vec!["a".into(), "b".into()]);
    let h = start(config).await;
    let auth = [("authorization", ADMIN_BASIC), ("origin", "https://app.example")];

    let r = send(h.addr, "GET", "/nope", &auth, "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "{\"code\":404,\"message\":\"not found\"}\n");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header_all("x-custom"), ["a".to_owned(), "b".to_owned()]);
    // Allowed requests get the actual-request CORS headers, errors included.
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));

    let r = send(h.addr, "DELETE", "/version", &auth, "").await;
    assert_eq!(r.status, 405);
    assert!(r.body.is_empty());
    assert!(r.header("content-type").is_none());

    let r = send(h.addr, "POST", "/pins/?name=x", &auth, "").await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/pins?name=x"));
    let r = send(h.addr, "GET", "/id/", &auth, "").await;
    assert_eq!(r.status, 307);
    assert_eq!(r.text(), "<a href=\"/id\">Temporary Redirect</a>.\n\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));

    let r = send(h.addr, "GET", "//version", &auth, "").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/version"));

    // The configured headers are on JSON successes too.
    let r = send(h.addr, "GET", "/version", &auth, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"version\":\"1.1.6\"}\n");
    assert_eq!(r.header_all("x-custom"), ["a".to_owned(), "b".to_owned()]);
    h.server.shutdown().await;
}

#[tokio::test]
async fn health_needs_no_credentials() {
    let h = start(local_config()).await;
    let r = send(h.addr, "GET", "/health", &[], "").await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), Some("application/json"));
    // HEAD is open too (and answered, where IPFS Cluster says 405); nothing else is.
    let r = send(h.addr, "HEAD", "/health", &[], "").await;
    assert_eq!(r.status, 204);
    for method in ["POST", "OPTIONS", "DELETE"] {
        let r = send(h.addr, method, "/health", &[], "").await;
        assert_eq!(r.status, 401, "{method} /health");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn empty_stream_is_204_without_body() {
    let h = start(local_config()).await;
    let r = get(h.addr, "/allocations").await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), Some("application/json"));
    // No Trailer header: hyper leaves it off responses that cannot have a body.
    assert!(r.trailers.is_none());

    let r = get(h.addr, "/allocations?filter=bogus").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"invalid filter value\"}\n");
    h.server.shutdown().await;
}

#[tokio::test]
async fn streams_are_ndjson_with_the_trailer_always_sent() {
    let cluster = FakeCluster { pins: vec![Pin::new(cid(CID)), Pin::new(cid(CID2))], ..FakeCluster::default() };
    let h = start_with(local_config(), cluster).await;

    // Raw bytes: chunked NDJSON ending in an empty X-Stream-Error trailer, with no TE: trailers.
    let raw = raw(
        h.addr,
        format!("GET /pins HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head_lc = head.to_ascii_lowercase();
    assert!(head_lc.contains("\r\ncontent-type: application/json"), "{head}");
    assert!(head_lc.contains("\r\ntransfer-encoding: chunked"), "{head}");
    assert!(head_lc.contains("\r\ntrailer: x-stream-error"), "{head}");
    let (items, trailer) = dechunk(body);
    let lines: Vec<serde_json::Value> =
        items.lines().map(|l| serde_json::from_str(l).expect("one JSON value per line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["cid"], CID);
    assert_eq!(lines[1]["cid"], CID2);
    assert_eq!(trailer, "X-Stream-Error: \r\n");

    // A mid-stream error goes into the trailer (line breaks flattened); the status stays 200.
    let raw = raw_request(h.addr, "/pins?local=true").await;
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let (_, body) = raw.split_once("\r\n\r\n").expect("head");
    let (items, trailer) = dechunk(body);
    assert_eq!(items.lines().count(), 1);
    assert_eq!(trailer, "X-Stream-Error: boom again\r\n");

    // hyper's client sees the same trailer.
    let r = get(h.addr, "/pins?local=true").await;
    assert_eq!(r.status, 200);
    let trailers = r.trailers.expect("trailers");
    assert_eq!(trailers.get("x-stream-error").and_then(|v| v.to_str().ok()), Some("boom again"));
    let r = get(h.addr, "/allocations?filter=pin").await;
    assert_eq!(r.text().lines().count(), 2);
    assert_eq!(r.trailers.expect("trailers").get("x-stream-error").map(|v| v.as_bytes()), Some(&b""[..]));

    // An error before the first item is the answer.
    let r = send(h.addr, "POST", "/pins/recover", &[("authorization", ADMIN_BASIC)], "").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"code\":500,\"message\":\"no tracker\"}\n");

    // Keep-alive: several streamed responses on one connection stay well framed.
    let stream = tokio::net::TcpStream::connect(h.addr).await.expect("connect");
    let pipelined = format!(
        "GET /peers HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\n\r\nGET /allocations HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nConnection: close\r\n\r\n"
    );
    let out = raw_on(stream, pipelined.as_bytes()).await;
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
    assert_eq!(out.matches("X-Stream-Error: \r\n").count(), 2, "{out}");
    assert!(out.ends_with("{\"version\":\"1.1.6\"}\n"), "{out}");
    h.server.shutdown().await;
}

async fn raw_request(addr: std::net::SocketAddr, path: &str) -> String {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
}

/// Decodes a chunked body: (data, trailer block).
fn dechunk(mut body: &str) -> (String, String) {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size, 16).expect("hex size");
        if size == 0 {
            let trailer = rest.strip_suffix("\r\n").expect("final CRLF");
            return (data, trailer.to_owned());
        }
        data.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").expect("chunk CRLF");
    }
}

#[tokio::test]
async fn http10_streams_end_without_trailer_bytes() {
    let h = start(local_config()).await;
    let out = raw(h.addr, format!("GET /peers HTTP/1.0\r\nAuthorization: {ADMIN_BASIC}\r\n\r\n").as_bytes()).await;
    let (_, body) = out.split_once("\r\n\r\n").expect("head");
    assert_eq!(body.lines().count(), 2, "{out}");
    assert!(body.ends_with("}\n"), "{out}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn pins_parse_options_and_honour_direct_mode() {
    let h = start(local_config()).await;
    let auth = [("authorization", ADMIN_BASIC)];
    let r = send(h.addr, "POST", &format!("/pins/{CID}?mode=direct&name=n&replication=2&meta-k=v"), &auth, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pin = r.json();
    assert_eq!(pin["mode"], "direct");
    assert_eq!(pin["max_depth"], 0);
    assert_eq!(pin["name"], "n");
    assert_eq!(pin["replication_factor_min"], 2);
    assert_eq!(pin["metadata"], json!({"k": "v"}));

    let r = send(h.addr, "POST", &format!("/pins/ipfs/{CID}/a/b?mode=direct"), &auth, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["mode"], "direct");
    assert!(h.cluster.calls().contains(&format!("pin_path /ipfs/{CID}/a/b")));

    let r = send(h.addr, "POST", "/pins/nope", &auth, "").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().expect("message").starts_with("error decoding Cid: "));
    let r = send(h.addr, "POST", &format!("/pins/{CID}?replication-min=x"), &auth, "").await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"parameter replication-min invalid\"}\n");
    let r = send(h.addr, "POST", "/pins/ipfs/nope", &auth, "").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().expect("message").starts_with("error parsing path: "));

    let r = send(h.addr, "DELETE", &format!("/pins/{CID}"), &auth, "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "{\"code\":404,\"message\":\"pin is not part of the pinset\"}\n");
    // The exact not-found text is 404 even from an "internal" error.
    let r = get(h.addr, &format!("/allocations/{CID}")).await;
    assert_eq!(r.status, 404);

    let r = get(h.addr, &format!("/pins/{CID}?local=true")).await;
    assert_eq!(r.status, 200);
    assert!(h.cluster.calls().contains(&format!("status {CID} local=true")));
    let r = get(h.addr, "/pins/recover").await;
    assert_eq!(r.status, 400, "GET /pins/recover is the {{hash}} route");

    let r = get(h.addr, &format!("/pins?cids={CID},{CID2}")).await;
    assert_eq!(r.text().lines().count(), 2);
    let r = get(h.addr, &format!("/pins?cids={CID},bad")).await;
    assert_eq!(r.status, 400);
    let r = get(h.addr, "/pins?filter=nonsense").await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"invalid filter value\"}\n");
    h.server.shutdown().await;
}

#[tokio::test]
async fn peers_add_and_remove_validate_ids() {
    let h = start(local_config()).await;
    let auth = [("authorization", ADMIN_BASIC)];
    let r = send(h.addr, "POST", "/peers", &auth, &format!("{{\"peer_id\":\"{PEER}\"}}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], PEER);
    let r = send(h.addr, "POST", "/peers", &auth, "{nope").await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"error decoding request body\"}\n");
    let r = send(h.addr, "POST", "/peers", &auth, "{\"peer_id\":\"xyz\"}").await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"error decoding peer_id\"}\n");

    let r = send(h.addr, "DELETE", &format!("/peers/{PEER2}"), &auth, "").await;
    assert_eq!(r.status, 204);
    assert!(h.cluster.calls().contains(&format!("peer_remove {PEER2}")));
    let r = send(h.addr, "DELETE", "/peers/xyz", &auth, "").await;
    assert_eq!(r.status, 400);

    let r = get(h.addr, "/peers").await;
    let lines: Vec<&str> = r
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).expect("utf8"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains("dial backoff"));
    h.server.shutdown().await;
}

fn multipart_body(boundary: &str, files: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, content) in files {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

#[tokio::test]
async fn add_streams_outputs_and_refuses_bad_bodies() {
    let h = start(local_config()).await;
    let ct = "multipart/form-data; boundary=XYZ";
    let auth = [("authorization", ADMIN_BASIC), ("content-type", ct)];

    let r = send(h.addr, "POST", "/add?name=x", &auth, &multipart_body("XYZ", &[("a.txt", "hello"), ("b.txt", "hi")]))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-chunked-output"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("trailer"), Some("X-Stream-Error"));
    let lines: Vec<serde_json::Value> = r.text().lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines, [json!({"name":"a.txt","cid":CID,"size":5}), json!({"name":"b.txt","cid":CID,"size":2})]);
    assert_eq!(r.trailers.expect("trailers").get("x-stream-error").map(|v| v.as_bytes()), Some(&b""[..]));

    // A failing add still answers 200; the error is in the trailer.
    let r = send(h.addr, "POST", "/add", &auth, &multipart_body("XYZ", &[("fail", "x")])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.trailers.expect("trailers").get("x-stream-error").and_then(|v| v.to_str().ok()), Some("adder failed"));

    // Buffered mode: one JSON array, or 500.
    let r = send(h.addr, "POST", "/add?stream-channels=false", &auth, &multipart_body("XYZ", &[("a", "abc")])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([{"name":"a","cid":CID,"size":3}]));
    let r = send(h.addr, "POST", "/add?stream-channels=false", &auth, &multipart_body("XYZ", &[("fail", "x")])).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"code\":500,\"message\":\"adder failed\"}\n");

    // Not multipart, no boundary, malformed, empty, bad query.
    let r = send(h.addr, "POST", "/add", &[("authorization", ADMIN_BASIC), ("content-type", "application/json")], "{}")
        .await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"request Content-Type isn't multipart/form-data\"}\n");
    let r =
        send(h.addr, "POST", "/add", &[("authorization", ADMIN_BASIC), ("content-type", "multipart/form-data")], "")
            .await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"no multipart boundary param in Content-Type\"}\n");
    let r = send(h.addr, "POST", "/add", &auth, "this is not a multipart body").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().expect("message").starts_with("error reading multipart: "), "{}", r.text());
    let r = send(h.addr, "POST", "/add", &auth, "--XYZ--\r\n").await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"no files found in multipart form\"}\n");
    let r = send(h.addr, "POST", "/add?format=zip", &auth, &multipart_body("XYZ", &[("a", "b")])).await;
    assert_eq!(r.text(), "{\"code\":400,\"message\":\"format parameter is invalid\"}\n");
    h.server.shutdown().await;
}

#[tokio::test]
async fn add_size_limits_end_the_add() {
    let mut config = local_config();
    config.add_limits = AddLimits { max_body_bytes: Some(4096), max_part_bytes: Some(1000) };
    let h = start(config).await;
    let auth = [("authorization", ADMIN_BASIC), ("content-type", "multipart/form-data; boundary=XYZ")];

    // A part over max_part_bytes: its headers were fine, so the add started and the limit shows
    // in the trailer.
    let r = send(h.addr, "POST", "/add", &auth, &multipart_body("XYZ", &[("big", &"x".repeat(2000))])).await;
    assert_eq!(r.status, 200);
    let trailers = r.trailers.expect("trailers");
    let error = trailers.get("x-stream-error").and_then(|v| v.to_str().ok()).expect("error");
    assert!(error.starts_with("error reading multipart: "), "{error}");

    // A body over max_body_bytes fails wherever the reader notices: before the first part
    // (400) or during the add (trailer).
    let chunk = "x".repeat(900);
    let files = vec![("a", chunk.as_str()); 10];
    let r = send(h.addr, "POST", "/add", &auth, &multipart_body("XYZ", &files)).await;
    let error = match r.status {
        400 => r.json()["message"].as_str().expect("message").to_owned(),
        200 => r.trailers.expect("trailers")["x-stream-error"].to_str().expect("text").to_owned(),
        other => panic!("unexpected status {other}"),
    };
    assert!(error.contains("size exceeded"), "{error}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn oversized_request_head_is_431() {
    let mut config = local_config();
    config.max_header_bytes = 4096;
    let h = start(config).await;
    let big = "a".repeat(10_000);
    let out = raw(h.addr, format!("GET /id HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    // A head within max_header_bytes + Go's 4096 slack is fine.
    let fits = "a".repeat(6_000);
    let out = raw(
        h.addr,
        format!("GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nX-Big: {fits}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed() {
    let mut config = local_config();
    config.read_header_timeout = Duration::from_millis(200);
    config.idle_timeout = Duration::from_millis(400);
    let h = start(config).await;

    // A head that never completes is cut after read_header_timeout.
    let started = std::time::Instant::now();
    let out = raw(h.addr, b"GET /version HTTP/1.1\r\nHost: x\r\n").await;
    assert!(out.is_empty(), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // An idle keep-alive connection lives past read_header_timeout, until idle_timeout.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.expect("connect");
    let req = format!("GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("answer in time").expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    stream.write_all(req.as_bytes()).await.expect("write again");
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("answer in time").expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "kept alive past the header timeout");
    let idle_from = std::time::Instant::now();
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0, "closed when idle");
    assert!(idle_from.elapsed() >= Duration::from_millis(300));
    h.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_refuses() {
    let h = start(local_config()).await;
    let addr = h.addr;
    let slow = tokio::spawn(async move { get(addr, "/monitor/metrics/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(WAIT, h.server.shutdown()).await.expect("shutdown in time");
    let r = slow.await.expect("joins");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["name"], "slow");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn unix_socket_listener_serves_and_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api.sock");
    let config = ServerConfig::new(vec![ListenAddr::Unix(path.clone())]);
    let policy = std::sync::Arc::new(FakePolicy::default());
    let server = serve(config, std::sync::Arc::new(FakeCluster::default()), policy.clone()).await.expect("serve");
    assert_eq!(server.local_addrs(), [ListenAddr::Unix(path.clone())]);
    let stream = tokio::net::UnixStream::connect(&path).await.expect("connect");
    let r = send_on(stream, request("GET", "/version", &[("authorization", ADMIN_BASIC)], "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(policy.last_request().expect("asked").remote_addr, "@");
    // A second server on the same path fails, naming the address.
    let err = serve(
        ServerConfig::new(vec![ListenAddr::Unix(path.clone())]),
        std::sync::Arc::new(FakeCluster::default()),
        policy,
    )
    .await
    .expect_err("in use");
    assert!(err.to_string().contains("api.sock"), "{err}");
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown");
    assert!(!path.exists());
}

#[tokio::test]
async fn config_errors_are_reported() {
    let api = std::sync::Arc::new(FakeCluster::default());
    let policy = std::sync::Arc::new(OpenPolicy);
    let err = serve(ServerConfig::new(vec![]), api.clone(), policy.clone()).await.expect_err("no address");
    assert_eq!(err.to_string(), "neither the libp2p nor the HTTP endpoints are enabled");
    let mut config = local_config();
    config.headers.insert("bad header".into(), vec!["v".into()]);
    let err = serve(config, api, policy).await.expect_err("bad header");
    assert!(err.to_string().contains("bad header"), "{err}");
}

#[tokio::test]
async fn open_policy_serves_everything_and_refuses_tokens() {
    let server = serve(local_config(), std::sync::Arc::new(FakeCluster::default()), std::sync::Arc::new(OpenPolicy))
        .await
        .expect("serve");
    let Some(ListenAddr::Tcp(addr)) = server.local_addrs().first().cloned() else { panic!("tcp") };
    let r = send(addr, "GET", "/monitor/metrics", &[], "").await;
    assert_eq!(r.json(), json!(["ping", "freespace"]));
    let r = send(addr, "POST", "/token", &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "{\"code\":401,\"message\":\"unauthorized\"}\n");
    server.shutdown().await;
}

#[tokio::test]
async fn a_large_stream_to_a_slow_reader_keeps_its_trailer() {
    // Megabytes of NDJSON: the socket fills up, writes go out in pieces, and the trailer must
    // still be found and rewritten.
    let pins = vec![Pin::new(cid(CID)); 20_000];
    let h = start_with(local_config(), FakeCluster { pins, ..FakeCluster::default() }).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.addr).await.expect("connect");
    let req =
        format!("GET /allocations HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1024];
    let read_all = async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read_all).await.expect("read in time");
    let text = String::from_utf8(out).expect("utf8");
    let (_, body) = text.split_once("\r\n\r\n").expect("head");
    let (items, trailer) = dechunk(body);
    assert_eq!(items.lines().count(), 20_000);
    assert_eq!(trailer, "X-Stream-Error: \r\n");
    h.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_timeout_closes_what_does_not_finish() {
    let mut config = local_config();
    config.shutdown_timeout = Duration::from_millis(50);
    let h = start(config).await;
    let addr = h.addr;
    // The slow metric takes 300 ms, longer than the shutdown allows.
    let slow = tokio::spawn(async move {
        raw(
            addr,
            format!("GET /monitor/metrics/slow HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\n\r\n").as_bytes(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, h.server.shutdown()).await.expect("shutdown in time");
    assert!(started.elapsed() < Duration::from_millis(250), "did not wait for the slow request");
    let out = slow.await.expect("joins");
    assert!(out.is_empty(), "connection closed without an answer: {out}");
}

#[tokio::test]
async fn streams_from_elsewhere_are_served_as_libp2p_http_with_their_peer_id() {
    let cluster = std::sync::Arc::new(FakeCluster::default());
    let policy = std::sync::Arc::new(FakePolicy::default());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let server = serve_streams(local_config(), cluster, policy.clone(), rx).await.expect("serves");
    assert!(server.local_addrs().is_empty(), "no socket of its own");

    let (client, server_side) = tokio::io::duplex(64 * 1024);
    let incoming = IncomingStream {
        io: Box::new(server_side),
        remote_addr: "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQ".into(),
        peer_id: Some("12D3KooWQ".into()),
    };
    tx.send(incoming).await.expect("accepted");
    let r = send_on(client, request("GET", "/id", &[("authorization", ADMIN_BASIC)], "")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = policy.last_request().expect("authorized");
    assert_eq!(seen.api, Api::Libp2pHttp);
    assert_eq!(seen.peer_id.as_deref(), Some("12D3KooWQ"));
    assert_eq!(seen.remote_addr, "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQ");
    assert!(!seen.tls);

    // The same auth applies: no credentials, no answer.
    let (client, server_side) = tokio::io::duplex(64 * 1024);
    tx.send(IncomingStream { io: Box::new(server_side), remote_addr: "x".into(), peer_id: None }).await.expect("sent");
    let r = send_on(client, request("GET", "/id", &[], "")).await;
    assert_eq!(r.status, 401);

    // The source closing ends the listener; shutdown still completes.
    drop(tx);
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown in time");
}
