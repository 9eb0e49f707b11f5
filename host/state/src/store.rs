//! The durable pinset: one redb file holding versioned [`Pin`] records keyed by CID.
//!
//! Crash safety is redb's: every mutating call is one committed write transaction with
//! `Durability::Immediate` (redb's default: fsync before `commit` returns, checksummed commit
//! slots), so a pin acknowledged by a write survives `kill -9` and power loss, and a crash
//! mid-write leaves the previous committed state.
//!
//! Every record carries a [`Version`] (a clock and the author's peer id) and may be a
//! tombstone, so the crdt engine can merge by last-writer-wins and tell a removal from a pin it
//! never saw; raft and offline tools write with whatever version they like. Keys start with a
//! 12-bit hash bucket of the CID, and each bucket keeps an order-independent fingerprint of its
//! records (XOR of record hashes), maintained in the same transaction as the records: two
//! stores compare 4096 fingerprints to find which buckets differ, then exchange only those
//! (set reconciliation instead of replaying history).
//!
//! Values are the pin's IPFS Cluster JSON (serde_json) behind a small binary header:
//! self-describing and identical to the export format.

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::guard;
use crate::pin::{Cid, Pin};

/// The on-disk format this build writes and reads. Version 2: table `pins`, key = 2-byte bucket
/// ‖ CID bytes, value = header (live flag, clock, author) ‖ the pin's IPFS Cluster JSON; table
/// `buckets` with one fingerprint per bucket; `meta` with the live count and the highest clock.
pub const FORMAT_VERSION: u64 = 2;

/// Largest page [`PinStore::page`] returns, whatever the caller asks: the memory a page can take
/// is bounded by this, not by the pinset.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// How many reconciliation buckets the key space is split into (12 bits of a CID hash).
pub const BUCKETS: usize = 4096;

/// The size of one bucket fingerprint.
pub type Fingerprint = [u8; 16];

/// redb's page cache. Its default (1 GiB) would let a large pinset's reads grow the daemon's
/// resident memory far beyond the 300 MiB budget; 64 MiB keeps hot B-tree pages cached.
const CACHE_SIZE: usize = 64 * 1024 * 1024;

const PINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pins");
const BUCKET_FPS: TableDefinition<u16, &[u8]> = TableDefinition::new("buckets");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "format_version";
const LIVE_KEY: &str = "live_pins";
const CLOCK_KEY: &str = "max_clock";

/// A record's version: records of one CID are ordered by clock, then by author, and the
/// greater one wins a merge. The default (clock 0, no author) loses to every versioned write.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// A hybrid logical clock (crdt) or log index (raft).
    pub clock: u64,
    /// The writer's peer id bytes (empty for unversioned local writes).
    pub author: Vec<u8>,
}

/// One CID's state: a pin, or a tombstone that remembers its removal.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The CID this record is about.
    pub cid: Cid,
    /// Which write this is.
    pub version: Version,
    /// The pin, or `None` for a removal.
    pub pin: Option<Pin>,
}

impl Record {
    /// A live record for `pin`.
    pub fn pin(pin: Pin, version: Version) -> Self {
        Record { cid: pin.cid.clone(), version, pin: Some(pin) }
    }

    /// A tombstone for `cid`.
    pub fn tombstone(cid: Cid, version: Version) -> Self {
        Record { cid, version, pin: None }
    }
}

fn fingerprint_of(cid: &[u8], version: &Version, live: bool) -> Fingerprint {
    let mut h = Sha256::new();
    h.update((cid.len() as u32).to_be_bytes());
    h.update(cid);
    h.update(version.clock.to_be_bytes());
    h.update((version.author.len() as u32).to_be_bytes());
    h.update(&version.author);
    h.update([live as u8]);
    let digest = h.finalize();
    let mut fp = [0u8; 16];
    fp.copy_from_slice(&digest[..16]);
    fp
}

fn xor_into(acc: &mut Fingerprint, fp: &Fingerprint) {
    for (a, b) in acc.iter_mut().zip(fp) {
        *a ^= b;
    }
}

/// The reconciliation bucket of a CID (FNV-1a of its bytes, top 12 bits): uniform even for
/// identity-hash CIDs whose digest bytes are not.
pub fn bucket_of(cid_bytes: &[u8]) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cid_bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high bits in: FNV's top bits mix poorly on short inputs.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (h >> 52) as u16
}

fn key_of(cid_bytes: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + cid_bytes.len());
    key.extend_from_slice(&bucket_of(cid_bytes).to_be_bytes());
    key.extend_from_slice(cid_bytes);
    key
}

/// Value layout: flags (bit 0 = live) ‖ clock u64 BE ‖ author length u8 ‖ author ‖ pin JSON.
fn encode_value(version: &Version, json: Option<&[u8]>) -> Vec<u8> {
    let author = &version.author[..version.author.len().min(255)];
    let mut v = Vec::with_capacity(10 + author.len() + json.map_or(0, <[u8]>::len));
    v.push(u8::from(json.is_some()));
    v.extend_from_slice(&version.clock.to_be_bytes());
    v.push(author.len() as u8);
    v.extend_from_slice(author);
    if let Some(json) = json {
        v.extend_from_slice(json);
    }
    v
}

/// The parts of a stored value, borrowed.
struct RawValue<'a> {
    version: Version,
    json: Option<&'a [u8]>,
}

fn decode_value(value: &[u8]) -> Result<RawValue<'_>, String> {
    let (&flags, rest) = value.split_first().ok_or("empty value")?;
    if rest.len() < 9 {
        return Err("value shorter than its header".into());
    }
    let clock = u64::from_be_bytes(rest[..8].try_into().map_err(|_| "bad clock")?);
    let author_len = usize::from(rest[8]);
    let rest = &rest[9..];
    if rest.len() < author_len {
        return Err("value shorter than its author".into());
    }
    let (author, json) = rest.split_at(author_len);
    let version = Version { clock, author: author.to_vec() };
    match flags {
        0 => Ok(RawValue { version, json: None }),
        1 => Ok(RawValue { version, json: Some(json) }),
        other => Err(format!("unknown record flags {other:#x}")),
    }
}
/// What can go wrong with the pinset store. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created (missing folder, not a redb file, corrupt, or
    /// already open by another process). Nothing is written to it in that case.
    #[error("cannot open pinset database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's reason (boxed: redb's errors are large and this is the cold path).
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// The file is damaged: redb found its structure inconsistent (or failed on it) while
    /// opening and verifying it. Nothing is written to it in that case, except that redb may
    /// flag its header as needing repair.
    #[error("pinset database {path} is corrupt: {reason}; restore it from a backup or move it aside")]
    CorruptFile {
        /// The database file.
        path: PathBuf,
        /// What redb found.
        reason: String,
    },
    /// The file was written by a newer (or unknown) format than this build reads.
    #[error(
        "pinset database {path} has format version {found}, but this build of cairn reads only \
         version {supported}; use a cairn release that supports version {found}"
    )]
    UnsupportedVersion {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the file.
        found: u64,
        /// The version this build supports.
        supported: u64,
    },
    /// A redb operation failed.
    #[error("pinset database {path}: {op} failed: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// redb's reason (boxed: redb's errors are large and this is the cold path).
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record does not decode (corruption, or a bug in a writer).
    #[error("pinset database {path}: stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The record's CID, or the key's hex when it is not a CID.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// A pin could not be encoded (a time outside years 0–9999).
    #[error("pinset database {path}: cannot encode pin {cid}: {source}")]
    Encode {
        /// The database file.
        path: PathBuf,
        /// The pin's CID.
        cid: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// One page of pins in key order, from [`PinStore::page`].
#[derive(Debug)]
pub struct PinPage {
    /// At most the requested (and at most [`MAX_PAGE_SIZE`]) pins.
    pub pins: Vec<Pin>,
    /// Pass this as `after` to get the next page; `None` when the pinset is exhausted.
    pub next: Option<Cid>,
}

/// One page of records (tombstones included) of a bucket range, from
/// [`PinStore::bucket_records`].
#[derive(Debug)]
pub struct RecordPage {
    /// At most the requested (and at most [`MAX_PAGE_SIZE`]) records.
    pub records: Vec<Record>,
    /// Pass this as `after` to continue; `None` when the range is exhausted.
    pub next: Option<Cid>,
}

/// The durable pinset. Cheap to share behind an `Arc`: redb allows concurrent readers and one
/// writer at a time (writers queue).
pub struct PinStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for PinStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinStore").field("path", &self.path).finish()
    }
}

impl PinStore {
    /// Opens the pinset at `path` (conventionally `<folder>/pinset.redb`), creating the file if
    /// it does not exist (an empty file is a new store too). Refuses a file with another format
    /// version, a file that is not a redb database, and a damaged one
    /// ([`StoreError::CorruptFile`]: every page is verified here, so later reads never meet an
    /// undetected damaged page), without writing to it (redb may flag a damaged file's header
    /// as needing repair).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let corrupt = |reason: String| StoreError::CorruptFile { path: path.clone(), reason };
        // redb panics on garbage behind a valid header rather than returning an error.
        let opened = guard::catch(|| {
            let mut db = Database::builder().set_cache_size(CACHE_SIZE).create(&path)?;
            // Checksums of every page: redb trusts a cleanly closed file's pages otherwise. It
            // costs one read of the file (about 0.1 s per 100 000 pins).
            db.check_integrity()?;
            Ok(db)
        });
        let db = match opened {
            Err(panic) => return Err(corrupt(panic)),
            Ok(Err(DatabaseError::Storage(redb::StorageError::Corrupted(reason)))) => return Err(corrupt(reason)),
            Ok(Err(source)) => return Err(StoreError::Open { path, source: Box::new(source) }),
            Ok(Ok(db)) => db,
        };
        let store = Self { db, path };
        store.check_version()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_version(&self) -> Result<(), StoreError> {
        // Read first, so that refusing a newer file never opens a write transaction on it.
        let found = {
            let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
            match txn.open_table(META) {
                Ok(meta) => meta.get(VERSION_KEY).map_err(self.db_err("read format version"))?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(self.db_err("open meta table")(e)),
            }
        };
        match found {
            Some(FORMAT_VERSION) => Ok(()),
            Some(found) => {
                Err(StoreError::UnsupportedVersion { path: self.path.clone(), found, supported: FORMAT_VERSION })
            }
            None => {
                // A new file: create the tables and the marker in one transaction, so a crash
                // here leaves either an empty file or a complete store.
                let txn = self.db.begin_write().map_err(self.db_err("begin write"))?;
                {
                    let mut meta = txn.open_table(META).map_err(self.db_err("open meta table"))?;
                    meta.insert(VERSION_KEY, FORMAT_VERSION).map_err(self.db_err("write format version"))?;
                    meta.insert(LIVE_KEY, 0).map_err(self.db_err("write live count"))?;
                    meta.insert(CLOCK_KEY, 0).map_err(self.db_err("write clock"))?;
                    txn.open_table(PINS).map_err(self.db_err("create pins table"))?;
                    txn.open_table(BUCKET_FPS).map_err(self.db_err("create buckets table"))?;
                }
                txn.commit().map_err(self.db_err("commit"))
            }
        }
    }

    fn db_err<E: Into<redb::Error>>(&self, op: &'static str) -> impl FnOnce(E) -> StoreError + '_ {
        move |e| StoreError::Db { path: self.path.clone(), op, source: Box::new(e.into()) }
    }

    fn corrupt(&self, key: &[u8], reason: String) -> StoreError {
        let cid = key.get(2..).unwrap_or_default();
        StoreError::Corrupt {
            path: self.path.clone(),
            key: Cid::from_bytes(cid).map_or_else(|_| hex(key), |c| c.to_string()),
            reason,
        }
    }

    fn decode_record(&self, key: &[u8], value: &[u8]) -> Result<Record, StoreError> {
        let raw = decode_value(value).map_err(|e| self.corrupt(key, e))?;
        let cid_bytes = key.get(2..).ok_or_else(|| self.corrupt(key, "key shorter than its bucket".into()))?;
        let cid = Cid::from_bytes(cid_bytes).map_err(|e| self.corrupt(key, e.to_string()))?;
        let pin = match raw.json {
            None => None,
            Some(json) => {
                let pin: Pin = serde_json::from_slice(json).map_err(|e| self.corrupt(key, e.to_string()))?;
                if pin.cid.to_bytes() != cid_bytes {
                    return Err(self.corrupt(key, format!("the record is for another CID, {}", pin.cid)));
                }
                Some(pin)
            }
        };
        Ok(Record { cid, version: raw.version, pin })
    }

    /// Starts a write transaction: every change made through the [`StateWriter`] becomes
    /// durable together on [`StateWriter::commit`], or not at all.
    pub fn begin(&self) -> Result<StateWriter<'_>, StoreError> {
        let txn = self.db.begin_write().map_err(self.db_err("begin write"))?;
        Ok(StateWriter { store: self, txn, live_delta: 0, max_clock: 0, fp_delta: Default::default() })
    }

    /// Stores `pin` unversioned (replacing any record of its CID) in one durable transaction.
    pub fn put(&self, pin: &Pin) -> Result<(), StoreError> {
        let mut w = self.begin()?;
        w.write(&Record::pin(pin.clone(), Version::default()))?;
        w.commit()
    }

    /// Stores many pins with `version` in one durable transaction: all or none. Much faster
    /// than one [`put`](Self::put) per pin (one fsync per transaction). `pins` is consumed one
    /// at a time, so it can stream from a file. The first error it yields aborts the
    /// transaction and is returned; nothing from this call is then stored. Returns how many
    /// pins were stored.
    pub fn put_all<E>(&self, pins: impl IntoIterator<Item = Result<Pin, E>>, version: &Version) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let mut w = self.begin()?;
        let mut count = 0u64;
        for pin in pins {
            // Returning early drops the writer uncommitted, which aborts it.
            w.write(&Record::pin(pin?, version.clone()))?;
            count += 1;
        }
        w.commit()?;
        Ok(count)
    }

    /// Merges `records` by last-writer-wins in one durable transaction; returns, per record,
    /// whether it was newer than what the store had (and so was stored).
    pub fn merge_all(&self, records: &[Record]) -> Result<Vec<bool>, StoreError> {
        let mut w = self.begin()?;
        let applied = records.iter().map(|r| w.merge(r)).collect::<Result<Vec<_>, _>>()?;
        w.commit()?;
        Ok(applied)
    }

    /// The pin for `cid`, if any (a tombstone is no pin).
    pub fn get(&self, cid: &Cid) -> Result<Option<Pin>, StoreError> {
        Ok(self.get_record(cid)?.and_then(|r| r.pin))
    }

    /// The record for `cid`, tombstones included.
    pub fn get_record(&self, cid: &Cid) -> Result<Option<Record>, StoreError> {
        let key = key_of(&cid.to_bytes());
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        let value = table.get(&key[..]).map_err(self.db_err("read pin"))?;
        value.map(|v| self.decode_record(&key, v.value())).transpose()
    }

    /// Removes the record for `cid` (no tombstone is left) in one durable transaction and
    /// returns its pin (`None` if there was none).
    pub fn remove(&self, cid: &Cid) -> Result<Option<Pin>, StoreError> {
        let mut w = self.begin()?;
        let removed = w.remove(cid)?;
        w.commit()?;
        Ok(removed)
    }

    fn meta(&self, key: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let meta = txn.open_table(META).map_err(self.db_err("open meta table"))?;
        Ok(meta.get(key).map_err(self.db_err("read meta"))?.map_or(0, |v| v.value()))
    }

    /// Number of pins (tombstones not counted). Kept as a counter: constant time.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.meta(LIVE_KEY)
    }

    /// True when the pinset is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The highest clock any stored record has carried (survives restarts, so a writer's
    /// clock never goes backwards).
    pub fn max_clock(&self) -> Result<u64, StoreError> {
        self.meta(CLOCK_KEY)
    }

    /// Calls `visit` with every pin, in key order, from one consistent snapshot (writes made
    /// meanwhile are not seen), decoding one record at a time: memory does not grow with the
    /// pinset. `visit` returns `ControlFlow::Break(())` to stop early. Returns how many pins
    /// were visited.
    ///
    /// The snapshot is a redb read transaction held for the whole walk; it does not block
    /// writers, but space freed by concurrent writes is reclaimed only after it ends.
    pub fn for_each(&self, mut visit: impl FnMut(Pin) -> ControlFlow<()>) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        let mut count = 0u64;
        for entry in table.iter().map_err(self.db_err("iterate pins"))? {
            let (k, v) = entry.map_err(self.db_err("read pin"))?;
            let Some(pin) = self.decode_record(k.value(), v.value())?.pin else { continue };
            count += 1;
            if visit(pin).is_break() {
                break;
            }
        }
        Ok(count)
    }

    /// Up to `limit` pins (capped at [`MAX_PAGE_SIZE`]) in key order, starting after `after`
    /// (from the beginning when `None`). Each page is its own snapshot, so a long walk does not
    /// pin old data, and pins added or removed between pages may or may not be seen.
    pub fn page(&self, after: Option<&Cid>, limit: usize) -> Result<PinPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let mut pins = Vec::with_capacity(limit.min(1024));
        let more = self.scan(after, None, |record| {
            if pins.len() == limit {
                return ControlFlow::Break(());
            }
            if let Some(pin) = record.pin {
                pins.push(pin);
            }
            ControlFlow::Continue(())
        })?;
        let next = if more { pins.last().map(|p| p.cid.clone()) } else { None };
        Ok(PinPage { pins, next })
    }

    /// Up to `limit` records (tombstones included, capped at [`MAX_PAGE_SIZE`]) of the
    /// buckets `first..=last`, in key order, starting after `after`.
    pub fn bucket_records(
        &self,
        first: u16,
        last: u16,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let mut records = Vec::with_capacity(limit.min(1024));
        let start = after.cloned();
        let lower_bucket = first.to_be_bytes();
        let more = self.scan_from(
            start.as_ref().map(|c| key_of(&c.to_bytes())).unwrap_or_else(|| lower_bucket.to_vec()),
            start.is_some(),
            Some(last),
            |record| {
                if records.len() == limit {
                    return ControlFlow::Break(());
                }
                records.push(record);
                ControlFlow::Continue(())
            },
        )?;
        let next = if more { records.last().map(|r| r.cid.clone()) } else { None };
        Ok(RecordPage { records, next })
    }

    /// Walks records after `after` (or from the start); returns true when stopped early.
    fn scan(
        &self,
        after: Option<&Cid>,
        last_bucket: Option<u16>,
        visit: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        match after {
            Some(cid) => self.scan_from(key_of(&cid.to_bytes()), true, last_bucket, visit),
            None => self.scan_from(Vec::new(), false, last_bucket, visit),
        }
    }

    fn scan_from(
        &self,
        from: Vec<u8>,
        exclusive: bool,
        last_bucket: Option<u16>,
        mut visit: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        let lower = if exclusive { Bound::Excluded(&from[..]) } else { Bound::Included(&from[..]) };
        let upper_key = last_bucket.and_then(|b| b.checked_add(1)).map(|b| b.to_be_bytes());
        let upper = match &upper_key {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let range = table.range::<&[u8]>((lower, upper)).map_err(self.db_err("iterate pins"))?;
        for entry in range {
            let (k, v) = entry.map_err(self.db_err("read pin"))?;
            let record = self.decode_record(k.value(), v.value())?;
            if visit(record).is_break() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every bucket's fingerprint ([`BUCKETS`] of them; all zero for an empty bucket). Two
    /// stores hold the same records in a bucket exactly when its fingerprints are equal
    /// (up to a 2^-128 collision).
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, StoreError> {
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(BUCKET_FPS).map_err(self.db_err("open buckets table"))?;
        let mut fps = vec![[0u8; 16]; BUCKETS];
        for entry in table.iter().map_err(self.db_err("iterate buckets"))? {
            let (k, v) = entry.map_err(self.db_err("read bucket"))?;
            let bucket = usize::from(k.value());
            let fp: Fingerprint = v
                .value()
                .try_into()
                .map_err(|_| self.corrupt(&k.value().to_be_bytes(), "bucket fingerprint is not 16 bytes".into()))?;
            if let Some(slot) = fps.get_mut(bucket) {
                *slot = fp;
            }
        }
        Ok(fps)
    }
}

/// A write transaction on the pinset; keeps the live count, highest clock and bucket
/// fingerprints in step with the records. Dropping it without [`commit`](Self::commit) aborts.
pub struct StateWriter<'s> {
    store: &'s PinStore,
    txn: WriteTransaction,
    live_delta: i64,
    max_clock: u64,
    fp_delta: std::collections::HashMap<u16, Fingerprint>,
}

impl StateWriter<'_> {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, StoreError> {
        let json = match &record.pin {
            Some(pin) => Some(serde_json::to_vec(pin).map_err(|source| StoreError::Encode {
                path: self.store.path.clone(),
                cid: pin.cid.to_string(),
                source,
            })?),
            None => None,
        };
        Ok(encode_value(&record.version, json.as_deref()))
    }

    /// The record stored for `cid` (as of this transaction's writes).
    pub fn get_record(&self, cid: &Cid) -> Result<Option<Record>, StoreError> {
        let key = key_of(&cid.to_bytes());
        let table = self.txn.open_table(PINS).map_err(self.store.db_err("open pins table"))?;
        let value = table.get(&key[..]).map_err(self.store.db_err("read pin"))?;
        value.map(|v| self.store.decode_record(&key, v.value())).transpose()
    }

    /// Version and liveness of the stored record under `key`, decoding only the header.
    fn stored_version(
        &self,
        table: &redb::Table<'_, &[u8], &[u8]>,
        key: &[u8],
    ) -> Result<Option<(Version, bool)>, StoreError> {
        let Some(value) = table.get(key).map_err(self.store.db_err("read pin"))? else { return Ok(None) };
        let raw = decode_value(value.value()).map_err(|e| self.store.corrupt(key, e))?;
        Ok(Some((raw.version, raw.json.is_some())))
    }

    fn account(&mut self, cid_bytes: &[u8], old: Option<(Version, bool)>, new: Option<(&Version, bool)>) {
        let bucket = bucket_of(cid_bytes);
        let acc = self.fp_delta.entry(bucket).or_default();
        if let Some((version, live)) = &old {
            xor_into(acc, &fingerprint_of(cid_bytes, version, *live));
            if *live {
                self.live_delta -= 1;
            }
        }
        if let Some((version, live)) = new {
            xor_into(acc, &fingerprint_of(cid_bytes, version, live));
            if live {
                self.live_delta += 1;
            }
            self.max_clock = self.max_clock.max(version.clock);
        }
    }

    /// Stores `record`, replacing whatever its CID had.
    pub fn write(&mut self, record: &Record) -> Result<(), StoreError> {
        self.store_record(record, false).map(|_| ())
    }

    /// Stores `record` only if its version is greater than the stored one (last writer wins);
    /// returns whether it was stored.
    pub fn merge(&mut self, record: &Record) -> Result<bool, StoreError> {
        self.store_record(record, true)
    }

    fn store_record(&mut self, record: &Record, only_if_newer: bool) -> Result<bool, StoreError> {
        let cid_bytes = record.cid.to_bytes();
        let key = key_of(&cid_bytes);
        let value = self.encode(record)?;
        let old = {
            let mut table = self.txn.open_table(PINS).map_err(self.store.db_err("open pins table"))?;
            let old = self.stored_version(&table, &key)?;
            if only_if_newer && old.as_ref().is_some_and(|(v, _)| *v >= record.version) {
                return Ok(false);
            }
            table.insert(&key[..], &value[..]).map_err(self.store.db_err("insert pin"))?;
            old
        };
        self.account(&cid_bytes, old, Some((&record.version, record.pin.is_some())));
        Ok(true)
    }

    /// Deletes the record of `cid` without leaving a tombstone; returns its pin, if live.
    pub fn remove(&mut self, cid: &Cid) -> Result<Option<Pin>, StoreError> {
        let cid_bytes = cid.to_bytes();
        let key = key_of(&cid_bytes);
        let removed = {
            let mut table = self.txn.open_table(PINS).map_err(self.store.db_err("open pins table"))?;
            let old = table.remove(&key[..]).map_err(self.store.db_err("remove pin"))?;
            // Decode before committing: a corrupt record is reported and left in place.
            match old {
                Some(v) => Some(self.store.decode_record(&key, v.value())?),
                None => None,
            }
        };
        let Some(record) = removed else { return Ok(None) };
        let live = record.pin.is_some();
        self.account(&cid_bytes, Some((record.version, live)), None);
        Ok(record.pin)
    }

    /// The underlying redb transaction, for engines that keep their own tables (the raft log)
    /// in the same file and commit them atomically with the pinset.
    pub fn raw(&self) -> &WriteTransaction {
        &self.txn
    }

    /// Makes every change of this transaction durable (fsync) at once.
    pub fn commit(self) -> Result<(), StoreError> {
        let StateWriter { store, txn, live_delta, max_clock, fp_delta } = self;
        {
            let mut meta = txn.open_table(META).map_err(store.db_err("open meta table"))?;
            if live_delta != 0 {
                let live = meta.get(LIVE_KEY).map_err(store.db_err("read live count"))?.map_or(0, |v| v.value());
                let live = live.saturating_add_signed(live_delta);
                meta.insert(LIVE_KEY, live).map_err(store.db_err("write live count"))?;
            }
            let clock = meta.get(CLOCK_KEY).map_err(store.db_err("read clock"))?.map_or(0, |v| v.value());
            if max_clock > clock {
                meta.insert(CLOCK_KEY, max_clock).map_err(store.db_err("write clock"))?;
            }
            let mut buckets = txn.open_table(BUCKET_FPS).map_err(store.db_err("open buckets table"))?;
            for (bucket, delta) in fp_delta {
                let mut fp: Fingerprint = match buckets.get(bucket).map_err(store.db_err("read bucket"))? {
                    Some(v) => v.value().try_into().unwrap_or_default(),
                    None => [0; 16],
                };
                xor_into(&mut fp, &delta);
                if fp == [0; 16] {
                    buckets.remove(bucket).map_err(store.db_err("clear bucket"))?;
                } else {
                    buckets.insert(bucket, &fp[..]).map_err(store.db_err("write bucket"))?;
                }
            }
        }
        txn.commit().map_err(store.db_err("commit"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
