//! Cairn's adder: builds UnixFS DAGs exactly like Kubo (go-unixfs / boxo importer, as vendored
//! by IPFS Cluster's `adder/ipfsadd`), so the same bytes and parameters give the same CIDs, and
//! imports CAR files. Pure library code: the daemon's `POST /add` feeds it multipart parts and
//! sends the blocks it produces to the IPFS daemons through a [`BlockSink`].
//!
//! What is reproduced: `size-N` chunking; balanced (174 links per node) and trickle (174 links,
//! depth repeat 4) layouts; raw leaves (always CIDv1, even with cid-version 0, as go-cid does);
//! UnixFS `File` leaves for balanced and `Raw` leaves for trickle when leaves are not raw; the
//! empty file; one-chunk files reduced to their leaf (balanced only); plain directories with
//! byte-ordered links; wrap-with-directory; Added events in Kubo's order (files as added, then
//! directories children first, the root last). The CIDs are checked against a real
//! implementation (js-ipfs 0.66.1) in `tests/reference.rs`.
//!
//! Limits (errors, never silently different CIDs):
//! - chunkers other than `size-N` (`rabin-*`, `buzhash`) are refused;
//! - directories Kubo would HAMT-shard (estimated size >= 256 KiB, roughly 5000+ entries) are
//!   refused with [`AdderError::DirectoryTooLarge`];
//! - hash functions: sha2-256, sha2-512, blake2b-256; CIDv0 only with sha2-256 (Kubo's rule);
//! - no symlinks, no UnixFS mode/mtime, no filestore (`nocopy` has no meaning here).
//! - [`PathLimits`]: paths over 256 components or 4096 bytes, and imports over 1 000 000 entries,
//!   are refused (each level costs memory and an Added line carrying its whole path); a directory
//!   is refused as soon as its estimate passes twice the sharding size, not only at `finish`.
//!
//! Deviations from the API sketch:
//! - [`Importer::add_file`] returns `Result<Option<Cid>, _>`: `None` when the file is skipped as
//!   hidden (the caller then discards the part's data);
//! - [`import_car_summary`] also returns the block count, bytes and root size that IPFS Cluster
//!   reports for a CAR add; [`import_car`] returns just the root.
//! - Hidden entries: a path component below the top level whose name starts with '.' is skipped
//!   unless `hidden` (Kubo's client-side rule; IPFS Cluster's server ignores `hidden` and keeps
//!   everything, which `hidden: true` reproduces).

mod builder;
mod car;
mod error;
mod importer;
mod params;
mod pb;

use bytes::Bytes;
pub use cid::Cid;
use futures::future::BoxFuture;

pub use car::{CarSummary, import_car, import_car_summary};
pub use error::AdderError;
pub use importer::{
    DEFAULT_MAX_ENTRIES, DEFAULT_MAX_PATH_BYTES, DEFAULT_MAX_PATH_DEPTH, ImportOptions, Importer, PathLimits,
};
pub use params::{Chunker, DEFAULT_CHUNK_SIZE, DagParams, HashFunction, Layout, MAX_CHUNK_SIZE};

/// One finished block: its CID and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID.
    pub cid: Cid,
    /// The block's bytes.
    pub data: Bytes,
}

/// Where finished blocks go (the daemon sends them to IPFS daemons). Called in DAG order:
/// children before parents.
pub trait BlockSink: Send {
    /// Stores one block; an error aborts the add (map it with [`AdderError::sink`]).
    fn put(&mut self, block: Block) -> BoxFuture<'_, Result<(), AdderError>>;
}

/// Collects blocks in memory (tests, small adds).
impl BlockSink for Vec<Block> {
    fn put(&mut self, block: Block) -> BoxFuture<'_, Result<(), AdderError>> {
        self.push(block);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Lets a caller keep ownership of its sink.
impl<S: BlockSink + ?Sized> BlockSink for &mut S {
    fn put(&mut self, block: Block) -> BoxFuture<'_, Result<(), AdderError>> {
        (**self).put(block)
    }
}

/// What the importer reports, in Kubo's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddEvent {
    /// Bytes of the current file read so far (only with `ImportOptions::progress`).
    Progress {
        /// The file's path.
        name: String,
        /// Cumulative bytes read.
        bytes: u64,
    },
    /// A file or directory is complete.
    Added {
        /// Its path ("" for the wrapping directory).
        name: String,
        /// Its CID.
        cid: Cid,
        /// Cumulative DAG size (Kubo's "Size": block bytes plus all descendants).
        size: u64,
    },
}
