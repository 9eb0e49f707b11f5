//! The UnixFS importer: files and directories of one add request into one DAG.

use std::collections::HashSet;
use std::fmt::Display;

use bytes::Bytes;
use cid::Cid;
use futures::{Stream, StreamExt};

use crate::builder::{FileBuilder, Pending};
use crate::pb::{self, PbLink};
use crate::{AddEvent, AdderError, Block, BlockSink, DagParams};

/// Bytes between two progress events (IPFS Cluster's `progressReaderIncrement`).
const PROGRESS_INCREMENT: u64 = 256 * 1024;
/// Kubo's `HAMTShardingSize`: directories whose estimated size reaches it become HAMT shards.
const HAMT_SHARDING_SIZE: usize = 256 * 1024;
/// Default of [`PathLimits::max_depth`].
pub const DEFAULT_MAX_PATH_DEPTH: usize = 256;
/// Default of [`PathLimits::max_bytes`] (Linux's `PATH_MAX`).
pub const DEFAULT_MAX_PATH_BYTES: usize = 4096;
/// Default of [`PathLimits::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
/// The shortest binary CID a link can have (CIDv0), for a lower bound of Kubo's estimate.
const MIN_CID_BYTES: usize = 34;

/// Bounds on the paths and the tree an importer accepts. Each directory level costs memory and
/// an Added event carrying its full path, so unbounded paths would let a small request cost
/// quadratic memory, and the tree is held until [`Importer::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathLimits {
    /// Most components in one path.
    pub max_depth: usize,
    /// Most bytes in one path, as given.
    pub max_bytes: usize,
    /// Most files and directories in one import.
    pub max_entries: usize,
}

impl Default for PathLimits {
    fn default() -> Self {
        PathLimits {
            max_depth: DEFAULT_MAX_PATH_DEPTH,
            max_bytes: DEFAULT_MAX_PATH_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Switches of one add request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// Put everything in one more directory, which becomes the root (Added name "").
    pub wrap_with_directory: bool,
    /// Keep entries whose name starts with '.' below the top level (else they are skipped).
    pub hidden: bool,
    /// Emit [`AddEvent::Progress`] while files are read.
    pub progress: bool,
}

/// An entry of the directory tree being built.
enum Entry {
    /// The CID and cumulative size, boxed: a CID is about 100 bytes and most entries of a deep
    /// tree are directories.
    File(Box<(Cid, u64)>),
    Dir(Dir),
}

/// A directory being built.
#[derive(Default)]
struct Dir {
    /// Sorted by name (byte order, dag-pb's link order). A vector costs a few dozen bytes per
    /// directory where a map node costs over a kilobyte, and paths are cheap to send.
    children: Vec<(String, Entry)>,
    /// A lower bound of Kubo's size estimate (names plus binary CIDs).
    estimate: usize,
}

impl Dir {
    fn position(&self, name: &str) -> Result<usize, usize> {
        self.children.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.position(name).ok().and_then(|at| self.children.get(at)).map(|(_, e)| e)
    }

    fn remove(&mut self, name: &str) -> Option<Entry> {
        self.position(name).ok().map(|at| self.children.remove(at).1)
    }

    /// Inserts a new entry at `at` (from [`Dir::position`]). A directory whose estimate passes
    /// twice Kubo's sharding size is refused now, not at `finish` (which would refuse it anyway),
    /// so that no directory grows without bound.
    fn insert_at(
        &mut self,
        at: usize,
        name: String,
        entry: Entry,
        path: impl Fn() -> String,
    ) -> Result<(), AdderError> {
        let estimate = self.estimate.saturating_add(name.len()).saturating_add(MIN_CID_BYTES);
        if estimate >= 2 * HAMT_SHARDING_SIZE {
            let entries = self.children.len().saturating_add(1);
            return Err(AdderError::DirectoryTooLarge { path: path(), entries, estimated: estimate });
        }
        self.estimate = estimate;
        if self.children.capacity() == 0 {
            // Most directories of a deep tree have one child.
            self.children.reserve_exact(1);
        }
        self.children.insert(at.min(self.children.len()), (name, entry));
        Ok(())
    }
}

/// Counts one more entry of the import against its limit.
fn count_entry(entries: &mut usize, max: usize) -> Result<(), AdderError> {
    if *entries >= max {
        return Err(AdderError::TooManyEntries { limit: max });
    }
    *entries = entries.saturating_add(1);
    Ok(())
}

impl Drop for Dir {
    /// Empties the tree level by level: the derived drop would recurse once per level and a
    /// deep enough tree would overflow the stack.
    fn drop(&mut self) {
        let mut pending: Vec<Vec<(String, Entry)>> = vec![std::mem::take(&mut self.children)];
        while let Some(children) = pending.pop() {
            for (_, entry) in children {
                if let Entry::Dir(mut dir) = entry {
                    pending.push(std::mem::take(&mut dir.children));
                }
            }
        }
    }
}

/// Builds the DAG of one add request: files, then directories, then the root.
pub struct Importer<S: BlockSink> {
    params: DagParams,
    options: ImportOptions,
    limits: PathLimits,
    /// Files and directories in the tree so far.
    entries: usize,
    sink: S,
    root: Dir,
    /// Top-level names in the order they first appeared (without wrapping, each is a root).
    top_order: Vec<String>,
    top_seen: HashSet<String>,
    /// Set by a bad `DagParams` given directly (not through `parse`), reported on first use.
    invalid: Option<AdderError>,
}

impl<S: BlockSink> Importer<S> {
    /// An importer writing blocks to `sink`.
    pub fn new(params: DagParams, options: ImportOptions, sink: S) -> Self {
        Importer {
            params,
            options,
            limits: PathLimits::default(),
            entries: 0,
            sink,
            root: Dir::default(),
            top_order: Vec::new(),
            top_seen: HashSet::new(),
            invalid: params.check().err(),
        }
    }

    /// Replaces the default [`PathLimits`].
    pub fn with_path_limits(mut self, limits: PathLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Gives the sink back (e.g. to inspect collected blocks).
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// One file at `path` ("a.txt" or "dir/sub/b.bin", '/'-separated, already URL-unescaped); data
    /// is streamed chunk by chunk, never fully buffered.
    ///
    /// Returns `None` when the file is skipped as hidden (the caller drops the rest of its data).
    /// An empty path is a nameless file: Added name "", linked by its CID string, like Kubo.
    pub async fn add_file<E: Display>(
        &mut self,
        path: &str,
        mut data: impl Stream<Item = Result<Bytes, E>> + Unpin + Send,
        events: &mut (dyn FnMut(AddEvent) + Send),
    ) -> Result<Option<Cid>, AdderError> {
        if let Some(err) = self.invalid.take() {
            return Err(err);
        }
        let parts = split_path(path, self.limits)?;
        if self.is_hidden(&parts) {
            return Ok(None);
        }
        let name = parts.join("/");
        if !parts.is_empty() {
            // Fail before reading any data.
            self.check_free(&parts, &name)?;
        }

        let chunk_size = self.params.chunker.size();
        let mut builder = FileBuilder::new(self.params);
        let mut buf: Vec<u8> = Vec::new();
        let mut blocks = Vec::new();
        let (mut read, mut reported) = (0u64, 0u64);
        while let Some(item) = data.next().await {
            let mut bytes = item.map_err(|e| AdderError::Input { path: name.clone(), message: e.to_string() })?;
            read = read.saturating_add(bytes.len() as u64);
            while !bytes.is_empty() {
                if buf.is_empty() && bytes.len() >= chunk_size {
                    // Whole chunks straight from the input, without copying.
                    builder.push_chunk(bytes.split_to(chunk_size), &mut blocks);
                    self.put_all(&mut blocks).await?;
                    continue;
                }
                if buf.capacity() == 0 {
                    buf.reserve_exact(chunk_size);
                }
                let take = (chunk_size - buf.len()).min(bytes.len());
                buf.extend_from_slice(&bytes.split_to(take));
                if buf.len() == chunk_size {
                    builder.push_chunk(Bytes::from(std::mem::take(&mut buf)), &mut blocks);
                    // Blocks leave as soon as they exist, so memory stays at one chunk per file.
                    self.put_all(&mut blocks).await?;
                }
            }
            if self.options.progress && read - reported >= PROGRESS_INCREMENT {
                reported = read;
                events(AddEvent::Progress { name: name.clone(), bytes: read });
            }
        }
        if !buf.is_empty() {
            builder.push_chunk(Bytes::from(buf), &mut blocks);
        }
        let root = builder.finish(&mut blocks);
        self.put_all(&mut blocks).await?;
        if self.options.progress {
            // IPFS Cluster's progress reader always reports at EOF.
            events(AddEvent::Progress { name: name.clone(), bytes: read });
        }

        let entry = Entry::File(Box::new((root.cid, root.tsize)));
        if parts.is_empty() {
            let key = root.cid.to_string();
            self.insert(&[key.as_str()], &name, entry)?;
        } else {
            self.insert(&parts, &name, entry)?;
        }
        events(AddEvent::Added { name, cid: root.cid, size: root.tsize });
        Ok(Some(root.cid))
    }

    /// A directory entry (possibly empty); parents are created as needed, existing ones reused.
    pub fn add_directory(&mut self, path: &str) -> Result<(), AdderError> {
        let parts = split_path(path, self.limits)?;
        if parts.is_empty() || self.is_hidden(&parts) {
            return Ok(());
        }
        let name = parts.join("/");
        self.note_top(parts[0]);
        dir_mut(&mut self.root, &parts, &name, &mut self.entries, self.limits.max_entries).map(|_| ())
    }

    /// Builds the directory nodes (Kubo emits directories after their files, children before
    /// parents, siblings in name order), emits their Added events, and returns the root: the
    /// wrapping directory, else the last top-level entry (IPFS Cluster returns the root of the
    /// last top-level entry when several are sent without wrapping).
    pub async fn finish(mut self, events: &mut (dyn FnMut(AddEvent) + Send)) -> Result<Cid, AdderError> {
        if let Some(err) = self.invalid.take() {
            return Err(err);
        }
        if self.options.wrap_with_directory {
            let root = std::mem::take(&mut self.root);
            return self.emit_dirs(root, String::new(), events).await;
        }
        let Some(last) = self.top_order.last().cloned() else {
            return Err(AdderError::NothingAdded);
        };
        let mut result = None;
        for name in std::mem::take(&mut self.top_order) {
            let cid = match self.root.remove(&name) {
                Some(Entry::Dir(dir)) => self.emit_dirs(dir, name.clone(), events).await?,
                Some(Entry::File(file)) => file.0,
                None => continue,
            };
            if name == last {
                result = Some(cid);
            }
        }
        result.ok_or(AdderError::NothingAdded)
    }

    /// Builds `dir` and its sub-directories, putting each block and emitting its event as soon
    /// as it is built, so memory holds one path per open level rather than every node.
    async fn emit_dirs(
        &mut self,
        dir: Dir,
        path: String,
        events: &mut (dyn FnMut(AddEvent) + Send),
    ) -> Result<Cid, AdderError> {
        let mut walk = DirWalk::new(dir, path);
        while let Some((block, event, is_root)) = walk.next(&self.params)? {
            let cid = block.cid;
            self.sink.put(block).await?;
            events(event);
            if is_root {
                return Ok(cid);
            }
        }
        // The walk ends with the root, which returned above.
        Err(AdderError::NothingAdded)
    }

    async fn put_all(&mut self, blocks: &mut Vec<Block>) -> Result<(), AdderError> {
        for block in blocks.drain(..) {
            self.sink.put(block).await?;
        }
        Ok(())
    }

    /// Kubo skips entries named ".x" met while walking a directory; the top level is always kept.
    fn is_hidden(&self, parts: &[&str]) -> bool {
        !self.options.hidden && parts.iter().skip(1).any(|p| p.starts_with('.'))
    }

    fn note_top(&mut self, name: &str) {
        if self.top_seen.insert(name.to_owned()) {
            self.top_order.push(name.to_owned());
        }
    }

    /// Errors if `parts` is taken or runs through a file.
    fn check_free(&self, parts: &[&str], name: &str) -> Result<(), AdderError> {
        let mut dir = &self.root;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            match dir.get(part) {
                None => return Ok(()),
                Some(_) if last => return Err(AdderError::DuplicatePath(name.to_owned())),
                Some(Entry::Dir(d)) => dir = d,
                Some(Entry::File(_)) => {
                    return Err(AdderError::PathConflict { path: name.to_owned(), file: parts[..=i].join("/") });
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, parts: &[&str], name: &str, entry: Entry) -> Result<(), AdderError> {
        let Some((last, parents)) = parts.split_last() else {
            return Err(AdderError::Path { path: name.to_owned(), reason: "empty path" });
        };
        self.note_top(parts[0]);
        let dir = dir_mut(&mut self.root, parents, name, &mut self.entries, self.limits.max_entries)?;
        let Err(at) = dir.position(last) else {
            return Err(AdderError::DuplicatePath(name.to_owned()));
        };
        count_entry(&mut self.entries, self.limits.max_entries)?;
        dir.insert_at(at, (*last).to_owned(), entry, || parents.join("/"))
    }
}

/// Splits a '/'-separated path, dropping empty and "." components like Go's `path.Join`.
fn split_path(path: &str, limits: PathLimits) -> Result<Vec<&str>, AdderError> {
    if path.len() > limits.max_bytes {
        return Err(AdderError::PathTooLong { bytes: path.len(), limit: limits.max_bytes });
    }
    let depth = path.split('/').filter(|p| !matches!(*p, "" | ".")).count();
    if depth > limits.max_depth {
        return Err(AdderError::PathTooDeep { depth, limit: limits.max_depth });
    }
    let mut parts = Vec::with_capacity(depth);
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(AdderError::Path { path: path.to_owned(), reason: "\"..\" components are not allowed" });
            }
            _ if part.contains('\0') => {
                return Err(AdderError::Path { path: path.to_owned(), reason: "NUL bytes are not allowed" });
            }
            _ => parts.push(part),
        }
    }
    Ok(parts)
}

/// The directory at `parts` below `root`, created with its parents when missing (each new one
/// counted in `entries`, up to `max_entries`).
fn dir_mut<'a>(
    root: &'a mut Dir,
    parts: &[&str],
    name: &str,
    entries: &mut usize,
    max_entries: usize,
) -> Result<&'a mut Dir, AdderError> {
    let mut dir = root;
    for (i, part) in parts.iter().enumerate() {
        let at = match dir.position(part) {
            Ok(at) => at,
            Err(at) => {
                count_entry(entries, max_entries)?;
                let parent = || parts.get(..i).unwrap_or_default().join("/");
                dir.insert_at(at, (*part).to_owned(), Entry::Dir(Dir::default()), parent)?;
                at
            }
        };
        dir = match dir.children.get_mut(at).map(|(_, entry)| entry) {
            Some(Entry::Dir(d)) => d,
            Some(Entry::File(_)) | None => {
                return Err(AdderError::PathConflict { path: name.to_owned(), file: parts[..=i].join("/") });
            }
        };
    }
    Ok(dir)
}

/// One directory being assembled by [`DirWalk`].
struct OpenDir {
    /// Length of its path, a prefix of [`DirWalk::path`].
    path_len: usize,
    /// Its name in its parent.
    name: String,
    entries: std::vec::IntoIter<(String, Entry)>,
    links: Vec<(String, Pending)>,
}

/// Builds every directory node below and including a root, post-order (children first,
/// siblings in name order, as Kubo's `outputDirs`), one node per step and without recursion so
/// deep paths cannot exhaust the stack.
struct DirWalk {
    /// The open directories, root first.
    stack: Vec<OpenDir>,
    /// The path of the deepest open directory; each level's path is a prefix of it, so deep
    /// trees cost linear rather than quadratic memory.
    path: String,
}

impl DirWalk {
    fn new(mut root: Dir, root_path: String) -> Self {
        let entries = std::mem::take(&mut root.children).into_iter();
        let open = OpenDir { path_len: root_path.len(), name: String::new(), entries, links: Vec::new() };
        DirWalk { stack: vec![open], path: root_path }
    }

    /// The next finished directory: its block, its Added event, and whether it is the root
    /// (the last one); `None` after the root.
    fn next(&mut self, params: &DagParams) -> Result<Option<(Block, AddEvent, bool)>, AdderError> {
        loop {
            let Some(top) = self.stack.last_mut() else { return Ok(None) };
            match top.entries.next() {
                Some((name, Entry::File(file))) => {
                    let (cid, size) = *file;
                    top.links.push((name, Pending { cid, tsize: size, filesize: 0 }))
                }
                Some((name, Entry::Dir(mut dir))) => {
                    self.path.truncate(top.path_len);
                    if !self.path.is_empty() {
                        self.path.push('/');
                    }
                    self.path.push_str(&name);
                    let entries = std::mem::take(&mut dir.children).into_iter();
                    self.stack.push(OpenDir { path_len: self.path.len(), name, entries, links: Vec::new() });
                }
                None => {
                    let Some(done) = self.stack.pop() else { return Ok(None) };
                    self.path.truncate(done.path_len);
                    let (block, node) = directory_node(params, &self.path, &done.links)?;
                    let event = AddEvent::Added { name: self.path.clone(), cid: node.cid, size: node.tsize };
                    let is_root = match self.stack.last_mut() {
                        Some(parent) => {
                            self.path.truncate(parent.path_len);
                            parent.links.push((done.name, node));
                            false
                        }
                        None => true,
                    };
                    return Ok(Some((block, event, is_root)));
                }
            }
        }
    }
}

/// A plain UnixFS directory over `links` (already in byte order).
fn directory_node(params: &DagParams, path: &str, links: &[(String, Pending)]) -> Result<(Block, Pending), AdderError> {
    let hashes: Vec<Vec<u8>> = links.iter().map(|(_, p)| p.cid.to_bytes()).collect();
    let estimated: usize = links.iter().zip(&hashes).map(|((name, _), h)| name.len() + h.len()).sum();
    if estimated >= HAMT_SHARDING_SIZE {
        return Err(AdderError::DirectoryTooLarge { path: path.to_owned(), entries: links.len(), estimated });
    }
    let pb_links: Vec<PbLink<'_>> =
        links.iter().zip(&hashes).map(|((name, p), hash)| PbLink { hash, name, tsize: p.tsize }).collect();
    let data = pb::encode_node(&pb_links, &pb::unixfs_directory());
    let cid = params.node_cid(&data);
    let tsize = links.iter().fold(data.len() as u64, |a, (_, p)| a.saturating_add(p.tsize));
    Ok((Block { cid, data: Bytes::from(data) }, Pending { cid, tsize, filesize: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let limits = PathLimits::default();
        assert_eq!(split_path("a/b", limits).ok(), Some(vec!["a", "b"]));
        assert_eq!(split_path("/a//./b/", limits).ok(), Some(vec!["a", "b"]));
        assert_eq!(split_path("", limits).ok(), Some(vec![]));
        let err = split_path("a/../b", limits).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("\"a/../b\""), "{err}");
    }
}
