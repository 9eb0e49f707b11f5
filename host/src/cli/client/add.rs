//! `add`: files and directories to `POST /add` as kubo's multipart body (reference §1.6),
//! streamed from disk while the answer's NDJSON lines are printed as they come.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_api::{AddedOutput, GlobalPinInfo};
use futures::SinkExt as _;
use futures::channel::mpsc;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::Method;
use hyper::body::Frame;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;

use super::http::{Body, Client, Query, query_escape};
use super::pins::{PinOptionArgs, Target, wait_for};
use super::progress::{Progress, bar};
use super::{ApiOptions, Encoding, Printer, decode, output, parse_duration};

/// Files at least this large get a progress bar on a terminal.
const PROGRESS_MIN_BYTES: u64 = 1 << 20;
/// Read size; also the unit the body is sent in.
const CHUNK: usize = 256 * 1024;

/// `add`'s arguments (ipfs-cluster-ctl's flags; reference §7.1).
#[derive(clap::Args)]
pub struct AddArgs {
    /// Files or directories (directories need -r).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Print only the CIDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print only the root CID.
    #[arg(short = 'Q', long)]
    pub quieter: bool,
    /// Print the outputs only when the add is done.
    #[arg(long)]
    pub no_stream: bool,
    /// Put the blocks into this peer's IPFS daemon only, then pin as usual.
    #[arg(long)]
    pub local: bool,
    /// Number of peers (sets both --replication-min and --replication-max).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub replication: Option<i32>,
    #[command(flatten)]
    pub options: PinOptionArgs,
    /// Put the blocks but do not pin the root.
    #[arg(long)]
    pub no_pin: bool,
    /// Wait until the root is pinned on every allocated peer, then show its status.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (a Go duration; 0: never); exit code 62.
    #[arg(long = "wait-timeout", visible_alias = "wt", value_name = "DURATION")]
    pub wait_timeout: Option<String>,
    /// Wrap the files in a directory.
    #[arg(short = 'w', long)]
    pub wrap_with_directory: bool,
    /// unixfs (build a DAG from the files) or car (import one CAR file with one root).
    #[arg(long, value_parser = ["unixfs", "car"])]
    pub format: Option<String>,
    /// DAG layout: balanced or trickle.
    #[arg(long, value_parser = ["balanced", "trickle"])]
    pub layout: Option<String>,
    /// Include files and directories whose names start with a dot.
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// Chunker, e.g. size-262144 or rabin-min-avg-max.
    #[arg(short = 's', long)]
    pub chunker: Option<String>,
    /// Raw leaves (default: on when --cid-version is above 0).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub raw_leaves: Option<bool>,
    /// CID version.
    #[arg(long, value_name = "N")]
    pub cid_version: Option<u32>,
    /// Hash function, e.g. sha2-256 or blake2b-256.
    #[arg(long)]
    pub hash: Option<String>,
    /// Reference the files in place (filestore) instead of copying them.
    #[arg(long)]
    pub nocopy: bool,
    // Last: the "Client options" heading it sets would apply to the fields after it.
    #[command(flatten)]
    pub api: ApiOptions,
}

/// One part of the body.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// A directory (its entries follow).
    Dir { name: String },
    /// A file and its size.
    File { name: String, path: PathBuf, size: u64 },
    /// A symbolic link inside a directory (kubo sends the target as the content).
    Symlink { name: String, target: String },
}

/// Runs `add`.
pub async fn run(client: &Client, out: &Printer, args: AddArgs) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    for path in &args.paths {
        collect(path, &args, &mut entries)?;
    }
    let total: u64 = entries.iter().map(|e| if let Entry::File { size, .. } = e { *size } else { 0 }).sum();
    let query = add_query(&args)?;

    let boundary = boundary()?;
    let progress = Progress::stderr();
    let show_progress =
        progress.is_terminal() && total >= PROGRESS_MIN_BYTES && !args.quiet && !args.quieter && !args.no_stream;
    let progress = Arc::new(Mutex::new(progress));
    let local_error = Arc::new(Mutex::new(None::<String>));
    let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(4);
    let body: Body = StreamBody::new(receiver).boxed_unsync();
    let producer = tokio::spawn(produce(
        entries,
        boundary.clone(),
        sender,
        show_progress.then(|| (progress.clone(), total)),
        local_error.clone(),
        args.nocopy,
    ));

    let mut outputs: Vec<Value> = Vec::new();
    let mut root = None;
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let streamed = client
        .stream(Method::POST, &query.on("/add"), body, Some(&content_type), |item| {
            let added: AddedOutput = decode(item.clone(), "add output")?;
            if added.cid.is_none() {
                // A progress line from the peer: the local bar already says as much.
                return Ok(());
            }
            root = added.cid.clone();
            if args.no_stream || args.quieter {
                outputs.push(item);
                return Ok(());
            }
            if let Ok(mut p) = progress.lock() {
                p.finish();
            }
            print_output(out, &args, item, &added)
        })
        .await;
    if !producer.is_finished() {
        producer.abort();
    }
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    // A file that could not be read is the real reason the request broke off.
    if let Some(e) = local_error.lock().ok().and_then(|mut e| e.take()) {
        bail!("{e}");
    }
    streamed?;

    if args.quieter {
        if let Some(last) = outputs.pop() {
            let added: AddedOutput = decode(last.clone(), "add output")?;
            print_output(out, &args, last, &added)?;
        }
    } else {
        for item in outputs {
            let added: AddedOutput = decode(item.clone(), "add output")?;
            print_output(out, &args, item, &added)?;
        }
    }

    if args.wait && !args.no_pin {
        let root = root.context("the add answered no CID to wait for")?;
        let timeout = match &args.wait_timeout {
            Some(text) => Some(parse_duration(text).context("--wait-timeout")?).filter(|d| !d.is_zero()),
            None => None,
        };
        let status = wait_for(client, &root, Target::Pinned, 0, timeout).await?;
        if !args.quiet && !args.quieter {
            out.value::<GlobalPinInfo>(Some(status), output::status)?;
        }
    }
    Ok(())
}

fn print_output(out: &Printer, args: &AddArgs, item: Value, added: &AddedOutput) -> anyhow::Result<()> {
    match (out.encoding, &added.cid) {
        (Encoding::Text, Some(cid)) if args.quiet || args.quieter => out.text(&format!("{cid}\n")),
        _ => out.item::<AddedOutput>(item, output::added),
    }
}

/// The query: pin options and add parameters, only those given (the peer has the defaults).
fn add_query(args: &AddArgs) -> anyhow::Result<Query> {
    let mut query = Query::default();
    args.options.to_query(args.replication, &mut query)?;
    query
        .flag("local", args.local)
        .flag("recursive", args.recursive)
        .flag("hidden", args.hidden)
        .flag("wrap-with-directory", args.wrap_with_directory)
        .flag("no-pin", args.no_pin)
        .flag("nocopy", args.nocopy);
    if let Some(v) = &args.format {
        query.push("format", v.as_str());
    }
    if let Some(v) = &args.layout {
        query.push("layout", v.as_str());
    }
    if let Some(v) = &args.chunker {
        query.push("chunker", v.as_str());
    }
    if let Some(v) = args.raw_leaves {
        query.push("raw-leaves", v.to_string());
    }
    if let Some(v) = args.cid_version {
        query.push("cid-version", v.to_string());
    }
    if let Some(v) = &args.hash {
        query.push("hash", v.as_str());
    }
    Ok(query)
}

/// The parts for `path` (named by its last component) and, for a directory, everything below
/// it in name order (as kubo reads directories).
fn collect(path: &Path, args: &AddArgs, entries: &mut Vec<Entry>) -> anyhow::Result<()> {
    let text = path.to_string_lossy();
    if text.starts_with("http://") || text.starts_with("https://") {
        bail!("{text}: adding from a URL is not supported; download it first");
    }
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    // `.` or `..` have no name of their own: name them after the folder they are.
    let name = match path.file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "root".to_owned()),
    };
    if meta.is_dir() {
        if !args.recursive {
            bail!("{} is a directory: pass -r/--recursive", path.display());
        }
        walk(path, name, args.hidden, entries)
    } else {
        entries.push(Entry::File { name, path: path.to_owned(), size: meta.len() });
        Ok(())
    }
}

fn walk(dir: &Path, name: String, hidden: bool, entries: &mut Vec<Entry>) -> anyhow::Result<()> {
    entries.push(Entry::Dir { name: name.clone() });
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("read {}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let child_name = child.file_name().to_string_lossy().into_owned();
        if !hidden && child_name.starts_with('.') {
            continue;
        }
        let path = child.path();
        let full = format!("{name}/{child_name}");
        let kind = child.file_type().with_context(|| format!("{}", path.display()))?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).with_context(|| format!("{}", path.display()))?;
            entries.push(Entry::Symlink { name: full, target: target.to_string_lossy().into_owned() });
        } else if kind.is_dir() {
            walk(&path, full, hidden, entries)?;
        } else {
            let size = child.metadata().with_context(|| format!("{}", path.display()))?.len();
            entries.push(Entry::File { name: full, path, size });
        }
    }
    Ok(())
}

/// A boundary that no file content is likely to contain.
fn boundary() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("random boundary: {e}"))?;
    Ok(hex::encode(bytes))
}

/// The head of one part, as kubo's multipart writer sends it (file names URL-escaped).
fn part_head(boundary: &str, first: bool, entry: &Entry, abspath: Option<&Path>) -> String {
    let (name, content_type) = match entry {
        Entry::Dir { name } => (name, "application/x-directory"),
        Entry::File { name, .. } => (name, "application/octet-stream"),
        Entry::Symlink { name, .. } => (name, "application/symlink"),
    };
    let mut head = String::new();
    if !first {
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n",
        query_escape(name)
    ));
    if let Some(path) = abspath {
        head.push_str(&format!("Abspath-Encoded: {}\r\n", query_escape(&path.to_string_lossy())));
    }
    head.push_str("\r\n");
    head
}

/// Writes the body into `sender`: each part's head, then its content read from disk. A local
/// read error is kept in `local_error` (and breaks the request off); a closed channel means the
/// request already ended, which the caller reports.
async fn produce(
    entries: Vec<Entry>,
    boundary: String,
    mut sender: mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
    progress: Option<(Arc<Mutex<Progress>>, u64)>,
    local_error: Arc<Mutex<Option<String>>>,
    nocopy: bool,
) {
    let mut sent = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        let abspath = match entry {
            Entry::File { path, .. } if nocopy => std::path::absolute(path).ok(),
            _ => None,
        };
        let head = part_head(&boundary, i == 0, entry, abspath.as_deref());
        if sender.send(Ok(Frame::data(Bytes::from(head)))).await.is_err() {
            return;
        }
        match entry {
            Entry::Dir { .. } => {}
            Entry::Symlink { target, .. } => {
                if sender.send(Ok(Frame::data(Bytes::from(target.clone())))).await.is_err() {
                    return;
                }
            }
            Entry::File { path, .. } => {
                let mut file = match tokio::fs::File::open(path).await {
                    Ok(file) => file,
                    Err(e) => return fail(&mut sender, &local_error, path, e).await,
                };
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = match file.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => return fail(&mut sender, &local_error, path, e).await,
                    };
                    buf.truncate(n);
                    if sender.send(Ok(Frame::data(Bytes::from(buf)))).await.is_err() {
                        return;
                    }
                    sent += n as u64;
                    if let Some((progress, total)) = &progress
                        && let Ok(mut p) = progress.lock()
                    {
                        let state = format!(
                            "{} {} / {}",
                            bar(sent, *total),
                            output::human_bytes(sent),
                            output::human_bytes(*total)
                        );
                        p.update("", &state);
                    }
                }
            }
        }
    }
    let _ = sender.send(Ok(Frame::data(Bytes::from(format!("\r\n--{boundary}--\r\n"))))).await;
}

async fn fail(
    sender: &mut mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
    local_error: &Mutex<Option<String>>,
    path: &Path,
    e: io::Error,
) {
    let message = format!("read {}: {e}", path.display());
    if let Ok(mut slot) = local_error.lock() {
        *slot = Some(message.clone());
    }
    // An error item makes hyper abandon the request instead of sending a truncated body.
    let _ = sender.send(Err(io::Error::other(message))).await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        add: AddArgs,
    }

    fn args(argv: &[&str]) -> AddArgs {
        Cmd::try_parse_from(std::iter::once("add").chain(argv.iter().copied())).expect("parse").add
    }

    #[test]
    fn walks_directories_in_name_order_without_hidden_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("site");
        std::fs::create_dir_all(root.join("css")).expect("mkdir");
        std::fs::write(root.join("index.html"), "hi").expect("write");
        std::fs::write(root.join("css/a b.css"), "x{}").expect("write");
        std::fs::write(root.join(".secret"), "no").expect("write");
        std::os::unix::fs::symlink("index.html", root.join("home.html")).expect("symlink");

        let root_arg = root.to_string_lossy().into_owned();
        let mut entries = Vec::new();
        assert!(collect(&root, &args(&[&root_arg]), &mut entries).is_err(), "a directory needs -r");
        collect(&root, &args(&["-r", &root_arg]), &mut entries).expect("walk");
        assert_eq!(
            entries,
            [
                Entry::Dir { name: "site".into() },
                Entry::Dir { name: "site/css".into() },
                Entry::File { name: "site/css/a b.css".into(), path: root.join("css/a b.css"), size: 3 },
                Entry::Symlink { name: "site/home.html".into(), target: "index.html".into() },
                Entry::File { name: "site/index.html".into(), path: root.join("index.html"), size: 2 },
            ]
        );
        let mut with_hidden = Vec::new();
        collect(&root, &args(&["-r", "-H", &root_arg]), &mut with_hidden).expect("walk");
        assert_eq!(with_hidden.len(), 6);
    }

    #[test]
    fn heads_follow_kubo_and_the_query_only_what_was_given() {
        let entry = Entry::File { name: "site/a b.css".into(), path: "x".into(), size: 0 };
        assert_eq!(
            part_head("B", true, &entry, None),
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site%2Fa+b.css\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        assert!(part_head("B", false, &Entry::Dir { name: "d".into() }, None).starts_with("\r\n--B\r\n"));
        assert!(part_head("B", true, &entry, Some(Path::new("/t/a"))).contains("Abspath-Encoded: %2Ft%2Fa\r\n"));

        let a = args(&["--rmin", "1", "--rmax", "-1", "-n", "site", "--cid-version", "1", "--raw-leaves", "-w", "f"]);
        assert_eq!(
            add_query(&a).expect("query").on("/add"),
            "/add?replication-min=1&replication-max=-1&name=site&wrap-with-directory=true&raw-leaves=true&cid-version=1"
        );
        let a =
            args(&["--format", "car", "--layout", "trickle", "-s", "size-1024", "--local", "--raw-leaves=false", "f"]);
        assert_eq!(
            add_query(&a).expect("query").on("/add"),
            "/add?local=true&format=car&layout=trickle&chunker=size-1024&raw-leaves=false"
        );
        assert!(collect(Path::new("https://example.com/x"), &a, &mut Vec::new()).is_err());
    }
}
