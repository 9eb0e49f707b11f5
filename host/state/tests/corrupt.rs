//! A damaged `pinset.redb` is refused with an error naming the file, never a panic: redb trusts
//! the bytes after a valid header and panics on garbage (issue #14, defect 9).

use std::path::Path;

use cairn_state::{Cid, Pin, PinStore, StoreError, Version};

/// redb's page size: the first page holds the file header and its two commit slots.
const PAGE: usize = 4096;

/// The header byte where redb keeps its flags (after its 9-byte magic number).
const GOD_BYTE: usize = 9;

fn cid(n: u64) -> Cid {
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, &n.to_be_bytes()).expect("identity hash");
    Cid::from_raw(cid::Cid::new_v1(0x55, mh))
}

/// The bytes of a healthy store with a few thousand pins (a few hundred pages).
fn healthy_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("healthy.redb");
    {
        let store = PinStore::open(&path).expect("create");
        let pins = (0..2000).map(|n| Ok::<_, StoreError>(Pin::new(cid(n))));
        store.put_all(pins, &Version::default()).expect("fill");
    }
    std::fs::read(&path).expect("read healthy file")
}

/// Deterministic garbage (xorshift), so a failure reproduces.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// The corruption shapes: name and file contents.
fn shapes(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let header = good.get(..PAGE).expect("a store is more than one page").to_vec();
    let rest = good.len() - PAGE;
    let with = |tail: Vec<u8>| [header.clone(), tail].concat();
    let page_replaced = |page: usize, bytes: &[u8]| {
        let mut b = good.to_vec();
        b[page * PAGE..(page + 1) * PAGE].copy_from_slice(bytes);
        b
    };
    // A few single-byte flips in pages that hold records: each leaves every page well formed,
    // so only the checksums tell.
    let mut flipped = good.to_vec();
    for page in [3, 50, 100] {
        flipped[page * PAGE + 100] ^= 0xff;
    }
    vec![
        ("header-only", header.clone()),
        ("header-then-garbage", with(garbage(rest, 1))),
        ("header-then-zeros", with(vec![0; rest])),
        ("random-bytes", garbage(good.len(), 2)),
        ("second-page-garbage", page_replaced(1, &garbage(PAGE, 3))),
        ("data-page-garbage", page_replaced(100, &garbage(PAGE, 4))),
        ("data-page-bit-flip", flipped),
    ]
}

#[test]
fn a_corrupt_file_is_refused_naming_it_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = healthy_file(dir.path());
    for (name, bytes) in shapes(&good) {
        let path = dir.path().join(format!("{name}.redb"));
        std::fs::write(&path, &bytes).expect("write corrupt file");
        let opened = std::panic::catch_unwind(|| PinStore::open(&path).map(|_| ()));
        let Ok(result) = opened else { panic!("{name}: opening panicked instead of returning an error") };
        let err = result.expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{name}: the error names the file: {msg}");
        assert!(
            msg.contains("corrupt") || msg.contains("Not a redb database"),
            "{name}: the error says what is wrong: {msg}"
        );
        // Left alone, except that redb may set the "needs repair" flag in its header byte.
        let back = std::fs::read(&path).expect("read back");
        assert_eq!(back.len(), bytes.len(), "{name}: the refused file keeps its length");
        let changed = back.iter().zip(&bytes).enumerate().find(|&(i, (a, b))| a != b && i != GOD_BYTE);
        assert_eq!(changed.map(|(i, _)| i), None, "{name}: the refused file's contents are left alone");
    }
}

#[test]
fn a_zero_length_file_opens_as_an_empty_store() {
    // What a crash between creating the file and redb's first header write leaves: no pin was
    // ever committed to it, so it is a new store, not a damaged one.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pinset.redb");
    std::fs::write(&path, b"").expect("create empty file");
    let store = PinStore::open(&path).expect("an empty file is a new store");
    assert_eq!(store.len().expect("len"), 0);
}

#[test]
fn a_healthy_file_still_opens_after_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = healthy_file(dir.path());
    let path = dir.path().join("copy.redb");
    std::fs::write(&path, &good).expect("copy");
    let store = PinStore::open(&path).expect("healthy file opens");
    assert_eq!(store.len().expect("len"), 2000);
    assert_eq!(store.get(&cid(1999)).expect("get"), Some(Pin::new(cid(1999))));
}
