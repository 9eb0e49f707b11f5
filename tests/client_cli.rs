//! The `cairn` client commands (ipfs-cluster-ctl's) against a real `cairn_api` server on
//! 127.0.0.1 with a scripted cluster behind it and Basic/Bearer auth in front: what reaches
//! the cluster, what is printed, and the exit codes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_api::*;
use futures::StreamExt;
use futures::future::BoxFuture;

const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
const CID2: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
/// Pinning this CID fails on one peer (for `--wait`).
const FAILING: &str = "QmSnuWmxptJZdLJpKRarxBMS2Ju2oANVrgbr2xWbie9b2D";
const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
const PEER2: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
const TOKEN: &str = "tok-admin";

fn cid(s: &str) -> Cid {
    Cid::parse(s).expect("test CID")
}

/// A two-peer cluster with scripted answers that records what it was asked.
#[derive(Default)]
struct Cluster {
    calls: Mutex<Vec<String>>,
    /// Status polls per CID, so that a pin becomes pinned on the third poll.
    polls: Mutex<BTreeMap<String, u32>>,
}

impl Cluster {
    fn record(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    fn info(status: TrackerStatus, error: &str) -> PinInfoShort {
        PinInfoShort { peername: String::new(), status, error: error.into(), ..PinInfoShort::default() }
    }

    fn gpi(c: &str, name: &str, statuses: [TrackerStatus; 2]) -> GlobalPinInfo {
        let mut g = GlobalPinInfo::new(cid(c));
        g.name = name.into();
        g.peer_map.insert(PEER.into(), PinInfoShort { peername: "peer0".into(), ..Self::info(statuses[0], "") });
        g.peer_map.insert(
            PEER2.into(),
            Self::info(statuses[1], if statuses[1] == TrackerStatus::PinError { "disk full" } else { "" }),
        );
        g
    }
}

fn describe(options: &PinOptions) -> String {
    format!(
        "name={} rmin={} rmax={} mode={:?} allocs={:?} meta={:?}",
        options.name,
        options.replication_factor_min,
        options.replication_factor_max,
        options.mode,
        options.user_allocations,
        options.metadata
    )
}

impl ClusterApi for Cluster {
    fn id(&self) -> ApiFuture<'_, Id> {
        Box::pin(async {
            Ok(Id {
                id: PEER.into(),
                peername: "peer0".into(),
                version: "1.1.6".into(),
                cluster_peers: vec![PEER.into(), PEER2.into()],
                addresses: vec![format!("/ip4/127.0.0.1/tcp/9096/p2p/{PEER}")],
                ..Id::default()
            })
        })
    }

    fn version(&self) -> ApiFuture<'_, Version> {
        Box::pin(async { Ok(Version { version: "1.1.6".into() }) })
    }

    fn peers(&self) -> ApiStream<Id> {
        let ids = vec![
            Ok(Id { id: PEER.into(), peername: "peer0".into(), ..Id::default() }),
            Ok(Id { id: PEER2.into(), error: "dial backoff".into(), ..Id::default() }),
        ];
        futures::stream::iter(ids).boxed()
    }

    fn peer_add(&self, peer_id: String) -> ApiFuture<'_, Id> {
        Box::pin(async move { Ok(Id { id: peer_id, ..Id::default() }) })
    }

    fn peer_remove(&self, peer_id: String) -> ApiFuture<'_, ()> {
        self.record(format!("peer_remove {peer_id}"));
        Box::pin(async { Ok(()) })
    }

    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin> {
        self.record(format!("pin {cid} {}", describe(&options)));
        Box::pin(async move { Ok(Pin::with_options(cid, options)) })
    }

    fn pin_path(&self, path: String, options: PinOptions) -> ApiFuture<'_, Pin> {
        self.record(format!("pin_path {path} {}", describe(&options)));
        let target = path.trim_start_matches("/ipfs/").split('/').next().unwrap_or_default().to_owned();
        Box::pin(async move {
            let c = Cid::parse(&target).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Pin::with_options(c, options))
        })
    }

    fn unpin(&self, _cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async { Err(ApiError::pin_not_found()) })
    }

    /// Only CID is pinned; anything else is not in the pinset.
    fn unpin_path(&self, path: String) -> ApiFuture<'_, Pin> {
        self.record(format!("unpin_path {path}"));
        Box::pin(async move {
            if path == format!("/ipfs/{CID}") { Ok(Pin::new(cid(CID))) } else { Err(ApiError::pin_not_found()) }
        })
    }

    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        self.record(format!("allocations all={}", filter == PinTypeFilter::ALL));
        let mut named = Pin::new(cid(CID));
        named.options.name = "docs".into();
        named.options.replication_factor_min = 1;
        named.options.replication_factor_max = 2;
        named.allocations = vec![PEER.into()];
        futures::stream::iter([Ok(named), Ok(Pin::new(cid(CID2)))]).boxed()
    }

    fn allocation(&self, cid: Cid) -> ApiFuture<'_, Pin> {
        Box::pin(async move { if cid.as_str() == CID { Ok(Pin::new(cid)) } else { Err(ApiError::pin_not_found()) } })
    }

    /// Two pins; with `local`, one and then an error in the trailer.
    fn status_all(&self, filter: TrackerFilter, local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!(
            "status_all pinned={} pin_error={} local={local}",
            filter.matches(TrackerStatus::Pinned),
            filter.matches(TrackerStatus::PinError)
        ));
        let pinned = Self::gpi(CID, "docs", [TrackerStatus::Pinned, TrackerStatus::Remote]);
        let failed = Self::gpi(CID2, "", [TrackerStatus::Pinned, TrackerStatus::PinError]);
        let items = if local {
            vec![Ok(pinned), Err(ApiError::internal("tracker went away"))]
        } else {
            [pinned, failed].into_iter().filter(|g| g.matches(filter)).map(Ok).collect()
        };
        futures::stream::iter(items).boxed()
    }

    fn status_cids(&self, cids: Vec<Cid>, _local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!("status_cids {}", cids.len()));
        let items: Vec<_> = cids
            .into_iter()
            .map(|c| Ok(Self::gpi(c.as_str(), "", [TrackerStatus::Pinned, TrackerStatus::Remote])))
            .collect();
        futures::stream::iter(items).boxed()
    }

    /// CID becomes pinned on the third poll; FAILING fails on the second peer.
    fn status(&self, c: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        self.record(format!("status {c} local={local}"));
        let polls = {
            let mut polls = self.polls.lock().expect("polls");
            let n = polls.entry(c.to_string()).or_default();
            *n += 1;
            *n
        };
        Box::pin(async move {
            use TrackerStatus::*;
            let statuses = match c.as_str() {
                FAILING => [Pinning, PinError],
                _ if polls < 3 => [PinQueued, Remote],
                _ => [Pinned, Remote],
            };
            Ok(Self::gpi(c.as_str(), "docs", statuses))
        })
    }

    fn recover(&self, c: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo> {
        self.record(format!("recover {c} local={local}"));
        Box::pin(async move { Ok(Self::gpi(c.as_str(), "", [TrackerStatus::PinQueued, TrackerStatus::Remote])) })
    }

    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!("recover_all local={local}"));
        futures::stream::iter([Ok(Self::gpi(CID2, "", [TrackerStatus::PinQueued, TrackerStatus::Remote]))]).boxed()
    }

    fn ipfs_gc(&self, local: bool) -> ApiFuture<'_, GlobalRepoGc> {
        self.record(format!("ipfs_gc local={local}"));
        Box::pin(async {
            Ok(GlobalRepoGc::from_local(RepoGc {
                peer: PEER.into(),
                peername: "peer0".into(),
                keys: vec![IpfsRepoGc { key: Some(cid(CID2)), error: String::new() }],
                error: String::new(),
            }))
        })
    }

    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph> {
        Box::pin(async {
            Ok(ConnectGraph {
                cluster_id: PEER.into(),
                id_to_peername: [(PEER.to_owned(), "peer0".to_owned())].into(),
                cluster_links: [(PEER.to_owned(), vec![PEER2.to_owned()])].into(),
                ..ConnectGraph::default()
            })
        })
    }

    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>> {
        Box::pin(async {
            Ok(vec![Alert {
                metric: Metric { name: "ping".into(), peer: PEER2.into(), expire: 1_000_000_000, ..Metric::default() },
                triggered_at: Timestamp::parse("2024-01-01T00:00:00Z").expect("time"),
            }])
        })
    }

    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }

    fn metric_names(&self) -> ApiFuture<'_, Vec<String>> {
        Box::pin(async { Ok(vec!["ping".to_owned(), "freespace".to_owned()]) })
    }

    /// `slow` answers after 3 s (for `--timeout`).
    fn metrics(&self, name: String) -> ApiFuture<'_, Vec<Metric>> {
        Box::pin(async move {
            if name == "slow" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Ok(vec![Metric { name, peer: PEER.into(), value: "7".into(), valid: true, ..Metric::default() }])
        })
    }

    /// One output per file part (name, size = bytes read), then the root with allocations;
    /// the request's parameters are recorded.
    fn add(&self, request: AddRequest) -> ApiStream<AddedOutput> {
        let p = &request.params;
        self.record(format!(
            "add {} recursive={} wrap={} cid_version={} raw_leaves={} format={:?}",
            describe(&p.options),
            p.recursive,
            p.wrap_with_directory,
            p.cid_version,
            p.raw_leaves,
            p.format
        ));
        futures::stream::unfold(Some(request.parts), |parts| async move {
            let mut parts = parts?;
            let Some(part) = parts.next().await else {
                let root = AddedOutput {
                    name: "root".into(),
                    cid: Some(cid(CID2)),
                    allocations: vec![PEER.into()],
                    ..AddedOutput::default()
                };
                return Some((Ok(root), None));
            };
            let mut part = match part {
                Ok(part) => part,
                Err(e) => return Some((Err(e), None)),
            };
            let name = part.file_name.clone().unwrap_or_default();
            let directory = part.content_type.as_deref() == Some("application/x-directory");
            let mut size = 0u64;
            while let Some(chunk) = part.data.next().await {
                match chunk {
                    Ok(bytes) => size += bytes.len() as u64,
                    Err(e) => return Some((Err(e), None)),
                }
            }
            drop(part);
            let kind = if directory { "dir" } else { "file" };
            let out =
                AddedOutput { name: format!("{kind}:{name}"), cid: Some(cid(CID)), size, ..AddedOutput::default() };
            Some((Ok(out), Some(parts)))
        })
        .boxed()
    }
}

/// Basic `admin:secret` or Bearer `tok-admin`, as IPFS Cluster answers otherwise.
struct Auth;

impl RequestPolicy for Auth {
    fn authorize<'a>(&'a self, request: &'a ApiRequest) -> BoxFuture<'a, RequestDecision> {
        let decision = match &request.credentials {
            Credentials::Basic(b) if b.user == "admin" && b.password == "secret" => {
                RequestDecision::Allow("admin".into())
            }
            Credentials::Bearer(t) if t == TOKEN => RequestDecision::Allow("admin".into()),
            Credentials::None => RequestDecision::Deny(Denial {
                status: 401,
                reason: "unauthorized: no auth provided".into(),
                headers: vec![],
            }),
            _ => RequestDecision::Deny(Denial {
                status: 401,
                reason: "unauthorized: access denied".into(),
                headers: vec![],
            }),
        };
        Box::pin(async move { decision })
    }

    fn issue_token<'a>(&'a self, _request: &'a ApiRequest) -> BoxFuture<'a, TokenDecision> {
        Box::pin(async { TokenDecision::Token(TOKEN.into()) })
    }

    fn preflight<'a>(&'a self, _request: &'a PreflightRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }

    fn cors<'a>(&'a self, _request: &'a CorsRequest) -> BoxFuture<'a, Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
}

/// A served fake; the runtime lives as long as this.
struct Api {
    cluster: Arc<Cluster>,
    port: u16,
    _server: ApiServer,
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    fn start() -> Api {
        Self::start_with(None)
    }

    fn start_with(tls: Option<TlsConfig>) -> Api {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let cluster = Arc::new(Cluster::default());
        let mut config = ServerConfig::new(vec![ListenAddr::Tcp(([127, 0, 0, 1], 0).into())]);
        config.tls = tls;
        let server = runtime.block_on(serve(config, cluster.clone(), Arc::new(Auth))).expect("serve");
        let port = match server.local_addrs().first() {
            Some(ListenAddr::Tcp(addr)) => addr.port(),
            other => panic!("expected a TCP listener, got {other:?}"),
        };
        Api { cluster, port, _server: server, _runtime: runtime }
    }

    fn host(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    /// `cairn <args> --host <api> --force-http --basic-auth admin:secret`.
    fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--host".into(), self.host(), "--force-http".into(), "--basic-auth".into(), "admin:secret".into()]);
        run(&all)
    }
}

/// What a `cairn` process did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let empty = tempfile::tempdir().expect("tempdir");
    run_in(empty.path(), args)
}

/// Runs `cairn` with `dir` as its config folder and no credentials from the environment.
fn run_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Run {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_PATH", dir)
        .env("CAIRN_LOG", "warn")
        .env_remove("CLUSTER_CREDENTIALS")
        .env_remove("CAIRN_TOKEN")
        .output()
        .expect("run cairn");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

#[test]
fn id_version_and_peers_read_the_api() {
    let api = Api::start();
    let r = api.run(&["id"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout,
        format!(
            "{PEER} | peer0 | Sees 1 other peers\n  > Addresses:\n    - /ip4/127.0.0.1/tcp/9096/p2p/{PEER}\n  > IPFS: \n"
        )
    );

    let r = api.run(&["version"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");

    let r = api.run(&["peers", "ls"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&format!("{PEER} | peer0 | Sees 0 other peers\n")), "{r:?}");
    assert!(r.stdout.ends_with(&format!("{PEER2} | ERROR: dial backoff\n")), "{r:?}");

    let r = api.run(&["peers", "rm", PEER2]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{r:?}");
    assert!(api.cluster.calls().contains(&format!("peer_remove {PEER2}")));

    // JSON: the API's object, indented; streams one object per line.
    let r = api.run(&["id", "--enc", "json"]);
    let id: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON object");
    assert_eq!(id["id"], PEER);
    assert!(r.stdout.lines().count() > 3, "indented: {r:?}");
    let r = api.run(&["peers", "ls", "--encoding", "json"]);
    let lines: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert_eq!(lines[1]["error"], "dial backoff");
}

#[test]
fn pin_add_sends_the_options_and_prints_the_status() {
    let api = Api::start();
    let r = api.run(&[
        "pin",
        "add",
        CID,
        "--name",
        "docs",
        "-r",
        "2",
        "--metadata",
        "team=infra",
        "--metadata",
        "tier=gold",
        "--allocations",
        &format!("{PEER},{PEER2}"),
        "--mode",
        "direct",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let calls = api.cluster.calls();
    assert_eq!(
        calls[0],
        format!(
            "pin_path /ipfs/{CID} name=docs rmin=2 rmax=2 mode=Direct allocs=[\"{PEER}\", \"{PEER2}\"] meta={{\"team\": \"infra\", \"tier\": \"gold\"}}"
        )
    );
    assert_eq!(calls[1], format!("status {CID} local=false"));
    assert!(r.stdout.starts_with(&format!("{CID} | docs:\n    > peer0                : PIN_QUEUED | ")), "{r:?}");

    // --no-status prints the pin as committed; replication bounds go separately.
    let r = api.run(&["pin", "add", CID2, "--rmin", "-1", "--rmax", "-1", "--ns"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.starts_with(&format!("{CID2} |  | PIN | Repl. Factor: -1 | Allocations: [everywhere] | Recursive |")),
        "{r:?}"
    );
    assert!(api.cluster.calls().iter().any(|c| c.starts_with(&format!("pin_path /ipfs/{CID2} name= rmin=-1 rmax=-1"))));

    // Bad input is refused before anything is sent.
    let r = api.run(&["pin", "add", CID, "--metadata", "novalue"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("expected key=value"), "{r:?}");
}

#[test]
fn wait_polls_until_pinned_and_fails_on_pin_error() {
    let api = Api::start();
    let r = api.run(&["pin", "add", CID, "--wait", "--wait-timeout", "20s"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // Not a terminal: one plain progress line per state, then the final status.
    assert!(r.stderr.contains(&format!("{CID}: 0/1 pinned (pin_queued: 1)")), "{r:?}");
    assert!(r.stdout.contains(": PINNED | "), "{r:?}");
    let polls = api.cluster.calls().iter().filter(|c| c.starts_with(&format!("status {CID}"))).count();
    assert_eq!(polls, 3, "{:?}", api.cluster.calls());

    let r = api.run(&["pin", "add", FAILING, "-w"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&format!("{FAILING} did not get pinned: {PEER2}: pin_error disk full")), "{r:?}");
}

#[test]
fn unpin_of_an_unknown_cid_prints_the_api_error() {
    let api = Api::start();
    let r = api.run(&["pin", "rm", CID2]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr, "An error occurred:\n  Code: 404\n  Message: pin is not part of the pinset\n");
    assert_eq!(r.stdout, "");

    let r = api.run(&["pin", "rm", CID2, "--enc", "json"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.stderr).expect("JSON error");
    assert_eq!(body, serde_json::json!({"code": 404, "message": "pin is not part of the pinset"}));

    let r = api.run(&["pin", "rm", CID, "--ns"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&format!("{CID} |  | PIN |")), "{r:?}");
}

#[test]
fn pin_ls_status_and_recover() {
    let api = Api::start();
    let r = api.run(&["pin", "ls"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(lines[0].starts_with(&format!("{CID} | docs | PIN | Repl. Factor: 1--2 | Allocations: [{PEER}] | Recursive | Metadata: no | Exp: ∞ | Added: unknown")), "{r:?}");
    let r = api.run(&["pin", "ls", "--enc", "json"]);
    let pins: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(pins[1]["cid"], CID2);
    let r = api.run(&["pin", "ls", CID2]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("Code: 404"), "{r:?}");

    // The filter reaches the API; only the pin with a peer in error comes back.
    let r = api.run(&["status", "--filter", "pin_error"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(api.cluster.calls().contains(&"status_all pinned=false pin_error=true local=false".to_owned()));
    assert_eq!(r.stdout.lines().next(), Some(format!("{CID2}:").as_str()), "{r:?}");
    assert!(r.stdout.contains(&format!("    > {PEER2} : PIN_ERROR: disk full | ")), "{r:?}");
    assert!(!r.stdout.contains(CID), "{r:?}");

    let r = api.run(&["status", CID, CID2]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(api.cluster.calls().contains(&"status_cids 2".to_owned()));
    assert_eq!(r.stdout.matches("    > peer0").count(), 2, "{r:?}");
    let r = api.run(&["status", "not-a-cid"]);
    assert_eq!(r.code, Some(1), "{r:?}");

    // A stream that fails after its first item: the item is printed, then the error.
    let r = api.run(&["status", "--local"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.starts_with(&format!("{CID} | docs:\n")), "{r:?}");
    assert!(r.stderr.contains("the stream ended with an error: tracker went away"), "{r:?}");

    let r = api.run(&["recover", CID, "--local"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(api.cluster.calls().contains(&format!("recover {CID} local=true")));
    assert!(r.stdout.contains("PIN_QUEUED"), "{r:?}");
    let r = api.run(&["recover"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&format!("{CID2}:\n")), "{r:?}");
}

#[test]
fn health_gc_and_token() {
    let api = Api::start();
    let r = api.run(&["health", "metrics"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "ping\nfreespace\n"), "{r:?}");
    let r = api.run(&["health", "metrics", "ping"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with(&format!("{PEER} | ping: 7 | Expired: ")), "{r:?}");
    let r = api.run(&["health", "alerts"]);
    assert_eq!(
        r.stdout,
        format!("{PEER2}: ping. Expired at: 1970-01-01T00:00:01Z. Triggered at: 2024-01-01T00:00:00Z\n"),
        "{r:?}"
    );
    let r = api.run(&["health", "graph"]);
    assert!(
        r.stdout.starts_with("digraph cluster {") && r.stdout.contains(&format!("\"C{PEER}\" -> \"C{PEER2}\";")),
        "{r:?}"
    );
    let r = api.run(&["health", "bandwidth"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{r:?}");

    let r = api.run(&["ipfs", "gc", "--local"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, format!("peer0          \n  > CIDs:\n    - {CID2}\n"));
    assert!(api.cluster.calls().contains(&"ipfs_gc local=true".to_owned()));

    let r = api.run(&["token"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "tok-admin\n"), "{r:?}");
    let host = api.host();
    let r = run(&["version", "--host", host.as_str(), "--force-http", "--token", TOKEN]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");
}

#[test]
fn credentials_connection_and_timeout_errors() {
    let api = Api::start();
    let host = api.host();
    let r = run(&["id", "--host", host.as_str(), "--force-http", "--basic-auth", "admin:wrong"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr, "An error occurred:\n  Code: 401\n  Message: unauthorized: access denied\n");
    let r = run(&["id", "--host", host.as_str()]);
    assert!(r.stderr.contains("Message: unauthorized: no auth provided"), "{r:?}");

    // Credentials imply HTTPS; the plain-HTTP API then fails the handshake and the hint says why.
    let r = run(&["id", "--host", host.as_str(), "--basic-auth", "admin:secret", "--no-check-certificate"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("--force-http"), "{r:?}");
    // An http:// address is taken as written.
    let url = format!("http://127.0.0.1:{}", api.port);
    let r = run(&["version", "--host", url.as_str(), "--basic-auth", "admin:secret"]);
    assert_eq!(r.code, Some(0), "{r:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dead = format!("/ip4/127.0.0.1/tcp/{closed}");
    let r = run(&["id", "--host", dead.as_str()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&format!("cannot reach the Cairn REST API: http://127.0.0.1:{closed}:")), "{r:?}");
    assert!(r.stderr.contains("cairn daemon") && r.stderr.contains("--host"), "{r:?}");

    // Failover: the dead address first, then the live one.
    let both = format!("{dead},{host}");
    let r = run(&["version", "--host", both.as_str(), "--force-http", "--basic-auth", "admin:secret"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");

    let r = api.run(&["health", "metrics", "slow", "--timeout", "1"]);
    assert_eq!(r.code, Some(62), "{r:?}");
    assert!(r.stderr.contains("--timeout"), "{r:?}");
}

#[test]
fn add_streams_files_and_reports_each() {
    let api = Api::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("hello world.txt");
    std::fs::write(&file, "hello cluster\n").expect("write");
    let path = file.to_string_lossy().into_owned();
    let r = api.run(&["add", path.as_str(), "--name", "greeting", "--replication", "2", "--cid-version", "1"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, format!("added {CID} file:hello+world.txt\nadded {CID2} root\n"));
    assert!(
        api.cluster.calls().iter().any(|c| c.starts_with("add name=greeting rmin=2 rmax=2")
            && c.contains("cid_version=1 raw_leaves=true format=Unixfs")),
        "{:?}",
        api.cluster.calls()
    );

    let dir = tmp.path().join("site");
    std::fs::create_dir_all(dir.join("css")).expect("mkdir");
    std::fs::write(dir.join("index.html"), "<p>hi</p>").expect("write");
    std::fs::write(dir.join("css/main.css"), "p{}").expect("write");
    let dir_arg = dir.to_string_lossy().into_owned();
    let r = api.run(&["add", dir_arg.as_str()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("pass -r/--recursive"), "{r:?}");
    let r = api.run(&["add", "-r", "-w", dir_arg.as_str(), "-q"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, format!("{CID}\n{CID}\n{CID}\n{CID}\n{CID2}\n"), "{r:?}");
    let r = api.run(&["add", "-r", dir_arg.as_str(), "--enc", "json"]);
    let names: Vec<String> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["dir:site", "dir:site%2Fcss", "file:site%2Fcss%2Fmain.css", "file:site%2Findex.html", "root"]);
    let r = api.run(&["add", "-r", dir_arg.as_str(), "-Q", "--wait"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), format!("{CID2}\n").as_str()), "{r:?}");

    let missing = tmp.path().join("missing").to_string_lossy().into_owned();
    let r = api.run(&["add", missing.as_str()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("missing"), "{r:?}");
}

#[test]
fn without_host_the_config_folder_names_the_api() {
    let api = Api::start();
    let dir = tempfile::tempdir().expect("tmp");
    let service = serde_json::json!({
        "cluster": {},
        "consensus": {"crdt": {}},
        "api": {"restapi": {"http_listen_multiaddress": format!("/ip4/0.0.0.0/tcp/{}", api.port)}}
    });
    std::fs::write(dir.path().join("service.json"), service.to_string()).expect("write");
    let r = run_in(dir.path(), &["version", "--basic-auth", "admin:secret"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");

    let no_api = serde_json::json!({"cluster": {}, "consensus": {"crdt": {}}, "api": {}});
    std::fs::write(dir.path().join("service.json"), no_api.to_string()).expect("write");
    let r = run_in(dir.path(), &["version"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no api.restapi section"), "{r:?}");
}

/// A CA and a server certificate it signed for 127.0.0.1, as PEM files in `dir`.
fn certificates(dir: &Path) -> TlsConfig {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write");
    TlsConfig {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: None,
        client_cert_required: false,
    }
}

#[test]
fn https_verifies_the_certificate_unless_told_not_to() {
    let pki = tempfile::tempdir().expect("tmp");
    let api = Api::start_with(Some(certificates(pki.path())));
    let host = api.host();
    let ca = pki.path().join("ca.pem").to_string_lossy().into_owned();
    // Credentials imply HTTPS, so the multiaddr needs no scheme.
    let r = run(&["version", "--host", host.as_str(), "--basic-auth", "admin:secret", "--ca-cert", ca.as_str()]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");
    let r = run(&["version", "--host", host.as_str(), "--https", "--no-check-certificate", "--token", TOKEN]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "1.1.6\n"), "{r:?}");

    // Another CA's certificate is refused, and the error says it was the certificate.
    let other = tempfile::tempdir().expect("tmp");
    certificates(other.path());
    let wrong_ca = other.path().join("ca.pem").to_string_lossy().into_owned();
    let url = format!("https://127.0.0.1:{}", api.port);
    let r = run(&["version", "--host", url.as_str(), "--basic-auth", "admin:secret", "--ca-cert", wrong_ca.as_str()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("TLS handshake") && r.stderr.contains("certificate"), "{r:?}");
}
