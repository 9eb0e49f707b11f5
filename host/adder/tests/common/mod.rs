//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;

/// SplitMix64 bytes (little-endian words), the generator used for the reference inputs.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The bytes as a stream of `piece`-sized items (so chunk cuts cross item boundaries).
pub fn stream(
    bytes: &[u8],
    piece: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Unpin + Send + use<> {
    let items: Vec<Result<Bytes, Infallible>> =
        bytes.chunks(piece.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(items)
}

/// The tree used for the directory references (parts in the order a client sends them).
pub enum Part {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
}

pub fn tree() -> Vec<Part> {
    vec![
        Part::Dir("dir"),
        Part::File("dir/a.txt", b"hello\n".to_vec()),
        Part::File("dir/B.txt", data(11, 300)),
        Part::Dir("dir/sub"),
        Part::File("dir/sub/b.bin", data(12, 1000)),
        Part::File("dir/sub/z", Vec::new()),
        Part::Dir("dir/empty"),
        Part::Dir("dir/sub/deeper"),
        Part::File("dir/sub/deeper/c", data(13, 257)),
    ]
}
