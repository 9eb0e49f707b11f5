//! [`ClusterApi`]: what the REST API asks of the cluster, one method per route (reference §1.3).
//! The server parses and validates the request (CIDs, peer ids, pin options, filters) before it
//! calls a method, so implementations get typed, checked arguments.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use cairn_state::{Cid, Pin, PinOptions};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::ApiError;
use crate::types::{
    AddedOutput, Alert, Bandwidth, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, PinTypeFilter, TrackerFilter,
    Version,
};

/// The answer of a non-streaming method.
pub type ApiFuture<'a, T> = BoxFuture<'a, Result<T, ApiError>>;

/// The answer of a streaming method: items in order, an `Err` ends the stream. It owns what it
/// needs (`'static`) because the response body outlives the call.
///
/// The first item decides the response: an error first is answered with that error (500 for
/// [`ApiError::Internal`]), no item at all with 204, anything else with 200 and NDJSON; an error
/// after the first item goes into the `X-Stream-Error` trailer.
pub type ApiStream<T> = BoxStream<'static, Result<T, ApiError>>;

/// The cluster behind the REST API.
pub trait ClusterApi: Send + Sync {
    /// `GET /id`: this peer.
    fn id(&self) -> ApiFuture<'_, Id>;
    /// `GET /version`.
    fn version(&self) -> ApiFuture<'_, Version>;
    /// `GET /peers`: every peer's `Id` (an unreachable one with `error` set).
    fn peers(&self) -> ApiStream<Id>;
    /// `POST /peers` with `{"peer_id":..}`: the peer id is checked and in base58 form.
    fn peer_add(&self, peer_id: String) -> ApiFuture<'_, Id>;
    /// `DELETE /peers/{peer}` (answered 204): the peer id is checked and in base58 form.
    fn peer_remove(&self, peer_id: String) -> ApiFuture<'_, ()>;
    /// `POST /pins/{cid}`: pin with these options; the committed pin is answered. `options.mode`
    /// is the request's `mode` and must be honoured (IPFS Cluster's handler forces recursive
    /// here, reference §10.3; Cairn does not).
    fn pin(&self, cid: Cid, options: PinOptions) -> ApiFuture<'_, Pin>;
    /// `POST /pins/{ipfs|ipns|ipld}/{path}`: resolve and pin; `path` is checked
    /// (`/ipfs/<cid>/...`).
    fn pin_path(&self, path: String, options: PinOptions) -> ApiFuture<'_, Pin>;
    /// `DELETE /pins/{cid}`: the pin as it was; [`ApiError::pin_not_found`] when not pinned.
    fn unpin(&self, cid: Cid) -> ApiFuture<'_, Pin>;
    /// `DELETE /pins/{ipfs|ipns|ipld}/{path}`.
    fn unpin_path(&self, path: String) -> ApiFuture<'_, Pin>;
    /// `GET /allocations`: the pinset, only pins whose type passes `filter`.
    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin>;
    /// `GET /allocations/{cid}`: [`ApiError::pin_not_found`] when absent.
    fn allocation(&self, cid: Cid) -> ApiFuture<'_, Pin>;
    /// `GET /pins` (`filter=`, `local=true`): status of every pin matching the filter.
    fn status_all(&self, filter: TrackerFilter, local: bool) -> ApiStream<GlobalPinInfo>;
    /// `GET /pins?cids=a,b`: status of these CIDs (in completion order, if done in parallel).
    fn status_cids(&self, cids: Vec<Cid>, local: bool) -> ApiStream<GlobalPinInfo>;
    /// `GET /pins/{cid}`: a CID not in the pinset is answered with every peer `unpinned`, not
    /// an error.
    fn status(&self, cid: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo>;
    /// `POST /pins/{cid}/recover`.
    fn recover(&self, cid: Cid, local: bool) -> ApiFuture<'_, GlobalPinInfo>;
    /// `POST /pins/recover`: only the items whose recover re-queued work.
    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo>;
    /// `POST /ipfs/gc` (`local=true`: this peer only, as a one-entry map).
    fn ipfs_gc(&self, local: bool) -> ApiFuture<'_, GlobalRepoGc>;
    /// `GET /health/graph`.
    fn health_graph(&self) -> ApiFuture<'_, ConnectGraph>;
    /// `GET /health/alerts`: newest first.
    fn alerts(&self) -> ApiFuture<'_, Vec<Alert>>;
    /// `GET /health/bandwidth`: libp2p counters by protocol id.
    fn bandwidth(&self) -> ApiFuture<'_, BTreeMap<String, Bandwidth>>;
    /// `GET /health` (never authorized; answered 204). Healthy by default.
    fn health(&self) -> ApiFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// `GET /monitor/metrics`: metric names.
    fn metric_names(&self) -> ApiFuture<'_, Vec<String>>;
    /// `GET /monitor/metrics/{name}`: the latest valid metric of each peer.
    fn metrics(&self, name: String) -> ApiFuture<'_, Vec<Metric>>;
    /// `POST /add`: import the files of a multipart body and pin the root. Outputs are streamed
    /// to the client as they come (or collected when `stream-channels=false`).
    fn add(&self, request: AddRequest) -> ApiStream<AddedOutput>;
}

/// How an add builds its DAG from the parts (`format=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddFormat {
    /// UnixFS files and directories.
    #[default]
    Unixfs,
    /// One CAR file with exactly one root.
    Car,
}

/// The UnixFS DAG layout (`layout=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddLayout {
    /// Balanced (also `""`).
    #[default]
    Balanced,
    /// Trickle.
    Trickle,
}

/// The query of `POST /add` (IPFS Cluster's `AddParams`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddParams {
    /// Pin options of the root (`pin_update` is always unset).
    pub options: PinOptions,
    /// Put blocks into the local IPFS daemon only.
    pub local: bool,
    /// Add directories recursively.
    pub recursive: bool,
    /// Include hidden files.
    pub hidden: bool,
    /// Wrap the files in a directory.
    pub wrap_with_directory: bool,
    /// Shard the DAG (experimental in IPFS Cluster).
    pub shard: bool,
    /// Stream outputs as NDJSON (default) rather than one JSON array.
    pub stream_channels: bool,
    /// UnixFS or CAR.
    pub format: AddFormat,
    /// Put blocks but do not pin the root.
    pub no_pin: bool,
    /// DAG layout.
    pub layout: AddLayout,
    /// Chunker, e.g. `size-262144`.
    pub chunker: String,
    /// Raw leaves (defaults to true when `cid_version` > 0).
    pub raw_leaves: bool,
    /// Emit progress lines.
    pub progress: bool,
    /// CID version.
    pub cid_version: i32,
    /// Multihash function name.
    pub hash_fun: String,
    /// Filestore (no copy).
    pub nocopy: bool,
}

impl Default for AddParams {
    fn default() -> Self {
        Self {
            options: PinOptions { shard_size: crate::query::DEFAULT_SHARD_SIZE, ..PinOptions::default() },
            local: false,
            recursive: false,
            hidden: false,
            wrap_with_directory: false,
            shard: false,
            stream_channels: true,
            format: AddFormat::Unixfs,
            no_pin: false,
            layout: AddLayout::Balanced,
            chunker: "size-262144".to_owned(),
            raw_leaves: false,
            progress: false,
            cid_version: 0,
            hash_fun: "sha2-256".to_owned(),
            nocopy: false,
        }
    }
}

/// One part of the multipart body of `POST /add` (a file, a directory entry, or a form field),
/// in kubo's encoding: `filename` holds the URL-escaped path, `Content-Type:
/// application/x-directory` marks a directory.
pub struct AddPart {
    /// `name` of `Content-Disposition` (kubo sends `file`).
    pub field_name: Option<String>,
    /// `filename` of `Content-Disposition`, as sent.
    pub file_name: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// Every header of the part, names lower-cased (e.g. `abspath` for `nocopy`).
    pub headers: Vec<(String, String)>,
    /// The content. Drain or drop it before asking [`AddRequest::parts`] for the next part: a
    /// multipart body is read in order.
    pub data: BoxStream<'static, Result<Bytes, ApiError>>,
}

impl fmt::Debug for AddPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddPart")
            .field("field_name", &self.field_name)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// `POST /add`: the parameters and the parts, streamed from the request body as they arrive.
/// The server has already read the first part's headers, so a body that is not multipart at all
/// was answered with 400 before [`ClusterApi::add`] is called; a later malformation or a size
/// limit arrives as an `Err` in [`AddRequest::parts`] or in a part's data.
pub struct AddRequest {
    /// Query parameters.
    pub params: AddParams,
    /// The parts, in body order.
    pub parts: BoxStream<'static, Result<AddPart, ApiError>>,
}

impl fmt::Debug for AddRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddRequest").field("params", &self.params).finish_non_exhaustive()
    }
}
