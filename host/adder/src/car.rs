//! CAR import (`format=car`): CARv1, and CARv2 by reading its inner CARv1 payload.

use std::fmt::Display;

use bytes::{Buf, Bytes, BytesMut};
use cid::Cid;
use futures::{Stream, StreamExt};

use crate::{AdderError, Block, BlockSink, HashFunction};

/// Largest CAR header accepted; real headers are tens of bytes.
const MAX_HEADER: u64 = 1024 * 1024;
/// Largest section (CID + block) accepted. Kubo refuses blocks over 1 MiB on `block/put`
/// anyway; the margin keeps odd but valid CARs readable while bounding memory.
const MAX_SECTION: u64 = 4 * 1024 * 1024;
/// Length of the CARv2 pragma (`0a a1 67 "version" 02`) plus its fixed 40-byte header.
const V2_PREFIX: u64 = 11 + 40;
/// Nesting limit of the header's CBOR (the real header is two levels deep).
const MAX_CBOR_DEPTH: usize = 16;

/// What an imported CAR held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarSummary {
    /// The single root.
    pub root: Cid,
    /// Blocks stored.
    pub blocks: u64,
    /// Sum of block data lengths (IPFS Cluster's `Bytes` for a CAR add).
    pub bytes: u64,
    /// UnixFS filesize of the root when the root block is in the CAR and is a UnixFS node, else 0
    /// (IPFS Cluster's `Size` for a CAR add).
    pub size: u64,
}

/// Reads a CARv1 (or CARv2) stream, verifies each block's hash against its CID, puts every
/// block, returns the single root; 0 or more than 1 roots is an error naming the count.
pub async fn import_car<E: Display>(
    data: impl Stream<Item = Result<Bytes, E>> + Unpin + Send,
    sink: &mut dyn BlockSink,
) -> Result<Cid, AdderError> {
    import_car_summary(data, sink).await.map(|s| s.root)
}

/// [`import_car`], also returning block count, bytes and the root's UnixFS size.
pub async fn import_car_summary<E: Display>(
    data: impl Stream<Item = Result<Bytes, E>> + Unpin + Send,
    sink: &mut dyn BlockSink,
) -> Result<CarSummary, AdderError> {
    let mut r = Reader { stream: data, buf: BytesMut::new(), offset: 0, eof: false };
    let (version, mut roots) = read_header(&mut r).await?;
    // End of the CARv1 payload: the stream's end for v1, `data offset + data size` for v2.
    let mut limit = None;
    if version == 2 {
        let header = r.read_exact(40, "the CARv2 header").await?;
        let data_offset = u64_le(&header[16..24]);
        let data_size = u64_le(&header[24..32]);
        if data_offset < V2_PREFIX {
            return Err(AdderError::CarHeader(format!("CARv2 data offset {data_offset} points into the header")));
        }
        r.skip(data_offset - V2_PREFIX).await?;
        limit = Some(data_offset.saturating_add(data_size));
        let (inner, inner_roots) = read_header(&mut r).await?;
        if inner != 1 {
            return Err(AdderError::CarHeader(format!("CARv2 payload has version {inner}, expected 1")));
        }
        roots = inner_roots;
    } else if version != 1 {
        return Err(AdderError::CarVersion(version));
    }
    if roots.len() != 1 {
        return Err(AdderError::CarRoots(roots.len()));
    }
    let mut summary = CarSummary { root: roots[0], blocks: 0, bytes: 0, size: 0 };

    loop {
        if limit.is_some_and(|l| r.offset >= l) {
            break;
        }
        let start = r.offset;
        let Some(len) = r.read_varint("a section length").await? else {
            if limit.is_some() {
                return Err(AdderError::CarTruncated { offset: r.offset, what: "the CARv2 payload" });
            }
            break;
        };
        let bad = |reason: String| AdderError::CarSection { offset: start, reason };
        if len == 0 {
            return Err(bad("zero-length section".to_owned()));
        }
        if len > MAX_SECTION {
            return Err(bad(format!("section length {len} exceeds the limit of {MAX_SECTION} bytes")));
        }
        if limit.is_some_and(|l| r.offset.saturating_add(len) > l) {
            return Err(bad(format!("section length {len} runs past the CARv2 payload")));
        }
        let mut section = r.read_exact(len as usize, "a section").await?;
        let mut cursor = std::io::Cursor::new(&section[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| bad(format!("invalid CID: {e}")))?;
        section.advance(cursor.position() as usize);
        verify(&cid, &section)?;
        if cid == summary.root && cid.codec() == crate::params::DAG_PB {
            summary.size = crate::pb::unixfs_filesize(&section).unwrap_or(0);
        }
        summary.blocks += 1;
        summary.bytes = summary.bytes.saturating_add(section.len() as u64);
        sink.put(Block { cid, data: section }).await?;
    }
    Ok(summary)
}

/// Checks that `data` hashes to `cid`'s multihash.
fn verify(cid: &Cid, data: &[u8]) -> Result<(), AdderError> {
    let mh = cid.hash();
    let ok = if mh.code() == 0x00 {
        // identity: the "digest" is the data itself.
        mh.digest() == data
    } else {
        let Some(hash) = HashFunction::from_code(mh.code()) else {
            return Err(AdderError::CarUnsupportedHash { cid: *cid, code: mh.code() });
        };
        let computed = hash.digest(data);
        // A truncated multihash (size below the function's length) compares its prefix.
        computed.digest().get(..mh.digest().len()) == Some(mh.digest()) && !mh.digest().is_empty()
    };
    if ok { Ok(()) } else { Err(AdderError::CarHashMismatch { cid: *cid }) }
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads `varint length | DAG-CBOR {version, roots}`; returns the version and roots.
async fn read_header<St, E>(r: &mut Reader<St>) -> Result<(u64, Vec<Cid>), AdderError>
where
    St: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let Some(len) = r.read_varint("the header length").await? else {
        return Err(AdderError::CarTruncated { offset: 0, what: "the header (empty input)" });
    };
    if len == 0 || len > MAX_HEADER {
        return Err(AdderError::CarHeader(format!("header length {len} is out of range 1..={MAX_HEADER}")));
    }
    let bytes = r.read_exact(len as usize, "the header").await?;
    let mut input = &bytes[..];
    let value = cbor::read(&mut input, 0).map_err(AdderError::CarHeader)?;
    if !input.is_empty() {
        return Err(AdderError::CarHeader(format!("{} bytes after the header map", input.len())));
    }
    let cbor::Value::Map(entries) = value else {
        return Err(AdderError::CarHeader("header is not a map".to_owned()));
    };
    let mut version = None;
    let mut roots = Vec::new();
    for (key, value) in entries {
        match (key, value) {
            (cbor::Value::Text(k), cbor::Value::Uint(v)) if k == "version" => version = Some(v),
            (cbor::Value::Text(k), cbor::Value::Array(items)) if k == "roots" => {
                for item in items {
                    roots.push(cbor::link(item).map_err(AdderError::CarHeader)?);
                }
            }
            (cbor::Value::Text(k), _) if k == "version" || k == "roots" => {
                return Err(AdderError::CarHeader(format!("\"{k}\" has the wrong type")));
            }
            _ => {}
        }
    }
    let version = version.ok_or_else(|| AdderError::CarHeader("no \"version\"".to_owned()))?;
    Ok((version, roots))
}

/// Buffered reading over the body stream, keeping only what the current section needs.
struct Reader<St> {
    stream: St,
    buf: BytesMut,
    /// Bytes consumed so far.
    offset: u64,
    eof: bool,
}

impl<St, E> Reader<St>
where
    St: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    /// Buffers at least `n` bytes; false if the input ends first.
    async fn fill(&mut self, n: usize) -> Result<bool, AdderError> {
        while self.buf.len() < n && !self.eof {
            match self.stream.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => return Err(AdderError::Input { path: "CAR".to_owned(), message: e.to_string() }),
                None => self.eof = true,
            }
        }
        Ok(self.buf.len() >= n)
    }

    /// A varint; `None` on a clean end of input before its first byte.
    async fn read_varint(&mut self, what: &'static str) -> Result<Option<u64>, AdderError> {
        let mut v: u64 = 0;
        for i in 0..10usize {
            if !self.fill(i + 1).await? {
                if i == 0 {
                    return Ok(None);
                }
                return Err(AdderError::CarTruncated { offset: self.offset + i as u64, what });
            }
            let b = self.buf[i];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf.advance(i + 1);
                self.offset += i as u64 + 1;
                return Ok(Some(v));
            }
        }
        Err(AdderError::CarSection { offset: self.offset, reason: format!("{what} is not a valid varint") })
    }

    async fn read_exact(&mut self, n: usize, what: &'static str) -> Result<Bytes, AdderError> {
        if !self.fill(n).await? {
            return Err(AdderError::CarTruncated { offset: self.offset + self.buf.len() as u64, what });
        }
        self.offset += n as u64;
        Ok(self.buf.split_to(n).freeze())
    }

    /// Drops `n` bytes without keeping them.
    async fn skip(&mut self, mut n: u64) -> Result<(), AdderError> {
        while n > 0 {
            if !self.fill(1).await? {
                return Err(AdderError::CarTruncated {
                    offset: self.offset,
                    what: "the padding before the CARv2 payload",
                });
            }
            let take = n.min(self.buf.len() as u64) as usize;
            self.buf.advance(take);
            self.offset += take as u64;
            n -= take as u64;
        }
        Ok(())
    }
}

/// Just enough CBOR to read a CAR header (DAG-CBOR: definite lengths only).
mod cbor {
    use cid::Cid;

    /// A decoded CBOR item.
    pub(super) enum Value {
        Uint(u64),
        NegInt,
        Bytes(Vec<u8>),
        Text(String),
        Array(Vec<Value>),
        Map(Vec<(Value, Value)>),
        Tag(u64, Box<Value>),
        Simple,
    }

    fn take<'a>(input: &mut &'a [u8], n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| format!("length {n} is too large"))?;
        if input.len() < n {
            return Err(format!("item of {n} bytes runs past the header ({} left)", input.len()));
        }
        let (head, rest) = input.split_at(n);
        *input = rest;
        Ok(head)
    }

    /// Reads one item; `depth` bounds nesting.
    pub(super) fn read(input: &mut &[u8], depth: usize) -> Result<Value, String> {
        if depth > super::MAX_CBOR_DEPTH {
            return Err("CBOR nesting too deep".to_owned());
        }
        let first = *take(input, 1)?.first().ok_or("empty input")?;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let bytes = take(input, 1 << (info - 24))?;
                bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
            }
            _ => return Err(format!("unsupported CBOR additional info {info} (indefinite lengths are not DAG-CBOR)")),
        };
        Ok(match major {
            0 => Value::Uint(arg),
            1 => Value::NegInt,
            2 => Value::Bytes(take(input, arg)?.to_vec()),
            3 => {
                Value::Text(String::from_utf8(take(input, arg)?.to_vec()).map_err(|_| "text is not UTF-8".to_owned())?)
            }
            4 => {
                // Each item takes at least one byte, so `arg` cannot exceed what is left.
                let mut items = Vec::with_capacity(usize::try_from(arg).unwrap_or(0).min(input.len()));
                for _ in 0..arg {
                    items.push(read(input, depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let mut entries = Vec::with_capacity(usize::try_from(arg).unwrap_or(0).min(input.len() / 2));
                for _ in 0..arg {
                    let k = read(input, depth + 1)?;
                    let v = read(input, depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            6 => Value::Tag(arg, Box::new(read(input, depth + 1)?)),
            _ => Value::Simple,
        })
    }

    /// A DAG-CBOR link: tag 42 over bytes `00 <binary CID>`.
    pub(super) fn link(value: Value) -> Result<Cid, String> {
        let Value::Tag(42, inner) = value else {
            return Err("root is not a CID link (tag 42)".to_owned());
        };
        let Value::Bytes(bytes) = *inner else {
            return Err("root link is not a byte string".to_owned());
        };
        match bytes.split_first() {
            Some((0, cid)) => Cid::try_from(cid).map_err(|e| format!("invalid root CID: {e}")),
            _ => Err("root link lacks the 0x00 multibase prefix".to_owned()),
        }
    }
}
