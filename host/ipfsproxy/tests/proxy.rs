//! The proxy against a fake Kubo and a fake cluster: every hijacked endpoint, the CORS copy and
//! the extract-headers cache, forwarding (streamed both ways, trailers, OPTIONS/HEAD), the
//! policy, a daemon that is down, timeouts, unix sockets and HTTPS to the daemon.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use cairn_api::{ListenAddr, OpenPolicy, Pin, PinMode, PinOptions};
use common::*;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::Arc;

fn assert_hijack_headers(a: &Answer) {
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    assert!(a.header("server").is_some_and(|s| s.starts_with("cairn/ipfsproxy/")), "{a:?}");
    assert_eq!(a.header("access-control-expose-headers"), Some("X-Stream-Output, X-Chunked-Output, X-Content-Length"));
    assert_eq!(a.header("x-extra"), Some("extra-value"));
    assert_eq!(a.header("vary"), Some("Origin"));
}

#[tokio::test]
async fn pin_add_and_rm() {
    let s = setup(|_| {}).await;
    let a = post(s.addr, &format!("/api/v0/pin/add?arg={CID}&type=direct&recursive=false")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), format!(r#"{{"Pins":["{CID}"]}}"#));
    assert_hijack_headers(&a);
    assert_eq!(s.cluster.calls(), [format!("pin_path /ipfs/{CID} mode=Direct")]);

    // The path form, a sub-path, and GET (Kubo accepts it too).
    let a = send(s.addr, req("GET", &format!("/api/v0/pin/add/{CID2}"))).await;
    assert_eq!(a.json(), json!({"Pins": [CID2]}));
    let a = post(s.addr, &format!("/api/v0/pin/add?arg=/ipfs/{CID}/sub/dir")).await;
    assert_eq!(a.json(), json!({"Pins": [CID2]}));
    assert!(s.cluster.calls().contains(&format!("pin_path /ipfs/{CID}/sub/dir mode=Recursive")));

    // pin/rm, twice: the second is the cluster's error, as a Kubo error.
    let a = post(s.addr, &format!("/api/v0/pin/rm?arg={CID}")).await;
    assert_eq!(a.json(), json!({"Pins": [CID]}));
    assert_hijack_headers(&a);
    let a = post(s.addr, &format!("/api/v0/pin/rm/{CID}")).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json(), json!({"Message": "pin is not part of the pinset", "Code": 0, "Type": "error"}));

    // Missing and bad arguments.
    for target in ["/api/v0/pin/add", "/api/v0/pin/add?arg=", "/api/v0/pin/rm"] {
        let a = post(s.addr, target).await;
        assert_eq!(a.status, 400, "{target}");
        assert_eq!(a.json()["Message"], "argument \"ipfs-path\" is required");
    }
    let a = post(s.addr, "/api/v0/pin/add?arg=garbage").await;
    assert_eq!(a.status, 500);
    let msg = a.json()["Message"].as_str().expect("message").to_owned();
    assert!(msg.starts_with("Error parsing IPFS Path: invalid path \"/ipfs/garbage\": invalid cid"), "{msg}");
    let a = post(s.addr, "/api/v0/pin/add?arg=/foo/bar").await;
    assert!(a.json()["Message"].as_str().expect("m").contains("unknown namespace"));
}

#[tokio::test]
async fn pin_ls_forms() {
    let s = setup(|_| {}).await;
    s.cluster.insert(Pin::new(cid(CID)));
    s.cluster.insert(Pin::with_options(cid(CID2), PinOptions { mode: PinMode::Direct, ..PinOptions::default() }));

    let a = post(s.addr, "/api/v0/pin/ls").await;
    assert_eq!(a.status, 200);
    // Always "recursive" in the non-streamed form.
    assert_eq!(a.json(), json!({"Keys": {CID: {"Type": "recursive"}, CID2: {"Type": "recursive"}}}));
    assert_hijack_headers(&a);

    let a = post(s.addr, "/api/v0/pin/ls?stream=true").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("trailer"), Some("X-Stream-Error"));
    let mut lines = a.lines();
    lines.sort_by_key(|l| l["Cid"].as_str().map(str::to_owned));
    assert_eq!(lines, [json!({"Cid": CID, "Type": "recursive"}), json!({"Cid": CID2, "Type": "direct"})]);
    assert!(a.trailer("x-stream-error").is_empty());

    let a = post(s.addr, &format!("/api/v0/pin/ls?arg={CID2}&s=true")).await;
    assert_eq!(a.text(), format!(r#"{{"Cid":"{CID2}","Type":"direct"}}"#));
    let a = post(s.addr, &format!("/api/v0/pin/ls/{CID2}")).await;
    assert_eq!(a.json(), json!({"Keys": {CID2: {"Type": "recursive"}}}));

    s.cluster.pins.lock().expect("pins").clear();
    let a = post(s.addr, &format!("/api/v0/pin/ls?arg={CID}")).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], format!("Error: path '{CID}' is not pinned"));
    let a = post(s.addr, "/api/v0/pin/ls?arg=nope").await;
    assert_eq!(a.status, 500);
    assert!(a.json()["Message"].as_str().expect("m").starts_with("invalid CID in argument \"nope\""));

    // An empty pinset; then a listing that breaks: the error is the trailer (streamed) or the
    // answer (not streamed).
    let a = post(s.addr, "/api/v0/pin/ls").await;
    assert_eq!(a.json(), json!({"Keys": {}}));
    s.cluster.insert(Pin::new(cid(CID2)));
    *s.cluster.list_error.lock().expect("lock") = Some("state unavailable".into());
    let a = post(s.addr, "/api/v0/pin/ls?stream=true").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.lines(), [json!({"Cid": CID2, "Type": "recursive"})]);
    assert_eq!(a.trailer("x-stream-error"), ["state unavailable"]);
    let a = post(s.addr, "/api/v0/pin/ls").await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], "state unavailable");
}

#[tokio::test]
async fn pin_ls_trailer_reaches_a_client_without_te() {
    // Go clients never send `TE: trailers`; the trailer must reach them anyway.
    let s = setup(|_| {}).await;
    s.cluster.insert(Pin::new(cid(CID)));
    *s.cluster.list_error.lock().expect("lock") = Some("boom".into());
    let raw_answer =
        raw(s.addr, b"POST /api/v0/pin/ls?stream=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(raw_answer.contains("transfer-encoding: chunked"), "{raw_answer}");
    assert!(raw_answer.ends_with("0\r\nX-Stream-Error: boom\r\n\r\n"), "{raw_answer}");
}

#[tokio::test]
async fn pin_update() {
    let s = setup(|_| {}).await;
    for (target, message) in [
        ("/api/v0/pin/update", "argument \"from-path\" is required"),
        (&*format!("/api/v0/pin/update?arg={CID}"), "argument \"to-path\" is required"),
    ] {
        let a = post(s.addr, target).await;
        assert_eq!(a.status, 400);
        assert_eq!(a.json()["Message"], message);
        assert_hijack_headers(&a);
    }
    let a = post(s.addr, &format!("/api/v0/pin/update?arg=bad&arg={CID}")).await;
    assert_eq!(a.status, 500);
    assert!(a.json()["Message"].as_str().expect("m").starts_with("error parsing \"from-path\" argument: invalid path"));

    // A bare CID needs no resolve; from is unpinned afterwards.
    s.cluster.insert(Pin::new(cid(CID)));
    let a = post(s.addr, &format!("/api/v0/pin/update?arg={CID}&arg={CID2}")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json(), json!({"Pins": [CID, CID2]}));
    assert_eq!(
        s.cluster.calls(),
        [format!("pin_path /ipfs/{CID2} mode=Recursive update={CID}"), format!("unpin {CID}")]
    );
    assert!(s.kubo.seen_path("/api/v0/resolve").is_empty());

    // An IPNS name is resolved by the daemon; unpin=false keeps it.
    let a = post(s.addr, &format!("/api/v0/pin/update?arg=/ipns/example.com&arg={CID}&unpin=false")).await;
    assert_eq!(a.json(), json!({"Pins": [CID2, CID]}));
    let resolves = s.kubo.seen_path("/api/v0/resolve");
    assert_eq!(resolves.len(), 1);
    assert_eq!(resolves[0].target, "/api/v0/resolve?arg=%2Fipns%2Fexample.com");
    assert!(!s.cluster.calls().contains(&format!("unpin {CID2}")));

    // The daemon's resolve error is the answer.
    let a = post(s.addr, &format!("/api/v0/pin/update?arg=/ipns/missing&arg={CID}")).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], "could not resolve name");
}

fn add_request(target: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(target)
        .header("content-type", "multipart/form-data; boundary=XXB")
        .body(full(body))
        .expect("request")
}

#[tokio::test]
async fn add_through_the_cluster_adder() {
    let s = setup(|_| {}).await;
    let a = send(s.addr, add_request("/api/v0/add?trickle=true&pin=false", multipart(&[("a.txt", b"hello")]))).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.lines(),
        [json!({"Name": "a.txt", "Hash": CID, "Size": "5"}), json!({"Name": "", "Hash": CID2, "Size": "7"})]
    );
    assert_eq!(a.header("x-chunked-output"), Some("1"));
    assert_eq!(a.header("trailer"), Some("X-Stream-Error"));
    assert_eq!(a.header("cache-control"), Some("no-cache"));
    assert_eq!(a.header("connection"), Some("close"));
    assert_hijack_headers(&a);
    assert_eq!(s.cluster.calls(), ["add layout=Trickle no_pin=true stream=true"]);
    // Only the CORS probe reaches the daemon, never the add itself.
    assert!(s.kubo.seen_path("/api/v0/add").iter().all(|r| r.method == http::Method::OPTIONS));

    // Buffered.
    let a = send(s.addr, add_request("/api/v0/add?stream-channels=false", multipart(&[("b", b"xy")]))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!([{"Name": "b", "Hash": CID, "Size": "2"}, {"Name": "", "Hash": CID2, "Size": "7"}]));

    // An adder failure: the trailer (streamed), a 500 REST error object (buffered).
    let a = send(s.addr, add_request("/api/v0/add", multipart(&[("ok", b"1"), ("fail", b"2")]))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.lines().len(), 1);
    assert_eq!(a.trailer("x-stream-error"), ["adder failed"]);
    let a = send(s.addr, add_request("/api/v0/add?stream-channels=false", multipart(&[("fail", b"2")]))).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json(), json!({"code": 500, "message": "adder failed"}));

    // Refusals.
    let a = send(s.addr, add_request("/api/v0/add?only-hash=true", multipart(&[("a", b"1")]))).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], "only-hash is not supported when adding to cluster");
    let a = send(s.addr, add_request("/api/v0/add?layout=zigzag", multipart(&[("a", b"1")]))).await;
    assert_eq!(a.json()["Message"], "error parsing options:layout parameter is invalid");
    let a = send(s.addr, req("POST", "/api/v0/add")).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], "error reading request: request Content-Type isn't multipart/form-data");
    let garbage = Request::builder()
        .method("POST")
        .uri("/api/v0/add")
        .header("content-type", "multipart/form-data; boundary=XXB")
        .body(full("not a multipart body"))
        .expect("request");
    let a = send(s.addr, garbage).await;
    assert_eq!(a.status, 400);
    assert!(a.json()["Message"].as_str().expect("m").starts_with("error reading multipart"));
}

#[tokio::test]
async fn add_over_the_size_limit_is_400() {
    let s = setup(|c| c.add_limits = cairn_api::AddLimits { max_body_bytes: Some(64), max_part_bytes: None }).await;
    let a = send(s.addr, add_request("/api/v0/add", multipart(&[("big", &[b'x'; 4096])]))).await;
    // The limit hits while the first part's headers are still in reach, or in the stream.
    if a.status == 200 {
        assert!(!a.trailer("x-stream-error").is_empty(), "{a:?}");
    } else {
        assert_eq!(a.status, 400, "{a:?}");
        assert_eq!(a.json()["Type"], "error");
    }
}

#[tokio::test]
async fn repo_stat_and_gc() {
    let s = setup(|_| {}).await;
    let a = send(s.addr, req("GET", "/api/v0/repo/stat?size-only=true")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), r#"{"RepoSize":1000,"StorageMax":5000,"NumObjects":0}"#);
    assert_hijack_headers(&a);

    let a = post(s.addr, "/api/v0/repo/gc").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("trailer"), Some("X-Stream-Error"));
    assert_eq!(a.lines(), [json!({"Key": {"/": CID}}), json!({"Key": null})]);
    // Go's "; " after each message; the client's parser trims the last space.
    assert_eq!(a.trailer("x-stream-error"), [format!("block busy; {PEER2}: daemon down;")]);
    assert_eq!(s.cluster.calls(), ["ipfs_gc local=false"]);

    let a = post(s.addr, "/api/v0/repo/gc?stream-errors=true").await;
    assert_eq!(
        a.lines(),
        [
            json!({"Key": {"/": CID}}),
            json!({"Key": null, "Error": "block busy"}),
            json!({"Key": null, "Error": format!("{PEER2}: daemon down")}),
        ]
    );
    assert!(a.trailer("x-stream-error").is_empty());
}

#[tokio::test]
async fn block_put_and_dag_put() {
    let s = setup(|_| {}).await;
    let body = multipart(&[("blk", b"block-data")]);
    let len = body.len();
    let put = |target: &str| {
        Request::builder()
            .method("POST")
            .uri(target)
            .header("content-type", "multipart/form-data; boundary=XXB")
            .body(full(body.clone()))
            .expect("request")
    };

    // Without pin=true: a plain forward (the daemon's own headers, no cluster pin).
    let a = send(s.addr, put("/api/v0/block/put?cid-codec=raw")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("server"), Some("kubo/fake"));
    assert!(s.cluster.calls().is_empty());

    // With pin=true: replayed unchanged (so the daemon pins too), each key cluster-pinned.
    *s.cluster.pin_fails_for.lock().expect("lock") = Some(CID2.into());
    let a = send(s.addr, put("/api/v0/block/put?pin=true&cid-codec=raw")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_hijack_headers(&a);
    assert_eq!(a.lines(), [json!({"Key": CID, "Size": len}), json!({"Key": CID2, "Size": 3})]);
    // A pin error goes into the trailer and the stream goes on.
    assert_eq!(a.trailer("x-stream-error"), [format!("cannot pin {CID2}")]);
    assert_eq!(s.cluster.calls(), [format!("pin {CID} mode=Recursive"), format!("pin {CID2} mode=Recursive")]);
    let seen = s.kubo.seen_path("/api/v0/block/put");
    let last = seen.last().expect("forwarded");
    assert_eq!(last.target, "/api/v0/block/put?pin=true&cid-codec=raw");
    assert_eq!(last.body_len, len);

    // The daemon's error is copied through.
    let a = send(s.addr, put("/api/v0/block/put?pin=true&fail=1")).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["Message"], "block put failed");

    // dag/put: the daemon is asked with pin=false.
    *s.cluster.pin_fails_for.lock().expect("lock") = None;
    let a = send(s.addr, put("/api/v0/dag/put?pin=true&store-codec=dag-cbor")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.lines(), [json!({"Cid": {"/": CID2}})]);
    assert!(a.trailer("x-stream-error").is_empty());
    let seen = s.kubo.seen_path("/api/v0/dag/put");
    assert_eq!(seen.last().expect("forwarded").target, "/api/v0/dag/put?store-codec=dag-cbor&pin=false");
}

#[tokio::test]
async fn cors_copy_and_extract_cache() {
    let s = setup(|c| c.extract_headers_ttl = Duration::from_millis(1500)).await;
    let with_origin = |target: &str| {
        Request::builder()
            .method("POST")
            .uri(target)
            .header("origin", "http://app.example")
            .body(full(""))
            .expect("request")
    };
    let a = send(s.addr, with_origin("/api/v0/repo/stat")).await;
    assert_eq!(a.header("access-control-allow-origin"), Some("http://app.example"));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(a.header("x-kubo-options"), None, "only the CORS headers are copied");
    // The preflight went to the same path with the origin and the method.
    let probe = s.kubo.seen().into_iter().find(|r| r.method == http::Method::OPTIONS).expect("probe");
    assert_eq!(probe.target, "/api/v0/repo/stat");
    assert_eq!(probe.headers.get("origin").expect("origin"), "http://app.example");
    assert_eq!(probe.headers.get("access-control-request-method").expect("method"), "POST");

    // Learnt once per TTL.
    assert_eq!(s.kubo.version_calls.load(Ordering::SeqCst), 1);
    post(s.addr, "/api/v0/repo/stat").await;
    post(s.addr, "/api/v0/pin/ls").await;
    assert_eq!(s.kubo.version_calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let a = post(s.addr, "/api/v0/repo/stat").await;
    assert_hijack_headers(&a);
    assert_eq!(s.kubo.version_calls.load(Ordering::SeqCst), 2);

    // ttl 0: forever; another path.
    let s = setup(|c| {
        c.extract_headers_ttl = Duration::ZERO;
        c.extract_headers_path = "/api/v0/id".into();
        c.extract_headers_extra = vec![];
    })
    .await;
    for _ in 0..3 {
        post(s.addr, "/api/v0/repo/stat").await;
    }
    assert_eq!(s.kubo.seen_path("/api/v0/id").len(), 1);
    assert_eq!(s.kubo.version_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forwards_other_calls_untouched() {
    let s = setup(|_| {}).await;
    let a = post(s.addr, "/api/v0/id?format=x").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["ID"], PEER);
    assert_eq!(a.header("server"), Some("kubo/fake"));
    let seen = s.kubo.seen_path("/api/v0/id");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/api/v0/id?format=x");
    // The client's Host, as Go's reverse proxy keeps it, and X-Forwarded-For.
    assert_eq!(seen[0].headers.get("host").expect("host"), "proxy.test");
    assert_eq!(seen[0].headers.get("x-forwarded-for").expect("xff"), "127.0.0.1");
    // No CORS probe for forwarded calls.
    assert!(s.kubo.seen().iter().all(|r| r.method != http::Method::OPTIONS));

    // Statuses are copied; paths under hijacked ones that are not routes are forwarded.
    let a = post(s.addr, "/api/v0/teapot").await;
    assert_eq!(a.status, 418);
    assert_eq!(a.json()["Message"], "short and stout");
    let a = post(s.addr, "/api/v0/pin/add/").await;
    assert_eq!(a.status, 404);
    assert_eq!(s.kubo.seen_path("/api/v0/pin/add/").len(), 1);
    // DELETE is not hijacked.
    send(s.addr, req("DELETE", &format!("/api/v0/pin/rm?arg={CID}"))).await;
    assert_eq!(s.kubo.seen_path("/api/v0/pin/rm").len(), 1);
    assert!(s.cluster.calls().is_empty());
}

#[tokio::test]
async fn options_and_head_always_go_to_the_daemon() {
    let s = setup(|_| {}).await;
    for path in ["/api/v0/pin/add", "/api/v0/add", "/api/v0/repo/stat"] {
        let a = send(s.addr, req("OPTIONS", path)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-kubo-options"), Some("1"), "{path}");
        let a = send(s.addr, req("HEAD", path)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-head"), Some("yes"));
        assert_eq!(a.header("content-length"), Some("42"));
        assert!(a.body.is_empty());
    }
    assert!(s.cluster.calls().is_empty());
    assert_eq!(s.kubo.seen().len(), 6);
}

#[tokio::test]
async fn redirects_unclean_paths() {
    let s = setup(|_| {}).await;
    let a = post(s.addr, "/api/v0/pin/../repo/stat?x=1").await;
    assert_eq!(a.status, 301);
    assert_eq!(a.header("location"), Some("/api/v0/repo/stat?x=1"));
    // Never a scheme-relative `//host` Location, which a browser follows to another site.
    for (target, location) in [("//evil.example/", "/evil.example/"), ("//evil.example", "/evil.example")] {
        let a = send(s.addr, req("GET", target)).await;
        assert_eq!((a.status, a.header("location")), (301, Some(location)), "{target}");
    }
    assert!(s.kubo.seen().is_empty());
}

fn with_headers(mut request: Request<Body>, headers: &[(&'static str, &str)]) -> Request<Body> {
    for (name, value) in headers {
        request.headers_mut().insert(*name, http::HeaderValue::from_str(value).expect("header value"));
    }
    request
}

/// With authentication on, the only request an authorizer lets through without credentials is
/// a browser's preflight; the proxy answers it itself (with the policy's CORS headers), so
/// nothing unauthenticated reaches the daemon (`/debug/vars`, `/debug/pprof/...`).
#[tokio::test]
async fn unauthenticated_requests_never_reach_the_daemon() {
    let policy = Arc::new(AuthPolicy::default());
    let s = setup_with_policy(|_| {}, policy.clone()).await;
    let preflight = [("origin", "https://app.example"), ("access-control-request-method", "GET")];

    for (method, path) in
        [("OPTIONS", "/debug/vars"), ("OPTIONS", "/debug/pprof/heap"), ("HEAD", "/debug/vars"), ("GET", "/health")]
    {
        let a = send(s.addr, req(method, path)).await;
        assert_eq!(a.status, 401, "{method} {path}");
    }
    let a = send(s.addr, with_headers(req("OPTIONS", "/debug/vars"), &preflight)).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert_eq!(a.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(a.header("access-control-allow-methods"), Some("GET"));
    assert!(a.header("x-kubo-options").is_none(), "answered by the proxy, not the daemon");
    assert_eq!(policy.preflights.lock().expect("preflights").len(), 1);
    assert!(s.kubo.seen().is_empty(), "nothing unauthenticated is forwarded: {:?}", s.kubo.seen());

    // With credentials, OPTIONS (preflight or not) goes to the daemon as before.
    let a = send(s.addr, with_headers(req("OPTIONS", "/debug/vars"), &[("authorization", ADMIN_BASIC)])).await;
    assert_eq!((a.status, a.header("x-kubo-options")), (200, Some("1")));
    let mut authenticated = preflight.to_vec();
    authenticated.push(("authorization", ADMIN_BASIC));
    let a = send(s.addr, with_headers(req("OPTIONS", "/debug/vars"), &authenticated)).await;
    assert_eq!((a.status, a.header("x-kubo-options")), (200, Some("1")));
    assert_eq!(s.kubo.seen().len(), 2);
}

/// Without authentication, preflights still go to the daemon, as in IPFS Cluster.
#[tokio::test]
async fn preflights_go_to_the_daemon_when_the_api_is_open() {
    let s = setup(|_| {}).await;
    let preflight = [("origin", "https://app.example"), ("access-control-request-method", "POST")];
    let a = send(s.addr, with_headers(req("OPTIONS", "/api/v0/add"), &preflight)).await;
    assert_eq!((a.status, a.header("x-kubo-options")), (200, Some("1")));
    assert_eq!(a.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(s.kubo.seen_path("/api/v0/add").len(), 1);
}

/// A large body both ways, with the answer's first bytes back before the request is over (so
/// neither direction is buffered whole), and the daemon's trailer relayed.
#[tokio::test]
async fn forwarding_streams_both_ways() {
    let s = setup(|_| {}).await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    }));
    let request = Request::builder().method("POST").uri("/api/v0/echo").body(body).expect("request");
    let response_fut = sender.send_request(request);
    tx.send(Bytes::from(vec![b'a'; 64 * 1024])).await.expect("send");
    let response = tokio::time::timeout(WAIT, response_fut).await.expect("head in time").expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-kubo").expect("kubo header"), "echo");
    let mut body = response.into_body();
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 32; // 8 MiB in total
    let mut received = 0usize;
    let mut expected = 64 * 1024;
    let mut trailers = None;
    for i in 0..=CHUNKS {
        // Read the echo of everything sent so far before sending more: only a proxy that
        // streams both ways lets this finish.
        while received < expected {
            let frame =
                tokio::time::timeout(WAIT, body.frame()).await.expect("echo in time").expect("frame").expect("ok");
            if let Ok(data) = frame.into_data() {
                received += data.len();
            }
        }
        if i < CHUNKS {
            tx.send(Bytes::from(vec![b'b'; CHUNK])).await.expect("send");
            expected += CHUNK;
        }
    }
    drop(tx);
    while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.expect("end in time") {
        let frame = frame.expect("frame");
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    assert_eq!(received, 64 * 1024 + CHUNK * CHUNKS);
    assert_eq!(trailers.expect("trailers").get("x-stream-error").expect("trailer"), "echo done");
    let seen = s.kubo.seen_path("/api/v0/echo");
    assert_eq!(seen[0].headers.get("te").expect("te"), "trailers");
}

#[tokio::test]
async fn policy_denials() {
    let s = setup(|_| {}).await;
    for (method, target) in [("POST", "/api/v0/forbidden"), ("OPTIONS", "/api/v0/forbidden/x")] {
        let a = send(s.addr, req(method, target)).await;
        assert_eq!(a.status, 403);
        assert_eq!(a.header("x-denied-by"), Some("test"));
        assert_eq!(a.header("content-type"), Some("application/json"));
        let path = target;
        assert_eq!(a.json(), json!({"Message": format!("{method} {path} is not allowed"), "Code": 0, "Type": "error"}));
    }
    let denied = Request::builder()
        .method("POST")
        .uri(format!("/api/v0/pin/add?arg={CID}"))
        .header("x-deny", "1")
        .body(full(""))
        .expect("request");
    assert_eq!(send(s.addr, denied).await.status, 403);
    assert!(s.kubo.seen().is_empty(), "denied requests reach nothing");
    assert!(s.cluster.calls().is_empty());
}

#[tokio::test]
async fn daemon_down_is_an_error_and_the_proxy_stays_up() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let node = cairn_ipfs::DaemonAddr::Tcp { host: "127.0.0.1".into(), port };
    let config = cairn_ipfsproxy::ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().expect("a"))], node);
    let cluster = Arc::new(FakeCluster::default());
    let proxy = cairn_ipfsproxy::serve(config, cluster.clone(), Arc::new(FakeExtras), Arc::new(OpenPolicy))
        .await
        .expect("starts without a daemon");
    let ListenAddr::Tcp(addr) = proxy.local_addrs()[0] else { panic!("tcp") };
    for _ in 0..3 {
        let a = post(addr, "/api/v0/id").await;
        assert_eq!(a.status, 502);
        let msg = a.json()["Message"].as_str().expect("message").to_owned();
        assert!(msg.contains("cannot reach the IPFS daemon"), "{msg}");
    }
    // Hijacked calls that need no daemon still work (without the daemon's headers).
    let a = post(addr, &format!("/api/v0/pin/add?arg={CID}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("access-control-expose-headers"), None);
    // pin/update needs resolve for a path.
    let a = post(addr, &format!("/api/v0/pin/update?arg=/ipns/x&arg={CID}")).await;
    assert_eq!(a.status, 500);
    let a = post(addr, "/api/v0/block/put?pin=true").await;
    assert_eq!(a.status, 500);
    assert!(a.json()["Message"].as_str().expect("m").contains("cannot reach"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn garbage_and_timeouts() {
    let s = setup(|c| {
        c.read_header_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    // A head that never ends is cut.
    let started = std::time::Instant::now();
    let out = raw(s.addr, b"POST /api/v0/id HTTP/1.1\r\nHost: x\r\n").await;
    assert!(out.is_empty(), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Garbage gets a 400 from hyper; an oversized head a 431.
    let out = raw(s.addr, b"\x00\x01 nonsense\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let big = format!("POST /api/v0/id HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let out = raw(s.addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // Bad escapes are a Kubo-style 400.
    let out = raw(s.addr, b"POST /api/v0/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // An idle keep-alive connection is closed after idle_timeout; the proxy still serves.
    let out = raw(s.addr, b"POST /api/v0/id HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(post(s.addr, "/api/v0/id").await.status, 200);
}

#[tokio::test]
async fn unix_sockets_both_sides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kubo, node, task) = start_kubo(FakeAddr::Unix(dir.path().join("kubo.sock"))).await;
    let listen = dir.path().join("proxy.sock");
    let config = cairn_ipfsproxy::ProxyConfig::new(vec![ListenAddr::Unix(listen.clone())], node);
    let proxy =
        cairn_ipfsproxy::serve(config, Arc::new(FakeCluster::default()), Arc::new(FakeExtras), Arc::new(OpenPolicy))
            .await
            .expect("proxy");
    let stream = tokio::net::UnixStream::connect(&listen).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let answer = sender.send_request(req("POST", "/api/v0/id")).await.expect("answer");
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(PEER));
    let answer = sender.send_request(req("POST", "/api/v0/repo/stat")).await.expect("answer");
    assert_eq!(
        answer.headers().get("access-control-expose-headers").map(|v| v.to_str().unwrap_or("")),
        Some("X-Stream-Output, X-Chunked-Output, X-Content-Length")
    );
    // No X-Forwarded-For from a unix socket client.
    assert!(kubo.seen_path("/api/v0/id")[0].headers.get("x-forwarded-for").is_none());
    proxy.shutdown().await;
    assert!(!listen.exists(), "socket removed at shutdown");
    task.abort();
}

#[tokio::test]
async fn https_to_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).expect("write ca");

    // A fake Kubo behind TLS.
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).expect("key");
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let kubo = Arc::new(FakeKubo::default());
    let k = kubo.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let k = k.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_conn(TokioIo::new(tls), k);
                }
            });
        }
    });

    let node = cairn_ipfs::DaemonAddr::Tcp { host: "localhost".into(), port };
    let mut config = cairn_ipfsproxy::ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().expect("a"))], node);
    config.node_https = true;
    config.node_ca_file = Some(ca_file);
    let proxy = cairn_ipfsproxy::serve(
        config.clone(),
        Arc::new(FakeCluster::default()),
        Arc::new(FakeExtras),
        Arc::new(OpenPolicy),
    )
    .await
    .expect("proxy");
    let ListenAddr::Tcp(addr) = proxy.local_addrs()[0] else { panic!("tcp") };
    let a = post(addr, "/api/v0/id").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["ID"], PEER);
    assert_eq!(kubo.seen_path("/api/v0/id").len(), 1);
    proxy.shutdown().await;

    // Without the CA the daemon's certificate is refused.
    config.node_ca_file = None;
    let proxy =
        cairn_ipfsproxy::serve(config, Arc::new(FakeCluster::default()), Arc::new(FakeExtras), Arc::new(OpenPolicy))
            .await;
    if let Ok(proxy) = proxy {
        let ListenAddr::Tcp(addr) = proxy.local_addrs()[0] else { panic!("tcp") };
        let a = post(addr, "/api/v0/id").await;
        assert_eq!(a.status, 502, "{}", a.text());
        proxy.shutdown().await;
    }
    task.abort();
}

#[tokio::test]
async fn startup_errors() {
    let node = cairn_ipfs::DaemonAddr::Tcp { host: "127.0.0.1".into(), port: 5001 };
    let open = || -> (Arc<FakeCluster>, Arc<FakeExtras>, Arc<OpenPolicy>) {
        (Arc::new(FakeCluster::default()), Arc::new(FakeExtras), Arc::new(OpenPolicy))
    };
    let (c, e, p) = open();
    let err = cairn_ipfsproxy::serve(cairn_ipfsproxy::ProxyConfig::new(vec![], node.clone()), c, e, p)
        .await
        .expect_err("no listener");
    assert!(matches!(err, cairn_ipfsproxy::ProxyError::NoListenAddress));
    let mut config = cairn_ipfsproxy::ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().expect("a"))], node);
    config.extract_headers_extra = vec!["not a header".into()];
    let (c, e, p) = open();
    let err = cairn_ipfsproxy::serve(config, c, e, p).await.expect_err("bad header");
    assert!(err.to_string().contains("extract_headers_extra"), "{err}");
}

#[tokio::test]
async fn many_streamed_requests_on_one_connection() {
    // Keep-alive across hijacked streams (trailers rewritten per response) and forwards.
    let s = setup(|_| {}).await;
    s.cluster.insert(Pin::new(cid(CID)));
    let stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    for i in 0..6 {
        let target = if i % 2 == 0 { "/api/v0/pin/ls?stream=true" } else { "/api/v0/id" };
        let answer = sender.send_request(req("POST", target)).await.expect("answer");
        assert_eq!(answer.status(), 200);
        let collected = answer.into_body().collect().await.expect("body");
        assert!(!collected.to_bytes().is_empty());
    }
}

/// Records what the proxy reports per request.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(cairn_api::Api, String, u16)>>);

impl cairn_api::RequestObserver for Recorded {
    fn observe(&self, api: cairn_api::Api, route: &str, status: u16, _: Duration) {
        self.0.lock().expect("lock").push((api, route.to_owned(), status));
    }
}

#[tokio::test]
async fn every_request_is_reported_with_a_bounded_route_label() {
    let recorded = Arc::new(Recorded::default());
    let observer = recorded.clone();
    let s = setup(move |c| c.observer = cairn_api::Observer(Some(observer))).await;
    post(s.addr, &format!("/api/v0/pin/add/{CID}")).await;
    post(s.addr, "/api/v0/pin/rm").await;
    post(s.addr, "/api/v0/id").await;
    post(s.addr, "/api/v0/teapot").await;
    send(s.addr, req("OPTIONS", "/api/v0/add")).await;
    let got = recorded.0.lock().expect("lock").clone();
    let api = cairn_api::Api::Ipfsproxy;
    assert_eq!(
        got,
        [
            (api, "/api/v0/pin/add/{arg}".to_owned(), 200),
            (api, "/api/v0/pin/rm".to_owned(), 400),
            (api, "forwarded".to_owned(), 200),
            (api, "forwarded".to_owned(), 418),
            (api, "forwarded".to_owned(), 200),
        ]
    );
}
