//! Writes the generated seed files of corpus/ (CARs, dag-pb blocks, RPC frames, multipart
//! bodies, crdt messages), produced by Cairn's own encoders where they are public. Run it after
//! an encoding changes: `cargo test -p cairn-fuzz-targets --test seeds -- --ignored`.
//! Hand-written seeds (durations, query strings, Pinning Service JSON) are plain files.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use cairn_adder::{AddEvent, Block, DagParams, ImportOptions, Importer, Layout};
use cairn_state::{Cid, Pin, PinOptions};
use cairn_swarm::{RPC_PROTOCOL, RpcRequest, RpcResponse};
use futures::executor::block_on;
use libp2p::request_response::Codec as _;
use libp2p::request_response::cbor::codec::Codec as CborCodec;

const PEER: &str = "12D3KooWRemoteFuzzPeer";
const CID: &str = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).expect("seed written");
}

/// The blocks and root of `files` (path, content) added with `params`.
fn add(params: DagParams, wrap: bool, files: &[(&str, &[u8])]) -> (cid::Cid, Vec<Block>) {
    let mut blocks: Vec<Block> = Vec::new();
    let options = ImportOptions { wrap_with_directory: wrap, hidden: true, progress: false };
    let mut importer = Importer::new(params, options, &mut blocks);
    let mut events = |_: AddEvent| {};
    for (path, data) in files {
        let stream = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::copy_from_slice(data))]);
        block_on(importer.add_file(path, stream, &mut events)).expect("file added");
    }
    let root = block_on(importer.finish(&mut events)).expect("add finished");
    (root, blocks)
}

fn params(chunker: &str, raw_leaves: bool, cid_version: i32, layout: Layout) -> DagParams {
    DagParams::parse(chunker, raw_leaves, cid_version, "sha2-256", layout).expect("params")
}

/// A CARv2 around a CARv1 payload (pragma, 40-byte header, payload, no index).
fn car_v2(v1: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0a, 0xa1, 0x67];
    out.extend_from_slice(b"version");
    out.push(0x02);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&51u64.to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(v1);
    out
}

fn multipart(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n").as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn pin_json() -> String {
    let options = PinOptions {
        name: "seed".into(),
        replication_factor_min: 1,
        replication_factor_max: 2,
        ..PinOptions::default()
    };
    let mut pin = Pin::with_options(Cid::parse(CID).expect("cid"), options);
    pin.allocations = vec![PEER.into()];
    serde_json::to_string(&pin).expect("pin json")
}

const PIN_INFO: &str = r#"{"cid":"QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn","name":"n","peer":"12D3KooWRemoteFuzzPeer","allocations":["12D3KooWRemoteFuzzPeer"],"origins":[],"created":"2024-01-01T00:00:00Z","metadata":{"a":"b"},"peername":"peer0","ipfs_peer_id":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","ipfs_peer_addresses":["/ip4/1.2.3.4/tcp/4001"],"status":"pinned","timestamp":"2024-01-01T00:00:01.5+01:00","error":"","attempt_count":1,"priority_pin":false}"#;

#[test]
#[ignore = "writes the generated seeds into corpus/"]
fn write_seeds() {
    // CARs and dag-pb blocks from the adder's own output.
    let (file_root, file_blocks) =
        add(params("size-4", false, 0, Layout::Balanced), false, &[("a.txt", b"hello, fuzz!")]);
    let (dir_root, dir_blocks) = add(
        params("size-8", true, 1, Layout::Trickle),
        true,
        &[("d/one", b"0123456789abcdef0123"), ("d/two", b""), ("three", b"x")],
    );
    let file_car = cairn_fuzz_targets::car_v1(&file_root, &file_blocks);
    let dir_car = cairn_fuzz_targets::car_v1(&dir_root, &dir_blocks);
    write("car", "file-v1.car", &file_car);
    write("car", "dir-v1.car", &dir_car);
    write("car", "file-v2.car", &car_v2(&file_car));
    for (i, block) in file_blocks.iter().chain(&dir_blocks).filter(|b| b.cid.codec() == 0x70).enumerate() {
        write("dag_pb", &format!("node-{i}"), &block.data);
    }

    // POST /add: `<query>\n<content-type>\n<body>`.
    let with = |query: &str, content_type: &str, body: &[u8]| {
        let mut input = format!("{query}\n{content_type}\n").into_bytes();
        input.extend_from_slice(body);
        input
    };
    let tree = multipart(
        "XX",
        &[
            ("d", "application/x-directory", b""),
            ("d%2Fa.txt", "application/octet-stream", b"hello"),
            ("d/sub", "application/x-directory", b""),
            ("d/sub/b", "text/plain", b"0123456789"),
        ],
    );
    write("multipart_add", "tree", &with("chunker=size-4&raw-leaves=false", "multipart/form-data; boundary=XX", &tree));
    write(
        "multipart_add",
        "wrapped",
        &with(
            "wrap-with-directory=true&cid-version=1&layout=trickle&chunker=size-3",
            "multipart/form-data; boundary=\"b o\"",
            &multipart("b o", &[("f", "application/octet-stream", b"some file content")]),
        ),
    );
    write(
        "multipart_add",
        "car",
        &with(
            "format=car",
            "multipart/form-data; boundary=XX",
            &multipart("XX", &[("x.car", "application/vnd.ipld.car", &file_car)]),
        ),
    );
    write(
        "multipart_add",
        "mixed",
        &with(
            "hash=blake2b-256&cid-version=1",
            "multipart/mixed; boundary=XX",
            &multipart("XX", &[("a", "application/octet-stream", b"a"), ("a", "application/octet-stream", b"again")]),
        ),
    );

    // Peer RPC frames, encoded by the swarm's codec; then bare payloads (first byte: the kind).
    let mut codec = CborCodec::<RpcRequest, RpcResponse>::default();
    let frame =
        |codec: &mut CborCodec<RpcRequest, RpcResponse>, request: Option<RpcRequest>, response: Option<RpcResponse>| {
            let mut out = futures::io::Cursor::new(Vec::new());
            if let Some(request) = request {
                out.get_mut().push(0);
                out.set_position(1);
                block_on(codec.write_request(&RPC_PROTOCOL, &mut out, request)).expect("request");
            } else if let Some(response) = response {
                out.get_mut().push(1);
                out.set_position(1);
                block_on(codec.write_response(&RPC_PROTOCOL, &mut out, response)).expect("response");
            }
            out.into_inner()
        };
    let pin = pin_json();
    let requests = [
        (
            "request-pin",
            "Cluster.Pin",
            pin.clone().into_bytes(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
        ("request-status", "PinTracker.Status", format!("{{\"cid\":\"{CID}\"}}").into_bytes(), None),
        ("request-pins", "Cluster.Pins", b"{\"after\":null,\"limit\":100}".to_vec(), None),
    ];
    for (name, method, payload, traceparent) in requests {
        let request = RpcRequest { method: method.into(), payload, traceparent: traceparent.map(Into::into) };
        write("peer_rpc", name, &frame(&mut codec, Some(request), None));
    }
    let responses = [
        ("response-status-all", RpcResponse::Ok(format!("[{PIN_INFO},{PIN_INFO}]").into_bytes())),
        ("response-denied", RpcResponse::Denied("method Cluster.Pin is not allowed".into())),
        ("response-failed", RpcResponse::Failed("pin is not part of the pinset".into())),
    ];
    for (name, response) in responses {
        write("peer_rpc", name, &frame(&mut codec, None, Some(response)));
    }
    let payloads: [(&str, u8, String); 5] = [
        ("payload-pin", 2, pin.clone()),
        ("payload-pininfo", 3, PIN_INFO.to_owned()),
        ("payload-pininfos", 4, format!("[{PIN_INFO}]")),
        ("payload-id", 5, serde_json::to_string(&cairn_api::Id::default()).expect("id")),
        ("payload-cid", 6, format!("{{\"cid\":\"{CID}\"}}")),
    ];
    for (name, kind, json) in payloads {
        let mut input = vec![kind];
        input.extend_from_slice(json.as_bytes());
        write("peer_rpc", name, &input);
    }

    // crdt: a delta as the engine writes it (WireRecord: cid, clock, author, pin; no pin for a
    // removal) and Crdt.Records requests.
    let delta = format!(
        r#"{{"records":[{{"cid":"{CID}","clock":7,"author":"{PEER}","pin":{pin}}},{{"cid":"bafkqaaa","clock":8,"author":"{PEER}"}}]}}"#
    );
    write("crdt", "delta", delta.as_bytes());
    write("crdt", "delta-empty", br#"{"records":[]}"#);
    write("crdt", "records-request", br#"{"first":0,"last":4095,"after":null,"limit":100}"#);
    write("crdt", "records-request-after", format!(r#"{{"first":17,"last":17,"after":"{CID}","limit":1}}"#).as_bytes());
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The committed seeds are valid inputs, so mutations start deep inside each parser rather than
/// at its first check (a target returns quietly on inputs its parser refuses).
#[test]
fn seeds_are_accepted_by_their_parsers() {
    for name in ["file-v1.car", "dir-v1.car", "file-v2.car"] {
        let data = seed("car", name);
        let stream = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(data))]);
        let mut blocks: Vec<Block> = Vec::new();
        block_on(cairn_adder::import_car_summary(stream, &mut blocks)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let mut codec = CborCodec::<RpcRequest, RpcResponse>::default();
    for name in ["request-pin", "request-status", "request-pins"] {
        let data = seed("peer_rpc", name);
        block_on(codec.read_request(&RPC_PROTOCOL, &mut futures::io::Cursor::new(&data[1..])))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["tree", "wrapped", "car", "mixed"] {
        let data = seed("multipart_add", name);
        let mut lines = data.splitn(3, |&b| b == b'\n');
        let (query, content_type, body) = (lines.next(), lines.next(), lines.next());
        let query = cairn_api::query::Query::parse(std::str::from_utf8(query.expect("query")).expect("utf-8"));
        let params = cairn_api::query::add_params_from_query(&query).unwrap_or_else(|e| panic!("{name}: {e}"));
        let content_type = std::str::from_utf8(content_type.expect("content type")).expect("utf-8");
        let boundary = cairn_api::multipart::boundary(Some(content_type)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(body.expect("body")))]);
        block_on(cairn_api::multipart::add_request(params, body, boundary, cairn_api::AddLimits::default()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for i in 1..=6 {
        let raw = String::from_utf8(seed("pin_query", &format!("seed-{i}"))).expect("utf-8");
        cairn_api::query::add_params_from_query(&cairn_api::query::Query::parse(&raw))
            .unwrap_or_else(|e| panic!("seed-{i}: {e}"));
    }
    for i in 1..=17 {
        let raw = String::from_utf8(seed("go_duration", &format!("seed-{i}"))).expect("utf-8");
        cairn_api::query::parse_go_duration(&raw).unwrap_or_else(|e| panic!("seed-{i} {raw:?}: {e}"));
    }
    serde_json::from_slice::<cairn_api::pinsvc::types::PinObject>(&seed("pinsvc_json", "pin")).expect("pin");
    serde_json::from_slice::<cairn_api::pinsvc::types::PinStatus>(&seed("pinsvc_json", "pinstatus")).expect("status");
    serde_json::from_slice::<cairn_api::pinsvc::types::PinResults>(&seed("pinsvc_json", "pinresults"))
        .expect("results");
    serde_json::from_slice::<cairn_api::pinsvc::types::Failure>(&seed("pinsvc_json", "failure")).expect("failure");
    serde_json::from_slice::<serde_json::Value>(&seed("crdt", "delta")).expect("delta");
}
