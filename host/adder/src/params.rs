//! DAG parameters: chunker, leaves, CID version, hash function, layout.

use cid::Cid;
use cid::multihash::Multihash;
use sha2::Digest;

use crate::AdderError;

/// Multicodec of dag-pb.
pub(crate) const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub(crate) const RAW: u64 = 0x55;

/// Kubo's default chunk size (`size-262144`).
pub const DEFAULT_CHUNK_SIZE: usize = 262_144;
/// Kubo's largest accepted chunk size (go-ipfs-chunker `ChunkSizeLimit`, 1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1_048_576;

/// How file data is cut into leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Chunker {
    /// Fixed-size chunks of this many bytes (`size-N`); the last chunk may be shorter.
    Size(usize),
}

impl Chunker {
    /// Parses Kubo's chunker string: `""`/`default` or `size-N` (0 < N <= 1 MiB).
    ///
    /// `rabin*` and `buzhash` are refused: their cut points come from go-ipfs-chunker's exact
    /// tables, which the only reference here (js-ipfs) does not share, so CIDs could not be checked.
    pub fn parse(value: &str) -> Result<Self, AdderError> {
        let err = |reason: String| AdderError::Chunker { value: value.to_owned(), reason };
        if value.is_empty() || value == "default" {
            return Ok(Chunker::Size(DEFAULT_CHUNK_SIZE));
        }
        let Some(size) = value.strip_prefix("size-") else {
            let reason = if value.starts_with("rabin") || value.starts_with("buzhash") {
                "rabin and buzhash chunkers are not supported; use size-<bytes>"
            } else {
                "expected size-<bytes>"
            };
            return Err(err(reason.to_owned()));
        };
        // Go's strconv.Atoi accepts a sign; a plain digit string is what clients send.
        let size: usize =
            size.parse().map_err(|_| err(format!("\"{size}\" is not a byte count; expected size-<bytes>")))?;
        if size == 0 {
            return Err(err("the chunk size must be greater than 0".to_owned()));
        }
        if size > MAX_CHUNK_SIZE {
            return Err(err(format!("chunk size {size} is larger than the maximum of {MAX_CHUNK_SIZE} bytes")));
        }
        Ok(Chunker::Size(size))
    }

    /// Bytes per chunk.
    pub(crate) fn size(self) -> usize {
        match self {
            Chunker::Size(n) => n,
        }
    }
}

/// Multihash function used for every block's CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashFunction {
    /// `sha2-256` (0x12), Kubo's default and the only one CIDv0 allows.
    Sha2_256,
    /// `sha2-512` (0x13).
    Sha2_512,
    /// `blake2b-256` (0xb220).
    Blake2b256,
}

impl HashFunction {
    /// Parses a multihash name as Kubo does (case-insensitive).
    pub fn parse(name: &str) -> Result<Self, AdderError> {
        match name.to_ascii_lowercase().as_str() {
            "sha2-256" => Ok(HashFunction::Sha2_256),
            "sha2-512" => Ok(HashFunction::Sha2_512),
            "blake2b-256" => Ok(HashFunction::Blake2b256),
            _ => Err(AdderError::Hash(name.to_owned())),
        }
    }

    /// The multihash name.
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha2_256 => "sha2-256",
            HashFunction::Sha2_512 => "sha2-512",
            HashFunction::Blake2b256 => "blake2b-256",
        }
    }

    /// The multihash code.
    pub fn code(self) -> u64 {
        match self {
            HashFunction::Sha2_256 => 0x12,
            HashFunction::Sha2_512 => 0x13,
            HashFunction::Blake2b256 => 0xb220,
        }
    }

    /// The function with this multihash code, if supported.
    pub fn from_code(code: u64) -> Option<Self> {
        [HashFunction::Sha2_256, HashFunction::Sha2_512, HashFunction::Blake2b256]
            .into_iter()
            .find(|h| h.code() == code)
    }

    /// Hashes `data` into a multihash.
    pub fn digest(self, data: &[u8]) -> Multihash<64> {
        let wrap = |digest: &[u8]| Multihash::wrap(self.code(), digest);
        let mh = match self {
            HashFunction::Sha2_256 => wrap(&sha2::Sha256::digest(data)),
            HashFunction::Sha2_512 => wrap(&sha2::Sha512::digest(data)),
            HashFunction::Blake2b256 => wrap(blake2b_simd::Params::new().hash_length(32).hash(data).as_bytes()),
        };
        // Every digest above is at most 64 bytes, the multihash's capacity.
        mh.unwrap_or_default()
    }
}

/// DAG shape of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// go-unixfs balanced layout (Kubo's default).
    #[default]
    Balanced,
    /// go-unixfs trickle layout (`trickle=true` / `layout=trickle`).
    Trickle,
}

/// How files become blocks; equal parameters give Kubo's CIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DagParams {
    /// How data is cut into leaves.
    pub chunker: Chunker,
    /// Leaves are raw blocks (codec 0x55) instead of UnixFS dag-pb nodes.
    pub raw_leaves: bool,
    /// CID version of dag-pb nodes (raw leaves are always CIDv1).
    pub cid_version: cid::Version,
    /// Hash function of every CID.
    pub hash: HashFunction,
    /// File DAG layout.
    pub layout: Layout,
}

impl Default for DagParams {
    /// Kubo's and IPFS Cluster's defaults: size-262144, CIDv0, no raw leaves, sha2-256, balanced.
    fn default() -> Self {
        DagParams {
            chunker: Chunker::Size(DEFAULT_CHUNK_SIZE),
            raw_leaves: false,
            cid_version: cid::Version::V0,
            hash: HashFunction::Sha2_256,
            layout: Layout::Balanced,
        }
    }
}

impl DagParams {
    /// From IPFS Cluster / Kubo add parameters (chunker string, raw-leaves, cid-version, hash name, layout).
    ///
    /// `raw_leaves` is the effective value (the caller applies "cid-version > 0 turns raw leaves
    /// on unless raw-leaves was given"). CIDv0 with a hash other than sha2-256 is refused, as
    /// Kubo does (js-ipfs silently switches to CIDv1 instead).
    pub fn parse(
        chunker: &str,
        raw_leaves: bool,
        cid_version: i32,
        hash: &str,
        layout: Layout,
    ) -> Result<Self, AdderError> {
        let chunker = Chunker::parse(chunker)?;
        let hash = HashFunction::parse(hash)?;
        let cid_version = match cid_version {
            0 => cid::Version::V0,
            1 => cid::Version::V1,
            other => return Err(AdderError::CidVersion(other)),
        };
        let params = DagParams { chunker, raw_leaves, cid_version, hash, layout };
        params.check()?;
        Ok(params)
    }

    /// Refuses combinations no CID can express (the fields are public).
    pub(crate) fn check(&self) -> Result<(), AdderError> {
        if self.cid_version == cid::Version::V0 && self.hash != HashFunction::Sha2_256 {
            return Err(AdderError::HashNeedsCidV1(self.hash.name().to_owned()));
        }
        Ok(())
    }

    /// CID of a dag-pb block (v0 `Qm…` or v1 dag-pb).
    pub(crate) fn node_cid(&self, bytes: &[u8]) -> Cid {
        let mh = self.hash.digest(bytes);
        match self.cid_version {
            // `check` guarantees sha2-256 here; fall back to v1 rather than panic if bypassed.
            cid::Version::V0 => Cid::new_v0(mh).unwrap_or_else(|_| Cid::new_v1(DAG_PB, mh)),
            cid::Version::V1 => Cid::new_v1(DAG_PB, mh),
        }
    }

    /// CID of a raw leaf: always v1, even with cid-version 0 (go-cid `Prefix.WithCodec(Raw)`
    /// switches v0 prefixes to v1).
    pub(crate) fn raw_cid(&self, bytes: &[u8]) -> Cid {
        Cid::new_v1(RAW, self.hash.digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunker_strings() {
        assert_eq!(Chunker::parse("").ok(), Some(Chunker::Size(262_144)));
        assert_eq!(Chunker::parse("default").ok(), Some(Chunker::Size(262_144)));
        assert_eq!(Chunker::parse("size-1").ok(), Some(Chunker::Size(1)));
        assert_eq!(Chunker::parse("size-1048576").ok(), Some(Chunker::Size(1_048_576)));
        for (bad, needle) in [
            ("size-0", "greater than 0"),
            ("size-1048577", "maximum of 1048576"),
            ("size-abc", "\"abc\" is not a byte count"),
            ("size--5", "is not a byte count"),
            ("rabin-16-32-64", "not supported"),
            ("buzhash", "not supported"),
            ("foo-1", "expected size-<bytes>"),
        ] {
            let err = Chunker::parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn parse_params() {
        let p = DagParams::parse("size-1000", true, 1, "SHA2-512", Layout::Trickle).ok();
        assert_eq!(
            p,
            Some(DagParams {
                chunker: Chunker::Size(1000),
                raw_leaves: true,
                cid_version: cid::Version::V1,
                hash: HashFunction::Sha2_512,
                layout: Layout::Trickle,
            })
        );
        assert_eq!(DagParams::parse("", false, 0, "sha2-256", Layout::Balanced).ok(), Some(DagParams::default()));
        let err = |r: Result<DagParams, AdderError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(DagParams::parse("", false, 2, "sha2-256", Layout::Balanced)).contains("cid-version 2"));
        assert!(err(DagParams::parse("", false, -1, "sha2-256", Layout::Balanced)).contains("cid-version -1"));
        assert!(err(DagParams::parse("", false, 0, "md5", Layout::Balanced)).contains("\"md5\""));
        assert!(err(DagParams::parse("", false, 0, "sha2-512", Layout::Balanced)).contains("needs cid-version=1"));
    }

    #[test]
    fn known_digests() {
        // blake2b-256("") from the BLAKE2 reference.
        let mh = HashFunction::Blake2b256.digest(b"");
        assert_eq!(mh.code(), 0xb220);
        let hex: String = mh.digest().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
        assert_eq!(HashFunction::Sha2_512.digest(b"x").size(), 64);
        assert_eq!(HashFunction::from_code(0x13), Some(HashFunction::Sha2_512));
        assert_eq!(HashFunction::from_code(0x1b), None);
    }
}
