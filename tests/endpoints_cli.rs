//! Every endpoint of a `cairn daemon` (REST API, Pinning Service API, IPFS proxy, the REST API
//! over libp2p-http, Prometheus): each listens when its section is there and its port is closed
//! when the section is removed; the security summary names every listener; the `cairn` client
//! reaches the API over libp2p-http (its own host, or the cluster host in raft mode); `/metrics`
//! passes `promtool check metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).expect("read")).expect("json")
}

/// The TCP port of a `/ip4/127.0.0.1/tcp/<port>` multiaddress.
fn port_of(multiaddr: &Value) -> u16 {
    let text = multiaddr.as_str().expect("one address");
    text.rsplit('/').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {text}"))
}

fn is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
}

/// One HTTP/1.1 request, the whole answer as text.
fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn each_endpoint_listens_with_its_section_and_is_closed_without_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let metrics = free_port();
    edit(&dir, |v| {
        v["observations"]["metrics"]["prometheus_endpoint"] = format!("/ip4/127.0.0.1/tcp/{metrics}").into();
    });
    let v = config(&dir);
    let rest = port_of(&v["api"]["restapi"]["http_listen_multiaddress"]);
    let pinsvc = port_of(&v["api"]["pinsvcapi"]["http_listen_multiaddress"]);
    let proxy = port_of(&v["api"]["ipfsproxy"]["listen_multiaddress"]);

    let mut daemon = Daemon::spawn({
        let mut cmd = cairn(&dir);
        cmd.args(["daemon", "--stats"]);
        cmd
    });
    daemon.wait_for(&["cairn daemon ready"], START);
    let log = daemon.log();
    for port in [rest, pinsvc, proxy, metrics] {
        assert!(is_open(port), "port {port} is closed with its section present\n{log}");
    }
    // The security summary: one line per listener, and the open REST API is on loopback, so
    // no warning about it.
    for name in ["cluster swarm", "restapi", "pinsvcapi", "ipfsproxy", "prometheus"] {
        assert!(log.contains(&format!("listener {name}")), "no summary line for {name}\n{log}");
    }
    assert!(!log.contains("has no authentication and is not bound to loopback"), "{log}");

    // The Pinning Service API serves the spec: 202 and a request id that is not the CID.
    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let answer = http(pinsvc, "POST", "/pins", &format!(r#"{{"cid":"{cid}","name":"spec"}}"#));
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("")).expect("PinStatus");
    let request_id = body["requestid"].as_str().expect("requestid");
    assert_ne!(request_id, cid);
    assert_eq!(body["pin"]["cid"], cid);
    // No IPFS daemon runs here, so the delegates are this cluster peer's own addresses.
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
    let delegates = body["delegates"].as_array().expect("delegates");
    assert!(!delegates.is_empty(), "{body}");
    assert!(
        delegates.iter().all(|d| d.as_str().is_some_and(|d| d.ends_with(own["id"].as_str().expect("id")))),
        "{body}"
    );
    let answer = http(pinsvc, "GET", &format!("/pins/{request_id}"), "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = http(pinsvc, "GET", "/pins?limit=0", "");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""reason""#), "a Failure body: {answer}");

    // The proxy answers pin/ls from the cluster's pinset (no IPFS daemon needed).
    let answer = http(proxy, "POST", "/api/v0/pin/ls", "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Prometheus text that promtool accepts (promtool is installed by .ci/run).
    let text = http(metrics, "GET", "/metrics", "");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert!(body.contains("cairn_"), "{text}");
    // The Pinning Service API requests above were counted by route pattern and status.
    assert!(body.contains("cairn_api_requests_total") && body.contains("/pins/{requestid}"), "{text}");
    assert!(body.contains(r#"api="ipfsproxy",route="/api/v0/pin/ls",status="200""#), "{text}");
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            child.stdin.take().expect("stdin").write_all(dechunk(body).as_bytes()).expect("feed promtool");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => {
            // .ci/run installs promtool and sets CAIRN_REQUIRE_PROMTOOL: there the check must run.
            assert!(
                std::env::var_os("CAIRN_REQUIRE_PROMTOOL").is_none(),
                "promtool not found ({e}) but CAIRN_REQUIRE_PROMTOOL is set (apt-get install prometheus)"
            );
            eprintln!("promtool not found ({e}); the metrics text was not checked by it");
        }
    }
    daemon.signal("TERM");
    daemon.wait_exit(STOP);

    // Without the sections (and without --stats), nothing listens there.
    edit(&dir, |v| {
        let api = v["api"].as_object_mut().expect("api");
        api.remove("restapi");
        api.remove("pinsvcapi");
        api.remove("ipfsproxy");
    });
    let mut daemon = Daemon::start(&dir);
    daemon.wait_for(&["cairn daemon ready"], START);
    for port in [rest, pinsvc, proxy, metrics] {
        assert!(!is_open(port), "port {port} is open without its section");
    }
    daemon.signal("TERM");
    daemon.wait_exit(STOP);
}

/// A body in `Transfer-Encoding: chunked`, decoded (a plain body is returned as it is).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn the_client_reaches_the_rest_api_over_libp2p_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    // The API host's own identity, as IPFS Cluster keeps it: `id` and `private_key` in the
    // restapi section (taken here from a second init's identity.json).
    let other = init_named(tmp.path(), "api-identity", &[]);
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(other.join("identity.json")).expect("read")).expect("json");
    let api_id = identity["id"].as_str().expect("id").to_string();
    let port = free_port();
    edit(&dir, |v| {
        v["api"]["restapi"]["libp2p_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{port}").into();
        v["api"]["restapi"]["id"] = api_id.clone().into();
        v["api"]["restapi"]["private_key"] = identity["private_key"].clone();
    });
    let mut daemon = Daemon::start(&dir);
    daemon.wait_for(&["cairn daemon ready"], START);
    let log = daemon.log();
    assert!(log.contains("REST API listening (libp2p-http)"), "{log}");

    let host = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{api_id}");
    let (ok, out, err) = run(&dir, &["id", "--host", &host, "--enc", "json"]);
    assert!(ok, "cairn id over libp2p-http failed: {err}");
    let id: Value = serde_json::from_str(&out).expect("the API's ID JSON");
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
    assert_eq!(id["id"], own["id"], "the cluster peer answered, through its API host {api_id}");

    // A wrong peer id at that address is refused with the reason, not a hang.
    let wrong = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", own["id"].as_str().expect("id"));
    let (ok, _, err) = run(&dir, &["id", "--host", &wrong]);
    assert!(!ok && err.to_lowercase().contains("peer"), "{err}");
    daemon.signal("TERM");
    daemon.wait_exit(STOP);
}

#[test]
fn raft_serves_the_rest_api_over_libp2p_http_on_the_cluster_host_and_crdt_does_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &["--consensus", "raft"]);
    edit(&dir, |v| v["api"]["restapi"]["basic_auth_credentials"] = serde_json::json!({"admin": "pw"}));
    let cfg = config(&dir);
    let secret = cfg["cluster"]["secret"].as_str().expect("init writes a secret").to_string();
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
    let peer = own["id"].as_str().expect("id").to_string();
    let host = format!("{}/p2p/{peer}", cfg["cluster"]["listen_multiaddress"].as_str().expect("one address"));
    let mut daemon = Daemon::start(&dir);
    daemon.wait_for(&["cairn daemon ready"], START);
    let log = daemon.log();
    assert!(log.contains("REST API listening (libp2p-http on the cluster host)"), "{log}");
    assert!(log.contains("restapi (libp2p-http, cluster host)"), "the security summary lists it: {log}");

    // With the secret and the API's credentials: the cluster host answers the REST API.
    let (ok, out, err) =
        run(&dir, &["id", "--host", &host, "--secret", &secret, "--basic-auth", "admin:pw", "--enc", "json"]);
    assert!(ok, "cairn id over the cluster host failed: {err}");
    let id: Value = serde_json::from_str(&out).expect("the API's ID JSON");
    assert_eq!(id["id"].as_str(), Some(peer.as_str()));
    // The API's authorizer still decides: no credentials, no answer.
    let (ok, _, err) = run(&dir, &["id", "--host", &host, "--secret", &secret]);
    assert!(!ok && err.contains("401"), "{err}");
    // Without the secret the private network keeps the client out.
    let (ok, _, err) = run(&dir, &["id", "--host", &host, "--basic-auth", "admin:pw"]);
    assert!(!ok && err.contains(&peer), "{err}");
    daemon.signal("TERM");
    daemon.wait_exit(STOP);

    // crdt never serves it on the cluster host.
    let dir = init_named(tmp.path(), "crdt", &[]);
    let cfg = config(&dir);
    let secret = cfg["cluster"]["secret"].as_str().expect("init writes a secret").to_string();
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
    let host = format!(
        "{}/p2p/{}",
        cfg["cluster"]["listen_multiaddress"].as_str().expect("one address"),
        own["id"].as_str().expect("id")
    );
    let mut daemon = Daemon::start(&dir);
    daemon.wait_for(&["cairn daemon ready"], START);
    let (ok, _, err) = run(&dir, &["id", "--host", &host, "--secret", &secret]);
    assert!(!ok && err.contains("does not support /libp2p-http"), "{err}");
    daemon.signal("TERM");
    daemon.wait_exit(STOP);
}

/// A fake OTLP/HTTP collector on a free port: keeps every request body, answers 200.
fn fake_collector() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let kept = kept.clone();
            // One thread per connection: the exporter keeps connections alive between batches.
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let mut reader = std::io::BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    kept.lock().expect("lock").push(body);
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, bodies)
}

#[test]
fn one_api_request_is_one_trace_across_peers() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    let (collector, bodies) = fake_collector();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs = [init_named(tmp.path(), "a", &[]), init_named(tmp.path(), "b", &[])];
    let ids: Vec<String> = dirs
        .iter()
        .map(|dir| {
            let identity: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
            identity["id"].as_str().expect("id").to_string()
        })
        .collect();
    let secret = config(&dirs[0])["cluster"]["secret"].clone();
    let a_swarm =
        format!("{}/p2p/{}", config(&dirs[0])["cluster"]["listen_multiaddress"].as_str().expect("one"), ids[0]);
    for (i, dir) in dirs.iter().enumerate() {
        edit(dir, |v| {
            v["cluster"]["secret"] = secret.clone();
            v["cluster"]["peername"] = format!("peer-{i}").into();
            v["cluster"]["monitor_ping_interval"] = "1s".into();
            v["observations"]["tracing"]["enable_tracing"] = true.into();
            v["observations"]["tracing"]["sampling_prob"] = 1.0.into();
            v["observations"]["tracing"]["otlp_endpoint"] = format!("http://127.0.0.1:{collector}").into();
            if i == 1 {
                v["cluster"]["peer_addresses"] = serde_json::json!([a_swarm]);
            }
        });
    }
    let mut daemons: Vec<Daemon> = dirs
        .iter()
        .map(|dir| {
            let mut cmd = cairn(dir);
            cmd.args(["daemon", "--consensus-only"]);
            let mut daemon = Daemon::spawn(cmd);
            daemon.wait_for(&["cairn daemon ready"], START);
            daemon
        })
        .collect();
    assert!(daemons[0].log().contains("tracing: exporting spans over OTLP/HTTP"), "{}", daemons[0].log());

    // `peers ls` on A asks every peer for its ID over the peer RPC; wait until B answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, _) = run(&dirs[0], &["peers", "ls"]);
        // B's own line (its peername) means B answered the ID call; IPFS errors are expected
        // with --consensus-only.
        if ok && out.contains(&format!("{} | peer-1", ids[1])) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "B never answered A's peers ls:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Stopping flushes each peer's last batch of spans.
    for daemon in &mut daemons {
        daemon.signal("TERM");
        daemon.wait_exit(STOP);
    }

    // (peer, name, trace id, span id, parent span id) of every exported span.
    let mut spans = Vec::new();
    for body in bodies.lock().expect("lock").iter() {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP protobuf export");
        for resource_spans in &request.resource_spans {
            let resource = resource_spans.resource.as_ref().expect("resource");
            let cluster_id = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "cluster_id")
                .map(|kv| format!("{:?}", kv.value))
                .unwrap_or_default();
            let peer = ids.iter().position(|id| cluster_id.contains(id.as_str())).expect("a peer's cluster_id");
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push((
                    peer,
                    span.name.clone(),
                    span.trace_id.clone(),
                    span.span_id.clone(),
                    span.parent_span_id.clone(),
                ));
            }
        }
    }
    // A served call on B whose parent is an rpc.call on A, inside one of A's API requests.
    let joined = spans.iter().filter(|(peer, name, ..)| *peer == 1 && name == "rpc.serve").find_map(
        |(_, _, trace, _, parent)| {
            let call =
                spans.iter().find(|(p, n, t, id, _)| *p == 0 && n == "rpc.call" && t == trace && id == parent)?;
            spans.iter().find(|(p, n, t, id, _)| *p == 0 && n == "api.request" && *t == call.2 && *id == call.4)
        },
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let names: Vec<String> = spans
        .iter()
        .map(|(p, n, t, id, parent)| format!("peer {p} {n} trace {} span {} parent {}", hex(t), hex(id), hex(parent)))
        .collect();
    assert!(joined.is_some(), "no api.request (A) -> rpc.call (A) -> rpc.serve (B) trace among {names:?}");
}
