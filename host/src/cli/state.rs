//! `cairn state export|import|cleanup`: offline maintenance of the pinset at
//! `<config folder>/pinset.redb`, as IPFS Cluster's `ipfs-cluster-service state ...` (§7.2).
//!
//! Each command holds the config folder's lock (the daemon's `cluster.lock`) for its whole run,
//! so it refuses while a daemon uses the folder and a daemon cannot start underneath it.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_state::{Pin, PinStore, Version};

use crate::config::ConfigDir;

/// The pinset's file name inside the config folder.
use crate::consensus::PINSET_FILE;

/// Plain (non-terminal) progress is one line per this many pins: enough to show a long run is
/// alive without flooding a log.
const PLAIN_EVERY: u64 = 10_000;

/// On a terminal the counter is redrawn every this many pins; redrawing per pin would make
/// the terminal, not the store, the bottleneck.
const TTY_EVERY: u64 = 1_000;

/// `cairn state ...`.
#[derive(clap::Subcommand)]
pub enum StateCommand {
    /// Write every pin as NDJSON (one IPFS Cluster `Pin` object per line).
    Export {
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Read pins from an NDJSON export. Refuses when the pinset already has pins, unless
    /// `--force`, which replaces the whole pinset with the file's pins (as IPFS Cluster does).
    Import {
        /// The NDJSON file, as written by `state export` (Cairn's or IPFS Cluster's).
        file: PathBuf,
        /// Replace a non-empty pinset.
        #[arg(short, long)]
        force: bool,
        /// Set every imported pin's `replication_factor_min`.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        rmin: Option<i32>,
        /// Set every imported pin's `replication_factor_max`.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        rmax: Option<i32>,
        /// Set every imported pin's allocations (comma-separated peer ids), written as given.
        #[arg(long, value_name = "PEER,...", value_delimiter = ',')]
        allocs: Option<Vec<String>>,
    },
    /// Remove the pinset file. Asks for confirmation unless `--force`.
    Cleanup {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
}

/// Run one `state` command with the config folder locked.
pub fn run(dir: ConfigDir, cmd: StateCommand) -> anyhow::Result<ExitCode> {
    if !dir.0.is_dir() {
        bail!("config folder {} does not exist (create it with `cairn init`)", dir.0.display());
    }
    // Held until this function returns; the OS drops it if the process dies.
    let _lock = crate::daemon::lock_config_dir(&dir)
        .context("state commands need the pinset to themselves; stop the daemon first")?;
    let pinset = dir.0.join(PINSET_FILE);
    match cmd {
        StateCommand::Export { file } => export(&pinset, file.as_deref()),
        StateCommand::Import { file, force, rmin, rmax, allocs } => {
            let overrides = Overrides { rmin, rmax, allocs };
            overrides.check()?;
            // Imported records carry a fresh clock and this peer as author, so the crdt engine
            // spreads them to the other peers like any write made here.
            let author = crate::config::Identity::load(&dir.identity(), &crate::config::process_env)
                .context("read this peer's identity (the import's author)")?
                .peer_id
                .to_string();
            let version = Version { clock: cairn_consensus::crdt::Hlc::wall(), author: author.into_bytes() };
            import(&pinset, &file, force, &version, &overrides)
        }
        StateCommand::Cleanup { force } => cleanup(&pinset, force),
    }
}

fn export(pinset: &Path, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    // A folder that never had a pinset exports nothing; opening would create an empty file.
    if !pinset.exists() {
        if let Some(file) = file {
            File::create(file).with_context(|| format!("create {}", file.display()))?;
        }
        Progress::new("exported").finish(0);
        return Ok(ExitCode::SUCCESS);
    }
    let store = PinStore::open(pinset).context("open the pinset")?;
    let mut progress = Progress::new("exported");
    let written = match file {
        None => {
            let stdout = std::io::stdout().lock();
            cairn_state::export(&store, LineCounter { inner: stdout, progress: &mut progress })
                .context("export to stdout")?
        }
        Some(path) => {
            let out = File::create(path).with_context(|| format!("create {}", path.display()))?;
            match cairn_state::export(&store, LineCounter { inner: out, progress: &mut progress }) {
                Ok(n) => n,
                Err(e) => {
                    // A partial export looks like a complete one to a later import: remove it.
                    let _ = std::fs::remove_file(path);
                    return Err(e).with_context(|| format!("export to {}", path.display()));
                }
            }
        }
    };
    progress.finish(written);
    Ok(ExitCode::SUCCESS)
}

/// `state import` overrides applied to every pin.
struct Overrides {
    rmin: Option<i32>,
    rmax: Option<i32>,
    allocs: Option<Vec<String>>,
}

impl Overrides {
    fn check(&self) -> anyhow::Result<()> {
        if let (Some(min), Some(max)) = (self.rmin, self.rmax)
            && max != -1
            && min > max
        {
            bail!("--rmin {min} is larger than --rmax {max}");
        }
        for peer in self.allocs.iter().flatten() {
            peer.parse::<cairn_swarm::PeerId>()
                .map_err(|e| anyhow::anyhow!("--allocs: {peer:?} is not a peer id: {e}"))?;
        }
        Ok(())
    }

    fn apply(&self, pin: &mut Pin) {
        if let Some(min) = self.rmin {
            pin.options.replication_factor_min = min;
        }
        if let Some(max) = self.rmax {
            pin.options.replication_factor_max = max;
        }
        if let Some(allocs) = &self.allocs {
            pin.allocations = allocs.clone();
        }
    }
}

fn import(
    pinset: &Path,
    file: &Path,
    force: bool,
    version: &Version,
    overrides: &Overrides,
) -> anyhow::Result<ExitCode> {
    let input = File::open(file).with_context(|| format!("open {}", file.display()))?;
    if pinset.exists() && !force {
        let existing = PinStore::open(pinset).context("open the pinset")?.len().context("count the pinset")?;
        if existing > 0 {
            bail!(
                "the pinset {} already has {existing} pins; pass --force to replace it with the pins of {}",
                pinset.display(),
                file.display()
            );
        }
    }
    // Import into a fresh file next to the pinset and rename it over the old one only when the
    // whole input was good: a bad line or a crash leaves the old pinset untouched, and --force
    // replaces the pinset instead of merging into it.
    let staging = pinset.with_extension("redb.import");
    if staging.exists() {
        // Left over by an interrupted import; never merge into it.
        std::fs::remove_file(&staging).with_context(|| format!("remove the stale {}", staging.display()))?;
    }
    let mut progress = Progress::new("imported");
    let imported = {
        let store = PinStore::open(&staging).context("create the import's staging pinset")?;
        let reader = LineCounter { inner: BufReader::new(input), progress: &mut progress };
        cairn_state::import(&store, reader, version, |pin| overrides.apply(pin))
    };
    let imported = match imported {
        Ok(n) => n,
        Err(e) => {
            progress.abandon();
            let _ = std::fs::remove_file(&staging);
            return Err(e).with_context(|| format!("import {} (nothing was stored)", file.display()));
        }
    };
    std::fs::rename(&staging, pinset)
        .with_context(|| format!("replace {} with {}", pinset.display(), staging.display()))?;
    progress.finish(imported);
    Ok(ExitCode::SUCCESS)
}

fn cleanup(pinset: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if !pinset.exists() {
        eprintln!("no pinset at {}: nothing to remove", pinset.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !force {
        eprint!("This removes every pin of {} and cannot be undone. Continue? [y/N] ", pinset.display());
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).context("read the confirmation")?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("cleanup aborted: nothing removed");
            return Ok(ExitCode::FAILURE);
        }
    }
    std::fs::remove_file(pinset).with_context(|| format!("remove {}", pinset.display()))?;
    eprintln!("removed {}", pinset.display());
    Ok(ExitCode::SUCCESS)
}

/// Progress on stderr: an in-place counter on a terminal, plain lines every [`PLAIN_EVERY`]
/// pins otherwise (logs and pipes get no carriage returns).
struct Progress {
    verb: &'static str,
    tty: bool,
    count: u64,
    drawn: bool,
}

impl Progress {
    fn new(verb: &'static str) -> Self {
        Self { verb, tty: std::io::stderr().is_terminal(), count: 0, drawn: false }
    }

    /// `n` more pins (lines) went through.
    fn advance(&mut self, n: u64) {
        let before = self.count;
        self.count += n;
        let every = if self.tty { TTY_EVERY } else { PLAIN_EVERY };
        if self.count / every == before / every {
            return;
        }
        // Progress is advisory: a closed stderr must not fail the operation.
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{} {} pins…", self.verb, self.count);
            let _ = err.flush();
            self.drawn = true;
        } else {
            // The milestone, not the count: writes arrive in buffered chunks, and a log reads
            // better as 10000, 20000, … than as whatever count a chunk happened to end on.
            let _ = writeln!(err, "{} {} pins…", self.verb, self.count / every * every);
        }
    }

    /// The final count (exact: the counter only saw lines, which may include blank ones).
    fn finish(self, total: u64) {
        // On a terminal, overwrite the counter line; the padding blanks its trailing "…".
        let (start, pad) = if self.tty && self.drawn { ("\r", "    ") } else { ("", "") };
        let _ = writeln!(std::io::stderr(), "{start}{} {total} pins{pad}", self.verb);
    }

    /// End the in-place line so an error message starts on its own line.
    fn abandon(self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Counts newlines passing through a reader or writer: one NDJSON line is one pin (compact
/// JSON never contains a raw newline), so this gives progress without touching cairn-state.
struct LineCounter<'a, T> {
    inner: T,
    progress: &'a mut Progress,
}

impl<T: Write> Write for LineCounter<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.advance(newlines(&buf[..n]));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: BufRead> Read for LineCounter<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(newlines(&buf[..n]));
        Ok(n)
    }
}

impl<T: BufRead> BufRead for LineCounter<'_, T> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // Count what is consumed, not what is buffered: the line reader consumes a line at a time.
        let n = self.inner.fill_buf().map(|b| newlines(&b[..amt.min(b.len())])).unwrap_or(0);
        self.inner.consume(amt);
        self.progress.advance(n);
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
