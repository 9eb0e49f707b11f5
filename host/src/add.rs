//! `POST /add` on this peer (IPFS Cluster's single-DAG adder): allocate first, build the UnixFS
//! DAG (or read the CAR) with `cairn-adder`, stream its blocks to the allocated peers' IPFS
//! daemons (`IPFSConnector.BlockStream` over the swarm, in batches), then pin the root with
//! those allocations. Outputs go to the client as they come; the root's line carries the
//! allocations.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use cairn_adder::{AddEvent, AdderError, Block, BlockSink, DagParams, ImportOptions, Importer, Layout, PathLimits};
use cairn_api::{AddFormat, AddLayout, AddLimits, AddParams, AddPart, AddRequest, AddedOutput, ApiError, ApiStream};
use cairn_state::{Cid, Pin};
use cairn_swarm::PeerId;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{Mutex, mpsc};

use crate::cluster::ClusterRpc;

/// The RPC that carries a batch of blocks to a peer's IPFS daemon.
pub const BLOCK_STREAM: &str = "IPFSConnector.BlockStream";
/// A batch is sent once it holds this many bytes; below the swarm's 4 MiB request limit with
/// room for one more maximal (1 MiB) chunk.
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Runs an add and streams its outputs.
pub(crate) fn add(rpc: Arc<ClusterRpc>, request: AddRequest) -> ApiStream<AddedOutput> {
    // Unbounded: events are raised inside the importer, which cannot wait for a slow client;
    // they are small (one per file, one per chunk with progress).
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut outputs = Outputs { tx: tx.clone(), held: None };
        if let Err(e) = run(rpc, request, &mut outputs).await {
            let _ = tx.send(Err(e));
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// The client's side of an add. The latest file or directory line is held back: the root's
/// line goes out last, after the pin, carrying the allocations.
struct Outputs {
    tx: mpsc::UnboundedSender<Result<AddedOutput, ApiError>>,
    held: Option<AddedOutput>,
}

impl Outputs {
    fn event(&mut self, event: AddEvent) {
        match event {
            AddEvent::Progress { name, bytes } => {
                // More content follows, so the held line is not the root's.
                self.release();
                let _ = self.tx.send(Ok(AddedOutput { name, bytes, ..AddedOutput::default() }));
            }
            AddEvent::Added { name, cid, size } => {
                self.release();
                self.held = Some(AddedOutput { name, cid: Some(Cid::from_raw(cid)), size, ..AddedOutput::default() });
            }
        }
    }

    fn release(&mut self) {
        if let Some(held) = self.held.take() {
            let _ = self.tx.send(Ok(held));
        }
    }
}

fn adder_error(e: AdderError) -> ApiError {
    if e.is_bad_input() { ApiError::bad_request(e.to_string()) } else { ApiError::Internal(e.to_string()) }
}

/// The DAG parameters of an add, as Kubo reads them (raw leaves already defaulted by the query).
fn dag_params(params: &AddParams) -> Result<DagParams, ApiError> {
    let layout = match params.layout {
        AddLayout::Balanced => Layout::Balanced,
        AddLayout::Trickle => Layout::Trickle,
    };
    DagParams::parse(&params.chunker, params.raw_leaves, params.cid_version, &params.hash_fun, layout)
        .map_err(adder_error)
}

async fn run(rpc: Arc<ClusterRpc>, request: AddRequest, outputs: &mut Outputs) -> Result<(), ApiError> {
    let AddRequest { params, mut parts } = request;
    if params.shard {
        return Err(ApiError::bad_request("shard=true: sharded adds are not supported by Cairn"));
    }
    if params.nocopy {
        return Err(ApiError::bad_request("nocopy=true: the filestore is not supported by Cairn"));
    }
    let dag = dag_params(&params)?;
    let (allocations, destinations) = rpc.add_destinations(&params).await?;
    let sink = ClusterSink::new(rpc.clone(), destinations);

    let root = match params.format {
        AddFormat::Car => {
            let part =
                next_file_part(&mut parts).await?.ok_or_else(|| ApiError::bad_request("no CAR file in the request"))?;
            let name = part_path(&part)?;
            let mut car_sink = sink.clone();
            let car = cairn_adder::import_car_summary(part.data, &mut car_sink).await.map_err(adder_error)?;
            if next_file_part(&mut parts).await?.is_some() {
                return Err(ApiError::bad_request("format=car takes exactly one file"));
            }
            outputs.held = Some(AddedOutput {
                name,
                cid: Some(Cid::from_raw(car.root)),
                size: car.size,
                ..AddedOutput::default()
            });
            car.root
        }
        AddFormat::Unixfs => {
            let options = ImportOptions {
                wrap_with_directory: params.wrap_with_directory,
                // IPFS Cluster's server keeps hidden files whatever `hidden` says (kubo's
                // client filters them before sending), so a part that arrived is content.
                hidden: true,
                progress: params.progress,
            };
            // The API already refused longer paths with a 400 before the add started; the same
            // limits keep the importer's own check from differing.
            let limits = PathLimits {
                max_depth: AddLimits::MAX_PATH_DEPTH,
                max_bytes: AddLimits::MAX_PATH_BYTES,
                ..PathLimits::default()
            };
            let mut importer = Importer::new(dag, options, sink.clone()).with_path_limits(limits);
            let mut any = false;
            while let Some(part) = parts.try_next().await? {
                if part.file_name.is_none() {
                    // A plain form field: not content.
                    drop(part);
                    continue;
                }
                let path = part_path(&part)?;
                match part.content_type.as_deref() {
                    Some("application/x-directory") => {
                        importer.add_directory(&path).map_err(adder_error)?;
                    }
                    Some("application/symlink") => {
                        return Err(ApiError::bad_request(format!(
                            "{path}: symlinks are not supported by Cairn's adder"
                        )));
                    }
                    _ => {
                        let mut sender = |event| outputs.event(event);
                        importer.add_file(&path, part.data, &mut sender).await.map_err(adder_error)?;
                    }
                }
                any = true;
            }
            if !any {
                return Err(ApiError::bad_request("the request holds no file"));
            }
            let mut sender = |event| outputs.event(event);
            importer.finish(&mut sender).await.map_err(adder_error)?
        }
    };
    sink.flush().await.map_err(adder_error)?;

    let mut last =
        outputs.held.take().unwrap_or_else(|| AddedOutput { cid: Some(Cid::from_raw(root)), ..AddedOutput::default() });
    if !params.no_pin {
        let mut pin = Pin::new(Cid::from_raw(root));
        pin.options = params.options.clone();
        pin.options.pin_update = None;
        pin.allocations = allocations.clone();
        let pinned = rpc.pin(pin).await.map_err(ApiError::Internal)?;
        last.allocations = pinned.allocations;
    }
    let _ = outputs.tx.send(Ok(last));
    Ok(())
}

/// The part's path: kubo URL-escapes it in `filename`.
fn part_path(part: &AddPart) -> Result<String, ApiError> {
    let raw = part.file_name.as_deref().unwrap_or("");
    cairn_api::query::decode_path(raw)
        .ok_or_else(|| ApiError::bad_request(format!("bad file name {raw:?}: invalid URL escape")))
}

async fn next_file_part(
    parts: &mut futures::stream::BoxStream<'static, Result<AddPart, ApiError>>,
) -> Result<Option<AddPart>, ApiError> {
    while let Some(part) = parts.try_next().await? {
        if part.file_name.is_some() {
            return Ok(Some(part));
        }
    }
    Ok(None)
}

/// Where an add's blocks go.
#[derive(Clone, Debug, Default)]
pub(crate) struct Destinations {
    /// This peer's own IPFS daemon.
    pub local: bool,
    /// Other peers, by their IPFS daemons.
    pub remote: Vec<PeerId>,
}

impl ClusterRpc {
    /// The allocations of an add's root, and where its blocks go: the allocated peers, every
    /// peer of the peerset for "everywhere", or only this peer with `local=true`.
    async fn add_destinations(&self, params: &AddParams) -> Result<(Vec<String>, Destinations), ApiError> {
        // A placeholder CID: the allocator plugin sees the options, not the content.
        let placeholder = placeholder_cid();
        let mut pin = Pin::new(placeholder);
        pin.options = params.options.clone();
        let allocations = match self.allocator() {
            Some(allocator) => {
                crate::allocate::normalize(&mut pin, &allocator.settings).map_err(ApiError::bad_request)?;
                allocator.allocate(&pin, &[], &[]).await.map_err(ApiError::Internal)?
            }
            None => Vec::new(),
        };
        let me = self.local_peer();
        let targets = if params.local {
            vec![me.clone()]
        } else if allocations.is_empty() {
            self.peerset().await
        } else {
            allocations.clone()
        };
        let mut destinations = Destinations::default();
        for peer in targets {
            if peer == me {
                destinations.local = true;
            } else {
                let id = peer.parse::<PeerId>().map_err(|e| ApiError::Internal(format!("allocation {peer}: {e}")))?;
                destinations.remote.push(id);
            }
        }
        Ok((allocations, destinations))
    }

    /// `IPFSConnector.BlockStream`: puts a batch of blocks into this peer's IPFS daemon.
    pub(crate) async fn block_stream(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let ipfs = self.ipfs()?;
        let blocks = decode_batch(payload).map_err(|e| format!("{BLOCK_STREAM}: {e}"))?;
        for (cid, data) in blocks {
            let options = cairn_ipfs::BlockPutOptions::for_cid(&cid);
            let info = ipfs.block_put(data, options).await.map_err(|e| format!("block/put {cid}: {e}"))?;
            if info.cid.hash() != cid.hash() {
                return Err(format!("block/put {cid}: the IPFS daemon stored it as {}", info.cid));
            }
        }
        Ok(Vec::new())
    }
}

/// An identity-hash CID standing in for the not yet known root during allocation.
fn placeholder_cid() -> Cid {
    // identity multihash (0x00) of "cairn-add", raw codec.
    let digest = b"cairn-add";
    let mut bytes = vec![0x01, 0x55, 0x00, digest.len() as u8];
    bytes.extend_from_slice(digest);
    Cid::from_bytes(&bytes).unwrap_or_else(|_| Cid::parse("bafkqaaa").expect("the empty identity CID parses"))
}

/// Encodes blocks as `(u32 cid length, cid, u32 data length, data)*`.
fn encode_batch(blocks: &[Block]) -> Vec<u8> {
    let size: usize = blocks.iter().map(|b| 8 + 40 + b.data.len()).sum();
    let mut out = Vec::with_capacity(size);
    for block in blocks {
        let cid = block.cid.to_bytes();
        out.put_u32(cid.len() as u32);
        out.put_slice(&cid);
        out.put_u32(block.data.len() as u32);
        out.put_slice(&block.data);
    }
    out
}

fn decode_batch(payload: &[u8]) -> Result<Vec<(cid::Cid, Bytes)>, String> {
    let mut buf = Bytes::copy_from_slice(payload);
    let mut blocks = Vec::new();
    let take = |buf: &mut Bytes, what: &str| -> Result<Bytes, String> {
        if buf.remaining() < 4 {
            return Err(format!("truncated batch: no {what} length"));
        }
        let len = buf.get_u32() as usize;
        if buf.remaining() < len {
            return Err(format!("truncated batch: {what} of {len} bytes has {} left", buf.remaining()));
        }
        Ok(buf.split_to(len))
    };
    while buf.has_remaining() {
        let cid = take(&mut buf, "CID")?;
        let cid = cid::Cid::try_from(cid.as_ref()).map_err(|e| format!("bad CID in batch: {e}"))?;
        let data = take(&mut buf, "block")?;
        blocks.push((cid, data));
    }
    Ok(blocks)
}

/// Batches blocks and delivers each batch to every destination.
#[derive(Clone)]
struct ClusterSink {
    rpc: Arc<ClusterRpc>,
    destinations: Arc<Destinations>,
    pending: Arc<Mutex<(Vec<Block>, usize)>>,
}

impl ClusterSink {
    fn new(rpc: Arc<ClusterRpc>, destinations: Destinations) -> Self {
        Self { rpc, destinations: Arc::new(destinations), pending: Arc::new(Mutex::new((Vec::new(), 0))) }
    }

    async fn push(&self, block: Block) -> Result<(), AdderError> {
        let batch = {
            let mut pending = self.pending.lock().await;
            pending.1 += block.data.len();
            pending.0.push(block);
            if pending.1 < BATCH_BYTES {
                return Ok(());
            }
            pending.1 = 0;
            std::mem::take(&mut pending.0)
        };
        self.send(batch).await
    }

    async fn flush(&self) -> Result<(), AdderError> {
        let batch = {
            let mut pending = self.pending.lock().await;
            pending.1 = 0;
            std::mem::take(&mut pending.0)
        };
        if batch.is_empty() { Ok(()) } else { self.send(batch).await }
    }

    async fn send(&self, batch: Vec<Block>) -> Result<(), AdderError> {
        let payload = encode_batch(&batch);
        let mut calls = Vec::new();
        if self.destinations.local {
            let rpc = self.rpc.clone();
            let payload = payload.clone();
            calls.push(Box::pin(async move { ("this peer".to_string(), rpc.block_stream(&payload).await) })
                as BoxFuture<'static, (String, Result<Vec<u8>, String>)>);
        }
        for peer in &self.destinations.remote {
            let (rpc, payload, peer) = (self.rpc.clone(), payload.clone(), *peer);
            calls.push(Box::pin(async move { (peer.to_string(), rpc.call(peer, BLOCK_STREAM, payload).await) }));
        }
        for (peer, result) in futures::future::join_all(calls).await {
            if let Err(e) = result {
                return Err(AdderError::Sink(format!("sending blocks to {peer}: {e}")));
            }
        }
        Ok(())
    }
}

impl BlockSink for ClusterSink {
    fn put(&mut self, block: Block) -> BoxFuture<'_, Result<(), AdderError>> {
        Box::pin(self.push(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_truncation_is_named() {
        let cid = placeholder_cid().raw().to_owned();
        let blocks =
            vec![Block { cid, data: Bytes::from_static(b"cairn-add") }, Block { cid, data: Bytes::from_static(b"") }];
        let encoded = encode_batch(&blocks);
        let decoded = decode_batch(&encoded).expect("decodes");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].0, cid);
        assert_eq!(&decoded[0].1[..], b"cairn-add");
        let err = decode_batch(&encoded[..encoded.len() - 3]).expect_err("truncated");
        assert!(err.contains("truncated batch"), "{err}");
        assert!(decode_batch(&[0, 0, 0, 2, 0xff, 0xff, 0, 0, 0, 0]).expect_err("bad cid").contains("bad CID"));
    }
}
