//! `IpfsHttp`: the connector for a Kubo-RPC daemon (IPFS Cluster's `ipfsconn/ipfshttp`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;

use crate::config::IpfsHttpConfig;
use crate::connector::IpfsConnector;
use crate::error::{IpfsError, Result};
use crate::parse::{self, as_u64, cid_value, field, str_field};
use crate::transport::{JsonLines, Transport};
use crate::types::{
    BlockInfo, BlockPutOptions, GcReport, IpfsId, PinMode, PinOutcome, PinRequest, PinStatus, PinnedCid, RepoStat,
    UnpinOutcome,
};

/// How often `wait_ready` asks `id` (IPFS Cluster: every second).
const READY_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many pin origins are dialled before a pin (IPFS Cluster: 10).
const MAX_ORIGINS: usize = 10;

/// A connector to one Kubo-RPC daemon. Cheap to clone; clones share connections and counters.
#[derive(Clone)]
pub struct IpfsHttp {
    inner: Arc<Inner>,
}

struct Inner {
    config: IpfsHttpConfig,
    transport: Transport,
    /// Pins, unpins and block puts since start, for `informer_trigger_interval`.
    operations: AtomicU64,
    trigger: watch::Sender<u64>,
}

impl IpfsHttp {
    /// A connector for `config.node_multiaddress`; fails on an invalid config. Does not connect.
    pub fn new(config: IpfsHttpConfig) -> Result<IpfsHttp> {
        let transport = Transport::new(&config)?;
        let (trigger, _) = watch::channel(0);
        Ok(IpfsHttp { inner: Arc::new(Inner { config, transport, operations: AtomicU64::new(0), trigger }) })
    }

    /// The configuration this connector was built with.
    pub fn config(&self) -> &IpfsHttpConfig {
        &self.inner.config
    }

    /// Consecutive transport failures (requests are throttled to 1/s above 10).
    pub fn consecutive_failures(&self) -> u32 {
        self.inner.transport.consecutive_failures()
    }
}

impl std::fmt::Debug for IpfsHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpfsHttp").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Inner {
    fn daemon(&self) -> String {
        self.transport.daemon.clone()
    }

    /// A plain call with `ipfs_request_timeout`, answer parsed as JSON.
    async fn call_json(&self, call: &'static str, query: &[(&str, String)]) -> Result<Value> {
        let timeout = self.config.ipfs_request_timeout;
        self.transport.with_timeout(call, timeout, self.transport.post_json(call, query)).await
    }

    /// Counts an operation for the informer trigger.
    fn count_operation(&self) {
        let every = self.config.informer_trigger_interval;
        let n = self.operations.fetch_add(1, Ordering::Relaxed) + 1;
        if every > 0 && n.is_multiple_of(every) {
            self.trigger.send_modify(|ticks| *ticks += 1);
        }
    }

    async fn id(&self) -> Result<IpfsId> {
        let value = self.call_json("id", &[]).await?;
        let peer_id = str_field(&value, "ID")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| self.transport.malformed("id", "no ID in the answer".to_owned()))?
            .to_owned();
        let addresses = field(&value, "Addresses")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let agent_version = str_field(&value, "AgentVersion").map(str::to_owned);
        Ok(IpfsId { peer_id, addresses, agent_version })
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<IpfsId> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tries = 0u64;
        loop {
            tries += 1;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(remaining, self.id()).await;
            match attempt {
                Ok(Ok(id)) => return Ok(id),
                Ok(Err(e)) => {
                    if tries.is_multiple_of(10) {
                        tracing::info!(daemon = %self.daemon(), tries, error = %e, "IPFS daemon not ready yet");
                    }
                }
                Err(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(self.transport.timeout("id", timeout));
            }
            tokio::time::sleep_until((now + READY_POLL_INTERVAL).min(deadline)).await;
        }
    }

    async fn pin_ls_cid(&self, cid: Cid, mode: Option<PinMode>) -> Result<PinStatus> {
        const CALL: &str = "pin/ls";
        let mut query = vec![("stream", "true".to_owned()), ("arg", cid.to_string())];
        query.push(("type", mode.map_or("all", PinMode::as_str).to_owned()));
        let timeout = self.config.ipfs_request_timeout;
        let listing = async {
            let response = self.transport.post(CALL, &query, None).await?;
            let mut lines = JsonLines::new(CALL, &self.transport.daemon, response);
            let mut found = PinStatus::Unpinned;
            while let Some(value) = lines.next().await? {
                for (entry_cid, status) in self.pin_entries(&value, mode)? {
                    // Daemons key pins by multihash (js-ipfs) or answer for the path asked, so a
                    // listing of one arg is taken as about that arg whatever CID version it prints.
                    if entry_cid.hash() == cid.hash() {
                        found = status;
                    }
                }
            }
            Ok(found)
        };
        match self.transport.with_timeout(CALL, timeout, listing).await {
            Err(e) if is_not_pinned(&e) => Ok(PinStatus::Unpinned),
            other => other,
        }
    }

    /// The (cid, type) entries of one pin/ls answer value: NDJSON `{"Cid","Type"}` or `{"Keys":{..}}`.
    fn pin_entries(&self, value: &Value, asked: Option<PinMode>) -> Result<Vec<(Cid, PinStatus)>> {
        let bad = |detail: String| self.transport.malformed("pin/ls", detail);
        let status_of = |entry: &Value| -> Result<PinStatus> {
            match str_field(entry, "Type") {
                Some(t) => PinStatus::from_wire(t).ok_or_else(|| bad(format!("unknown pin type {t:?}"))),
                // A daemon that leaves the type out answered the type we asked for.
                None => Ok(match asked {
                    Some(PinMode::Direct) => PinStatus::Direct,
                    _ => PinStatus::Recursive,
                }),
            }
        };
        if let Some(keys) = field(value, "Keys") {
            let Some(keys) = keys.as_object() else {
                return Err(bad("Keys is not an object".to_owned()));
            };
            return keys
                .iter()
                .map(|(k, entry)| {
                    let cid = parse::parse_cid(k).ok_or_else(|| bad(format!("invalid CID {k:?}")))?;
                    Ok((cid, status_of(entry)?))
                })
                .collect();
        }
        let raw = field(value, "Cid").ok_or_else(|| bad(format!("neither Cid nor Keys in {value}")))?;
        let cid = cid_value(raw).ok_or_else(|| bad(format!("invalid CID {raw}")))?;
        Ok(vec![(cid, status_of(value)?)])
    }

    #[tracing::instrument(skip_all, name = "ipfs.pin", fields(cid = %request.cid, mode = ?request.mode))]
    async fn pin(self: &Arc<Self>, request: PinRequest) -> Result<PinOutcome> {
        let status = self.pin_ls_cid(request.cid, Some(request.mode)).await?;
        if status.satisfies(request.mode) {
            tracing::debug!(cid = %request.cid, "already pinned in IPFS");
            return Ok(PinOutcome::AlreadyPinned);
        }
        self.count_operation();
        if let Some(from) = request.update_from
            && request.mode == PinMode::Recursive
            && self.pin_ls_cid(from, Some(PinMode::Recursive)).await? == PinStatus::Recursive
        {
            match self.pin_update(from, request.cid).await {
                Ok(()) => return Ok(PinOutcome::Updated),
                // js-ipfs has no pin/update (404); a plain pin gets the same result, only slower.
                Err(IpfsError::Daemon { status: 404, .. }) => {
                    tracing::debug!(%from, to = %request.cid, "daemon has no pin/update; pinning instead");
                }
                Err(e) => return Err(e),
            }
        }
        for origin in request.origins.iter().take(MAX_ORIGINS) {
            // Fired in the background, as in IPFS Cluster: the pin does not wait for the dials.
            let this = Arc::clone(self);
            let origin = origin.clone();
            tokio::spawn(async move {
                if let Err(e) = this.swarm_connect(&origin).await {
                    tracing::debug!(%origin, error = %e, "could not connect to pin origin");
                }
            });
        }
        self.pin_add(&request).await
    }

    /// `pin/add` with progress: cancelled when the progress has not grown for `pin_timeout`.
    async fn pin_add(&self, request: &PinRequest) -> Result<PinOutcome> {
        const CALL: &str = "pin/add";
        let stall = self.config.pin_timeout;
        let mut query = vec![
            ("arg", request.cid.to_string()),
            ("recursive", (request.mode == PinMode::Recursive).to_string()),
            ("progress", "true".to_owned()),
        ];
        if let (PinMode::Recursive, Some(depth)) = (request.mode, request.max_depth) {
            query.push(("max-depth", depth.to_string()));
        }
        let stalled = |progress| IpfsError::PinStalled {
            cid: request.cid.to_string(),
            daemon: self.daemon(),
            timeout: stall,
            progress,
        };
        // One timer covers the wait for the answer's headers too: a daemon that streams no
        // progress (js-ipfs answers only when done) must finish within one pin_timeout.
        let timer = tokio::time::sleep(stall);
        tokio::pin!(timer);
        let response = tokio::select! {
            response = self.transport.post(CALL, &query, None) => response?,
            () = &mut timer => return Err(stalled(0)),
        };
        let mut lines = JsonLines::new(CALL, &self.transport.daemon, response);
        let mut progress = 0u64;
        loop {
            let value = tokio::select! {
                value = lines.next() => value?,
                () = &mut timer => return Err(stalled(progress)),
            };
            let Some(value) = value else {
                // IPFS Cluster treats the end of the stream as success; errors come as an error
                // status, an error object or the X-Stream-Error trailer, all handled above.
                return Ok(PinOutcome::Pinned);
            };
            if let Some(p) = field(&value, "Progress").and_then(as_u64)
                && p > progress
            {
                progress = p;
                timer.as_mut().reset(tokio::time::Instant::now() + stall);
                if let Some(tx) = &request.progress {
                    tx.send_replace(p);
                }
            }
            if field(&value, "Pins").is_some() {
                return Ok(PinOutcome::Pinned);
            }
        }
    }

    async fn pin_update(&self, from: Cid, to: Cid) -> Result<()> {
        const CALL: &str = "pin/update";
        let query = [("arg", from.to_string()), ("arg", to.to_string()), ("unpin", "false".to_owned())];
        // IPFS Cluster sets no deadline here; an update fetches only the difference, but that can
        // be large, so the generous unpin_timeout bounds it rather than ipfs_request_timeout.
        let timeout = self.config.unpin_timeout;
        self.transport.with_timeout(CALL, timeout, self.transport.post_bytes(CALL, &query, None)).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, name = "ipfs.unpin", fields(cid = %cid))]
    async fn unpin(&self, cid: Cid) -> Result<UnpinOutcome> {
        const CALL: &str = "pin/rm";
        if self.config.unpin_disable {
            return Err(IpfsError::UnpinDisabled { cid: cid.to_string(), daemon: self.daemon() });
        }
        self.count_operation();
        let query = [("arg", cid.to_string())];
        let timeout = self.config.unpin_timeout;
        match self.transport.with_timeout(CALL, timeout, self.transport.post_bytes(CALL, &query, None)).await {
            Ok(_) => Ok(UnpinOutcome::Unpinned),
            Err(e) if is_not_pinned(&e) => Ok(UnpinOutcome::NotPinned),
            Err(e) => Err(e),
        }
    }

    async fn swarm_connect(&self, multiaddr: &str) -> Result<()> {
        self.call_json("swarm/connect", &[("arg", multiaddr.to_owned())]).await.map(drop)
    }

    async fn swarm_peers(&self) -> Result<Vec<String>> {
        let value = self.call_json("swarm/peers", &[]).await?;
        let peers = field(&value, "Peers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(peers.iter().filter_map(|p| str_field(p, "Peer")).map(str::to_owned).collect())
    }

    async fn repo_stat(&self) -> Result<RepoStat> {
        let value = self.call_json("repo/stat", &[("size-only", "true".to_owned())]).await?;
        let number = |name: &str| field(&value, name).and_then(as_u64);
        let missing = |name: &str| self.transport.malformed("repo/stat", format!("no numeric {name} in {value}"));
        Ok(RepoStat {
            repo_size: number("RepoSize").ok_or_else(|| missing("RepoSize"))?,
            storage_max: number("StorageMax").ok_or_else(|| missing("StorageMax"))?,
            num_objects: number("NumObjects"),
        })
    }

    async fn repo_gc(&self) -> Result<GcReport> {
        const CALL: &str = "repo/gc";
        let timeout = self.config.repogc_timeout;
        let gc = async {
            let response = self.transport.post(CALL, &[("stream-errors", "true".to_owned())], None).await?;
            let mut lines = JsonLines::new(CALL, &self.transport.daemon, response);
            let mut report = GcReport::default();
            while let Some(value) = lines.next().await? {
                if let Some(error) = str_field(&value, "Error").filter(|e| !e.is_empty()) {
                    report.errors.push(error.to_owned());
                }
                if let Some(key) = field(&value, "Key") {
                    match cid_value(key) {
                        Some(cid) => report.removed.push(cid),
                        None => report.errors.push(format!("unreadable key {key}")),
                    }
                }
            }
            Ok(report)
        };
        self.transport.with_timeout(CALL, timeout, gc).await
    }

    async fn block_put(&self, data: Bytes, options: BlockPutOptions) -> Result<BlockInfo> {
        const CALL: &str = "block/put";
        self.count_operation();
        let mut query = Vec::new();
        if let Some(codec) = options.cid_codec {
            query.push(("cid-codec", codec));
        }
        if let Some(mhtype) = options.mhtype {
            query.push(("mhtype", mhtype));
        }
        if let Some(mhlen) = options.mhlen {
            query.push(("mhlen", mhlen.to_string()));
        }
        if let Some(format) = options.format {
            query.push(("format", format));
        }
        query.push(("pin", "false".to_owned()));
        query.push(("allow-big-block", "true".to_owned()));
        let (content_type, body) = multipart_file(&data);
        let timeout = self.config.ipfs_request_timeout;
        let put = async {
            let bytes = self.transport.post_bytes(CALL, &query, Some((content_type, body))).await?;
            let value: Value = serde_json::Deserializer::from_slice(&bytes)
                .into_iter::<Value>()
                .next()
                .and_then(|v| v.ok())
                .ok_or_else(|| self.transport.malformed(CALL, "no JSON in the answer".to_owned()))?;
            self.block_info(CALL, &value)
        };
        self.transport.with_timeout(CALL, timeout, put).await
    }

    /// `{"Key": <cid>, "Size": n}` from block/put and block/stat.
    fn block_info(&self, call: &'static str, value: &Value) -> Result<BlockInfo> {
        let key = field(value, "Key").ok_or_else(|| self.transport.malformed(call, format!("no Key in {value}")))?;
        let cid = cid_value(key).ok_or_else(|| self.transport.malformed(call, format!("invalid CID {key}")))?;
        let size = field(value, "Size").and_then(as_u64).unwrap_or_default();
        Ok(BlockInfo { cid, size })
    }

    async fn block_get(&self, cid: Cid) -> Result<Bytes> {
        const CALL: &str = "block/get";
        let query = [("arg", cid.to_string())];
        let timeout = self.config.ipfs_request_timeout;
        self.transport.with_timeout(CALL, timeout, self.transport.post_bytes(CALL, &query, None)).await
    }

    async fn block_stat(&self, cid: Cid) -> Result<BlockInfo> {
        let value = self.call_json("block/stat", &[("arg", cid.to_string())]).await?;
        self.block_info("block/stat", &value)
    }

    async fn resolve(&self, path: &str) -> Result<Cid> {
        const CALL: &str = "resolve";
        let trimmed = path.trim().trim_end_matches('/');
        // IPFS Cluster skips the call for /ipfs/<cid> with no sub-path: it is its own answer.
        let bare = trimmed.strip_prefix("/ipfs/").unwrap_or(trimmed);
        if !bare.contains('/')
            && let Some(cid) = parse::parse_cid(bare)
        {
            return Ok(cid);
        }
        let value = self.call_json(CALL, &[("arg", path.to_owned())]).await?;
        let resolved =
            str_field(&value, "Path").ok_or_else(|| self.transport.malformed(CALL, format!("no Path in {value}")))?;
        // The result must be an immutable path, i.e. /ipfs/<cid> and nothing after it.
        let rest =
            resolved.strip_prefix("/ipfs/").filter(|rest| !rest.trim_end_matches('/').contains('/')).ok_or_else(
                || self.transport.malformed(CALL, format!("{resolved:?} is not an immutable /ipfs/<cid> path")),
            )?;
        parse::parse_cid(rest.trim_end_matches('/'))
            .ok_or_else(|| self.transport.malformed(CALL, format!("invalid CID in {resolved:?}")))
    }

    async fn config_key(&self, key: &str) -> Result<Value> {
        const CALL: &str = "config/show";
        let config = self.call_json(CALL, &[]).await?;
        let mut value = &config;
        for part in key.split('.') {
            value = value
                .get(part)
                .ok_or_else(|| self.transport.malformed(CALL, format!("the daemon's config has no key {key:?}")))?;
        }
        Ok(value.clone())
    }
}

/// Kubo's "not pinned or pinned indirectly" and js-ipfs's "path '…' is not pinned".
fn is_not_pinned(err: &IpfsError) -> bool {
    err.daemon_message().is_some_and(|m| m.contains("not pinned"))
}

/// A multipart/form-data body with one file part (what `block/put` reads).
fn multipart_file(data: &[u8]) -> (String, Bytes) {
    // The boundary must not occur in the data; bump a counter until it does not.
    let mut n = 0u32;
    let boundary = loop {
        let candidate = format!("cairn-ipfs-block-boundary-{n:08x}");
        if !data.windows(candidate.len()).any(|w| w == candidate.as_bytes()) {
            break candidate;
        }
        n += 1;
    };
    let mut body = BytesMut::with_capacity(data.len() + 256);
    body.put_slice(format!("--{boundary}\r\n").as_bytes());
    body.put_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"block\"\r\n");
    body.put_slice(b"Content-Type: application/octet-stream\r\n\r\n");
    body.put_slice(data);
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body.freeze())
}

impl IpfsConnector for IpfsHttp {
    fn id(&self) -> BoxFuture<'_, Result<IpfsId>> {
        self.inner.id().boxed()
    }

    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, Result<IpfsId>> {
        self.inner.wait_ready(timeout).boxed()
    }

    fn pin(&self, request: PinRequest) -> BoxFuture<'_, Result<PinOutcome>> {
        self.inner.pin(request).boxed()
    }

    fn unpin(&self, cid: Cid) -> BoxFuture<'_, Result<UnpinOutcome>> {
        self.inner.unpin(cid).boxed()
    }

    fn pin_ls_cid(&self, cid: Cid, mode: Option<PinMode>) -> BoxFuture<'_, Result<PinStatus>> {
        self.inner.pin_ls_cid(cid, mode).boxed()
    }

    fn pin_ls(&self) -> BoxStream<'static, Result<PinnedCid>> {
        let state = PinLsState {
            inner: Arc::clone(&self.inner),
            modes: VecDeque::from([PinMode::Recursive, PinMode::Direct]),
            current: None,
            pending: VecDeque::new(),
        };
        futures::stream::unfold(state, PinLsState::next).boxed()
    }

    fn pin_update(&self, from: Cid, to: Cid) -> BoxFuture<'_, Result<()>> {
        self.inner.pin_update(from, to).boxed()
    }

    fn swarm_connect<'a>(&'a self, multiaddr: &'a str) -> BoxFuture<'a, Result<()>> {
        self.inner.swarm_connect(multiaddr).boxed()
    }

    fn swarm_peers(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.inner.swarm_peers().boxed()
    }

    fn repo_stat(&self) -> BoxFuture<'_, Result<RepoStat>> {
        self.inner.repo_stat().boxed()
    }

    fn repo_gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        self.inner.repo_gc().boxed()
    }

    fn block_put(&self, data: Bytes, options: BlockPutOptions) -> BoxFuture<'_, Result<BlockInfo>> {
        self.inner.block_put(data, options).boxed()
    }

    fn block_get(&self, cid: Cid) -> BoxFuture<'_, Result<Bytes>> {
        self.inner.block_get(cid).boxed()
    }

    fn block_stat(&self, cid: Cid) -> BoxFuture<'_, Result<BlockInfo>> {
        self.inner.block_stat(cid).boxed()
    }

    fn resolve<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Cid>> {
        self.inner.resolve(path).boxed()
    }

    fn config_key<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Value>> {
        self.inner.config_key(key).boxed()
    }

    fn informer_trigger(&self) -> watch::Receiver<u64> {
        self.inner.trigger.subscribe()
    }
}

/// The full listing walks `type=recursive`, then `type=direct` (IPFS Cluster's loop stopped after
/// the first type, §10.9, so direct pins looked unpinned).
struct PinLsState {
    inner: Arc<Inner>,
    modes: VecDeque<PinMode>,
    current: Option<(PinMode, JsonLines)>,
    /// Entries of a `{"Keys":{..}}` answer not handed out yet.
    pending: VecDeque<PinnedCid>,
}

impl PinLsState {
    /// One step of the stream; after an error the stream ends.
    async fn next(mut self) -> Option<(Result<PinnedCid>, PinLsState)> {
        const CALL: &str = "pin/ls";
        // A listing of millions of pins takes longer than any fixed deadline, so
        // ipfs_request_timeout bounds each wait for the next entry instead of the whole listing.
        let timeout = self.inner.config.ipfs_request_timeout;
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Some((Ok(entry), self));
            }
            let (mode, lines) = match &mut self.current {
                Some((mode, lines)) => (*mode, lines),
                None => {
                    let mode = self.modes.pop_front()?;
                    let query = [("stream", "true".to_owned()), ("type", mode.as_str().to_owned())];
                    let transport = &self.inner.transport;
                    match transport.with_timeout(CALL, timeout, transport.post(CALL, &query, None)).await {
                        Ok(response) => {
                            let lines = JsonLines::new(CALL, &transport.daemon, response);
                            let (mode, lines) = self.current.insert((mode, lines));
                            (*mode, lines)
                        }
                        Err(e) => return Some((Err(e), self.fuse())),
                    }
                }
            };
            let next = tokio::time::timeout(timeout, lines.next()).await;
            match next {
                Ok(Ok(Some(value))) => match self.inner.pin_entries(&value, Some(mode)) {
                    Ok(entries) => {
                        self.pending.extend(entries.into_iter().map(|(cid, status)| PinnedCid { cid, status }))
                    }
                    Err(e) => return Some((Err(e), self.fuse())),
                },
                Ok(Ok(None)) => self.current = None,
                Ok(Err(e)) => return Some((Err(e), self.fuse())),
                Err(_) => {
                    let e = self.inner.transport.timeout(CALL, timeout);
                    return Some((Err(e), self.fuse()));
                }
            }
        }
    }

    /// Ends the stream after the item being returned.
    fn fuse(mut self) -> Self {
        self.modes.clear();
        self.current = None;
        self.pending.clear();
        self
    }
}
