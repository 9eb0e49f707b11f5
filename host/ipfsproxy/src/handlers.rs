//! The hijacked endpoints (reference §3.2): Kubo RPC calls answered by the cluster, in Kubo's
//! JSON shapes, with IPFS Cluster's messages and statuses (500 unless noted).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use cairn_api::multipart;
use cairn_api::query::{self, Query};
use cairn_api::{AddLayout, AddedOutput, ApiError, Cid, ClusterApi, PIN_NOT_FOUND, PinMode, PinOptions, PinTypeFilter};
use futures::{Stream, StreamExt};
use http::header::{CACHE_CONTROL, CONNECTION, HeaderValue, TRAILER};
use http::request::Parts;
use http::{HeaderMap, Method, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::RepoStat;
use crate::body::{Piece, ResBody, STREAM_ERROR, full, json_bytes, json_line, kubo_error, response, streamed};
use crate::forward::{data_only, request_body, upstream_request};
use crate::service::Shared;
use crate::trailers::Sentinel;
use crate::upstream::BoxError;

/// A hijacked route; the `Option` is the `/{arg}` path form's argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hijack<'a> {
    PinAdd(Option<&'a str>),
    PinRm(Option<&'a str>),
    PinLs(Option<&'a str>),
    PinUpdate,
    Add,
    RepoStat,
    RepoGc,
    BlockPut,
    DagPut,
}

/// The hijacked route of a (decoded) path, as IPFS Cluster's router matches it: exact paths
/// under `/api/v0`, and `pin/{add,rm,ls}/{arg}` with a one-segment argument.
pub(crate) fn hijack(path: &str) -> Option<Hijack<'_>> {
    let rest = path.strip_prefix("/api/v0/")?;
    let route = match rest {
        "pin/add" => Hijack::PinAdd(None),
        "pin/rm" => Hijack::PinRm(None),
        "pin/ls" => Hijack::PinLs(None),
        "pin/update" => Hijack::PinUpdate,
        "add" => Hijack::Add,
        "repo/stat" => Hijack::RepoStat,
        "repo/gc" => Hijack::RepoGc,
        "block/put" => Hijack::BlockPut,
        "dag/put" => Hijack::DagPut,
        _ => {
            let (op, arg) = rest.strip_prefix("pin/")?.split_once('/')?;
            if arg.is_empty() || arg.contains('/') {
                return None;
            }
            match op {
                "add" => Hijack::PinAdd(Some(arg)),
                "rm" => Hijack::PinRm(Some(arg)),
                "ls" => Hijack::PinLs(Some(arg)),
                _ => return None,
            }
        }
    };
    Some(route)
}

/// The route label of a request for metrics and spans: the hijacked route's pattern, or
/// `forwarded` (forwarded paths are not labels, which keeps the label set bounded).
pub(crate) fn pattern(method: &Method, path: &str) -> &'static str {
    if !matches!(*method, Method::POST | Method::GET | Method::PUT) {
        return "forwarded";
    }
    match hijack(path) {
        None => "forwarded",
        Some(Hijack::PinAdd(None)) => "/api/v0/pin/add",
        Some(Hijack::PinAdd(Some(_))) => "/api/v0/pin/add/{arg}",
        Some(Hijack::PinRm(None)) => "/api/v0/pin/rm",
        Some(Hijack::PinRm(Some(_))) => "/api/v0/pin/rm/{arg}",
        Some(Hijack::PinLs(None)) => "/api/v0/pin/ls",
        Some(Hijack::PinLs(Some(_))) => "/api/v0/pin/ls/{arg}",
        Some(Hijack::PinUpdate) => "/api/v0/pin/update",
        Some(Hijack::Add) => "/api/v0/add",
        Some(Hijack::RepoStat) => "/api/v0/repo/stat",
        Some(Hijack::RepoGc) => "/api/v0/repo/gc",
        Some(Hijack::BlockPut) => "/api/v0/block/put",
        Some(Hijack::DagPut) => "/api/v0/dag/put",
    }
}

/// What a hijacked handler works with.
pub(crate) struct Call<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) parts: &'a Parts,
    pub(crate) query: Query,
    /// `None` where trailers cannot be sent (HTTP/1.0).
    pub(crate) sentinel: Option<Sentinel>,
    pub(crate) read_deadline: Option<Instant>,
}

impl Call<'_> {
    /// The headers of a hijacked answer (§3.3).
    async fn headers(&self) -> HeaderMap {
        let path = self.parts.uri.path();
        self.shared.headers.for_request(&self.shared.upstream, &self.parts.method, path, &self.parts.headers).await
    }

    /// The `arg` values; the `/{arg}` form replaces them all (IPFS Cluster's `q.Set("arg", ..)`).
    fn args(&self, slash: Option<&str>) -> Vec<String> {
        if let Some(arg) = slash {
            tracing::error!(
                "ipfsproxy: you are using an undocumented form of the IPFS API. Consider passing your command arguments with the '?arg=' query parameter"
            );
            return vec![arg.to_owned()];
        }
        self.query.pairs().filter(|(k, _)| *k == "arg").map(|(_, v)| v.to_owned()).collect()
    }
}

/// `{"Pins":[..]}`.
#[derive(Serialize)]
struct PinsAnswer {
    #[serde(rename = "Pins")]
    pins: Vec<String>,
}

/// Kubo's pin type name of a cluster pin (IPFS Cluster's `ToIPFSPinStatus`).
fn pin_type(mode: PinMode) -> &'static str {
    match mode {
        PinMode::Recursive => "recursive",
        PinMode::Direct => "direct",
    }
}

/// An argument as an IPFS path (boxo's `path.NewPath`, or `/ipfs/<arg>` for a bare CID, as
/// IPFS Cluster's `pathOrCidPath`). The error names the path and why it is not one.
fn ipfs_path(arg: &str) -> Result<String, String> {
    let parsed = match arg.strip_prefix('/') {
        Some(rest) => match rest.split_once('/') {
            Some((ns @ ("ipfs" | "ipns" | "ipld"), rest)) => query::parse_ipfs_path(ns, rest),
            Some((ns, _)) => return Err(format!("invalid path {arg:?}: unknown namespace {ns:?}")),
            None => return Err(format!("invalid path {arg:?}: path does not have enough components")),
        },
        None => query::parse_ipfs_path("ipfs", arg),
    };
    parsed.map_err(|e| e.message().strip_prefix("error parsing path: ").unwrap_or(e.message()).to_owned())
}

/// `pin/add` and `pin/rm`: cluster `PinPath` / `UnpinPath` of the first `arg`.
pub(crate) async fn pin_op(call: &Call<'_>, slash: Option<&str>, pin: bool) -> Response<ResBody> {
    let headers = call.headers().await;
    let args = call.args(slash);
    let Some(arg) = args.first().filter(|a| !a.is_empty()) else {
        // Kubo's answer (IPFS Cluster would fail to parse the empty path, with 500).
        return kubo_error(400, headers, "argument \"ipfs-path\" is required");
    };
    let path = match ipfs_path(arg) {
        Ok(path) => path,
        Err(e) => return kubo_error(500, headers, &format!("Error parsing IPFS Path: {e}")),
    };
    let cluster = &call.shared.cluster;
    let result = if pin {
        // Kubo's `recursive` is ignored; `type=direct` is the only way to a direct pin.
        let options = PinOptions { mode: PinMode::from_str_lenient(call.query.get("type")), ..PinOptions::default() };
        cluster.pin_path(path, options).await
    } else {
        cluster.unpin_path(path).await
    };
    match result {
        Ok(pin) => response(200, headers, full(json_bytes(&PinsAnswer { pins: vec![pin.cid.to_string()] }))),
        Err(e) => kubo_error(500, headers, e.message()),
    }
}

/// `{"Cid":..,"Type":..}`: one line of a streamed `pin/ls`.
#[derive(Serialize)]
struct PinLine<'a> {
    #[serde(rename = "Cid")]
    cid: &'a str,
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// `{"Type":..}` in a non-streamed `pin/ls`.
#[derive(Serialize)]
struct PinType {
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// `{"Keys":{..}}`: a non-streamed `pin/ls`.
#[derive(Serialize)]
struct PinLsAnswer {
    #[serde(rename = "Keys")]
    keys: BTreeMap<String, PinType>,
}

fn is_not_found(e: &ApiError) -> bool {
    e.status() == 404 || e.message() == PIN_NOT_FOUND
}

/// `pin/ls`: one pin (`arg`) or the whole cluster pinset; `stream=true` / `s=true` for NDJSON.
/// The non-streamed form always says `recursive`, as IPFS Cluster does.
pub(crate) async fn pin_ls(call: &Call<'_>, slash: Option<&str>) -> Response<ResBody> {
    let mut headers = call.headers().await;
    let stream = call.query.get("stream") == "true" || call.query.get("s") == "true";
    let args = call.args(slash);
    let cluster = &call.shared.cluster;
    if let Some(arg) = args.first().filter(|a| !a.is_empty()) {
        let cid = match Cid::parse(arg) {
            Ok(cid) => cid,
            Err(e) => return kubo_error(500, headers, &format!("invalid CID in argument {arg:?}: {}", e.source)),
        };
        return match cluster.allocation(cid).await {
            Ok(pin) if stream => {
                let line = PinLine { cid: pin.cid.as_str(), kind: pin_type(pin.options.mode) };
                response(200, headers, full(json_bytes(&line)))
            }
            Ok(pin) => {
                let keys = BTreeMap::from([(pin.cid.to_string(), PinType { kind: "recursive" })]);
                response(200, headers, full(json_bytes(&PinLsAnswer { keys })))
            }
            Err(e) if is_not_found(&e) => kubo_error(500, headers, &format!("Error: path '{arg}' is not pinned")),
            Err(e) => kubo_error(500, headers, e.message()),
        };
    }
    let pins = cluster.allocations(PinTypeFilter::ALL);
    if stream {
        headers.insert(TRAILER, HeaderValue::from_static(STREAM_ERROR));
        let pieces = pins.map(|pin| {
            Ok::<_, BoxError>(match pin {
                Ok(pin) => Piece::Data(json_line(&PinLine { cid: pin.cid.as_str(), kind: pin_type(pin.options.mode) })),
                Err(e) => Piece::Trailer(STREAM_ERROR.to_owned(), e.message().to_owned()),
            })
        });
        // Stop at the first error: a broken listing does not go on.
        let pieces = pieces.scan(false, |failed, piece| {
            let stop = *failed;
            if matches!(piece, Ok(Piece::Trailer(..))) {
                *failed = true;
            }
            futures::future::ready((!stop).then_some(piece))
        });
        return response(200, headers, streamed(pieces, call.sentinel));
    }
    let mut keys = BTreeMap::new();
    let mut pins = pins;
    while let Some(pin) = pins.next().await {
        match pin {
            Ok(pin) => {
                keys.insert(pin.cid.to_string(), PinType { kind: "recursive" });
            }
            Err(e) => return kubo_error(500, headers, e.message()),
        }
    }
    response(200, headers, full(json_bytes(&PinLsAnswer { keys })))
}

/// `pin/update`: pins `to` with `pin_update=from` (resolved by the daemon), then unpins `from`
/// unless `unpin=false`.
pub(crate) async fn pin_update(call: &Call<'_>) -> Response<ResBody> {
    let headers = call.headers().await;
    let args = call.args(None);
    let (from, to) = match args.as_slice() {
        [] => return kubo_error(400, headers, "argument \"from-path\" is required"),
        [_] => return kubo_error(400, headers, "argument \"to-path\" is required"),
        [from, to, ..] => (from, to),
    };
    let unpin = call.query.get("unpin") != "false";
    let from = match ipfs_path(from) {
        Ok(p) => p,
        Err(e) => return kubo_error(500, headers, &format!("error parsing \"from-path\" argument: {e}")),
    };
    let to = match ipfs_path(to) {
        Ok(p) => p,
        Err(e) => return kubo_error(500, headers, &format!("error parsing \"to-path\" argument: {e}")),
    };
    let from_cid = match call.shared.upstream.resolve(&from).await {
        Ok(cid) => cid,
        Err(e) => return kubo_error(500, headers, &e),
    };
    let cluster = &call.shared.cluster;
    let options = PinOptions { pin_update: Some(from_cid.clone()), ..PinOptions::default() };
    let pin = match cluster.pin_path(to, options).await {
        Ok(pin) => pin,
        Err(e) => return kubo_error(500, headers, e.message()),
    };
    if unpin && let Err(e) = cluster.unpin(from_cid.clone()).await {
        return kubo_error(500, headers, e.message());
    }
    let answer = PinsAnswer { pins: vec![from_cid.to_string(), pin.cid.to_string()] };
    response(200, headers, full(json_bytes(&answer)))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One line of Kubo's `add` (`Size` is a string; empty fields left out).
#[derive(Serialize)]
struct KuboAdded {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hash", skip_serializing_if = "String::is_empty")]
    hash: String,
    #[serde(rename = "Bytes", skip_serializing_if = "is_zero")]
    bytes: u64,
    #[serde(rename = "Size", skip_serializing_if = "String::is_empty")]
    size: String,
}

impl From<AddedOutput> for KuboAdded {
    fn from(out: AddedOutput) -> Self {
        KuboAdded {
            name: out.name,
            hash: out.cid.map(|c| c.to_string()).unwrap_or_default(),
            bytes: out.bytes,
            size: if out.size == 0 { String::new() } else { out.size.to_string() },
        }
    }
}

/// `add`: the multipart body goes through the cluster adder (REST `/add` parameters, plus
/// `trickle=true` and `pin=false`); outputs are Kubo's lines.
pub(crate) async fn add(call: &Call<'_>, body: Incoming) -> Response<ResBody> {
    let mut headers = call.headers().await;
    let content_type = call.parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let boundary = match multipart::boundary(content_type) {
        Ok(b) => b,
        Err(e) => return kubo_error(500, headers, &format!("error reading request: {}", e.message())),
    };
    let q = &call.query;
    // IPFS Cluster writes this error and then adds anyway; Cairn stops here.
    if q.get("only-hash") == "true" {
        return kubo_error(500, headers, "only-hash is not supported when adding to cluster");
    }
    let mut params = match query::add_params_from_query(q) {
        Ok(p) => p,
        Err(e) => return kubo_error(500, headers, &format!("error parsing options:{}", e.message())),
    };
    if q.get("trickle") == "true" {
        params.layout = AddLayout::Trickle;
    }
    if q.get("pin") == "false" {
        params.no_pin = true;
    }
    let stream_channels = params.stream_channels;
    let body = multipart::deadline_stream(body.into_data_stream(), call.read_deadline);
    let request = match multipart::add_request(params, body, boundary, call.shared.config.add_limits).await {
        Ok(r) => r,
        // A body that is not multipart, or over a limit, before any part: its own status (400).
        Err(e) => return kubo_error(e.status(), headers, e.message()),
    };
    let outputs = call.shared.cluster.add(request);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Clients must not reuse the connection of an add (go-ipfs-cmds#116).
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if stream_channels {
        headers.insert("x-chunked-output", HeaderValue::from_static("1"));
        headers.insert(TRAILER, HeaderValue::from_static(STREAM_ERROR));
        let pieces = outputs.map(|out| {
            Ok::<_, BoxError>(match out {
                Ok(out) => Piece::Data(json_line(&KuboAdded::from(out))),
                Err(e) => Piece::Trailer(STREAM_ERROR.to_owned(), e.message().to_owned()),
            })
        });
        return response(200, headers, streamed(pieces, call.sentinel));
    }
    let mut all = Vec::new();
    let mut outputs = outputs;
    while let Some(out) = outputs.next().await {
        match out {
            Ok(out) => all.push(KuboAdded::from(out)),
            // The adder's error object is the REST API's, as in IPFS Cluster.
            Err(e) => {
                return response(
                    500,
                    headers,
                    full(json_line(&cairn_api::ErrorBody { code: 500, message: e.message().to_owned() })),
                );
            }
        }
    }
    response(200, headers, full(json_line(&all)))
}

/// `{"RepoSize":..,"StorageMax":..,"NumObjects":..}`. IPFS Cluster sends only the first two;
/// `NumObjects` is there because kubo-rpc-client's `repo.stat()` cannot do without it.
#[derive(Serialize)]
struct RepoStatAnswer {
    #[serde(rename = "RepoSize")]
    repo_size: u64,
    #[serde(rename = "StorageMax")]
    storage_max: u64,
    #[serde(rename = "NumObjects")]
    num_objects: u64,
}

/// `repo/stat`: the sum over every consensus peer's daemon.
pub(crate) async fn repo_stat(call: &Call<'_>) -> Response<ResBody> {
    let headers = call.headers().await;
    match call.shared.extras.repo_stat_all().await {
        Ok(RepoStat { repo_size, storage_max, num_objects }) => {
            response(200, headers, full(json_bytes(&RepoStatAnswer { repo_size, storage_max, num_objects })))
        }
        Err(e) => kubo_error(500, headers, e.message()),
    }
}

/// A CID as go-cid's JSON, `{"/":"<cid>"}`, or `null`.
#[derive(Serialize)]
struct CidLink<'a> {
    #[serde(rename = "/")]
    cid: &'a str,
}

/// One line of `repo/gc`.
#[derive(Serialize)]
struct GcLine<'a> {
    #[serde(rename = "Key")]
    key: Option<CidLink<'a>>,
    #[serde(rename = "Error", skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

/// `repo/gc`: cluster-wide GC, one line per removed block. Errors are lines with
/// `stream-errors=true`, else joined into the trailer. A peer that could not collect at all is
/// reported the same way (IPFS Cluster drops that error).
pub(crate) async fn repo_gc(call: &Call<'_>) -> Response<ResBody> {
    let stream_errors = call.query.get("stream-errors") == "true";
    let mut headers = call.headers().await;
    headers.insert(TRAILER, HeaderValue::from_static(STREAM_ERROR));
    let gc = match call.shared.cluster.ipfs_gc(false).await {
        Ok(gc) => gc,
        Err(e) => return kubo_error(500, headers, e.message()),
    };
    let mut body = BytesMut::new();
    let mut errors = String::new();
    for (peer, repo) in &gc.peer_map {
        // (key, error, whether the entry is a key of IPFS Cluster's answer)
        let peer_error = (!repo.error.is_empty()).then(|| (None, format!("{peer}: {}", repo.error), false));
        let keys = repo.keys.iter().map(|k| (k.key.as_ref(), k.error.clone(), true));
        for (key, error, is_key) in peer_error.into_iter().chain(keys) {
            let key = key.map(|c| CidLink { cid: c.as_str() });
            if stream_errors {
                body.extend_from_slice(&json_line(&GcLine { key, error: &error }));
                continue;
            }
            if !error.is_empty() {
                // Go's multiError: every message followed by "; ".
                errors.push_str(&error);
                errors.push_str("; ");
            }
            // A peer that failed as a whole has no line, only its error in the trailer.
            if is_key {
                body.extend_from_slice(&json_line(&GcLine { key, error: "" }));
            }
        }
    }
    let mut pieces = vec![Ok::<_, BoxError>(Piece::Data(body.freeze()))];
    if !errors.is_empty() {
        pieces.push(Ok(Piece::Trailer(STREAM_ERROR.to_owned(), errors)));
    }
    response(200, headers, streamed(futures::stream::iter(pieces), call.sentinel))
}

/// Kubo's `block/put` line.
#[derive(Deserialize, Serialize)]
struct BlockPutLine {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size")]
    size: i64,
}

/// Kubo's `dag/put` line.
#[derive(Deserialize, Serialize)]
struct DagPutLine {
    #[serde(rename = "Cid")]
    cid: DagCid,
}

#[derive(Deserialize, Serialize)]
struct DagCid {
    #[serde(rename = "/")]
    cid: String,
}

/// `block/put?pin=true` and `dag/put?pin=true`: the request goes to the daemon (`block/put`
/// unchanged, so the daemon pins too; `dag/put` with `pin=false`), then every CID of its
/// answer is cluster-pinned. Pin errors go into the trailer and the stream goes on.
pub(crate) async fn put_and_pin(call: &Call<'_>, body: Incoming, dag: bool) -> Response<ResBody> {
    let headers = call.headers().await;
    let parts = call.parts;
    let path = parts.uri.path();
    let path_and_query = match (dag, parts.uri.query()) {
        (true, query) => format!("{path}?{}", with_pin_false(query.unwrap_or(""))),
        (false, Some(query)) => format!("{path}?{query}"),
        (false, None) => path.to_owned(),
    };
    let upstream = &call.shared.upstream;
    let body = request_body(body, call.read_deadline);
    let request = match upstream_request(upstream, parts, &path_and_query, body, false, None) {
        Ok(r) => r,
        Err(e) => return kubo_error(500, headers, &e),
    };
    let answer = match upstream.send(request).await {
        Ok(a) => a,
        Err(e) => return kubo_error(500, headers, &e),
    };
    let status = answer.status().as_u16();
    if status != 200 {
        // Copied through: the status and the body, under the hijacked headers.
        let body = data_only(answer.into_body()).map(|d| d.map(Piece::Data));
        return response(status, headers, streamed(body, None));
    }
    let mut headers = headers;
    headers.insert(TRAILER, HeaderValue::from_static(STREAM_ERROR));
    let cluster = call.shared.cluster.clone();
    let pieces = pin_each(data_only(answer.into_body()), cluster, dag);
    response(200, headers, streamed(pieces, call.sentinel))
}

/// The query with every `pin` replaced by one `pin=false` (Go's `q.Set("pin","false")`).
fn with_pin_false(raw: &str) -> String {
    let mut out: Vec<&str> = raw.split('&').filter(|p| !p.is_empty() && p.split('=').next() != Some("pin")).collect();
    out.push("pin=false");
    out.join("&")
}

/// Reads JSON values from the daemon's answer, pins each CID, and re-emits each value.
fn pin_each<S>(body: S, cluster: Arc<dyn ClusterApi>, dag: bool) -> impl Stream<Item = Result<Piece, BoxError>> + Send
where
    S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    struct State<S> {
        body: std::pin::Pin<Box<S>>,
        buf: BytesMut,
        ended: bool,
        done: bool,
        cluster: Arc<dyn ClusterApi>,
        /// Pieces ready to go out.
        queue: std::collections::VecDeque<Piece>,
    }
    let state = State {
        body: Box::pin(body),
        buf: BytesMut::new(),
        ended: false,
        done: false,
        cluster,
        queue: Default::default(),
    };
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(piece) = st.queue.pop_front() {
                return Some((Ok(piece), st));
            }
            if st.done {
                return None;
            }
            // One whole JSON value at the front of the buffer?
            let next = {
                let mut values = serde_json::Deserializer::from_slice(&st.buf).into_iter::<serde_json::Value>();
                match values.next() {
                    Some(Ok(value)) => Some(Ok((value, values.byte_offset()))),
                    Some(Err(e)) if e.is_eof() && !st.ended => None,
                    Some(Err(e)) => Some(Err(e.to_string())),
                    None if st.ended => {
                        st.done = true;
                        continue;
                    }
                    None => None,
                }
            };
            match next {
                Some(Ok((value, used))) => {
                    st.buf.advance(used);
                    match decode_and_pin(&*st.cluster, value, dag).await {
                        Ok((line, pin_error)) => {
                            if let Some(e) = pin_error {
                                tracing::error!("ipfsproxy: pinning a put block: {e}");
                                st.queue.push_back(Piece::Trailer(STREAM_ERROR.to_owned(), e));
                            }
                            st.queue.push_back(Piece::Data(line));
                        }
                        Err(e) => {
                            st.queue.push_back(Piece::Trailer(STREAM_ERROR.to_owned(), e));
                            st.done = true;
                        }
                    }
                }
                Some(Err(e)) => {
                    st.queue.push_back(Piece::Trailer(STREAM_ERROR.to_owned(), e));
                    st.done = true;
                }
                None => match st.body.next().await {
                    Some(Ok(data)) => st.buf.extend_from_slice(&data),
                    Some(Err(e)) => {
                        st.queue.push_back(Piece::Trailer(STREAM_ERROR.to_owned(), e.to_string()));
                        st.done = true;
                    }
                    None => st.ended = true,
                },
            }
        }
    })
}

/// Decodes one answer value, pins its CID and re-encodes it: (line, pin error). A value that
/// does not decode ends the stream (the error).
async fn decode_and_pin(
    cluster: &dyn ClusterApi,
    value: serde_json::Value,
    dag: bool,
) -> Result<(Bytes, Option<String>), String> {
    let (cid, line) = if dag {
        let parsed: DagPutLine = serde_json::from_value(value).map_err(|e| format!("decoding dag/put answer: {e}"))?;
        let cid = Cid::parse(&parsed.cid.cid).map_err(|e| format!("decoding dag/put answer: {}", e.source))?;
        let line = json_line(&DagPutLine { cid: DagCid { cid: cid.to_string() } });
        (cid, line)
    } else {
        let parsed: BlockPutLine =
            serde_json::from_value(value).map_err(|e| format!("decoding block/put answer: {e}"))?;
        let cid = Cid::parse(&parsed.key).map_err(|e| format!("decoding block/put answer: {}", e.source))?;
        let line = json_line(&BlockPutLine { key: cid.to_string(), size: parsed.size });
        (cid, line)
    };
    let pin_error = cluster.pin(cid, PinOptions::default()).await.err().map(|e| e.message().to_owned());
    Ok((line, pin_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";

    #[test]
    fn routes() {
        assert_eq!(hijack("/api/v0/pin/add"), Some(Hijack::PinAdd(None)));
        assert_eq!(hijack(&format!("/api/v0/pin/ls/{V0}")), Some(Hijack::PinLs(Some(V0))));
        assert_eq!(hijack("/api/v0/pin/rm/a/b"), None);
        assert_eq!(pattern(&Method::POST, &format!("/api/v0/pin/ls/{V0}")), "/api/v0/pin/ls/{arg}");
        assert_eq!(pattern(&Method::POST, "/api/v0/add"), "/api/v0/add");
        assert_eq!(pattern(&Method::OPTIONS, "/api/v0/add"), "forwarded");
        assert_eq!(pattern(&Method::POST, "/api/v0/id"), "forwarded");
        assert_eq!(hijack("/api/v0/pin/add/"), None);
        assert_eq!(hijack("/api/v0/pin/update/x"), None);
        assert_eq!(hijack("/api/v0/dag/put"), Some(Hijack::DagPut));
        assert_eq!(hijack("/api/v0/id"), None);
        assert_eq!(hijack("/api/v0/add/"), None);
        assert_eq!(hijack("/add"), None);
    }

    #[test]
    fn paths_like_path_or_cid_path() {
        assert_eq!(ipfs_path(V0).as_deref(), Ok(&*format!("/ipfs/{V0}")));
        assert_eq!(ipfs_path(&format!("/ipfs/{V0}/a")).as_deref(), Ok(&*format!("/ipfs/{V0}/a")));
        assert_eq!(ipfs_path("/ipns/example.com").as_deref(), Ok("/ipns/example.com"));
        assert!(ipfs_path("garbage").expect_err("bad").starts_with("invalid path \"/ipfs/garbage\": invalid cid"));
        assert!(ipfs_path("/foo/bar").expect_err("bad").contains("unknown namespace"));
        assert!(ipfs_path("/ipfs").expect_err("bad").contains("not have enough components"));
    }

    #[test]
    fn pin_false_query() {
        assert_eq!(with_pin_false("pin=true&format=cbor&pin=1"), "format=cbor&pin=false");
        assert_eq!(with_pin_false(""), "pin=false");
    }

    #[test]
    fn added_lines() {
        let out = AddedOutput {
            name: "a".into(),
            cid: Some(Cid::parse(V0).expect("cid")),
            bytes: 0,
            size: 12,
            allocations: vec![],
        };
        assert_eq!(
            &json_line(&KuboAdded::from(out))[..],
            format!("{{\"Name\":\"a\",\"Hash\":\"{V0}\",\"Size\":\"12\"}}\n").as_bytes()
        );
        let progress = AddedOutput { name: "a".into(), cid: None, bytes: 5, size: 0, allocations: vec![] };
        assert_eq!(&json_line(&KuboAdded::from(progress))[..], b"{\"Name\":\"a\",\"Bytes\":5}\n");
    }
}
