//! Three `cairn daemon` processes, each with its own real IPFS daemon (js-ipfs from the
//! tests/ipfs harness), driven through the REST API: allocation with replication factors and
//! user allocations, the tracker pinning and unpinning in IPFS, `remote` status, an IPFS
//! daemon going down (`pin_error` with its error) and `recover` once it is back.
//!
//! js-ipfs daemons here do not exchange blocks over bitswap (see tests/ipfs/README.md), so the
//! test puts each block into every IPFS daemon first; what is checked is Cairn's part: which
//! daemons are asked to pin, and what status each peer reports.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_ipfs::testing::IpfsDaemon;
use cairn_ipfs::{BlockPutOptions, IpfsConnector, PinStatus};
use common::{Daemon, START, edit, free_port, init_named};
use serde_json::Value;

/// A minimal HTTP/1.1 client: one request per connection, chunked bodies decoded.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    http_with_body(port, method, path, "", &[])
}

/// [`http`] with a body of `content_type`.
fn http_with_body(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the REST API");
    stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let content_type =
        if content_type.is_empty() { String::new() } else { format!("Content-Type: {content_type}\r\n") };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write request");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn json(port: u16, method: &str, path: &str) -> Value {
    let (status, body) = http(port, method, path);
    assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
}

/// Polls `GET /pins/{cid}` on `port` until `check` accepts the peer map.
fn wait_status(port: u16, cid: &str, what: &str, check: impl Fn(&serde_json::Map<String, Value>) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = json(port, "GET", &format!("/pins/{cid}"));
        if let Some(map) = status["peer_map"].as_object()
            && check(map)
        {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {status}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn count(map: &serde_json::Map<String, Value>, status: &str) -> usize {
    map.values().filter(|p| p["status"] == status).count()
}

struct Peer {
    id: String,
    api: u16,
    /// The IPFS proxy's port (in front of this peer's js-ipfs daemon).
    proxy: u16,
    ipfs: IpfsDaemon,
    daemon: Option<Daemon>,
}

async fn pinned_in(ipfs: &IpfsDaemon, cid: &str) -> bool {
    let cid: cid::Cid = cid.parse().expect("cid");
    matches!(ipfs.connector().pin_ls_cid(cid, None).await, Ok(PinStatus::Recursive | PinStatus::Direct))
}

async fn put_everywhere(peers: &[Peer], data: &[u8]) -> String {
    let mut cid = String::new();
    for peer in peers {
        let options =
            BlockPutOptions { format: Some("raw".into()), mhtype: Some("sha2-256".into()), ..Default::default() };
        let info =
            peer.ipfs.connector().block_put(bytes::Bytes::copy_from_slice(data), options).await.expect("block/put");
        // Raw CIDv1, whatever base the daemon printed.
        cid = cid::Cid::new_v1(0x55, *info.cid.hash()).to_string();
    }
    cid
}

/// Three Cairn peers, each with its own js-ipfs daemon, knowing each other, with fast pings
/// and metric TTLs; `configure` edits each service.json further. Returns once every peer
/// published its freespace metric (allocation needs it).
async fn start_cluster(tmp: &std::path::Path, configure: impl Fn(&mut Value)) -> Vec<Peer> {
    let (a, b, c) = tokio::join!(IpfsDaemon::start(), IpfsDaemon::start(), IpfsDaemon::start());
    let daemons = [a.expect("ipfs a"), b.expect("ipfs b"), c.expect("ipfs c")];

    let mut peers = Vec::new();
    let mut secret = Value::Null;
    for (i, ipfs) in daemons.into_iter().enumerate() {
        let dir = init_named(tmp, &format!("peer{i}"), &[]);
        let identity: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
        let api = free_port();
        let proxy = free_port();
        let ipfs_addr = ipfs.api_multiaddr();
        edit(&dir, |v| {
            if secret.is_null() {
                secret = v["cluster"]["secret"].clone();
            }
            v["cluster"]["secret"] = secret.clone();
            v["cluster"]["monitor_ping_interval"] = "2s".into();
            v["cluster"]["disable_repinning"] = false.into();
            v["monitor"]["pubsubmon"]["check_interval"] = "1s".into();
            v["api"]["restapi"]["http_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{api}").into();
            v["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = ipfs_addr.clone().into();
            v["ipfs_connector"]["ipfshttp"]["pin_timeout"] = "20s".into();
            v["api"]["ipfsproxy"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{proxy}").into();
            v["api"]["ipfsproxy"]["node_multiaddress"] = ipfs_addr.into();
            for informer in ["disk", "tags", "pinqueue"] {
                v["informer"][informer]["metric_ttl"] = "4s".into();
            }
            configure(v);
        });
        peers
            .push((dir, Peer { id: identity["id"].as_str().expect("id").to_string(), api, proxy, ipfs, daemon: None }));
    }
    // Every peer knows every other's swarm address.
    let addrs: Vec<String> = peers
        .iter()
        .map(|(dir, p)| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).expect("read")).expect("json");
            format!("{}/p2p/{}", v["cluster"]["listen_multiaddress"].as_str().expect("listen"), p.id)
        })
        .collect();
    for (dir, peer) in peers.iter_mut() {
        let others: Vec<&String> = addrs.iter().filter(|a| !a.ends_with(&peer.id)).collect();
        edit(dir, |v| v["cluster"]["peer_addresses"] = serde_json::json!(others));
        let mut daemon = Daemon::start(dir);
        daemon.wait_for(&["cairn daemon ready"], START);
        peer.daemon = Some(daemon);
    }
    let peers: Vec<Peer> = peers.into_iter().map(|(_, p)| p).collect();
    let api = peers[0].api;
    // Allocation needs every peer's freespace and tag metrics.
    let deadline = Instant::now() + Duration::from_secs(90);
    while json(api, "GET", "/monitor/metrics/freespace").as_array().map_or(0, Vec::len) < 3 {
        assert!(Instant::now() < deadline, "not every peer published freespace");
        std::thread::sleep(Duration::from_millis(500));
    }

    peers
}

/// Stops every Cairn daemon (the IPFS daemons stop when dropped).
fn stop_all(peers: &mut [Peer]) {
    for peer in peers {
        if let Some(d) = peer.daemon.as_mut() {
            d.signal("TERM");
            d.wait_exit(common::STOP);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_with_real_ipfs_daemons_allocate_pin_unpin_and_recover() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut peers = start_cluster(tmp.path(), |_| {}).await;
    let api = peers[0].api;

    // Replication 2: exactly two IPFS daemons pin it, the third peer reports remote.
    let cid = put_everywhere(&peers, b"replicated twice").await;
    let pin = json(api, "POST", &format!("/pins/{cid}?replication=2&name=two"));
    let allocations: Vec<String> =
        pin["allocations"].as_array().expect("allocations").iter().map(|a| a.as_str().unwrap_or("").into()).collect();
    assert_eq!(allocations.len(), 2, "{pin}");
    wait_status(api, &cid, "two pinned, one remote", |m| count(m, "pinned") == 2 && count(m, "remote") == 1);
    for peer in &peers {
        assert_eq!(pinned_in(&peer.ipfs, &cid).await, allocations.contains(&peer.id), "IPFS of {}", peer.id);
    }
    // Unpin removes it from both.
    let (status, body) = http(api, "DELETE", &format!("/pins/{cid}"));
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    for peer in &peers {
        while pinned_in(&peer.ipfs, &cid).await {
            assert!(Instant::now() < deadline, "still pinned in the IPFS of {}", peer.id);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let (status, body) = http(api, "DELETE", &format!("/pins/{cid}"));
    assert_eq!((status, body.contains("pin is not part of the pinset")), (404, true), "{body}");

    // Replication -1: everywhere.
    let everywhere = put_everywhere(&peers, b"everywhere").await;
    json(peers[1].api, "POST", &format!("/pins/{everywhere}?replication=-1"));
    wait_status(api, &everywhere, "pinned on all three", |m| count(m, "pinned") == 3);

    // User allocations decide where a pin lands.
    let chosen = peers[2].id.clone();
    let placed = put_everywhere(&peers, b"user allocations").await;
    let pin = json(api, "POST", &format!("/pins/{placed}?replication=1&user-allocations={chosen}"));
    assert_eq!(pin["allocations"], serde_json::json!([chosen]), "{pin}");
    wait_status(api, &placed, "pinned on the chosen peer", |m| m.get(&chosen).is_some_and(|p| p["status"] == "pinned"));

    // IPFS daemon of peer 1 down: its new pin fails with the daemon's error; recover after it
    // returns brings it to pinned.
    let victim = peers[1].id.clone();
    let late = put_everywhere(&peers, b"while the daemon was down").await;
    peers[1].ipfs.stop().await;
    json(api, "POST", &format!("/pins/{late}?replication=1&user-allocations={victim}"));
    let failed = wait_status(api, &late, "pin_error on the peer whose IPFS is down", |m| {
        m.get(&victim).is_some_and(|p| p["status"] == "pin_error")
    });
    let error = failed["peer_map"][&victim]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("reach") || error.contains("connect"), "the daemon's error is shown: {error}");
    peers[1].ipfs.start_again().await.expect("ipfs back");
    json(api, "POST", &format!("/pins/{late}/recover"));
    wait_status(api, &late, "pinned after recover", |m| m.get(&victim).is_some_and(|p| p["status"] == "pinned"));

    // Every peer serves the same global view.
    let listed = json(peers[2].api, "GET", &format!("/allocations/{everywhere}"));
    assert_eq!(listed["cid"], everywhere.as_str());

    // Repinning: a holder dies (kill -9); once its ping expires (2 x 2 s) the pin is
    // re-allocated to the third peer, whose IPFS pins it.
    let (holder, survivor, spare) = (peers[1].id.clone(), peers[2].id.clone(), peers[0].id.clone());
    let moving = put_everywhere(&peers, b"repinned when a holder dies").await;
    let pin = json(api, "POST", &format!("/pins/{moving}?replication=2&user-allocations={holder},{survivor}"));
    assert_eq!(pin["allocations"].as_array().map(Vec::len), Some(2), "{pin}");
    wait_status(api, &moving, "pinned on both holders", |m| count(m, "pinned") == 2);
    let started = Instant::now();
    if let Some(mut d) = peers[1].daemon.take() {
        d.signal("KILL");
        d.wait_exit(common::STOP);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pin = json(api, "GET", &format!("/allocations/{moving}"));
        let allocs: Vec<&str> =
            pin["allocations"].as_array().expect("allocations").iter().filter_map(Value::as_str).collect();
        if allocs.contains(&spare.as_str()) && !allocs.contains(&holder.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "not re-allocated: {pin}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_status(api, &moving, "pinned on the new holder", |m| m.get(&spare).is_some_and(|p| p["status"] == "pinned"));
    assert!(pinned_in(&peers[0].ipfs, &moving).await);
    eprintln!("repinned {:?} after the holder was killed", started.elapsed());
    stop_all(&mut peers);
}

/// The CID (raw, CIDv1) of bytes that no IPFS daemon holds.
fn absent_cid(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    let hash = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("sha2-256 multihash");
    cid::Cid::new_v1(0x55, hash).to_string()
}

/// The IPFS Cluster client `@nftstorage/ipfs-cluster` (npm), unchanged, against the cluster:
/// version, id, peers, add (buffered array answer; the blocks reach the allocated daemons
/// through the peers, since these js-ipfs daemons do not exchange blocks), pin with options,
/// status, allocation, recover, metric names, a wrapped directory, unpin. Then, on the same
/// cluster with repinning off: content nobody has fails after `pin_timeout` while another pin
/// completes meanwhile, and a dead holder raises an alert but moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_cluster_client_works_unchanged_and_repinning_off_moves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut peers = start_cluster(tmp.path(), |v| {
        v["cluster"]["disable_repinning"] = true.into();
        v["ipfs_connector"]["ipfshttp"]["pin_timeout"] = "4s".into();
    })
    .await;
    let api = peers[0].api;

    let jsipfs = cairn_ipfs::testing::jsipfs_dir().await.expect("npm tools installed");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ipfs/cluster-client.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{api}"))
        .arg("3")
        .env("CAIRN_JSIPFS_DIR", &jsipfs)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the npm client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#""step":"done","ok":true"#), "{stdout}");

    // kubo-rpc-client (npm), unchanged, through peer 0's IPFS proxy: id is forwarded to its
    // daemon, add/pin/ls/repo.stat/rm are cluster operations.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ipfs/kubo-client.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}", peers[0].proxy))
        .arg("--keep")
        .env("NODE_PATH", jsipfs.join("node_modules"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubo-rpc-client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(steps[0]["id"], peers[0].ipfs.peer_id(), "id is the IPFS daemon's, forwarded: {stdout}");
    let proxied = steps[1]["cid"].as_str().expect("added cid").to_string();
    // The pin is a cluster pin (default replication: everywhere), pinned by every daemon.
    let pin = json(peers[2].api, "GET", &format!("/allocations/{proxied}"));
    assert_eq!(pin["cid"], proxied.as_str(), "{pin}");
    wait_status(api, &proxied, "the proxy's pin pinned everywhere", |m| count(m, "pinned") == 3);
    for peer in &peers {
        assert!(pinned_in(&peer.ipfs, &proxied).await, "IPFS of {} pinned the proxy's pin", peer.id);
    }
    let repo_stat = steps.iter().find(|s| s["step"] == "repo.stat").expect("repo.stat step");
    assert!(repo_stat["repoSize"].as_str().and_then(|s| s.parse::<u64>().ok()).is_some_and(|n| n > 0), "{repo_stat}");
    let (status, body) = http(peers[0].proxy, "POST", &format!("/api/v0/pin/rm?arg={proxied}"));
    assert_eq!(status, 200, "{body}");
    wait_status(api, &proxied, "unpinned through the proxy", |m| count(m, "unpinned") == 3);

    // Content nobody has: pin_error after pin_timeout; a pin queued behind it still completes.
    let missing = absent_cid(b"no IPFS daemon has this");
    let started = Instant::now();
    json(api, "POST", &format!("/pins/{missing}?replication=-1"));
    let present = put_everywhere(&peers, b"pinned while another pin stalls").await;
    json(api, "POST", &format!("/pins/{present}?replication=-1"));
    wait_status(api, &present, "pinned everywhere meanwhile", |m| count(m, "pinned") == 3);
    let moved_after = started.elapsed();
    let failed = wait_status(api, &missing, "pin_error everywhere", |m| count(m, "pin_error") == 3);
    let failed_after = started.elapsed();
    assert!(failed_after >= Duration::from_secs(4), "failed before pin_timeout: {failed_after:?}");
    assert!(moved_after < failed_after, "the other pin waited for the stalled one: {moved_after:?}");
    let error = failed["peer_map"][&peers[0].id]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("no progress for 4s"), "the error names the pin_timeout: {error}");

    // Repinning off: a holder dies; its ping expires (2 x 2 s) and an alert is raised, but the
    // pin keeps its allocations.
    let (holder, survivor) = (peers[1].id.clone(), peers[2].id.clone());
    let kept = put_everywhere(&peers, b"stays where it is").await;
    json(api, "POST", &format!("/pins/{kept}?replication=2&user-allocations={holder},{survivor}"));
    wait_status(api, &kept, "pinned on both holders", |m| count(m, "pinned") == 2);
    if let Some(mut d) = peers[1].daemon.take() {
        d.signal("KILL");
        d.wait_exit(common::STOP);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = json(api, "GET", "/health/alerts");
        let raised = alerts
            .as_array()
            .is_some_and(|a| a.iter().any(|alert| alert["peer"] == holder.as_str() && alert["name"] == "ping"));
        if raised {
            break;
        }
        assert!(Instant::now() < deadline, "no ping alert for the dead holder: {alerts}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Well past the time a repin takes with repinning on (the other test: a few seconds).
    std::thread::sleep(Duration::from_secs(8));
    let pin = json(api, "GET", &format!("/allocations/{kept}"));
    let mut allocations: Vec<&str> =
        pin["allocations"].as_array().expect("allocations").iter().filter_map(Value::as_str).collect();
    allocations.sort();
    let mut expected = vec![holder.as_str(), survivor.as_str()];
    expected.sort();
    assert_eq!(allocations, expected, "nothing moves with repinning off: {pin}");
    assert!(!pinned_in(&peers[0].ipfs, &kept).await, "the spare peer's IPFS did not pin it");
    stop_all(&mut peers);
}

/// `POST /add` of one file as kubo sends it (multipart, `file` field); the answer's lines.
fn add_file(port: u16, query: &str, name: &str, data: &[u8]) -> Vec<Value> {
    let boundary = "cairn-test-boundary-7d1e";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let (status, answer) = http_with_body(port, "POST", &format!("/add?{query}"), &content_type, &body);
    assert_eq!(status, 200, "{answer}");
    answer.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Deterministic bytes that do not compress into few distinct blocks.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The acceptance run again with `ipfs_connector.embedded`: three peers and no IPFS daemon
/// anywhere. A file added on peer A into A's node only (`local=true`) and pinned with
/// replication 3 is fetched by B's and C's nodes from A over their swarm (bitswap, private
/// network keyed by the cluster secret) and pinned there; a normal add with replication 2
/// sends the blocks to the two allocated peers, the third reports `remote`; unpin removes it.
#[test]
fn three_peers_with_embedded_ipfs_nodes_add_fetch_and_pin() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dirs = Vec::new();
    let mut secret = Value::Null;
    for i in 0..3 {
        let dir = init_named(tmp.path(), &format!("peer{i}"), &["--ipfs", "embedded"]);
        let api = free_port();
        edit(&dir, |v| {
            if secret.is_null() {
                secret = v["cluster"]["secret"].clone();
            }
            v["cluster"]["secret"] = secret.clone();
            v["cluster"]["monitor_ping_interval"] = "2s".into();
            v["cluster"]["disable_repinning"] = false.into();
            v["monitor"]["pubsubmon"]["check_interval"] = "1s".into();
            v["api"]["restapi"]["http_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{api}").into();
            v["ipfs_connector"]["embedded"]["listen_multiaddress"] = serde_json::json!(["/ip4/127.0.0.1/tcp/0"]);
            v["ipfs_connector"]["embedded"]["pin_timeout"] = "30s".into();
            for informer in ["disk", "tags", "pinqueue"] {
                v["informer"][informer]["metric_ttl"] = "4s".into();
            }
        });
        let identity: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
        dirs.push((dir, identity["id"].as_str().expect("id").to_string(), api));
    }
    let addrs: Vec<String> = dirs
        .iter()
        .map(|(dir, id, _)| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).expect("read")).expect("json");
            format!("{}/p2p/{id}", v["cluster"]["listen_multiaddress"].as_str().expect("listen"))
        })
        .collect();
    let mut daemons = Vec::new();
    for (dir, id, _) in &dirs {
        let others: Vec<&String> = addrs.iter().filter(|a| !a.ends_with(id.as_str())).collect();
        edit(dir, |v| v["cluster"]["peer_addresses"] = serde_json::json!(others));
        let mut daemon = Daemon::start(dir);
        daemon.wait_for(&["cairn daemon ready"], START);
        daemons.push(daemon);
    }
    let api = dirs[0].2;
    let deadline = Instant::now() + Duration::from_secs(90);
    while json(api, "GET", "/monitor/metrics/freespace").as_array().map_or(0, Vec::len) < 3 {
        assert!(Instant::now() < deadline, "not every peer published freespace");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Only A's node gets the blocks; B and C fetch them over bitswap.
    let data = pseudo_random(700_000, 1);
    let lines = add_file(api, "local=true&replication-min=3&replication-max=3&name=fetched", "fetched.bin", &data);
    let root = lines.last().expect("root line");
    let cid = root["cid"].as_str().expect("cid").to_string();
    assert_eq!(root["allocations"].as_array().map(Vec::len), Some(3), "{lines:?}");
    let started = Instant::now();
    wait_status(api, &cid, "pinned by all three nodes", |m| count(m, "pinned") == 3);
    eprintln!("B and C fetched and pinned {cid} ({} bytes) in {:?}", data.len(), started.elapsed());

    // A normal add sends the blocks to the two allocated peers.
    let data = pseudo_random(300_000, 2);
    let lines = add_file(dirs[1].2, "replication-min=2&replication-max=2", "twice.bin", &data);
    let root = lines.last().expect("root line");
    let twice = root["cid"].as_str().expect("cid").to_string();
    assert_eq!(root["allocations"].as_array().map(Vec::len), Some(2), "{lines:?}");
    wait_status(api, &twice, "two pinned, one remote", |m| count(m, "pinned") == 2 && count(m, "remote") == 1);

    // Repinning: a holder other than peer 0 dies; the spare peer's node fetches the content
    // from the surviving holder's node and pins it.
    let holders: Vec<String> = root["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let victim = dirs.iter().position(|(_, id, _)| holders.contains(id) && *id != dirs[0].1).expect("a holder to kill");
    let spare = dirs.iter().position(|(_, id, _)| !holders.contains(id)).expect("a spare peer");
    let spare_id = dirs[spare].1.clone();
    daemons[victim].signal("KILL");
    daemons[victim].wait_exit(common::STOP);
    let started = Instant::now();
    wait_status(api, &twice, "re-pinned on the spare peer", |m| {
        m.get(&spare_id).is_some_and(|p| p["status"] == "pinned")
    });
    eprintln!("repinned {twice} on the spare embedded node {:?} after the holder was killed", started.elapsed());

    // Unpin removes it everywhere.
    let (status, body) = http(api, "DELETE", &format!("/pins/{cid}"));
    assert_eq!(status, 200, "{body}");
    wait_status(api, &cid, "unpinned on the live peers", |m| {
        m.iter().filter(|(peer, _)| **peer != dirs[victim].1).all(|(_, p)| p["status"] == "unpinned")
    });
    for (i, daemon) in daemons.iter_mut().enumerate() {
        if i != victim {
            daemon.signal("TERM");
            daemon.wait_exit(common::STOP);
        }
    }
}
