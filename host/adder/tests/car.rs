//! CAR import: CARv1 and CARv2 built here from real DAG blocks, and every refusal.

mod common;

use cairn_adder::{AdderError, Block, CarSummary, DagParams, ImportOptions, Importer, import_car, import_car_summary};
use cid::Cid;
use cid::multihash::Multihash;
use common::{data, stream};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// DAG-CBOR `{"roots": [...], "version": v}` (keys in DAG-CBOR order).
fn header(roots: &[Cid], version: u8) -> Vec<u8> {
    let mut h = vec![0xa2, 0x65];
    h.extend_from_slice(b"roots");
    h.push(0x80 | roots.len() as u8);
    for root in roots {
        let bytes = root.to_bytes();
        h.extend_from_slice(&[0xd8, 42, 0x58, bytes.len() as u8 + 1, 0x00]);
        h.extend_from_slice(&bytes);
    }
    h.push(0x67);
    h.extend_from_slice(b"version");
    h.push(version);
    h
}

fn car_v1(roots: &[Cid], blocks: &[Block]) -> Vec<u8> {
    let h = header(roots, 1);
    let mut car = Vec::new();
    varint(&mut car, h.len() as u64);
    car.extend_from_slice(&h);
    for block in blocks {
        let cid = block.cid.to_bytes();
        varint(&mut car, (cid.len() + block.data.len()) as u64);
        car.extend_from_slice(&cid);
        car.extend_from_slice(&block.data);
    }
    car
}

/// CARv2: pragma, header, `padding` zero bytes, the CARv1 payload, then bytes standing in for an index.
fn car_v2(v1: &[u8], padding: usize) -> Vec<u8> {
    let mut car = vec![0x0a, 0xa1, 0x67];
    car.extend_from_slice(b"version");
    car.push(0x02);
    car.extend_from_slice(&[0u8; 16]);
    let offset = (51 + padding) as u64;
    car.extend_from_slice(&offset.to_le_bytes());
    car.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    car.extend_from_slice(&(offset + v1.len() as u64).to_le_bytes());
    car.extend(std::iter::repeat_n(0u8, padding));
    car.extend_from_slice(v1);
    car.extend_from_slice(b"\x01not a CARv1 section: the index is never read");
    car
}

/// A real DAG: a 3000-byte file in size-256 chunks (CIDv0 nodes, raw CIDv1 leaves).
async fn dag() -> (Cid, Vec<Block>) {
    let params = DagParams::parse("size-256", true, 0, "sha2-256", Default::default()).unwrap_or_default();
    let mut importer = Importer::new(params, ImportOptions::default(), Vec::new());
    let root = importer.add_file("f", stream(&data(8, 3000), 500), &mut |_| {}).await.ok().flatten();
    (root.unwrap_or_default(), importer.into_sink())
}

async fn import(car: &[u8], piece: usize) -> (Result<CarSummary, AdderError>, Vec<Block>) {
    let mut sink = Vec::new();
    let result = import_car_summary(stream(car, piece), &mut sink).await;
    (result, sink)
}

#[tokio::test]
async fn v1_and_v2_import_every_block() {
    let (root, blocks) = dag().await;
    let v1 = car_v1(&[root], &blocks);
    // Root last, as the importer emitted it: Kubo's UnixFS filesize of the root is 3000.
    let want = CarSummary {
        root,
        blocks: blocks.len() as u64,
        bytes: blocks.iter().map(|b| b.data.len() as u64).sum(),
        size: 3000,
    };
    for car in [v1.clone(), car_v2(&v1, 0), car_v2(&v1, 13)] {
        for piece in [1, 7, 4096] {
            let (result, sink) = import(&car, piece).await;
            assert_eq!(result.ok().as_ref(), Some(&want), "piece {piece}");
            assert_eq!(sink, blocks);
        }
    }
    let mut sink = Vec::new();
    assert_eq!(import_car(stream(&v1, 100), &mut sink).await.ok(), Some(root));

    // The root need not be in the CAR (IPFS Cluster does not check); size is then 0.
    let (result, _) = import(&car_v1(&[root], &blocks[..1]), 64).await;
    assert_eq!(result.ok().map(|s| (s.blocks, s.size)), Some((1, 0)));
}

#[tokio::test]
async fn identity_cids_are_checked_against_their_data() {
    let mh = Multihash::<64>::wrap(0x00, b"inline").unwrap_or_default();
    let cid = Cid::new_v1(0x55, mh);
    let good = Block { cid, data: bytes::Bytes::from_static(b"inline") };
    assert!(import(&car_v1(&[cid], &[good]), 5).await.0.is_ok());
    let bad = Block { cid, data: bytes::Bytes::from_static(b"other") };
    assert!(matches!(import(&car_v1(&[cid], &[bad]), 5).await.0, Err(AdderError::CarHashMismatch { .. })));
}

#[tokio::test]
async fn tampered_block_is_refused() {
    let (root, mut blocks) = dag().await;
    let mut data = blocks[2].data.to_vec();
    data[0] ^= 1;
    blocks[2].data = data.into();
    let (result, sink) = import(&car_v1(&[root], &blocks), 100).await;
    let err = result.err();
    let cid = blocks[2].cid;
    assert_eq!(
        err.as_ref().map(|e| e.to_string()),
        Some(format!("CAR block {cid} does not match its data (hash mismatch)"))
    );
    assert!(err.is_some_and(|e| e.is_bad_input()));
    // Blocks before the bad one were already stored; nothing after it.
    assert_eq!(sink.len(), 2);
}

#[tokio::test]
async fn root_count_must_be_one() {
    let (root, blocks) = dag().await;
    for roots in [vec![], vec![root, blocks[0].cid]] {
        let (result, sink) = import(&car_v1(&roots, &blocks), 100).await;
        let err = result.err().map(|e| e.to_string());
        assert_eq!(err, Some(format!("CAR has {} roots: exactly one root is supported", roots.len())));
        assert!(sink.is_empty());
    }
}

#[tokio::test]
async fn truncated_input_is_refused() {
    let (root, blocks) = dag().await;
    let car = car_v1(&[root], &blocks);
    let header_end = 1 + header(&[root], 1).len();
    // Cut inside the header length, the header, a section length's continuation and a section.
    for cut in [0, 1, header_end - 3, header_end + 1, header_end + 2, car.len() - 1] {
        let (result, _) = import(&car[..cut], 3).await;
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("truncated CAR: input ended at byte"), "cut {cut}: {err}");
    }
    // A CARv2 whose payload is cut short.
    let v2 = car_v2(&car, 0);
    let (result, _) = import(&v2[..v2.len() - 60], 50).await;
    assert!(matches!(result, Err(AdderError::CarTruncated { .. })), "{result:?}");
}

#[tokio::test]
async fn malformed_headers_and_sections() {
    let (root, blocks) = dag().await;
    let expect = |result: Result<CarSummary, AdderError>, needle: &str| {
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(needle), "{err} lacks {needle}");
    };
    // Version 3.
    let h = header(&[root], 3);
    let mut car = vec![h.len() as u8];
    car.extend_from_slice(&h);
    expect(import(&car, 10).await.0, "unsupported CAR version 3");
    // Not CBOR at all / not a map / trailing bytes.
    expect(import(b"\x03abc", 10).await.0, "invalid CAR header");
    expect(import(b"\x01\x01", 10).await.0, "header is not a map");
    expect(import(b"\x02\xa0\x00", 10).await.0, "1 bytes after the header map");
    // Absurd header length.
    expect(import(b"\xff\xff\xff\xff\x0f", 10).await.0, "header length 4294967295 is out of range");
    // A root that is not a tag-42 link.
    let mut h = vec![0xa2, 0x65];
    h.extend_from_slice(b"roots");
    h.extend_from_slice(&[0x81, 0x01, 0x67]);
    h.extend_from_slice(b"version");
    h.push(0x01);
    let mut car = vec![h.len() as u8];
    car.extend_from_slice(&h);
    expect(import(&car, 10).await.0, "root is not a CID link");
    // Zero-length and oversized sections, and a section whose CID is garbage.
    let mut base = car_v1(&[root], &[]);
    let mut zero = base.clone();
    zero.push(0);
    expect(import(&zero, 10).await.0, "zero-length section");
    let mut huge = base.clone();
    huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x10]);
    expect(import(&huge, 10).await.0, "section length 33554432 exceeds the limit");
    base.extend_from_slice(&[3, 0xff, 0xff, 0xff]);
    expect(import(&base, 10).await.0, "invalid CID");
    // A block hashed with a function the adder cannot verify (sha1, 0x11).
    let mh = Multihash::<64>::wrap(0x11, &[0u8; 20]).unwrap_or_default();
    let odd = Block { cid: Cid::new_v1(0x55, mh), data: bytes::Bytes::from_static(b"x") };
    expect(import(&car_v1(&[root], &[odd]), 10).await.0, "uses multihash code 0x11, which cannot be verified");
    // A stream error is reported as input.
    let items: Vec<Result<bytes::Bytes, &str>> = vec![Ok(car_v1(&[root], &blocks[..1]).into()), Err("reset by peer")];
    let mut sink = Vec::new();
    let err = import_car(futures::stream::iter(items), &mut sink).await.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("reading \"CAR\": reset by peer"));
}

/// A CAR written by js-ipfs 0.66.1 (`dag/export` of the wrapped directory of `tests/reference.rs`,
/// CIDv1 with raw leaves): same root and same blocks as the importer builds.
#[tokio::test]
async fn js_ipfs_export_imports_to_the_same_dag() {
    let car = include_bytes!("fixtures/jsipfs-wrapped-dir.car");
    let (result, sink) = import(car, 1000).await;
    let root = Cid::try_from("zdj7WaBZjf7E4BTtARkXiy7UxXZVWtRzueGejkZUosvrboLSj").ok();
    assert_eq!(result.ok().map(|s| s.root), root);

    let params = DagParams::parse("size-256", true, 1, "sha2-256", Default::default()).unwrap_or_default();
    let options = ImportOptions { wrap_with_directory: true, ..ImportOptions::default() };
    let mut built = Vec::new();
    let mut importer = Importer::new(params, options, &mut built);
    for part in common::tree() {
        match part {
            common::Part::Dir(path) => assert!(importer.add_directory(path).is_ok()),
            common::Part::File(path, bytes) => {
                assert!(importer.add_file(path, stream(&bytes, 64), &mut |_| {}).await.is_ok())
            }
        }
    }
    assert_eq!(importer.finish(&mut |_| {}).await.ok(), root);
    let set = |blocks: &[Block]| {
        blocks.iter().map(|b| (b.cid.to_bytes(), b.data.clone())).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(set(&built), set(&sink));
}
