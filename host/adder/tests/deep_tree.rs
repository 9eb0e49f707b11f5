//! A directory tree nested far deeper than any real one must be built, emitted and dropped
//! without recursion: on a small stack, a recursive drop or walk overflows and aborts this
//! whole test binary (which is why these tests have a binary of their own).

use cairn_adder::{AddEvent, Block, DagParams, ImportOptions, Importer, PathLimits};

const DEPTH: usize = 20_000;
/// Far below the 2 MiB of a test thread, so recursion of any depth-proportional kind fails.
const SMALL_STACK: usize = 256 * 1024;

fn deep_path() -> String {
    vec!["a"; DEPTH].join("/")
}

/// An importer whose path limits let the deep path through (the defaults refuse it).
fn importer() -> Importer<Vec<Block>> {
    let limits = PathLimits { max_depth: DEPTH, max_bytes: 2 * DEPTH, ..PathLimits::default() };
    Importer::new(DagParams::default(), ImportOptions::default(), Vec::new()).with_path_limits(limits)
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(SMALL_STACK).spawn(f).expect("spawn");
    thread.join().expect("no panic");
}

#[test]
fn the_default_limits_refuse_the_deep_path() {
    let mut importer = Importer::new(DagParams::default(), ImportOptions::default(), Vec::new());
    assert!(importer.add_directory(&deep_path()).is_err());
}

#[test]
fn a_deep_tree_is_dropped_without_recursion() {
    on_small_stack(|| {
        let mut importer = importer();
        importer.add_directory(&deep_path()).expect("added");
        drop(importer);
    });
}

#[test]
fn a_deep_tree_is_built_without_recursion() {
    on_small_stack(|| {
        let mut importer = importer();
        importer.add_directory(&deep_path()).expect("added");
        let mut dirs = 0usize;
        let mut count = |e: AddEvent| {
            if let AddEvent::Added { .. } = e {
                dirs += 1;
            }
        };
        futures::executor::block_on(importer.finish(&mut count)).expect("built");
        assert_eq!(dirs, DEPTH);
    });
}
