//! Integration tests of the pinset store and NDJSON export/import on real files.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::ControlFlow;

use cairn_state::{
    Cid, ImportError, Pin, PinMode, PinOptions, PinStore, PinType, Record, StoreError, Timestamp, Version, export,
    import,
};

/// A distinct CIDv1 (raw codec, identity multihash of `n`): cheap to make 100 000 of.
fn cid(n: u64) -> Cid {
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, &n.to_be_bytes()).expect("identity hash");
    Cid::from_raw(cid::Cid::new_v1(0x55, mh))
}

fn sample(n: u64) -> Pin {
    let mut metadata = BTreeMap::new();
    metadata.insert("n".to_owned(), n.to_string());
    let mut pin = Pin::with_options(
        cid(n),
        PinOptions {
            replication_factor_min: 1,
            replication_factor_max: 3,
            name: format!("pin {n}"),
            mode: if n.is_multiple_of(2) { PinMode::Recursive } else { PinMode::Direct },
            metadata,
            ..PinOptions::default()
        },
    );
    pin.allocations = vec!["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".to_owned()];
    pin.timestamp = Timestamp::parse("2024-03-05T10:11:12.5Z").expect("time");
    pin
}

#[test]
fn put_get_remove_len() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    assert_eq!(store.len().expect("len"), 0);
    assert!(store.get(&cid(1)).expect("get").is_none());

    store.put(&sample(1)).expect("put");
    store.put(&sample(2)).expect("put");
    assert_eq!(store.len().expect("len"), 2);
    assert_eq!(store.get(&cid(1)).expect("get"), Some(sample(1)));

    // Replacing keeps one record per CID.
    let mut renamed = sample(1);
    renamed.options.name = "renamed".to_owned();
    store.put(&renamed).expect("replace");
    assert_eq!(store.len().expect("len"), 2);
    assert_eq!(store.get(&cid(1)).expect("get"), Some(renamed.clone()));

    assert_eq!(store.remove(&cid(1)).expect("remove"), Some(renamed));
    assert_eq!(store.remove(&cid(1)).expect("remove again"), None);
    assert_eq!(store.len().expect("len"), 1);
    assert!(store.get(&cid(1)).expect("get").is_none());
}

#[test]
fn reopen_after_drop_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pinset.redb");
    {
        let store = PinStore::open(&path).expect("open");
        for n in 0..10 {
            store.put(&sample(n)).expect("put");
        }
        store.remove(&cid(3)).expect("remove");
    }
    let store = PinStore::open(&path).expect("reopen");
    assert_eq!(store.len().expect("len"), 9);
    assert_eq!(store.get(&cid(7)).expect("get"), Some(sample(7)));
    assert!(store.get(&cid(3)).expect("get").is_none());
}

#[test]
fn newer_format_version_is_refused_naming_file_and_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pinset.redb");
    drop(PinStore::open(&path).expect("create"));
    {
        // Simulate a file written by a future cairn.
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let mut meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).expect("meta");
            meta.insert("format_version", 7).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = PinStore::open(&path).expect_err("must refuse version 7");
    assert!(matches!(err, StoreError::UnsupportedVersion { found: 7, supported: 2, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("pinset.redb") && msg.contains('7') && msg.contains('2'), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pinset.redb");
    let junk = b"this is not a redb file, and it must survive the attempt".repeat(100);
    std::fs::write(&path, &junk).expect("write junk");
    let err = PinStore::open(&path).expect_err("must refuse junk");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("pinset.redb"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read back"), junk);
}

#[test]
fn streams_100_000_pins_in_order_without_loading_them_all() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    let stored = store.put_all((0..N).map(|n| Ok::<_, StoreError>(sample(n))), &Version::default()).expect("bulk put");
    assert_eq!(stored, N);
    assert_eq!(store.len().expect("len"), N);

    // for_each hands out one pin at a time; only a counter and the last key are kept here.
    let mut seen = 0u64;
    let mut last: Option<Vec<u8>> = None;
    let visited = store
        .for_each(|pin| {
            let bytes = pin.cid.to_bytes();
            let key = [&cairn_state::bucket_of(&bytes).to_be_bytes()[..], &bytes].concat();
            assert!(last.as_ref().is_none_or(|l| *l < key), "keys out of order");
            last = Some(key);
            seen += 1;
            ControlFlow::Continue(())
        })
        .expect("for_each");
    assert_eq!((visited, seen), (N, N));

    // Early stop.
    let mut taken = 0;
    let visited = store
        .for_each(|_| {
            taken += 1;
            if taken == 10 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .expect("for_each");
    assert_eq!(visited, 10);

    // Paged walk: every page is bounded, and the pages cover the pinset exactly once.
    let mut after: Option<Cid> = None;
    let mut total = 0u64;
    let mut pages = 0;
    loop {
        let page = store.page(after.as_ref(), 7_000).expect("page");
        assert!(page.pins.len() <= 7_000);
        total += page.pins.len() as u64;
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(total, N);
    assert_eq!(pages, N.div_ceil(7_000));
    // A request larger than the cap is capped.
    let page = store.page(None, usize::MAX).expect("page");
    assert_eq!(page.pins.len(), cairn_state::MAX_PAGE_SIZE);
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = PinStore::open(dir.path().join("a.redb")).expect("open a");
    let mut odd = sample(5);
    odd.pin_type = PinType::Shard;
    odd.max_depth = 1;
    odd.reference = Some(cid(4));
    odd.options.pin_update = Some(cid(3));
    odd.options.expire_at = Timestamp::parse("2031-01-01T00:00:00.000000001+02:00").expect("t");
    odd.options.origins = vec!["/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into()];
    a.put_all((0..500).map(|n| Ok::<_, StoreError>(sample(n))), &Version::default()).expect("fill");
    a.put(&odd).expect("odd");

    let mut first = Vec::new();
    assert_eq!(export(&a, &mut first).expect("export"), 500);
    let text = String::from_utf8(first.clone()).expect("utf8");
    assert_eq!(text.lines().count(), 500);
    assert!(text.lines().all(|l| l.starts_with(r#"{"replication_factor_min":"#)));

    let b = PinStore::open(dir.path().join("b.redb")).expect("open b");
    assert_eq!(import(&b, Cursor::new(&first), &Version::default(), |_| {}).expect("import"), 500);
    assert_eq!(b.len().expect("len"), 500);
    assert_eq!(b.get(&cid(5)).expect("get"), Some(odd));
    for n in [0, 1, 250, 499] {
        assert_eq!(b.get(&cid(n)).expect("get"), a.get(&cid(n)).expect("get"));
    }
    let mut second = Vec::new();
    export(&b, &mut second).expect("export b");
    assert_eq!(first, second, "export → import → export is byte-identical");
}

#[test]
fn bad_line_is_reported_by_number_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    store.put(&sample(1000)).expect("existing pin");

    let good = |n| serde_json::to_string(&sample(n)).expect("encode");
    // Line 3 is blank (skipped); line 4 has a bad CID.
    let input = format!("{}\n{}\n\n{}\n{}\n", good(1), good(2), r#"{"cid":"QmNotACid","type":"pin"}"#, good(3));
    let err = import(&store, Cursor::new(input), &Version::default(), |_| {}).expect_err("bad line");
    assert!(matches!(err, ImportError::BadLine { line: 4, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("line 4") && msg.contains("QmNotACid"), "{msg}");
    // All or nothing: lines 1 and 2 were not stored; the existing pin is untouched.
    assert_eq!(store.len().expect("len"), 1);
    assert!(store.get(&cid(1)).expect("get").is_none());

    // A truncated last line (an export cut short) is reported too.
    let line = good(7);
    let input = format!("{}\n{}", good(6), &line[..line.len() / 2]);
    let err = import(&store, Cursor::new(input), &Version::default(), |_| {}).expect_err("truncated");
    assert!(matches!(err, ImportError::BadLine { line: 2, .. }), "{err:?}");
    assert_eq!(store.len().expect("len"), 1);
}

#[test]
fn imports_literal_ipfs_cluster_export() {
    // Two lines as IPFS Cluster's `state export` writes them.
    let export_text = concat!(
        r#"{"replication_factor_min":-1,"replication_factor_max":-1,"name":"","mode":"recursive","shard_size":0,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":null,"pin_update":null,"origins":[],"cid":"QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco","type":"pin","allocations":[],"max_depth":-1,"reference":null,"timestamp":"2023-11-02T14:01:02+01:00"}"#,
        "\n",
        r#"{"replication_factor_min":1,"replication_factor_max":2,"name":"site","mode":"direct","shard_size":0,"user_allocations":null,"expire_at":"0001-01-01T00:00:00Z","metadata":{"k":"v"},"pin_update":null,"origins":[],"cid":"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi","type":"pin","allocations":["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],"max_depth":0,"reference":null,"timestamp":"2023-11-02T14:01:03+01:00"}"#,
        "\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    assert_eq!(import(&store, Cursor::new(export_text), &Version::default(), |_| {}).expect("import"), 2);
    let mut out = Vec::new();
    export(&store, &mut out).expect("export");
    // The store walks in key (CID byte) order, not input order: compare the lines as sets.
    let mut got: Vec<&str> = std::str::from_utf8(&out).expect("utf8").lines().collect();
    let mut want: Vec<&str> = export_text.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
}

fn v(clock: u64, author: &str) -> Version {
    Version { clock, author: author.as_bytes().to_vec() }
}

#[test]
fn merge_is_last_writer_wins_with_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    // Pin at 10, removed at 20, an older add at 15 arrives late: stays removed.
    let applied = store
        .merge_all(&[
            Record::pin(sample(1), v(10, "a")),
            Record::tombstone(cid(1), v(20, "b")),
            Record::pin(sample(1), v(15, "c")),
        ])
        .expect("merge");
    assert_eq!(applied, vec![true, true, false]);
    assert!(store.get(&cid(1)).expect("get").is_none());
    assert_eq!(store.len().expect("len"), 0);
    assert_eq!(store.get_record(&cid(1)).expect("record").expect("tombstone").version, v(20, "b"));
    // A re-add after the removal wins, on any peer (IPFS Cluster's v1.1.2 bug).
    assert_eq!(store.merge_all(&[Record::pin(sample(1), v(21, "a"))]).expect("merge"), vec![true]);
    assert_eq!(store.get(&cid(1)).expect("get"), Some(sample(1)));
    assert_eq!(store.len().expect("len"), 1);
    // Equal clocks are ordered by author; an identical version is not re-applied.
    assert_eq!(store.merge_all(&[Record::tombstone(cid(1), v(21, "a"))]).expect("merge"), vec![false]);
    assert_eq!(store.merge_all(&[Record::tombstone(cid(1), v(21, "b"))]).expect("merge"), vec![true]);
    assert_eq!(store.len().expect("len"), 0);
    assert_eq!(store.max_clock().expect("clock"), 21);
    // Tombstones are not pins: not listed, not exported.
    assert_eq!(store.for_each(|_| ControlFlow::Continue(())).expect("walk"), 0);
    assert!(store.page(None, 10).expect("page").pins.is_empty());
}

#[test]
fn fingerprints_match_exactly_when_records_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = PinStore::open(dir.path().join("a.redb")).expect("open a");
    let b = PinStore::open(dir.path().join("b.redb")).expect("open b");
    let records: Vec<Record> = (0..2_000).map(|n| Record::pin(sample(n), v(n + 1, "x"))).collect();
    a.merge_all(&records).expect("a");
    // Another order, in several transactions, with a detour through an older version.
    b.merge_all(&[Record::pin(sample(7), v(1, "old"))]).expect("b old");
    for chunk in records.rchunks(300) {
        b.merge_all(chunk).expect("b");
    }
    assert_eq!(a.fingerprints().expect("fp a"), b.fingerprints().expect("fp b"));

    // One differing record changes exactly one bucket.
    b.merge_all(&[Record::tombstone(cid(42), v(10_000, "y"))]).expect("tombstone");
    let (fa, fb) = (a.fingerprints().expect("fp a"), b.fingerprints().expect("fp b"));
    let differing: Vec<usize> = (0..fa.len()).filter(|&i| fa[i] != fb[i]).collect();
    assert_eq!(differing, vec![usize::from(cairn_state::bucket_of(&cid(42).to_bytes()))]);

    // Removing every record empties every bucket.
    for n in 0..2_000 {
        a.remove(&cid(n)).expect("remove");
    }
    assert!(a.fingerprints().expect("fp").iter().all(|fp| *fp == [0; 16]));
    assert_eq!(a.len().expect("len"), 0);
}

#[test]
fn bucket_records_cover_a_range_in_pages_with_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PinStore::open(dir.path().join("pinset.redb")).expect("open");
    let mut records: Vec<Record> = (0..5_000).map(|n| Record::pin(sample(n), v(1, "a"))).collect();
    records.push(Record::tombstone(cid(99_999), v(2, "a")));
    store.merge_all(&records).expect("merge");
    let in_range = |r: &Record| (100..=2_000).contains(&cairn_state::bucket_of(&r.cid.to_bytes()));
    let expected = records.iter().filter(|r| in_range(r)).count();
    let mut after = None;
    let mut seen = Vec::new();
    loop {
        let page = store.bucket_records(100, 2_000, after.as_ref(), 333).expect("page");
        assert!(page.records.len() <= 333);
        assert!(page.records.iter().all(in_range));
        seen.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected);
    // The whole key space, tombstone included.
    let all = store.bucket_records(0, u16::MAX, None, 10_000).expect("all");
    assert_eq!(all.records.len(), 5_001);
    assert!(all.records.iter().any(|r| r.pin.is_none()));
}
