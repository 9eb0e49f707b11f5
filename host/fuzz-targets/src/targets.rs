//! The targets. Harness code: a panic or a failed assertion here is how a finding is reported,
//! so `expect` on values the harness itself built is fine; nothing here may panic on the input
//! except through an assertion about the parser's behaviour.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cairn_adder::{Block, BlockSink, CarSummary, DagParams, HashFunction, ImportOptions, Importer, Layout};
use cairn_api::pinsvc::types::{Failure, PinObject, PinResults, PinStatus};
use cairn_api::query::{Query, add_params_from_query, decode_path, parse_go_duration, pin_options_from_query};
use cairn_api::{AddFormat, AddLayout, AddLimits, AddRequest, Id, PinInfo, multipart};
use cairn_consensus::crdt::{CrdtConsensus, CrdtSettings, RPC_RECORDS, WriteAuthorizer};
use cairn_consensus::{Consensus, PeerNetwork};
use cairn_ipfs::go_duration;
use cairn_state::{Cid, Pin, PinStore, Timestamp};
use cairn_swarm::{MAX_RPC_REQUEST, MAX_RPC_RESPONSE, RPC_PROTOCOL, RpcRequest, RpcResponse};
use futures::TryStreamExt;
use futures::executor::block_on;
use futures::future::BoxFuture;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec as CborCodec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// A valid CID for pins the harness builds itself (the empty UnixFS directory).
const PROBE_CID: &str = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";

// ---------------------------------------------------------------------------------------------
// Go durations

/// Go durations (service.json keys, `expire-in`): both parsers in the tree; what one accepts
/// formats back to the same value, and when both accept an input they agree.
pub fn go_duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = go_duration::parse(text);
    if let Ok(d) = &config {
        let d = *d;
        let formatted = go_duration::format(d);
        assert_eq!(go_duration::parse(&formatted), Ok(d), "{text:?} formats as {formatted:?}");
    }
    let query = parse_go_duration(text);
    if let Ok(nanos) = &query {
        let nanos = *nanos;
        let abs = Duration::from_nanos(nanos.unsigned_abs());
        let formatted = go_duration::format(abs);
        let back = parse_go_duration(&formatted).map(i64::unsigned_abs);
        assert_eq!(back, Ok(nanos.unsigned_abs()), "{text:?} formats as {formatted:?}");
    }
    if let (Ok(d), Ok(nanos)) = (config, query) {
        assert_eq!(d.as_nanos(), u128::from(nanos.unsigned_abs()), "the two Go-duration parsers disagree on {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// REST query strings

/// `POST /pins/{cid}?…` and `POST /add?…` query strings: the options a query yields make a pin
/// whose JSON reads back equal, and a positive `expire-in` expires in the future.
pub fn pin_query(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let q = Query::parse(&raw);
    let before = Timestamp::now();
    if let Ok(options) = pin_options_from_query(&q) {
        if q.get("expire-at").is_empty() && !q.get("expire-in").is_empty() {
            assert!(
                options.expire_at > before,
                "expire-in={:?} expires at {:?}",
                q.get("expire-in"),
                options.expire_at
            );
        }
        let pin = Pin::with_options(probe_cid(), options);
        json_round_trip(&pin);
    }
    if let Ok(params) = add_params_from_query(&q) {
        let _ = dag_params(&params);
    }
}

// ---------------------------------------------------------------------------------------------
// POST /add: multipart and the importer

/// `POST /add`: the input is `<query>\n<content-type>\n<body>`. The body is streamed in small
/// chunks through the multipart reader into the importer (or the CAR importer for
/// `format=car`), as the daemon's add handler does; every block produced hashes to its CID and
/// the root is one of them.
pub fn multipart_add(data: &[u8]) {
    let (query, rest) = split_line(data);
    let (content_type, body) = split_line(rest);
    let q = Query::parse(&String::from_utf8_lossy(query));
    let Ok(params) = add_params_from_query(&q) else { return };
    let Ok(boundary) = multipart::boundary(Some(&String::from_utf8_lossy(content_type))) else { return };
    // Chunk sizes vary with the input so that boundaries fall across chunk edges.
    let chunk = 1 + body.len() % 61;
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    block_on(async move {
        let Ok(request) =
            multipart::add_request(params, futures::stream::iter(chunks), boundary, AddLimits::default()).await
        else {
            return;
        };
        let _ = add(request).await;
    });
}

/// The add handler's walk over the parts (host/src/add.rs `run`, minus the cluster).
async fn add(request: AddRequest) -> Result<(), String> {
    let AddRequest { params, mut parts } = request;
    let dag = dag_params(&params)?;
    let mut sink = CheckingSink { exact: params.format == AddFormat::Unixfs, ..CheckingSink::default() };
    match params.format {
        AddFormat::Car => {
            while let Some(part) = parts.try_next().await.map_err(|e| e.to_string())? {
                if part.file_name.is_some() {
                    cairn_adder::import_car_summary(part.data, &mut sink).await.map_err(|e| e.to_string())?;
                    break;
                }
            }
        }
        AddFormat::Unixfs => {
            let options = ImportOptions {
                wrap_with_directory: params.wrap_with_directory,
                hidden: true,
                progress: params.progress,
            };
            let mut importer = Importer::new(dag, options, &mut sink);
            let mut any = false;
            while let Some(part) = parts.try_next().await.map_err(|e| e.to_string())? {
                let Some(raw) = part.file_name.as_deref() else { continue };
                let path = decode_path(raw).ok_or("bad file name")?;
                match part.content_type.as_deref() {
                    Some("application/x-directory") => importer.add_directory(&path).map_err(|e| e.to_string())?,
                    Some("application/symlink") => return Err("symlink".into()),
                    _ => {
                        importer.add_file(&path, part.data, &mut |_| {}).await.map_err(|e| e.to_string())?;
                    }
                }
                any = true;
            }
            if any {
                let root = importer.finish(&mut |_| {}).await.map_err(|e| e.to_string())?;
                assert!(sink.cids.contains(&root), "the add's root {root} was never stored");
            }
        }
    }
    Ok(())
}

/// The adder's parameters from an add's query (host/src/add.rs `dag_params`).
fn dag_params(params: &cairn_api::AddParams) -> Result<DagParams, String> {
    let layout = match params.layout {
        AddLayout::Balanced => Layout::Balanced,
        AddLayout::Trickle => Layout::Trickle,
    };
    DagParams::parse(&params.chunker, params.raw_leaves, params.cid_version, &params.hash_fun, layout)
        .map_err(|e| e.to_string())
}

/// A block sink that checks every block against its CID and remembers the CIDs.
#[derive(Default)]
struct CheckingSink {
    /// The importer's blocks carry full-length digests; a CAR may truncate them.
    exact: bool,
    cids: HashSet<cid::Cid>,
}

impl BlockSink for CheckingSink {
    fn put(&mut self, block: Block) -> BoxFuture<'_, Result<(), cairn_adder::AdderError>> {
        check_block(&block, self.exact);
        self.cids.insert(block.cid);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Asserts that `block`'s data hashes to its CID.
fn check_block(block: &Block, exact: bool) {
    let mh = block.cid.hash();
    if mh.code() == 0x00 && !exact {
        assert_eq!(mh.digest(), &block.data[..], "identity block {} does not hold its data", block.cid);
        return;
    }
    let hash = HashFunction::from_code(mh.code())
        .unwrap_or_else(|| panic!("block {} has an unsupported hash 0x{:x}", block.cid, mh.code()));
    let computed = hash.digest(&block.data);
    let ok = if exact {
        computed.digest() == mh.digest()
    } else {
        !mh.digest().is_empty() && computed.digest().starts_with(mh.digest())
    };
    assert!(ok, "block {} does not hash to its CID", block.cid);
}

// ---------------------------------------------------------------------------------------------
// CAR and dag-pb

/// `POST /add?format=car`: a CAR read whole and read in 1–7 byte chunks gives the same result
/// (the same blocks and summary, or the same error).
pub fn car(data: &[u8]) {
    let whole = block_on(import_car(data, data.len().max(1)));
    let split = block_on(import_car(data, 1 + data.len() % 7));
    assert_eq!(whole, split, "the CAR import depends on how the stream is chunked");
}

/// The CAR importer on `data` sent in chunks of `chunk` bytes; checks the summary's counts.
async fn import_car(data: &[u8], chunk: usize) -> Result<(CarSummary, Vec<Block>), String> {
    let chunks: Vec<Result<Bytes, Infallible>> = data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let mut blocks: Vec<Block> = Vec::new();
    let summary =
        cairn_adder::import_car_summary(futures::stream::iter(chunks), &mut blocks).await.map_err(|e| e.to_string())?;
    assert_eq!(summary.blocks, blocks.len() as u64, "block count");
    assert_eq!(summary.bytes, blocks.iter().map(|b| b.data.len() as u64).sum::<u64>(), "byte count");
    for block in &blocks {
        check_block(block, false);
    }
    Ok((summary, blocks))
}

/// dag-pb (and UnixFS) decoding: the input is the root block of a one-block CAR whose CID is the
/// input's own sha2-256 dag-pb CID, so the importer must accept it and decode it for the root's
/// UnixFS size whatever the bytes are.
pub fn dag_pb(data: &[u8]) {
    let digest = Sha256::digest(data);
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("a 32-byte digest fits");
    let root = cid::Cid::new_v1(0x70, mh);
    let car = car_v1(&root, &[Block { cid: root, data: Bytes::copy_from_slice(data) }]);
    let (summary, blocks) = block_on(import_car(&car, car.len()))
        .unwrap_or_else(|e| panic!("a well-formed one-block CAR of a dag-pb block was refused: {e}"));
    assert_eq!(summary.root, root);
    assert_eq!(blocks.len(), 1);
    assert_eq!(&blocks[0].data[..], data);
}

/// A CARv1 with root `root` and `blocks` (each under its own CID), as the seeds and the dag-pb
/// target build them.
pub fn car_v1(root: &cid::Cid, blocks: &[Block]) -> Vec<u8> {
    let cid = root.to_bytes();
    // DAG-CBOR {"roots": [tag 42 (0x00 ‖ cid)], "version": 1}, keys in canonical order.
    let mut header = vec![0xa2, 0x65];
    header.extend_from_slice(b"roots");
    header.extend_from_slice(&[0x81, 0xd8, 0x2a, 0x58]);
    header.push(u8::try_from(cid.len() + 1).expect("a CID is short"));
    header.push(0x00);
    header.extend_from_slice(&cid);
    header.push(0x67);
    header.extend_from_slice(b"version");
    header.push(0x01);
    let mut out = Vec::new();
    put_varint(&mut out, header.len() as u64);
    out.extend_from_slice(&header);
    for block in blocks {
        let cid = block.cid.to_bytes();
        put_varint(&mut out, (cid.len() + block.data.len()) as u64);
        out.extend_from_slice(&cid);
        out.extend_from_slice(&block.data);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ---------------------------------------------------------------------------------------------
// Peer RPC

/// Peer RPC: the first byte picks what the rest is. 0: a request frame as the swarm reads it
/// (cbor), then its payload as its method's handler reads it; 1: a response frame; 2..: a JSON
/// payload of the kinds peers send (a pin, pin infos, an `ID`, a `{"cid"}` argument). Frames
/// and payloads that decode re-encode to an equal value.
pub fn peer_rpc(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 7 {
        0 => rpc_request(rest),
        1 => rpc_response(rest),
        2 => json_payload("Cluster.Pin", rest),
        3 => json_payload("PinTracker.Status", rest),
        4 => json_payload("PinTracker.StatusAll", rest),
        5 => json_payload("Cluster.ID", rest),
        _ => json_payload("Cluster.Unpin", rest),
    }
}

fn rpc_codec() -> CborCodec<RpcRequest, RpcResponse> {
    CborCodec::default().set_request_size_maximum(MAX_RPC_REQUEST).set_response_size_maximum(MAX_RPC_RESPONSE)
}

fn rpc_request(bytes: &[u8]) {
    let mut codec = rpc_codec();
    let Ok(request) = block_on(codec.read_request(&RPC_PROTOCOL, &mut futures::io::Cursor::new(bytes))) else {
        return;
    };
    let mut out = futures::io::Cursor::new(Vec::new());
    block_on(codec.write_request(&RPC_PROTOCOL, &mut out, request.clone())).expect("a request re-encodes");
    let back = block_on(codec.read_request(&RPC_PROTOCOL, &mut futures::io::Cursor::new(out.into_inner())))
        .expect("a re-encoded request reads back");
    assert_eq!(back, request);
    json_payload(&request.method, &request.payload);
}

fn rpc_response(bytes: &[u8]) {
    let mut codec = rpc_codec();
    let Ok(response) = block_on(codec.read_response(&RPC_PROTOCOL, &mut futures::io::Cursor::new(bytes))) else {
        return;
    };
    let mut out = futures::io::Cursor::new(Vec::new());
    block_on(codec.write_response(&RPC_PROTOCOL, &mut out, response.clone())).expect("a response re-encodes");
    let back = block_on(codec.read_response(&RPC_PROTOCOL, &mut futures::io::Cursor::new(out.into_inner())))
        .expect("a re-encoded response reads back");
    assert_eq!(back, response);
    if let RpcResponse::Ok(payload) = &response {
        // An answer's payload is one of the JSON kinds peers send.
        for method in ["Cluster.Pin", "PinTracker.Status", "PinTracker.StatusAll", "Cluster.ID"] {
            json_payload(method, payload);
        }
    }
}

/// A JSON payload as host/src/cluster.rs and host/src/facade.rs decode it for `method`.
fn json_payload(method: &str, payload: &[u8]) {
    match method {
        "Cluster.Pin" | "Cluster.PinGet" => json_round_trip_bytes::<Pin>(payload),
        "PinTracker.Status" | "Cluster.StatusLocal" => json_round_trip_bytes::<PinInfo>(payload),
        "PinTracker.StatusAll" | "Cluster.StatusAllLocal" => json_round_trip_bytes::<Vec<PinInfo>>(payload),
        "Cluster.ID" => json_round_trip_bytes::<Id>(payload),
        _ => {
            // `{"cid": "..."}`, the single-CID methods' argument.
            if let Ok(serde_json::Value::Object(arg)) = serde_json::from_slice(payload)
                && let Some(serde_json::Value::String(cid)) = arg.get("cid")
                && let Ok(cid) = Cid::parse(cid)
            {
                assert_eq!(Cid::parse(cid.as_str()).as_ref().ok(), Some(&cid), "a CID's string form reads back");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pinning Service API JSON

/// Pinning Service API bodies: a `Pin` as a client sends it, and the `PinStatus`, `PinResults`
/// and `Failure` a client of another service reads; each decoded value re-encodes equal.
pub fn pinsvc_json(data: &[u8]) {
    json_round_trip_bytes::<PinObject>(data);
    json_round_trip_bytes::<PinStatus>(data);
    json_round_trip_bytes::<PinResults>(data);
    json_round_trip_bytes::<Failure>(data);
}

// ---------------------------------------------------------------------------------------------
// crdt deltas and records requests

/// The peer id deltas are attributed to (any string works: the harness trusts every writer).
const REMOTE_PEER: &str = "12D3KooWRemoteFuzzPeer";

/// A crdt engine on a temporary store, shared by the executions of one process.
struct CrdtHarness {
    runtime: tokio::runtime::Runtime,
    engine: CrdtConsensus,
    _dir: tempfile::TempDir,
}

static CRDT: Mutex<Option<CrdtHarness>> = Mutex::new(None);

struct NoNetwork;

impl PeerNetwork for NoNetwork {
    fn local_peer(&self) -> String {
        "12D3KooWLocalFuzzPeer".into()
    }
    fn call(&self, _: &str, _: &str, _: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(std::future::ready(Err("the fuzz harness has no network".into())))
    }
    fn publish(&self, _: &str, _: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn connected_peers(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

struct TrustEveryone;

impl WriteAuthorizer for TrustEveryone {
    fn may_write(&self, _: &str) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}

impl CrdtHarness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        // Named, so a folder left by a killed libFuzzer job is recognisable (libFuzzer exits
        // without running destructors; the stable runner calls `teardown`).
        let dir = tempfile::Builder::new().prefix("cairn-fuzz-crdt-").tempdir().expect("a temporary folder");
        let store = std::sync::Arc::new(PinStore::open(dir.path().join("pinset.redb")).expect("a pin store"));
        let engine = runtime
            .block_on(async {
                CrdtConsensus::start(
                    CrdtSettings::default(),
                    store,
                    std::sync::Arc::new(NoNetwork),
                    std::sync::Arc::new(TrustEveryone),
                )
            })
            .expect("the crdt engine starts");
        CrdtHarness { runtime, engine, _dir: dir }
    }
}

/// The crdt engine's inputs from peers: the bytes as a delta broadcast by a trusted peer (then a
/// local write must still succeed: applying the delta must not stop or break the writer), and
/// as a `Crdt.Records` request (which must not panic in the store).
pub fn crdt(data: &[u8]) {
    let mut guard = CRDT.lock().unwrap_or_else(|p| p.into_inner());
    let harness = guard.get_or_insert_with(CrdtHarness::new);
    let engine = &harness.engine;
    harness.runtime.block_on(async {
        engine.handle_broadcast(REMOTE_PEER.to_owned(), data.to_vec()).await;
        if matches!(serde_json::from_slice(data), Ok(serde_json::Value::Object(_))) {
            // The delta went to the writer queue; a local write behind it shows the writer is fine.
            let write = engine.commit_pin(Pin::new(probe_cid()));
            match tokio::time::timeout(Duration::from_secs(30), write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("a local write failed after the delta: {e}"),
                Err(_) => panic!("a local write hung after the delta"),
            }
        }
        if let Err(e) = engine.handle_rpc(REMOTE_PEER.to_owned(), RPC_RECORDS.to_owned(), data.to_vec()).await {
            assert!(!e.contains("panicked"), "Crdt.Records: {e}");
        }
    });
}

/// Drops state shared between executions (the crdt engine and its temporary store).
pub fn teardown() {
    let harness = CRDT.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(harness) = harness {
        let CrdtHarness { runtime, engine, _dir } = harness;
        let _ = runtime.block_on(engine.shutdown());
        drop(engine);
        drop(runtime);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn probe_cid() -> Cid {
    Cid::parse(PROBE_CID).expect("the probe CID is valid")
}

/// `(line, rest)` split at the first `\n` (the whole input and nothing when there is none).
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Decodes `bytes` as `T`; a value that decodes must re-encode and decode equal.
fn json_round_trip_bytes<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        json_round_trip(&value);
    }
}

/// `value` → JSON → an equal value.
fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_vec(value).expect("a decoded value encodes");
    match serde_json::from_slice::<T>(&json) {
        Ok(back) => assert_eq!(&back, value, "JSON round trip through {}", String::from_utf8_lossy(&json)),
        Err(e) => panic!("{} does not read back: {e}", String::from_utf8_lossy(&json)),
    }
}
