//! Importer behaviour beyond the reference CIDs: hidden entries, paths, errors, events.

mod common;

use std::future::Future;

use bytes::Bytes;
use cairn_adder::{
    AddEvent, AdderError, Block, BlockSink, DagParams, HashFunction, ImportOptions, Importer, Layout, PathLimits,
};
use cid::Cid;
use common::{data, stream};
use futures::future::BoxFuture;

type Events = Vec<AddEvent>;

fn recorder(events: &mut Events) -> impl FnMut(AddEvent) + Send + '_ {
    |e| events.push(e)
}

fn added_names(events: &Events) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            AddEvent::Added { name, .. } => Some(name.clone()),
            AddEvent::Progress { .. } => None,
        })
        .collect()
}

async fn add(
    importer: &mut Importer<Vec<Block>>,
    path: &str,
    bytes: &[u8],
    events: &mut Events,
) -> Result<Option<Cid>, AdderError> {
    importer.add_file(path, stream(bytes, 1000), &mut recorder(events)).await
}

#[tokio::test]
async fn hidden_entries_are_skipped_unless_asked() {
    let build = |hidden: bool| async move {
        let options = ImportOptions { hidden, ..ImportOptions::default() };
        let mut importer = Importer::new(DagParams::default(), options, Vec::new());
        let mut events = Vec::new();
        let a = add(&mut importer, "dir/a", b"a", &mut events).await;
        let h = add(&mut importer, "dir/.h", b"h", &mut events).await;
        let nested = add(&mut importer, "dir/.git/config", b"c", &mut events).await;
        let dir = importer.add_directory("dir/.cache");
        let root = importer.finish(&mut recorder(&mut events)).await;
        (a, h, nested, dir, root, added_names(&events))
    };
    let (a, h, nested, dir, skipped_root, names) = build(false).await;
    assert!(matches!(a, Ok(Some(_))));
    assert!(matches!((h, nested, dir), (Ok(None), Ok(None), Ok(()))));
    assert_eq!(names, ["dir/a", "dir"]);
    let (_, h, _, _, kept_root, names) = build(true).await;
    assert!(matches!(h, Ok(Some(_))));
    assert_eq!(names, ["dir/a", "dir/.h", "dir/.git/config", "dir/.cache", "dir/.git", "dir"]);
    assert_ne!(skipped_root.ok(), kept_root.ok());

    // The top level itself is never hidden (it was named explicitly).
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let mut events = Vec::new();
    assert!(matches!(add(&mut importer, ".profile", b"x", &mut events).await, Ok(Some(_))));
}

#[tokio::test]
async fn path_errors_name_the_path() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let mut events = Vec::new();
    assert!(add(&mut importer, "d/f", b"1", &mut events).await.is_ok());
    let dup = add(&mut importer, "d//f", b"2", &mut events).await.err().map(|e| e.to_string());
    assert_eq!(dup.as_deref(), Some("duplicate path \"d/f\": an entry with this name was already added"));
    let through = add(&mut importer, "d/f/g", b"3", &mut events).await.err();
    assert!(matches!(&through, Some(AdderError::PathConflict { path, file }) if path == "d/f/g" && file == "d/f"));
    let dir_over_file = importer.add_directory("d/f/sub").err();
    assert!(matches!(dir_over_file, Some(AdderError::PathConflict { .. })));
    let file_over_dir = add(&mut importer, "d", b"4", &mut events).await.err();
    assert!(matches!(file_over_dir, Some(AdderError::DuplicatePath(p)) if p == "d"));
    let dotdot = add(&mut importer, "d/../x", b"5", &mut events).await.err().map(|e| e.to_string());
    assert_eq!(dotdot.as_deref(), Some("invalid path \"d/../x\": \"..\" components are not allowed"));
    // Re-adding an existing directory is fine (MFS mkdir -p).
    assert!(importer.add_directory("d").is_ok());
    assert!(importer.add_directory("/").is_ok());
}

#[tokio::test]
async fn nothing_added_is_an_error_unless_wrapping() {
    let importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let err = importer.finish(&mut |_| {}).await.err();
    assert!(matches!(&err, Some(AdderError::NothingAdded)));
    assert!(err.is_some_and(|e| e.is_bad_input()));

    let options = ImportOptions { wrap_with_directory: true, ..ImportOptions::default() };
    let importer = Importer::new(DagParams::default(), options, Vec::new());
    let root = importer.finish(&mut |_| {}).await.ok().map(|c| c.to_string());
    assert_eq!(root.as_deref(), Some("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"));
}

#[tokio::test]
async fn several_top_level_entries_without_wrap_return_the_last() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let mut events = Vec::new();
    let a = add(&mut importer, "a.txt", b"a", &mut events).await.ok().flatten();
    let b = add(&mut importer, "b/x", b"b", &mut events).await.ok().flatten();
    let c = add(&mut importer, "c.txt", b"c", &mut events).await.ok().flatten();
    assert!(a.is_some() && b.is_some());
    let root = importer.finish(&mut recorder(&mut events)).await.ok();
    assert_eq!(root, c);
    assert_eq!(added_names(&events), ["a.txt", "b/x", "c.txt", "b"]);
}

#[tokio::test]
async fn a_nameless_file_is_linked_by_its_cid() {
    let options = ImportOptions { wrap_with_directory: true, ..ImportOptions::default() };
    let mut importer = Importer::new(DagParams::default(), options, Vec::new());
    let mut events = Vec::new();
    let file = add(&mut importer, "", b"hello\n", &mut events).await.ok().flatten();
    assert_eq!(file.map(|c| c.to_string()).as_deref(), Some("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"));
    assert!(importer.finish(&mut recorder(&mut events)).await.is_ok());
    assert_eq!(added_names(&events), ["", ""]);
}

#[tokio::test]
async fn progress_reports_every_256_kib_and_at_the_end() {
    let options = ImportOptions { progress: true, ..ImportOptions::default() };
    let mut importer = Importer::new(DagParams::default(), options, Vec::new());
    let mut events = Vec::new();
    let bytes = data(1, 600 * 1024);
    let root = importer.add_file("big", stream(&bytes, 64 * 1024), &mut recorder(&mut events)).await;
    assert!(matches!(root, Ok(Some(_))));
    let progress: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            AddEvent::Progress { name, bytes } if name == "big" => Some(*bytes),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [256 * 1024, 512 * 1024, 600 * 1024]);
    assert!(matches!(events.last(), Some(AddEvent::Added { name, .. }) if name == "big"));
}

#[tokio::test]
async fn input_errors_are_bad_input_and_name_the_file() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let items: Vec<Result<Bytes, String>> = vec![Ok(Bytes::from_static(b"abc")), Err("connection reset".to_owned())];
    let err = importer.add_file("x/y", futures::stream::iter(items), &mut |_| {}).await.err();
    let err = err.map(|e| (e.is_bad_input(), e.to_string()));
    assert_eq!(err, Some((true, "reading \"x/y\": connection reset".to_owned())));
}

/// A sink that fails after `ok` blocks.
struct Failing {
    ok: usize,
}

impl BlockSink for Failing {
    fn put(&mut self, _block: Block) -> BoxFuture<'_, Result<(), AdderError>> {
        let result = if self.ok == 0 { Err(AdderError::sink("ipfs daemon unreachable")) } else { Ok(()) };
        self.ok = self.ok.saturating_sub(1);
        Box::pin(std::future::ready(result))
    }
}

#[tokio::test]
async fn sink_failures_are_not_bad_input() {
    let params = DagParams::parse("size-10", false, 0, "sha2-256", Layout::Balanced).unwrap_or_default();
    let mut importer = Importer::new(params, ImportOptions::default(), Failing { ok: 3 });
    let err = importer.add_file("f", stream(&data(2, 100), 7), &mut |_| {}).await.err();
    let err = err.map(|e| (e.is_bad_input(), e.to_string()));
    assert_eq!(err, Some((false, "storing block: ipfs daemon unreachable".to_owned())));
}

#[tokio::test]
async fn directories_kubo_would_shard_are_refused() {
    let options = ImportOptions { wrap_with_directory: true, ..ImportOptions::default() };
    let mut importer = Importer::new(DagParams::default(), options, Vec::new());
    let mut events = Vec::new();
    // Each link counts name (200) + CID (34) bytes; 1121 * 234 >= 262144.
    for i in 0..1121 {
        let name = format!("big/{i:0>200}");
        assert!(add(&mut importer, &name, b"", &mut events).await.is_ok());
    }
    let err = importer.finish(&mut |_| {}).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("directory \"big\" is too large (1121 entries, estimated 262314 bytes"), "{err}");
}

#[tokio::test]
async fn other_hashes_and_invalid_params() {
    let params = DagParams { hash: HashFunction::Blake2b256, cid_version: cid::Version::V1, ..DagParams::default() };
    let mut importer = Importer::new(params, ImportOptions::default(), Vec::new());
    let root = importer.add_file("f", stream(&data(4, 1000), 100), &mut |_| {}).await.ok().flatten();
    assert_eq!(root.map(|c| (c.version(), c.codec(), c.hash().code())), Some((cid::Version::V1, 0x70, 0xb220)));

    // Public fields can express CIDv0 + sha2-512; the importer refuses it on first use.
    let bad = DagParams { hash: HashFunction::Sha2_512, ..DagParams::default() };
    let mut importer = Importer::new(bad, ImportOptions::default(), Vec::new());
    let err = importer.add_file("f", stream(b"x", 1), &mut |_| {}).await.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("hash function \"sha2-512\" needs cid-version=1: CIDv0 only supports sha2-256"));
}

#[test]
fn add_futures_are_send() {
    fn assert_send<F: Future + Send>(_: F) {}
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let mut on_event = |_: AddEvent| {};
    assert_send(importer.add_file("f", stream(b"x", 1), &mut on_event));
    let mut sink = Vec::new();
    assert_send(cairn_adder::import_car(stream(b"", 1), &mut sink));
    assert_send(importer.finish(&mut on_event));
}

#[tokio::test]
async fn too_deep_and_too_long_paths_are_refused_naming_the_limit() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    let mut events = Vec::new();
    // 1000 levels: over the depth limit, yet shallow enough that a failing run still unwinds.
    let deep = vec!["a"; 1000].join("/");
    let err = importer.add_directory(&deep).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("1000 components") && err.contains("max path depth"), "{err}");
    let err = add(&mut importer, &format!("{deep}/f"), b"x", &mut events).await.err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("max path depth")), "{err:?}");

    let long = format!("d/{}", "n".repeat(5000));
    let err = add(&mut importer, &long, b"x", &mut events).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("5002 bytes") && err.contains("max path length"), "{err}");
    assert!(err.len() < 200, "the message does not echo the path: {err}");
    assert!(importer.add_directory(&long).is_err());

    // Within the limits: fine.
    let ok = vec!["b"; 200].join("/");
    assert!(importer.add_directory(&ok).is_ok());
    assert!(add(&mut importer, &format!("{ok}/f"), b"x", &mut events).await.is_ok());
}

#[tokio::test]
async fn a_directory_far_over_the_sharding_size_is_refused_while_it_grows() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    // Each entry counts at least 100 + 34 bytes: past 2 * 262144 well before 5000 entries, so
    // the tree stops growing instead of waiting for `finish`.
    let mut refused = None;
    for i in 0..5000 {
        if let Err(e) = importer.add_directory(&format!("big/{i:0>100}")) {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (at, err) = refused.expect("refused before finish");
    assert!(at < 4000, "refused at entry {at}");
    assert!(err.starts_with("directory \"big\" is too large"), "{err}");
}

#[tokio::test]
async fn an_import_holds_at_most_max_entries() {
    let limits = PathLimits { max_entries: 10, ..PathLimits::default() };
    let mut importer =
        Importer::new(DagParams::default(), ImportOptions::default(), Vec::new()).with_path_limits(limits);
    let mut events = Vec::new();
    assert!(importer.add_directory("a/b/c/d/e").is_ok());
    assert!(add(&mut importer, "a/b/f", b"x", &mut events).await.is_ok());
    assert!(importer.add_directory("a/b/c").is_ok(), "existing directories do not count");
    let err = importer.add_directory("g/h/i/j/k").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(err, "the add holds more than 10 files and directories (max entries)");
}
