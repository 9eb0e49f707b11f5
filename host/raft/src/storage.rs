//! The raft log and state machine, kept in the pinset's own redb file.
//!
//! Tables added to the pinset file:
//! - `raft_log` (`u64` index → JSON of the openraft `Entry`): the unpurged log;
//! - `raft_meta` (`&str` → JSON): `vote`, `last_purged`, `last_applied`, `membership` (the last
//!   applied membership), `snapshot` (the current snapshot's meta and file name) and
//!   `installing` (present only while a received snapshot is being written into the pinset).
//!
//! Every write goes through one store-writer thread that group-commits: it takes every queued
//! operation (log appends, vote, truncation, purge, and the state machine's applies), performs
//! them in one redb transaction of the pinset ([`PinStore::begin`] with its
//! [`raw`](cairn_state::StateWriter::raw) transaction), and fsyncs once, so appends, votes and
//! applies queued together share a flush. Applied pins and the `last_applied` that covers them
//! are always in the same transaction, so a crash never leaves them apart. (openraft 0.9 waits
//! for each append's flush before the next, which is why commits are also batched into log
//! entries, see [`crate::PinBatch`].)
//!
//! Reads are served from memory: the unpurged log (bounded by `trailing_logs` plus
//! `snapshot_threshold` entries, since openraft snapshots and purges at those marks), the vote
//! and the applied state are loaded once at start and kept in step with every write.
//! [`PinStore`] exposes no read transaction on its database, and reading through a write
//! transaction would queue every replication read behind the writer's fsyncs.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_consensus::PinChange;
use cairn_state::{BUCKETS, Cid, MAX_PAGE_SIZE, Pin, PinStore, Record, StoreError, Version};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{ReadableTable, Table, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, oneshot};

use crate::types::{PeerNode, PinBatch, PinOp, TypeConfig};

const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT: &str = "snapshot";
const INSTALLING: &str = "installing";

/// The first line of a snapshot file names its format; the rest is IPFS Cluster's
/// `state export` NDJSON (one pin per line), so an operator can read a snapshot with `jq`.
const SNAPSHOT_FORMAT: &str = "cairn-raft-snapshot/1";

/// Most queued operations one group commit takes: bounds a transaction's size under a flood.
const MAX_OPS_PER_TXN: usize = 1024;

/// Pins written per transaction while installing a snapshot: memory stays bounded whatever the
/// snapshot's size.
const INSTALL_BATCH: usize = 10_000;

type NodeId = u64;
type RaftEntry = Entry<TypeConfig>;
type Membership = StoredMembership<NodeId, PeerNode>;
type Meta = SnapshotMeta<NodeId, PeerNode>;

/// What can go wrong in the raft part of the pinset file or in snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// The pinset store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A redb operation on a raft table failed.
    #[error("pinset database {path}: raft {op} failed: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// redb's reason.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored raft value does not decode.
    #[error("pinset database {path}: raft {what} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// Why it does not decode.
        reason: String,
    },
    /// A snapshot file could not be read or written.
    #[error("raft snapshot {path}: {op} failed: {source}")]
    SnapshotIo {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS's reason.
        #[source]
        source: io::Error,
    },
    /// A snapshot file is not what its record says.
    #[error("raft snapshot {path} is malformed: {reason}")]
    BadSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store-writer thread has stopped (the engine is shutting down).
    #[error("the raft store writer has stopped")]
    WriterStopped,
}

fn db_err<'a, E: Into<redb::Error>>(path: &'a Path, op: &'static str) -> impl FnOnce(E) -> RaftStoreError + 'a {
    move |e| RaftStoreError::Db { path: path.to_path_buf(), op, source: Box::new(e.into()) }
}

fn snap_io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> RaftStoreError + 'a {
    move |source| RaftStoreError::SnapshotIo { path: path.to_path_buf(), op, source }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave half-updated data that matters more
    // than stopping the engine would: keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, reason: impl ToString) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(reason)).into()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // The raft types serialize infallibly (plain structs and maps with integer or string keys),
    // and pins are checked by the pinset store when written.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The current (or being-installed) snapshot: its meta and its file in the snapshot folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    meta: Meta,
    file: String,
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    format: String,
    meta: Meta,
}

/// The raft state read back from the pinset file at start.
struct Persisted {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, RaftEntry>,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    snapshot: Option<SnapshotRecord>,
    installing: Option<SnapshotRecord>,
}

fn get_json<T: DeserializeOwned>(
    path: &Path,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, RaftStoreError> {
    let Some(value) = meta.get(key).map_err(db_err(path, "read raft meta"))? else { return Ok(None) };
    serde_json::from_slice(value.value()).map(Some).map_err(|e| RaftStoreError::Corrupt {
        path: path.to_path_buf(),
        what: format!("meta `{key}`"),
        reason: e.to_string(),
    })
}

fn put_meta(
    path: &Path,
    meta: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &[u8],
) -> Result<(), RaftStoreError> {
    meta.insert(key, value).map(|_| ()).map_err(db_err(path, "write raft meta"))
}

fn load(store: &PinStore) -> Result<Persisted, RaftStoreError> {
    let path = store.path();
    // Read through a write transaction dropped uncommitted (aborted): PinStore exposes no read
    // transaction on its database, and this runs once, before anything else writes.
    let writer = store.begin()?;
    let txn = writer.raw();
    let log = txn.open_table(RAFT_LOG).map_err(db_err(path, "open raft_log"))?;
    let meta = txn.open_table(RAFT_META).map_err(db_err(path, "open raft_meta"))?;
    let mut entries = BTreeMap::new();
    for item in log.iter().map_err(db_err(path, "iterate raft_log"))? {
        let (k, v) = item.map_err(db_err(path, "read raft_log"))?;
        let entry: RaftEntry = serde_json::from_slice(v.value()).map_err(|e| RaftStoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!("log entry {}", k.value()),
            reason: e.to_string(),
        })?;
        entries.insert(k.value(), entry);
    }
    Ok(Persisted {
        vote: get_json(path, &meta, VOTE)?,
        last_purged: get_json(path, &meta, LAST_PURGED)?,
        entries,
        last_applied: get_json(path, &meta, LAST_APPLIED)?,
        membership: get_json(path, &meta, MEMBERSHIP)?.unwrap_or_default(),
        snapshot: get_json(path, &meta, SNAPSHOT)?,
        installing: get_json(path, &meta, INSTALLING)?,
    })
}

type Reply = oneshot::Sender<Result<(), String>>;

/// One queued write of the store-writer thread.
enum WriteOp {
    Append { entries: Vec<(u64, Vec<u8>)>, flushed: LogFlushed<TypeConfig> },
    SaveVote { vote: Vec<u8>, reply: Reply },
    Truncate { since: u64, reply: Reply },
    Purge { upto: u64, last_purged: Vec<u8>, reply: Reply },
    Apply { entries: Vec<RaftEntry>, last_applied: Vec<u8>, membership: Option<Vec<u8>>, reply: Reply },
    PutMeta { key: &'static str, value: Vec<u8>, reply: Reply },
}

impl WriteOp {
    fn complete(self, outcome: &Result<(), String>) {
        let reply = match self {
            WriteOp::Append { flushed, .. } => {
                flushed.log_io_completed(outcome.clone().map_err(io::Error::other));
                return;
            }
            WriteOp::SaveVote { reply, .. }
            | WriteOp::Truncate { reply, .. }
            | WriteOp::Purge { reply, .. }
            | WriteOp::Apply { reply, .. }
            | WriteOp::PutMeta { reply, .. } => reply,
        };
        // The caller may have given up waiting (shutdown); nothing to tell then.
        let _ = reply.send(outcome.clone());
    }
}

/// The handle to the store-writer thread (it stops when the last handle is dropped).
#[derive(Clone)]
struct Writer {
    tx: mpsc::Sender<WriteOp>,
}

impl Writer {
    fn spawn(store: Arc<PinStore>, changes: broadcast::Sender<PinChange>) -> Result<Self, RaftStoreError> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("cairn-raft-store".into())
            .spawn(move || run_writer(&store, &rx, &changes))
            .map_err(snap_io(Path::new("<thread>"), "spawn the raft store writer"))?;
        Ok(Writer { tx })
    }

    fn send(&self, op: WriteOp) -> Result<(), RaftStoreError> {
        self.tx.send(op).map_err(|_| RaftStoreError::WriterStopped)
    }

    /// Queues an operation and waits until it is durable.
    async fn call(&self, make: impl FnOnce(Reply) -> WriteOp) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.send(make(reply)).map_err(|e| e.to_string())?;
        done.await.map_err(|_| RaftStoreError::WriterStopped.to_string())?
    }
}

fn run_writer(store: &PinStore, rx: &mpsc::Receiver<WriteOp>, changes: &broadcast::Sender<PinChange>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_OPS_PER_TXN {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = write_batch(store, &batch).map_err(|e| e.to_string());
        match &outcome {
            Err(e) => tracing::error!(error = %e, ops = batch.len(), "raft store write failed"),
            // Announced before the commits are acknowledged, so a committer's own change is
            // already out when its commit returns.
            Ok(()) => announce_applied(&batch, changes),
        }
        for op in batch {
            op.complete(&outcome);
        }
    }
}

fn announce_applied(batch: &[WriteOp], changes: &broadcast::Sender<PinChange>) {
    if changes.receiver_count() == 0 {
        return;
    }
    for op in batch {
        let WriteOp::Apply { entries, .. } = op else { continue };
        for entry in entries {
            let EntryPayload::Normal(PinBatch(ops)) = &entry.payload else { continue };
            for op in ops {
                let change = match op {
                    PinOp::Pin(pin) => PinChange::Pinned(Box::new(pin.clone())),
                    PinOp::Unpin(cid) => PinChange::Unpinned(cid.clone()),
                };
                // No receiver left: nobody to tell.
                let _ = changes.send(change);
            }
        }
    }
}

fn apply_entry(w: &mut cairn_state::StateWriter<'_>, entry: &RaftEntry) -> Result<(), StoreError> {
    let EntryPayload::Normal(PinBatch(ops)) = &entry.payload else { return Ok(()) };
    for op in ops {
        match op {
            PinOp::Pin(pin) => {
                // The log index is the version: later entries win, as raft's order says.
                let version = Version { clock: entry.log_id.index, author: Vec::new() };
                w.write(&Record::pin(pin.clone(), version))?;
            }
            PinOp::Unpin(cid) => {
                w.remove(cid)?;
            }
        }
    }
    Ok(())
}

fn write_batch(store: &PinStore, batch: &[WriteOp]) -> Result<(), RaftStoreError> {
    let path = store.path();
    let mut w = store.begin()?;
    // Pins first: the StateWriter needs itself mutably for them, while the raft tables below
    // borrow its transaction. Pins and raft tables are disjoint, so only the order within each
    // group matters, and that is the queue's order.
    for op in batch {
        if let WriteOp::Apply { entries, .. } = op {
            for entry in entries {
                apply_entry(&mut w, entry)?;
            }
        }
    }
    {
        let txn = w.raw();
        let mut log = txn.open_table(RAFT_LOG).map_err(db_err(path, "open raft_log"))?;
        let mut meta = txn.open_table(RAFT_META).map_err(db_err(path, "open raft_meta"))?;
        for op in batch {
            match op {
                WriteOp::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        log.insert(*index, &bytes[..]).map_err(db_err(path, "append to raft_log"))?;
                    }
                }
                WriteOp::SaveVote { vote, .. } => put_meta(path, &mut meta, VOTE, vote)?,
                WriteOp::Truncate { since, .. } => {
                    log.retain_in(*since.., |_, _| false).map_err(db_err(path, "truncate raft_log"))?;
                }
                WriteOp::Purge { upto, last_purged, .. } => {
                    log.retain_in(..=*upto, |_, _| false).map_err(db_err(path, "purge raft_log"))?;
                    put_meta(path, &mut meta, LAST_PURGED, last_purged)?;
                }
                WriteOp::Apply { last_applied, membership, .. } => {
                    put_meta(path, &mut meta, LAST_APPLIED, last_applied)?;
                    if let Some(membership) = membership {
                        put_meta(path, &mut meta, MEMBERSHIP, membership)?;
                    }
                }
                WriteOp::PutMeta { key, value, .. } => put_meta(path, &mut meta, key, value)?,
            }
        }
    }
    w.commit()?;
    Ok(())
}

/// The log as openraft reads it (vote, purge mark, unpurged entries), mirrored in memory.
#[derive(Default)]
struct LogCache {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, RaftEntry>,
}

/// openraft's log storage (and, cloned, its log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    cache: Arc<Mutex<LogCache>>,
    writer: Writer,
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<RaftEntry>, StorageError<NodeId>> {
        Ok(lock(&self.cache).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let cache = lock(&self.cache);
        let last = cache.entries.last_key_value().map(|(_, e)| e.log_id).or(cache.last_purged);
        Ok(LogState { last_purged_log_id: cache.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = to_json(vote);
        self.writer
            .call(|reply| WriteOp::SaveVote { vote: bytes, reply })
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        lock(&self.cache).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(lock(&self.cache).vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = RaftEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<RaftEntry> = entries.into_iter().collect();
        let encoded = entries.iter().map(|e| (e.log_id.index, to_json(e))).collect();
        // Readable now (openraft's contract); durable when the writer calls `callback`.
        lock(&self.cache).entries.extend(entries.into_iter().map(|e| (e.log_id.index, e)));
        self.writer
            .send(WriteOp::Append { entries: encoded, flushed: callback })
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        drop(lock(&self.cache).entries.split_off(&log_id.index));
        self.writer
            .call(|reply| WriteOp::Truncate { since: log_id.index, reply })
            .await
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        {
            let mut cache = lock(&self.cache);
            // A purge up to u64::MAX (from a leader's snapshot) keeps nothing, without overflowing.
            let kept = match log_id.index.checked_add(1) {
                Some(first_kept) => cache.entries.split_off(&first_kept),
                None => BTreeMap::new(),
            };
            cache.entries = kept;
            cache.last_purged = Some(log_id);
        }
        let last_purged = to_json(&log_id);
        self.writer
            .call(|reply| WriteOp::Purge { upto: log_id.index, last_purged, reply })
            .await
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// The snapshot folder and the current snapshot, shared by the state machine and the builder
/// it hands to openraft.
struct Snapshots {
    dir: PathBuf,
    current: Mutex<Option<SnapshotRecord>>,
    /// Makes snapshot ids unique even when two are built within one clock tick.
    counter: AtomicU64,
}

impl Snapshots {
    fn file_path(&self, record: &SnapshotRecord) -> PathBuf {
        self.dir.join(&record.file)
    }

    /// Makes `record` current unless a newer one already is; returns the file no longer needed.
    fn replace_current(&self, record: SnapshotRecord) -> Option<PathBuf> {
        let mut current = lock(&self.current);
        let newer = current.as_ref().is_none_or(|c| record.meta.last_log_id >= c.meta.last_log_id);
        if !newer {
            return Some(self.file_path(&record));
        }
        let old = current.replace(record.clone())?;
        (old.file != record.file).then(|| self.file_path(&old))
    }

    async fn open(&self, record: &SnapshotRecord) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let path = self.file_path(record);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            io_error(
                ErrorSubject::Snapshot(Some(record.meta.signature())),
                ErrorVerb::Read,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(Snapshot { meta: record.meta.clone(), snapshot: Box::new(file) })
    }
}

/// A snapshot file's name: ids come from the leader, so only safe characters are kept.
fn snapshot_file_name(snapshot_id: &str) -> String {
    let safe: String =
        snapshot_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("snapshot-{safe}.ndjson")
}

fn sync_dir(dir: &Path) -> Result<(), RaftStoreError> {
    // A rename is durable only once the folder's entry is flushed.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(snap_io(dir, "sync folder"))
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove old raft snapshot");
    }
}

/// Dumps the pinset into a new snapshot file (header line, then one pin per line), fsynced and
/// renamed into place.
fn write_snapshot_file(store: &PinStore, dir: &Path, meta: Meta) -> Result<SnapshotRecord, RaftStoreError> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(snap_io(dir, "create snapshot file"))?;
    let tmp_path = tmp.path().to_path_buf();
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        let header = SnapshotHeader { format: SNAPSHOT_FORMAT.into(), meta: meta.clone() };
        serde_json::to_writer(&mut out, &header)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(snap_io(&tmp_path, "write snapshot header"))?;
        cairn_state::export(store, &mut out)
            .map_err(|e| RaftStoreError::BadSnapshot { path: tmp_path.clone(), reason: e.to_string() })?;
        out.flush().map_err(snap_io(&tmp_path, "write snapshot"))?;
    }
    tmp.as_file().sync_all().map_err(snap_io(&tmp_path, "sync snapshot"))?;
    let file = snapshot_file_name(&meta.snapshot_id);
    let path = dir.join(&file);
    tmp.persist(&path).map_err(|e| RaftStoreError::SnapshotIo { path: path.clone(), op: "rename", source: e.error })?;
    sync_dir(dir)?;
    Ok(SnapshotRecord { meta, file })
}

/// The version every pin written by one snapshot install carries, so that the records the
/// snapshot did not contain can be found afterwards without holding the snapshot's CIDs in memory.
fn install_tag(meta: &Meta) -> Version {
    let digest = Sha256::digest(meta.snapshot_id.as_bytes());
    let mut author = b"raft-snapshot:".to_vec();
    author.extend_from_slice(&digest[..16]);
    Version { clock: meta.last_log_id.map_or(0, |l| l.index), author }
}

/// Replaces the pinset with the snapshot in `record` in bounded transactions, crash-safely:
/// the `installing` marker is written first and cleared (with the new applied state) last, and
/// a start that finds the marker runs the install again from the same durable file.
///
/// Every pin of the snapshot is announced on `changes` as pinned and every record it drops as
/// unpinned (a subscriber that lags behind a large install re-reads the state, as usual).
fn install_from_file(
    store: &PinStore,
    dir: &Path,
    record: &SnapshotRecord,
    changes: &broadcast::Sender<PinChange>,
) -> Result<(), RaftStoreError> {
    let db = store.path();
    let file_path = dir.join(&record.file);
    let record_json = to_json(record);
    {
        let w = store.begin()?;
        {
            let mut meta = w.raw().open_table(RAFT_META).map_err(db_err(db, "open raft_meta"))?;
            put_meta(db, &mut meta, INSTALLING, &record_json)?;
        }
        w.commit()?;
    }

    let tag = install_tag(&record.meta);
    let file = std::fs::File::open(&file_path).map_err(snap_io(&file_path, "open snapshot"))?;
    let mut lines = BufReader::new(file).lines();
    let bad = |reason: String| RaftStoreError::BadSnapshot { path: file_path.clone(), reason };
    let header = lines.next().ok_or_else(|| bad("empty file".into()))?.map_err(snap_io(&file_path, "read snapshot"))?;
    let header: SnapshotHeader = serde_json::from_str(&header).map_err(|e| bad(format!("header: {e}")))?;
    if header.format != SNAPSHOT_FORMAT || header.meta.snapshot_id != record.meta.snapshot_id {
        return Err(bad(format!(
            "header says {} snapshot {}, expected {SNAPSHOT_FORMAT} snapshot {}",
            header.format, header.meta.snapshot_id, record.meta.snapshot_id
        )));
    }
    let announce = |pinned: &mut Vec<Pin>| {
        for pin in pinned.drain(..) {
            let _ = changes.send(PinChange::Pinned(Box::new(pin)));
        }
    };
    let mut w = store.begin()?;
    let mut in_txn = 0usize;
    let mut pinned = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(snap_io(&file_path, "read snapshot"))?;
        if line.trim().is_empty() {
            continue;
        }
        let pin: Pin = serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
        let record = Record::pin(pin, tag.clone());
        w.write(&record)?;
        if changes.receiver_count() > 0
            && let Some(pin) = record.pin
        {
            pinned.push(pin);
        }
        in_txn += 1;
        if in_txn == INSTALL_BATCH {
            w.commit()?;
            announce(&mut pinned);
            w = store.begin()?;
            in_txn = 0;
        }
    }
    w.commit()?;
    announce(&mut pinned);

    // Every record the snapshot had now carries the tag; the others were not in it.
    let last_bucket = u16::try_from(BUCKETS - 1).unwrap_or(u16::MAX);
    let mut after: Option<Cid> = None;
    loop {
        let page = store.bucket_records(0, last_bucket, after.as_ref(), MAX_PAGE_SIZE)?;
        let stale: Vec<&Record> = page.records.iter().filter(|r| r.version != tag).collect();
        if !stale.is_empty() {
            let mut w = store.begin()?;
            for r in &stale {
                w.remove(&r.cid)?;
            }
            w.commit()?;
            for r in stale.iter().filter(|r| r.pin.is_some()) {
                let _ = changes.send(PinChange::Unpinned(r.cid.clone()));
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let w = store.begin()?;
    {
        let mut meta = w.raw().open_table(RAFT_META).map_err(db_err(db, "open raft_meta"))?;
        put_meta(db, &mut meta, LAST_APPLIED, &to_json(&record.meta.last_log_id))?;
        put_meta(db, &mut meta, MEMBERSHIP, &to_json(&record.meta.last_membership))?;
        put_meta(db, &mut meta, SNAPSHOT, &record_json)?;
        meta.remove(INSTALLING).map_err(db_err(db, "clear the installing mark"))?;
    }
    w.commit()?;
    Ok(())
}

/// openraft's state machine: the pinset itself, plus the applied state and snapshots.
pub(crate) struct StateMachine {
    store: Arc<PinStore>,
    writer: Writer,
    changes: broadcast::Sender<PinChange>,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    snapshots: Arc<Snapshots>,
    /// The file a snapshot is being received into (openraft streams one at a time).
    receiving: Option<tempfile::TempPath>,
}

/// Builds a snapshot file for openraft. The pinset is dumped when the builder is made, while
/// the state machine worker waits, so the dump and `last_applied` match; see the crate docs.
pub(crate) struct SnapshotBuilder {
    prepared: Result<SnapshotRecord, String>,
    writer: Writer,
    snapshots: Arc<Snapshots>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let record = self.prepared.clone().map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        let value = to_json(&record);
        let subject = || ErrorSubject::Snapshot(Some(record.meta.signature()));
        self.writer
            .call(|reply| WriteOp::PutMeta { key: SNAPSHOT, value, reply })
            .await
            .map_err(|e| io_error(subject(), ErrorVerb::Write, e))?;
        let snapshot = self.snapshots.open(&record).await?;
        if let Some(unused) = self.snapshots.replace_current(record) {
            remove_file(&unused);
        }
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = RaftEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<RaftEntry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else { return Ok(Vec::new()) };
        let membership = entries.iter().rev().find_map(|e| match &e.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(e.log_id), m.clone())),
            _ => None,
        });
        let count = entries.len();
        let last_applied = to_json(&Some(last));
        let membership_json = membership.as_ref().map(to_json);
        self.writer
            .call(|reply| WriteOp::Apply { entries, last_applied, membership: membership_json, reply })
            .await
            .map_err(|e| io_error(ErrorSubject::Apply(last), ErrorVerb::Write, e))?;
        self.last_applied = Some(last);
        if let Some(membership) = membership {
            self.membership = membership;
        }
        Ok(vec![(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let index = self.last_applied.map_or(0, |l| l.index);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = self.snapshots.counter.fetch_add(1, Ordering::Relaxed);
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{index}-{nanos}-{n}"),
        };
        let store = self.store.clone();
        let dir = self.snapshots.dir.clone();
        // Awaited here, not in `build_snapshot` (which openraft runs concurrently with applies):
        // the dump must see exactly the entries up to `last_applied`, and PinStore offers no
        // read transaction to pin that view while applies continue.
        let prepared = tokio::task::spawn_blocking(move || write_snapshot_file(&store, &dir, meta))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = &prepared {
            tracing::error!(error = %e, "cannot write raft snapshot");
        }
        SnapshotBuilder { prepared, writer: self.writer.clone(), snapshots: self.snapshots.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let dir = &self.snapshots.dir;
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, format!("{}: {e}", dir.display())))?;
        let (file, path) = tmp.into_parts();
        self.receiving = Some(path);
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let fail = |e: String| io_error(subject(), ErrorVerb::Write, e);
        snapshot.flush().await.map_err(|e| fail(e.to_string()))?;
        snapshot.sync_all().await.map_err(|e| fail(e.to_string()))?;
        drop(snapshot);
        let received = self.receiving.take().ok_or_else(|| fail("no snapshot is being received".into()))?;
        let record = SnapshotRecord { meta: meta.clone(), file: snapshot_file_name(&meta.snapshot_id) };
        let path = self.snapshots.file_path(&record);
        received.persist(&path).map_err(|e| fail(format!("{}: {}", path.display(), e.error)))?;
        let store = self.store.clone();
        let dir = self.snapshots.dir.clone();
        let installed = record.clone();
        let changes = self.changes.clone();
        tokio::task::spawn_blocking(move || {
            sync_dir(&dir).and_then(|()| install_from_file(&store, &dir, &installed, &changes))
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        if let Some(unused) = self.snapshots.replace_current(record) {
            remove_file(&unused);
        }
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, "installed raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let current = lock(&self.snapshots.current).clone();
        match current {
            Some(record) => self.snapshots.open(&record).await.map(Some),
            None => Ok(None),
        }
    }
}

/// Opens the raft log and state machine on `store`, with snapshot files in `dir`: finishes an
/// interrupted snapshot install, drops stray files from `dir`, loads the log into memory and
/// starts the store-writer thread.
/// Applied changes are announced on `changes`.
pub(crate) async fn open(
    store: Arc<PinStore>,
    dir: PathBuf,
    changes: broadcast::Sender<PinChange>,
) -> Result<(LogStore, StateMachine), RaftStoreError> {
    tokio::fs::create_dir_all(&dir).await.map_err(snap_io(&dir, "create snapshot folder"))?;
    let loaded_store = store.clone();
    let loaded_dir = dir.clone();
    let loaded_changes = changes.clone();
    let persisted = tokio::task::spawn_blocking(move || -> Result<Persisted, RaftStoreError> {
        let persisted = load(&loaded_store)?;
        let Some(installing) = persisted.installing else { return Ok(persisted) };
        tracing::warn!(snapshot = %installing.meta.snapshot_id, "finishing an interrupted raft snapshot install");
        install_from_file(&loaded_store, &loaded_dir, &installing, &loaded_changes)?;
        load(&loaded_store)
    })
    .await
    .map_err(|e| RaftStoreError::SnapshotIo {
        path: dir.clone(),
        op: "load raft state",
        source: io::Error::other(e),
    })??;

    // Partial files of interrupted builds or transfers, and snapshots no longer current.
    let keep = persisted.snapshot.as_ref().map(|s| s.file.clone());
    let mut listing = tokio::fs::read_dir(&dir).await.map_err(snap_io(&dir, "list snapshot folder"))?;
    while let Some(item) = listing.next_entry().await.map_err(snap_io(&dir, "list snapshot folder"))? {
        let name = item.file_name().to_string_lossy().into_owned();
        let is_file = item.file_type().await.is_ok_and(|t| t.is_file());
        // Only our own names (`snapshot-*`, and tempfile's `.tmp*`): the folder may be shared.
        let ours = name.starts_with("snapshot-") || name.starts_with(".tmp");
        if is_file && ours && keep.as_deref() != Some(name.as_str()) {
            remove_file(&item.path());
        }
    }

    let writer = Writer::spawn(store.clone(), changes.clone())?;
    let log = LogStore {
        cache: Arc::new(Mutex::new(LogCache {
            vote: persisted.vote,
            last_purged: persisted.last_purged,
            entries: persisted.entries,
        })),
        writer: writer.clone(),
    };
    let snapshots = Arc::new(Snapshots { dir, current: Mutex::new(persisted.snapshot), counter: AtomicU64::new(0) });
    let sm = StateMachine {
        store,
        writer,
        changes,
        last_applied: persisted.last_applied,
        membership: persisted.membership,
        snapshots,
        receiving: None,
    };
    Ok((log, sm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(n: u8) -> Pin {
        let mut bytes = vec![0x01, 0x55, 0x12, 0x20];
        bytes.extend_from_slice(&Sha256::digest([n]));
        Pin::new(Cid::from_bytes(&bytes).expect("valid cid"))
    }

    fn cids(store: &PinStore) -> Vec<Cid> {
        let mut all = Vec::new();
        store
            .for_each(|p| {
                all.push(p.cid);
                std::ops::ControlFlow::Continue(())
            })
            .expect("walk");
        all
    }

    /// A crash in the middle of an install leaves the `installing` mark; the next start
    /// finishes the install from the durable snapshot file.
    #[tokio::test]
    async fn an_interrupted_install_is_finished_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = PinStore::open(dir.path().join("source.redb")).expect("open");
        for n in 0..10 {
            source.put(&pin(n)).expect("put");
        }
        let snapshots = dir.path().join("snapshots");
        std::fs::create_dir_all(&snapshots).expect("mkdir");
        let last = LogId::new(openraft::CommittedLeaderId::new(3, 1), 42);
        let meta = Meta { last_log_id: Some(last), last_membership: Membership::default(), snapshot_id: "s1".into() };
        let record = write_snapshot_file(&source, &snapshots, meta).expect("snapshot");

        // The target has stale pins and, as if it crashed mid-install, the mark and half of them.
        let target = Arc::new(PinStore::open(dir.path().join("target.redb")).expect("open"));
        for n in 5..20 {
            target.put(&pin(n)).expect("put");
        }
        {
            let w = target.begin().expect("begin");
            {
                let mut meta = w.raw().open_table(RAFT_META).expect("table");
                put_meta(target.path(), &mut meta, INSTALLING, &to_json(&record)).expect("mark");
            }
            w.commit().expect("commit");
        }

        let (_log, mut sm) = open(target.clone(), snapshots, broadcast::channel(16).0).await.expect("open raft");
        assert_eq!(cids(&target), cids(&source));
        let (applied, _) = sm.applied_state().await.expect("applied");
        assert_eq!(applied, Some(last));
        let current = sm.get_current_snapshot().await.expect("snapshot").expect("some");
        assert_eq!(current.meta.snapshot_id, "s1");
        let persisted = load(&target).expect("load");
        assert!(persisted.installing.is_none());
    }
}
