//! Hand-written protobuf for dag-pb (`PBNode`/`PBLink`) and UnixFS `Data`.
//!
//! The byte layout must equal what go-merkledag/go-unixfs (gogo proto2) write, because the CIDs
//! are hashes of these bytes: PBNode writes Links (field 2) before Data (field 1); every PBLink
//! carries Hash, Name (even when empty: `12 00`) and Tsize; UnixFS `blocksizes` is an unpacked
//! repeated field; an absent optional field is simply not written.

/// UnixFS `Data.DataType` values used by the importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    /// `Raw` (0): the leaf type of Kubo's trickle layout when leaves are not raw blocks.
    Raw = 0,
    /// `Directory` (1).
    Directory = 1,
    /// `File` (2).
    File = 2,
}

/// Appends `v` as a protobuf varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a length-delimited field.
fn put_bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(buf, (field << 3) | 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Appends a varint field.
fn put_varint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(buf, field << 3);
    put_varint(buf, v);
}

/// One dag-pb link as written into a PBNode.
pub(crate) struct PbLink<'a> {
    /// The child's CID in binary form.
    pub hash: &'a [u8],
    /// The link name ("" inside files).
    pub name: &'a str,
    /// The child's cumulative size.
    pub tsize: u64,
}

/// Encodes a PBNode: links first, then data (always present for UnixFS nodes).
pub(crate) fn encode_node(links: &[PbLink<'_>], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2 + links.len() * 48);
    let mut link_buf = Vec::with_capacity(64);
    for link in links {
        link_buf.clear();
        put_bytes_field(&mut link_buf, 1, link.hash);
        put_bytes_field(&mut link_buf, 2, link.name.as_bytes());
        put_varint_field(&mut link_buf, 3, link.tsize);
        put_bytes_field(&mut out, 2, &link_buf);
    }
    put_bytes_field(&mut out, 1, data);
    out
}

/// Encodes a UnixFS `Data` message for a file node (`File` or `Raw`): `data` is written only when
/// non-empty (go-unixfs leaves it nil for internal and empty nodes), `filesize` always.
pub(crate) fn unixfs_file(kind: DataType, data: &[u8], filesize: u64, blocksizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16 + blocksizes.len() * 4);
    put_varint_field(&mut out, 1, kind as u64);
    if !data.is_empty() {
        put_bytes_field(&mut out, 2, data);
    }
    put_varint_field(&mut out, 3, filesize);
    for &size in blocksizes {
        put_varint_field(&mut out, 4, size);
    }
    out
}

/// Encodes the UnixFS `Data` of a plain directory (`FolderPBData`: only the type).
pub(crate) fn unixfs_directory() -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    put_varint_field(&mut out, 1, DataType::Directory as u64);
    out
}

/// Reads a protobuf varint from `buf` at `*pos`; `None` when malformed or truncated.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks the top-level fields of a protobuf message, calling `f(field, wire_value)`; stops (and
/// returns `None`) on malformed input. Only wire types 0 and 2 occur in dag-pb and UnixFS.
fn for_each_field<'a>(buf: &'a [u8], mut f: impl FnMut(u64, Field<'a>)) -> Option<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        match key & 7 {
            0 => f(key >> 3, Field::Varint(read_varint(buf, &mut pos)?)),
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                f(key >> 3, Field::Bytes(buf.get(pos..end)?));
                pos = end;
            }
            _ => return None,
        }
    }
    Some(())
}

/// A decoded protobuf field value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The UnixFS `filesize` of a dag-pb block (IPFS Cluster reports it as the CAR root's size);
/// `None` when the block is not a UnixFS node or has no filesize.
pub(crate) fn unixfs_filesize(block: &[u8]) -> Option<u64> {
    let mut data = None;
    for_each_field(block, |field, value| {
        if let (1, Field::Bytes(b)) = (field, value) {
            data = Some(b);
        }
    })?;
    let mut filesize = None;
    for_each_field(data?, |field, value| {
        if let (3, Field::Varint(v)) = (field, value) {
            filesize = Some(v);
        }
    })?;
    filesize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length of `v` as a varint.
    fn varint_len(v: u64) -> usize {
        let bits = 64 - (v | 1).leading_zeros() as usize;
        bits.div_ceil(7)
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos), Some(v));
        }
    }

    #[test]
    fn empty_file_node_matches_kubo_bytes() {
        // QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH is `0a 04 08 02 18 00`.
        let node = encode_node(&[], &unixfs_file(DataType::File, &[], 0, &[]));
        assert_eq!(node, [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
        assert_eq!(unixfs_filesize(&node), Some(0));
        assert_eq!(encode_node(&[], &unixfs_directory()), [0x0a, 0x02, 0x08, 0x01]);
    }

    #[test]
    fn filesize_of_garbage_is_none() {
        assert_eq!(unixfs_filesize(&[0xff, 0xff]), None);
        assert_eq!(unixfs_filesize(&[0x0a, 0x10, 0x08]), None);
        assert_eq!(unixfs_filesize(b""), None);
    }
}
