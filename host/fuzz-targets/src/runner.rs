//! A small mutation fuzzer for the stable toolchain: replays a target's seed corpus, then feeds
//! it mutated corpus inputs (bit flips, byte sets, inserts, deletes, copies, splices, dictionary
//! tokens and boundary numbers) for a bounded time. There is no coverage feedback (that is what
//! the libFuzzer build in fuzz/ adds); a random walk over mutants reaches past the seeds.
//!
//! Settings come from the environment: `CAIRN_FUZZ_SECS` (seconds per target, default 10),
//! `CAIRN_FUZZ_SEED` (the PRNG seed; default from the clock, always printed),
//! `CAIRN_FUZZ_MAX_LEN` (largest input, default 8192), `CAIRN_FUZZ_INPUT` (run just that file,
//! to reproduce a crash), `CAIRN_FUZZ_HANG_SECS` (one execution longer than this is a hang,
//! default 60).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Target;

/// How long and with what seed to fuzz.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time budget per target, after the corpus replay.
    pub duration: Duration,
    /// PRNG seed.
    pub seed: u64,
    /// Largest mutated input, bytes.
    pub max_len: usize,
    /// A single input file to run instead of fuzzing.
    pub input: Option<PathBuf>,
    /// One execution longer than this aborts the process as a hang.
    pub hang: Duration,
}

impl Settings {
    /// From the `CAIRN_FUZZ_*` environment variables (see the module docs).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let secs = var("CAIRN_FUZZ_SECS").and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
        let seed = var("CAIRN_FUZZ_SEED")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64));
        Settings {
            duration: Duration::from_secs_f64(secs.unwrap_or(10.0)),
            seed,
            max_len: var("CAIRN_FUZZ_MAX_LEN").and_then(|v| v.parse().ok()).unwrap_or(8192),
            input: var("CAIRN_FUZZ_INPUT").map(PathBuf::from),
            hang: Duration::from_secs(var("CAIRN_FUZZ_HANG_SECS").and_then(|v| v.parse().ok()).unwrap_or(60)),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target's name.
    pub target: String,
    /// Inputs executed (corpus replay included).
    pub execs: u64,
    /// Seed inputs replayed.
    pub seeds: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The PRNG seed.
    pub seed: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "fuzz {}: {} execs in {:.1} s ({:.0}/s), {} seeds, seed {}, 0 crashes",
            self.target,
            self.execs,
            secs,
            self.execs as f64 / secs.max(1e-9),
            self.seeds,
            self.seed
        )
    }
}

/// An input that made the target panic.
#[derive(Debug)]
pub struct Crash {
    /// The target's name.
    pub target: String,
    /// The panic message.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
    /// Where the input was written, if it could be.
    pub saved: Option<PathBuf>,
    /// The PRNG seed of the run.
    pub seed: u64,
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fuzz target {} panicked: {}", self.target, self.message)?;
        writeln!(f, "seed: CAIRN_FUZZ_SEED={}", self.seed)?;
        if let Some(path) = &self.saved {
            writeln!(f, "input saved to {} (rerun it with CAIRN_FUZZ_INPUT={0})", path.display())?;
        }
        let shown = &self.input[..self.input.len().min(4096)];
        write!(f, "input ({} bytes), hex: {}", self.input.len(), hex(shown))?;
        if shown.len() < self.input.len() {
            write!(f, "…")?;
        }
        Ok(())
    }
}

/// Fuzzes `target` (named `name`) from the seeds in `corpus` (its files; subfolders such as
/// `crashes/` are not read); a crashing input is written under `crash_dir`.
pub fn run(name: &str, target: Target, corpus: &Path, crash_dir: &Path, settings: &Settings) -> Result<Report, Crash> {
    let start = Instant::now();
    let crash = |input: &[u8], message: String| {
        let saved = save(crash_dir, name, input);
        Crash { target: name.to_owned(), message, input: input.to_vec(), saved, seed: settings.seed }
    };
    if let Some(path) = &settings.input {
        let input = std::fs::read(path).map_err(|e| crash(&[], format!("cannot read {}: {e}", path.display())))?;
        execute(target, &input).map_err(|m| crash(&input, m))?;
        return Ok(Report { target: name.into(), execs: 1, seeds: 0, elapsed: start.elapsed(), seed: settings.seed });
    }

    let seeds = read_corpus(corpus);
    let mut execs = 0u64;
    for seed in &seeds {
        execute(target, seed).map_err(|m| crash(seed, m))?;
        execs += 1;
    }

    let watchdog = Watchdog::start(name, crash_dir, settings.hang);
    let mut rng = Rng::new(settings.seed);
    let mut pool: Vec<Vec<u8>> = if seeds.is_empty() { vec![Vec::new()] } else { seeds.clone() };
    let base = pool.len();
    let deadline = start + settings.duration;
    let mut input = Vec::new();
    while Instant::now() < deadline {
        // A batch between clock reads: the targets take microseconds.
        for _ in 0..32 {
            // Half the parents are seeds: byte mutations soon break a structured input, and a
            // walk that only follows mutants drifts into inputs every parser rejects at once.
            let from = if rng.below(2) == 0 { &pool[rng.below(base)] } else { &pool[rng.below(pool.len())] };
            input.clear();
            input.extend_from_slice(from);
            mutate(&mut rng, &mut input, &pool, settings.max_len);
            watchdog.begin(&input);
            let result = execute(target, &input);
            watchdog.end();
            result.map_err(|m| crash(&input, m))?;
            execs += 1;
            // Keep some mutants as parents: a random walk away from the seeds.
            if rng.below(16) == 0 {
                if pool.len() < base + 256 {
                    pool.push(input.clone());
                } else {
                    let slot = base + rng.below(256);
                    pool[slot] = input.clone();
                }
            }
        }
    }
    drop(watchdog);
    Ok(Report { target: name.into(), execs, seeds: seeds.len(), elapsed: start.elapsed(), seed: settings.seed })
}

/// Runs one input, turning a panic into its message.
fn execute(target: Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// The files directly in `dir`, sorted by name (a missing folder is an empty corpus).
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.into_iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Writes a crashing input to `dir/<target>/crash-<hash>`.
fn save(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("crash-{:016x}", fnv1a(input)));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Aborts the process when one execution runs longer than the hang limit, after saving the
/// input: a hang cannot be caught like a panic.
struct Watchdog {
    state: Arc<WatchState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct WatchState {
    /// Milliseconds since `epoch` when the current execution began; 0 when idle.
    began: AtomicU64,
    epoch: Instant,
    input: Mutex<Vec<u8>>,
    done: AtomicBool,
}

impl Watchdog {
    fn start(name: &str, crash_dir: &Path, hang: Duration) -> Self {
        let state = Arc::new(WatchState {
            began: AtomicU64::new(0),
            epoch: Instant::now(),
            input: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
        });
        let (watched, name, crash_dir) = (state.clone(), name.to_owned(), crash_dir.to_owned());
        let thread = std::thread::spawn(move || {
            while !watched.done.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(500));
                let began = watched.began.load(Ordering::Relaxed);
                let now = watched.epoch.elapsed().as_millis() as u64;
                if began != 0 && now.saturating_sub(began) > hang.as_millis() as u64 {
                    let input = watched.input.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let saved = save(&crash_dir, &name, &input);
                    eprintln!(
                        "fuzz target {name} hung for over {hang:?}; input saved to {saved:?}, hex: {}",
                        hex(&input[..input.len().min(4096)])
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog { state, thread: Some(thread) }
    }

    fn begin(&self, input: &[u8]) {
        let mut current = self.state.input.lock().unwrap_or_else(|p| p.into_inner());
        current.clear();
        current.extend_from_slice(input);
        drop(current);
        let now = self.state.epoch.elapsed().as_millis() as u64;
        self.state.began.store(now.max(1), Ordering::Relaxed);
    }

    fn end(&self) {
        self.state.began.store(0, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Also on a crash's early return.
        self.state.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// splitmix64: small, fast and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }
}

/// Tokens the parsers care about: separators of the text formats, JSON and CBOR pieces, units,
/// limits of integer types, CIDs, and the media types of `POST /add`.
const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"--",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"-",
    b".",
    b"%",
    b"%2F",
    b"%zz",
    b"&",
    b"=",
    b";",
    b"+",
    b"/",
    b"../",
    b"\\",
    b"ns",
    b"us",
    b"\xc2\xb5s",
    b"ms",
    b"s",
    b"m",
    b"h",
    b"0",
    b"-1",
    b"255",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"340282366920938463463374607431768211456",
    b"1e308",
    b"0.000000001",
    b"QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
    b"bafkqaaa",
    b"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    b"12D3KooWRemoteFuzzPeer",
    b"Content-Disposition: form-data; name=\"file\"; filename=\"",
    b"Content-Type: application/x-directory",
    b"Content-Type: application/octet-stream",
    b"application/symlink",
    b"\"records\":",
    b"\"pin\":",
    b"\"clock\":",
    b"\"author\":",
    b"\"cid\":",
    b"\"cid\":{\"/\":\"QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn\"}",
    b"\"expire_at\":\"9999-12-31T23:59:59.999999999Z\"",
    b"0001-01-01T00:00:00Z",
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x5a\xff\xff\xff\xff",
    b"\x9f",
    b"\xbf",
    b"\xd8\x2a",
];

/// Applies 1–8 random mutations to `input` (one half of the time: structured inputs survive a
/// single mutation far more often), keeping it at most `max_len` bytes.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    let rounds = 1 << rng.below(4).saturating_sub(rng.below(2)).min(3);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next_u64() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                input.drain(at..at + n);
            }
            4 if len > 0 => {
                // Copy a range of the input elsewhere in it (repeats structure).
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(256));
                let piece = input[from..from + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            5 if !pool.is_empty() => {
                // Splice: this input's head with another's tail.
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            6 | 7 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || len == 0 {
                    input.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(len);
                    input.splice(at..end, token.iter().copied());
                }
            }
            8 if len > 0 => {
                // Replace a run of ASCII digits with a boundary number.
                let i = rng.below(len);
                if input[i].is_ascii_digit() {
                    let start = input[..i].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |p| p + 1);
                    let end = input[i..].iter().position(|b| !b.is_ascii_digit()).map_or(len, |p| i + p);
                    let numbers: &[&[u8]] = &[
                        b"0",
                        b"1",
                        b"-1",
                        b"4096",
                        b"9223372036854775807",
                        b"18446744073709551615",
                        b"99999999999999999999999999",
                    ];
                    input.splice(start..end, numbers[rng.below(numbers.len())].iter().copied());
                }
            }
            9 if len > 0 => {
                // Repeat a byte many times (long names, deep nesting, long runs).
                let i = rng.below(len);
                let n = 1 + rng.below(512);
                let b = input[i];
                input.splice(i..i, std::iter::repeat_n(b, n));
            }
            _ if len > 1 => {
                let at = rng.below(len);
                input.truncate(at.max(1));
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
    input.truncate(max_len);
}
