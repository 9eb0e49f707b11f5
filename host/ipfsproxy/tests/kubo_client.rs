//! The acceptance client `tests/ipfs/kubo-client.mjs` (kubo-rpc-client) against the proxy: once
//! in front of the fake Kubo, once in front of a real js-ipfs daemon (the `tests/ipfs` harness),
//! the cluster being the fake in both. Node and npm are needed; a missing one is a failure, not a
//! skip, as with the js-ipfs harness.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_api::{ListenAddr, OpenPolicy};
use common::*;
use serde_json::Value;
use tokio::process::Command;

/// Bound of one client run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/ipfs/kubo-client.mjs")
}

/// The npm tools of tests/ipfs (kubo-rpc-client is installed next to js-ipfs).
async fn install_dir() -> PathBuf {
    cairn_ipfs::testing::jsipfs_dir().await.expect("tests/ipfs/install.sh")
}

/// Runs kubo-client.mjs against `url`; its JSON lines, asserting every step passed.
async fn run_client(url: &str) -> Vec<Value> {
    let node_path = install_dir().await.join("node_modules");
    let run = Command::new("node").arg(script()).arg(url).env("NODE_PATH", node_path).kill_on_drop(true).output();
    let out = tokio::time::timeout(CLIENT_TIMEOUT, run).await.expect("client in time").expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubo-client.mjs failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let steps: Vec<&str> = lines.iter().map(|l| l["step"].as_str().unwrap_or("")).collect();
    assert_eq!(steps, ["id", "add", "pin.add", "pin.ls", "repo.stat", "pin.rm"], "{stdout}");
    assert!(lines.iter().all(|l| l["ok"] == true), "{stdout}");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubo_rpc_client_against_the_fake_daemon() {
    let s = setup(|_| {}).await;
    let lines = run_client(&s.url("")).await;
    assert_eq!(lines[0]["id"], PEER);
    // The fake adder's root, pinned, listed and unpinned through the cluster.
    assert_eq!(lines[1]["cid"], CID2);
    assert_eq!(lines[1]["size"], 7);
    assert_eq!(lines[2]["cid"], CID2);
    assert_eq!(lines[4]["repoSize"], "1000");
    assert_eq!(lines[5]["cid"], CID2);
    let calls = s.cluster.calls();
    assert!(calls.iter().any(|c| c.starts_with("add ")), "{calls:?}");
    assert!(calls.contains(&format!("pin_path /ipfs/{CID2} mode=Recursive")), "{calls:?}");
    assert!(calls.contains(&format!("unpin_path /ipfs/{CID2}")), "{calls:?}");
    assert_eq!(s.kubo.seen_path("/api/v0/id").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_front_of_a_real_js_ipfs_daemon() {
    let daemon = cairn_ipfs::testing::IpfsDaemon::start().await.expect("js-ipfs daemon");
    let node = cairn_ipfs::DaemonAddr::parse(&daemon.api_multiaddr()).expect("multiaddr");
    let config = cairn_ipfsproxy::ProxyConfig::new(vec![ListenAddr::Tcp("127.0.0.1:0".parse().expect("a"))], node);
    let cluster = Arc::new(FakeCluster::default());
    let proxy = cairn_ipfsproxy::serve(config, cluster.clone(), Arc::new(FakeExtras), Arc::new(OpenPolicy))
        .await
        .expect("proxy");
    let ListenAddr::Tcp(addr) = proxy.local_addrs()[0] else { panic!("tcp") };

    // kubo-rpc-client's id() is forwarded to js-ipfs.
    let lines = run_client(&format!("http://{addr}")).await;
    assert_eq!(lines[0]["id"], daemon.peer_id());

    // A forwarded call with a body, and block/put?pin=true: js-ipfs stores (and pins) the
    // block, the proxy cluster-pins the key it answers. (js-ipfs honours only the legacy `format`.)
    let block = multipart(&[("blk", b"cairn proxy block")]);
    let put = |target: &str| {
        http::Request::builder()
            .method("POST")
            .uri(target)
            .header("content-type", "multipart/form-data; boundary=XXB")
            .body(full(block.clone()))
            .expect("request")
    };
    let a = send(addr, put("/api/v0/block/put?format=raw&pin=true")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let key = a.lines()[0]["Key"].as_str().expect("key").to_owned();
    assert!(cluster.calls().contains(&format!("pin {key} mode=Recursive")), "{:?}", cluster.calls());
    let a = post(addr, &format!("/api/v0/block/get?arg={key}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], b"cairn proxy block");
    let a = post(addr, "/api/v0/version").await;
    assert_eq!(a.status, 200);
    assert!(a.json()["Version"].is_string());
    proxy.shutdown().await;
}
