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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the REST API");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("write request");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_with_real_ipfs_daemons_allocate_pin_unpin_and_recover() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = tokio::join!(IpfsDaemon::start(), IpfsDaemon::start(), IpfsDaemon::start());
    let daemons = [a.expect("ipfs a"), b.expect("ipfs b"), c.expect("ipfs c")];

    let mut peers = Vec::new();
    let mut secret = Value::Null;
    for (i, ipfs) in daemons.into_iter().enumerate() {
        let dir = init_named(tmp.path(), &format!("peer{i}"), &[]);
        let identity: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
        let api = free_port();
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
            v["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = ipfs_addr.into();
            v["ipfs_connector"]["ipfshttp"]["pin_timeout"] = "20s".into();
            for informer in ["disk", "tags", "pinqueue"] {
                v["informer"][informer]["metric_ttl"] = "4s".into();
            }
        });
        peers.push((dir, Peer { id: identity["id"].as_str().expect("id").to_string(), api, ipfs, daemon: None }));
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
    let mut peers: Vec<Peer> = peers.into_iter().map(|(_, p)| p).collect();
    let api = peers[0].api;

    // Allocation needs every peer's freespace and tag metrics.
    let deadline = Instant::now() + Duration::from_secs(90);
    while json(api, "GET", "/monitor/metrics/freespace").as_array().map_or(0, Vec::len) < 3 {
        assert!(Instant::now() < deadline, "not every peer published freespace");
        std::thread::sleep(Duration::from_millis(500));
    }

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
    for peer in &mut peers {
        if let Some(d) = peer.daemon.as_mut() {
            d.signal("TERM");
            d.wait_exit(common::STOP);
        }
    }
}
