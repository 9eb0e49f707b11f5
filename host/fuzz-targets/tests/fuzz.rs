//! Every fuzz target on the stable toolchain: its seed corpus, then mutants for
//! `CAIRN_FUZZ_SECS` seconds (default 10). One test per target, named like it, so one target
//! runs with `cargo test -p cairn-fuzz-targets --test fuzz -- --exact <target>`; a long run:
//! `CAIRN_FUZZ_SECS=600 cargo test --release -p cairn-fuzz-targets --test fuzz -- --nocapture <target>`.
//! A crash fails the test with the seed and the input, saved under the test's temporary folder.

use std::path::Path;

use cairn_fuzz_targets::runner::{self, Settings};

fn fuzz(name: &str) {
    let target = cairn_fuzz_targets::target(name).expect("a known target");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name);
    let crashes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let settings = Settings::from_env();
    let result = runner::run(name, target, &corpus, &crashes, &settings);
    cairn_fuzz_targets::teardown();
    match result {
        Ok(report) => println!("{report}"),
        Err(crash) => panic!("{crash}"),
    }
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name));
            }
        )*

        /// Every target has a test above and a seed corpus.
        #[test]
        fn every_target_has_a_test_and_seeds() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in cairn_fuzz_targets::TARGETS {
                assert!(tested.contains(name), "no test runs target {name}");
                let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name);
                assert!(!runner::read_corpus(&corpus).is_empty(), "target {name} has no seeds in {}", corpus.display());
            }
        }
    };
}

fuzz_tests!(car, crdt, dag_pb, go_duration, multipart_add, peer_rpc, pin_query, pinsvc_json);

/// The mutator keeps inputs within the length limit and is deterministic for a seed.
#[test]
fn mutations_are_bounded_and_reproducible() {
    let pool = vec![b"hello world".to_vec(), b"{\"records\":[]}".to_vec()];
    let run = |seed| {
        let mut rng = runner::Rng::new(seed);
        (0..2_000)
            .map(|i| {
                let mut input = pool[i % 2].clone();
                runner::mutate(&mut rng, &mut input, &pool, 64);
                assert!(input.len() <= 64);
                input
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// A target that panics is reported with its input, which is saved for a rerun.
#[test]
fn a_panic_is_reported_with_its_input() {
    fn picky(data: &[u8]) {
        assert!(!data.starts_with(b"boom"), "found it");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("seed"), b"boom!").expect("seed");
    let settings = Settings {
        duration: std::time::Duration::ZERO,
        seed: 1,
        max_len: 64,
        input: None,
        hang: std::time::Duration::from_secs(60),
    };
    let crash = runner::run("picky", picky, dir.path(), &dir.path().join("out"), &settings).expect_err("a crash");
    assert_eq!(crash.input, b"boom!");
    assert!(crash.message.contains("found it"), "{}", crash.message);
    let saved = crash.saved.expect("saved");
    assert_eq!(std::fs::read(saved).expect("read"), b"boom!");
}
