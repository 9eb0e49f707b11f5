//! File DAG construction, chunk by chunk, reproducing go-unixfs's balanced and trickle layouts.
//!
//! go-unixfs builds top-down with a one-chunk lookahead (`db.Done()`); the shapes it produces
//! depend only on the number of leaves, so this builder is push-based instead: it keeps only the
//! links still waiting for their parent (at most 174 per level) and commits a node as soon as
//! its shape is final. Blocks come out children first.

use bytes::Bytes;
use cid::Cid;

use crate::pb::{self, DataType, PbLink};
use crate::{Block, DagParams, Layout};

/// Links per node (go-unixfs `DefaultLinksPerBlock`).
pub(crate) const MAX_LINKS: usize = 174;
/// Sub-trees of each depth in a trickle node (go-unixfs trickle `depthRepeat`).
const DEPTH_REPEAT: usize = 4;

/// A finished node waiting to be linked from its parent.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The node's CID.
    pub cid: Cid,
    /// Cumulative size: the node's bytes plus its links' Tsizes (Kubo's "Size").
    pub tsize: u64,
    /// File bytes below the node (UnixFS `blocksizes` entry in the parent).
    pub filesize: u64,
}

/// One open trickle node: its links and the next sub-tree slot (`depth`, `repeat`).
struct Frame {
    links: Vec<Pending>,
    /// `None` for the root (unbounded), else sub-trees stop below this depth.
    max_depth: Option<usize>,
    depth: usize,
    repeat: usize,
}

impl Frame {
    fn new(max_depth: Option<usize>) -> Self {
        Frame { links: Vec::new(), max_depth, depth: 1, repeat: 0 }
    }

    /// Still filling its first layer of leaves (`FillNodeLayer`).
    fn filling_leaves(&self) -> bool {
        self.depth == 1 && self.repeat == 0 && self.links.len() < MAX_LINKS
    }

    /// Has a slot for another sub-tree.
    fn has_slot(&self) -> bool {
        self.max_depth.is_none_or(|max| self.depth < max)
    }

    /// Records a finished sub-tree in the current slot and advances the slot.
    fn add_subtree(&mut self, child: Pending) {
        self.links.push(child);
        self.repeat += 1;
        if self.repeat == DEPTH_REPEAT {
            self.repeat = 0;
            self.depth += 1;
        }
    }
}

enum State {
    /// `levels[k]` holds finished nodes of height k (leaves are height 0).
    Balanced { levels: Vec<Vec<Pending>> },
    /// Open trickle nodes, root first.
    Trickle { stack: Vec<Frame> },
}

/// Builds one file's DAG from its chunks.
pub(crate) struct FileBuilder {
    params: DagParams,
    state: State,
}

impl FileBuilder {
    /// A builder for one file.
    pub(crate) fn new(params: DagParams) -> Self {
        let state = match params.layout {
            Layout::Balanced => State::Balanced { levels: vec![Vec::new()] },
            Layout::Trickle => State::Trickle { stack: vec![Frame::new(None)] },
        };
        FileBuilder { params, state }
    }

    /// Adds the next chunk (never empty); finished blocks are appended to `out`.
    pub(crate) fn push_chunk(&mut self, chunk: Bytes, out: &mut Vec<Block>) {
        let leaf_type = match self.params.layout {
            Layout::Balanced => DataType::File,
            // go-unixfs trickle fills layers with `NewLeafDataNode(ft.TRaw)`.
            Layout::Trickle => DataType::Raw,
        };
        let leaf = make_leaf(&self.params, chunk, leaf_type, out);
        let params = self.params;
        match &mut self.state {
            State::Balanced { levels } => {
                levels[0].push(leaf);
                // A full level is final: whatever follows goes into a sibling.
                let mut k = 0;
                while levels[k].len() == MAX_LINKS {
                    let node = make_internal(&params, &std::mem::take(&mut levels[k]), out);
                    if levels.len() == k + 1 {
                        levels.push(Vec::new());
                    }
                    levels[k + 1].push(node);
                    k += 1;
                }
            }
            State::Trickle { stack } => loop {
                let Some(top) = stack.last_mut() else {
                    // The root frame is never popped before `finish`.
                    return;
                };
                if top.filling_leaves() {
                    top.links.push(leaf);
                    return;
                }
                if top.has_slot() {
                    let child = Frame::new(Some(top.depth));
                    stack.push(child);
                    continue;
                }
                // This sub-tree is complete: commit it into its parent and retry there.
                if let Some(done) = stack.pop() {
                    let node = make_internal(&params, &done.links, out);
                    if let Some(parent) = stack.last_mut() {
                        parent.add_subtree(node);
                    }
                }
            },
        }
    }

    /// Finishes the file: commits the open nodes and returns the root.
    pub(crate) fn finish(self, out: &mut Vec<Block>) -> Pending {
        let params = self.params;
        match self.state {
            State::Balanced { mut levels } => {
                let Some(top) = levels.iter().rposition(|l| !l.is_empty()) else {
                    // Empty file: go-unixfs returns one leaf without data (a raw empty block with
                    // raw leaves, else a UnixFS File node with filesize 0).
                    return make_leaf(&params, Bytes::new(), DataType::File, out);
                };
                for k in 0..top {
                    if !levels[k].is_empty() {
                        let node = make_internal(&params, &std::mem::take(&mut levels[k]), out);
                        levels[k + 1].push(node);
                    }
                }
                let mut roots = std::mem::take(&mut levels[top]);
                if roots.len() == 1
                    && let Some(root) = roots.pop()
                {
                    // A single node of the highest level is the root (a one-chunk file is its leaf).
                    return root;
                }
                make_internal(&params, &roots, out)
            }
            State::Trickle { mut stack } => {
                // Trickle always has a dag-pb root, even for empty or one-chunk files.
                let mut node = None;
                while let Some(frame) = stack.pop() {
                    let done = make_internal(&params, &frame.links, out);
                    match stack.last_mut() {
                        Some(parent) => parent.add_subtree(done),
                        None => node = Some(done),
                    }
                }
                node.unwrap_or_else(|| make_internal(&params, &[], out))
            }
        }
    }
}

/// Makes a leaf block from a chunk.
fn make_leaf(params: &DagParams, chunk: Bytes, leaf_type: DataType, out: &mut Vec<Block>) -> Pending {
    let filesize = chunk.len() as u64;
    if params.raw_leaves {
        let cid = params.raw_cid(&chunk);
        out.push(Block { cid, data: chunk });
        return Pending { cid, tsize: filesize, filesize };
    }
    let data = pb::encode_node(&[], &pb::unixfs_file(leaf_type, &chunk, filesize, &[]));
    let cid = params.node_cid(&data);
    let tsize = data.len() as u64;
    out.push(Block { cid, data: Bytes::from(data) });
    Pending { cid, tsize, filesize }
}

/// Makes an internal UnixFS File node over `children` (unnamed links, `blocksizes`, `filesize`).
fn make_internal(params: &DagParams, children: &[Pending], out: &mut Vec<Block>) -> Pending {
    let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
    let filesize = blocksizes.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let hashes: Vec<Vec<u8>> = children.iter().map(|c| c.cid.to_bytes()).collect();
    let links: Vec<PbLink<'_>> =
        children.iter().zip(&hashes).map(|(c, hash)| PbLink { hash, name: "", tsize: c.tsize }).collect();
    let data = pb::encode_node(&links, &pb::unixfs_file(DataType::File, &[], filesize, &blocksizes));
    let cid = params.node_cid(&data);
    let tsize = children.iter().fold(data.len() as u64, |a, c| a.saturating_add(c.tsize));
    out.push(Block { cid, data: Bytes::from(data) });
    Pending { cid, tsize, filesize }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chunker;

    fn build(params: DagParams, chunks: usize) -> (Pending, Vec<Block>) {
        let mut b = FileBuilder::new(params);
        let mut out = Vec::new();
        for i in 0..chunks {
            b.push_chunk(Bytes::from(vec![(i % 251) as u8]), &mut out);
        }
        let root = b.finish(&mut out);
        (root, out)
    }

    /// Number of links of a dag-pb block (counts field-2 entries at the top level).
    fn link_count(data: &[u8]) -> usize {
        let mut n = 0;
        let mut pos = 0;
        while pos < data.len() && data[pos] == 0x12 {
            let (len, used) = read_len(&data[pos + 1..]);
            pos += 1 + used + len;
            n += 1;
        }
        n
    }

    fn read_len(b: &[u8]) -> (usize, usize) {
        let mut v = 0usize;
        for (i, byte) in b.iter().enumerate() {
            v |= ((byte & 0x7f) as usize) << (7 * i);
            if byte & 0x80 == 0 {
                return (v, i + 1);
            }
        }
        (v, b.len())
    }

    #[test]
    fn balanced_shapes() {
        let params = DagParams { chunker: Chunker::Size(1), raw_leaves: true, ..DagParams::default() };
        // One chunk: the raw leaf itself.
        let (root, out) = build(params, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(root.cid.codec(), 0x55);
        // 174 chunks: one node with 174 links; 175: a root over [174, 1].
        let (root, out) = build(params, 174);
        assert_eq!(out.len(), 175);
        assert_eq!(out.last().map(|b| b.cid), Some(root.cid));
        let (root, out) = build(params, 175);
        assert_eq!(out.len(), 175 + 3);
        let root_block = out.iter().find(|b| b.cid == root.cid).map(|b| b.data.clone()).unwrap_or_default();
        assert_eq!(link_count(&root_block), 2);
        assert_eq!(root.filesize, 175);
    }

    #[test]
    fn blocks_come_children_first() {
        for layout in [Layout::Balanced, Layout::Trickle] {
            let params = DagParams { layout, ..DagParams::default() };
            let (root, out) = build(params, 2000);
            assert_eq!(out.last().map(|b| b.cid), Some(root.cid));
            let mut seen = std::collections::HashSet::new();
            for block in &out {
                // Each link's CID must already have been emitted.
                let mut pos = 0;
                let d = &block.data;
                while pos < d.len() && d[pos] == 0x12 {
                    let (len, used) = read_len(&d[pos + 1..]);
                    let link = &d[pos + 1 + used..pos + 1 + used + len];
                    let (hlen, hused) = read_len(&link[1..]);
                    let hash = &link[1 + hused..1 + hused + hlen];
                    assert!(seen.contains(hash), "{layout:?}: child after parent");
                    pos += 1 + used + len;
                }
                seen.insert(block.cid.to_bytes());
            }
        }
    }
}
