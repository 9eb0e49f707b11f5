//! The adder's typed errors.

use cid::Cid;

/// Everything that can go wrong while building a DAG or importing a CAR.
///
/// Every variant except [`AdderError::Sink`] is caused by the request (parameters, paths or
/// data), so the API answers 400 for them and 500 for sink failures; see [`AdderError::is_bad_input`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdderError {
    /// The `chunker` parameter is malformed or names an unsupported chunker.
    #[error("unsupported chunker \"{value}\": {reason}")]
    Chunker {
        /// The chunker string as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The `hash` parameter names a hash function the adder cannot compute.
    #[error("unsupported hash function \"{0}\": expected sha2-256, sha2-512 or blake2b-256")]
    Hash(String),
    /// The `cid-version` parameter is not 0 or 1.
    #[error("unsupported cid-version {0}: expected 0 or 1")]
    CidVersion(i32),
    /// CIDv0 can only address sha2-256 dag-pb blocks (Kubo: "CIDv0 only supports sha2-256").
    #[error("hash function \"{0}\" needs cid-version=1: CIDv0 only supports sha2-256")]
    HashNeedsCidV1(String),
    /// A path given to the importer is unusable.
    #[error("invalid path \"{path}\": {reason}")]
    Path {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A path with more components than the importer's [`crate::PathLimits::max_depth`].
    #[error("invalid path: {depth} components, over the limit of {limit} (max path depth)")]
    PathTooDeep {
        /// Components in the path.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// A path longer than the importer's [`crate::PathLimits::max_bytes`].
    #[error("invalid path: {bytes} bytes, over the limit of {limit} (max path length)")]
    PathTooLong {
        /// Bytes in the path.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// More files and directories than the importer's [`crate::PathLimits::max_entries`].
    #[error("the add holds more than {limit} files and directories (max entries)")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// Two entries were added at the same path (MFS refuses this too).
    #[error("duplicate path \"{0}\": an entry with this name was already added")]
    DuplicatePath(String),
    /// A path runs through a file (`a.txt/b`) or a directory is re-added as a file.
    #[error("path \"{path}\" conflicts with the file \"{file}\"")]
    PathConflict {
        /// The path being added.
        path: String,
        /// The already added entry that is in the way.
        file: String,
    },
    /// `finish` without any file or directory and without wrap-with-directory.
    #[error("nothing to add: the request holds no file or directory")]
    NothingAdded,
    /// A directory big enough that Kubo would turn it into a HAMT shard, which the adder does
    /// not build (its CID would differ from Kubo's).
    #[error(
        "directory \"{path}\" is too large ({entries} entries, estimated {estimated} bytes >= 262144): HAMT-sharded directories are not supported"
    )]
    DirectoryTooLarge {
        /// The directory's path ("" for the wrapping directory).
        path: String,
        /// Number of entries.
        entries: usize,
        /// Kubo's estimate: sum of name lengths plus binary CID lengths.
        estimated: usize,
    },
    /// The request body stream failed while a file was read.
    #[error("reading \"{path}\": {message}")]
    Input {
        /// The file being read.
        path: String,
        /// The stream's error.
        message: String,
    },
    /// The CAR header is malformed.
    #[error("invalid CAR header: {0}")]
    CarHeader(String),
    /// The CAR header declares a version other than 1 or 2.
    #[error("unsupported CAR version {0}: expected 1 or 2")]
    CarVersion(u64),
    /// The CAR does not have exactly one root.
    #[error("CAR has {0} roots: exactly one root is supported")]
    CarRoots(usize),
    /// The CAR stream ended inside a header or section.
    #[error("truncated CAR: input ended at byte {offset} inside {what}")]
    CarTruncated {
        /// Bytes read when the input ended.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A CAR section is malformed (bad length, bad CID).
    #[error("invalid CAR section at byte {offset}: {reason}")]
    CarSection {
        /// Offset of the section's length prefix.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A block's data does not hash to its CID.
    #[error("CAR block {cid} does not match its data (hash mismatch)")]
    CarHashMismatch {
        /// The CID the section claims.
        cid: Cid,
    },
    /// A block's CID uses a hash function the adder cannot verify.
    #[error("CAR block {cid} uses multihash code {code:#x}, which cannot be verified")]
    CarUnsupportedHash {
        /// The block's CID.
        cid: Cid,
        /// Its multihash code.
        code: u64,
    },
    /// The block sink (the IPFS daemons) failed: not the client's fault.
    #[error("storing block: {0}")]
    Sink(String),
}

impl AdderError {
    /// True when the request is at fault (HTTP 400); false for sink failures (HTTP 500).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, AdderError::Sink(_))
    }

    /// Wraps a sink failure (for [`crate::BlockSink`] implementations).
    pub fn sink(err: impl std::fmt::Display) -> Self {
        AdderError::Sink(err.to_string())
    }
}
