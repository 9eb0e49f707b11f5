//! Fetching a DAG over bitswap with a stall timeout: the walk fails only when no new block has
//! arrived for `stall`, however long the whole DAG takes (IPFS Cluster's `pin_timeout`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use cid::Cid;
use futures::StreamExt;
use rust_ipfs::repo::{DefaultStorage, Repo};

/// At most this many blocks are wanted at once.
const BATCH: usize = 128;
/// rust-ipfs's own per-block deadline; far beyond any stall timeout, which is what really bounds a fetch.
const WANT_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Why a fetch stopped.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// No new block for the stall timeout; `progress` blocks had arrived.
    Stalled { progress: u64 },
    /// A block arrived but its links cannot be read (unsupported codec or corrupt data).
    Decode { cid: Cid, reason: String },
    /// The repository failed.
    Repo { reason: String },
}

/// Makes every block of `root`'s DAG local, down to `max_depth` levels below the root
/// (`Some(0)` = the root only, None = all); reports the running block count to `progress`.
pub(crate) async fn fetch_dag(
    repo: &Repo<DefaultStorage>,
    root: Cid,
    max_depth: Option<u32>,
    stall: Duration,
    progress: impl Fn(u64),
) -> Result<u64, FetchError> {
    // Blocks are keyed by multihash: a CIDv0 link and a CIDv1 answer name the same block.
    let mut seen: HashSet<Vec<u8>> = HashSet::from([root.hash().to_bytes()]);
    let mut queue: VecDeque<(Cid, u32)> = VecDeque::from([(root, 0)]);
    let mut fetched = 0u64;
    let timer = tokio::time::sleep(stall);
    tokio::pin!(timer);
    while !queue.is_empty() {
        let n = queue.len().min(BATCH);
        let batch: Vec<(Cid, u32)> = queue.drain(..n).collect();
        let depth_of: HashMap<Vec<u8>, u32> =
            batch.iter().map(|(cid, depth)| (cid.hash().to_bytes(), *depth)).collect();
        let mut blocks = repo.get_blocks(batch.iter().map(|(cid, _)| *cid)).timeout(WANT_TIMEOUT);
        let mut remaining = batch.len();
        while remaining > 0 {
            let item = tokio::select! {
                item = blocks.next() => item,
                () = &mut timer => return Err(FetchError::Stalled { progress: fetched }),
            };
            let block = match item {
                Some(Ok(block)) => block,
                Some(Err(e)) => return Err(FetchError::Repo { reason: format!("{e:#}") }),
                None => {
                    return Err(FetchError::Repo {
                        reason: format!("the block request ended with {remaining} blocks missing"),
                    });
                }
            };
            remaining -= 1;
            fetched += 1;
            timer.as_mut().reset(tokio::time::Instant::now() + stall);
            progress(fetched);
            let depth = depth_of.get(&block.cid().hash().to_bytes()).copied().unwrap_or(0);
            if max_depth.is_some_and(|max| depth >= max) {
                continue;
            }
            let mut links: Vec<Cid> = Vec::new();
            block
                .references(&mut links)
                .map_err(|e| FetchError::Decode { cid: *block.cid(), reason: e.to_string() })?;
            for link in links {
                if seen.insert(link.hash().to_bytes()) {
                    queue.push_back((link, depth.saturating_add(1)));
                }
            }
        }
    }
    Ok(fetched)
}
