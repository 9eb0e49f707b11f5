//! The durable pinset: one redb file holding [`Pin`] records keyed by CID bytes.
//!
//! Crash safety is redb's: every mutating call is one committed write transaction with
//! `Durability::Immediate` (redb's default: fsync before `commit` returns, checksummed commit
//! slots), so a pin acknowledged by [`PinStore::put`] survives `kill -9` and power loss, and a
//! crash mid-write leaves the previous committed state.
//!
//! Values are the pin's IPFS Cluster JSON (serde_json) for now: simple, self-describing and
//! identical to the export format. A compact binary encoding can replace it behind
//! [`FORMAT_VERSION`].

use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::pin::{Cid, Pin};

/// The on-disk format this build writes and reads. Version 1: table `pins`, key = CID bytes,
/// value = the pin's IPFS Cluster JSON.
pub const FORMAT_VERSION: u64 = 1;

/// Largest page [`PinStore::page`] returns, whatever the caller asks: the memory a page can take
/// is bounded by this, not by the pinset.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// redb's page cache. Its default (1 GiB) would let a large pinset's reads grow the daemon's
/// resident memory far beyond the 300 MiB budget; 64 MiB keeps hot B-tree pages cached.
const CACHE_SIZE: usize = 64 * 1024 * 1024;

const PINS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pins");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "format_version";

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
    /// it does not exist. Refuses a file with another format version, and a file that is not a
    /// redb database, without modifying it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE)
            .create(&path)
            .map_err(|source| StoreError::Open { path: path.clone(), source: Box::new(source) })?;
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
                // A new file: create both tables and the marker in one transaction, so a crash
                // here leaves either an empty file or a complete version-1 store.
                let txn = self.begin_write()?;
                {
                    let mut meta = txn.open_table(META).map_err(self.db_err("open meta table"))?;
                    meta.insert(VERSION_KEY, FORMAT_VERSION).map_err(self.db_err("write format version"))?;
                    txn.open_table(PINS).map_err(self.db_err("create pins table"))?;
                }
                txn.commit().map_err(self.db_err("commit"))
            }
        }
    }

    fn db_err<E: Into<redb::Error>>(&self, op: &'static str) -> impl FnOnce(E) -> StoreError + '_ {
        move |e| StoreError::Db { path: self.path.clone(), op, source: Box::new(e.into()) }
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(self.db_err("begin write"))
    }

    fn encode(&self, pin: &Pin) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(pin).map_err(|source| StoreError::Encode {
            path: self.path.clone(),
            cid: pin.cid.to_string(),
            source,
        })
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Pin, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: self.path.clone(),
            key: Cid::from_bytes(key).map_or_else(|_| hex(key), |c| c.to_string()),
            reason,
        };
        let pin: Pin = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
        if pin.cid.to_bytes() != key {
            return Err(corrupt(format!("the record is for another CID, {}", pin.cid)));
        }
        Ok(pin)
    }

    /// Stores `pin` (replacing any pin with the same CID) in one durable transaction.
    pub fn put(&self, pin: &Pin) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
            self.insert(&mut table, pin)?;
        }
        txn.commit().map_err(self.db_err("commit"))
    }

    /// Stores many pins in one durable transaction: all or none. Much faster than one
    /// [`put`](Self::put) per pin (one fsync per transaction). `pins` is consumed one at a time,
    /// so it can stream from a file. The first error it yields aborts the transaction and is
    /// returned; nothing from this call is then stored. Returns how many pins were stored.
    pub fn put_all<E>(&self, pins: impl IntoIterator<Item = Result<Pin, E>>) -> Result<u64, E>
    where
        E: From<StoreError>,
    {
        let txn = self.begin_write()?;
        let mut count = 0u64;
        {
            let mut table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
            for pin in pins {
                // Returning early drops `txn` uncommitted, which aborts it.
                self.insert(&mut table, &pin?)?;
                count += 1;
            }
        }
        txn.commit().map_err(self.db_err("commit"))?;
        Ok(count)
    }

    fn insert(&self, table: &mut redb::Table<'_, &[u8], &[u8]>, pin: &Pin) -> Result<(), StoreError> {
        let value = self.encode(pin)?;
        table.insert(&pin.cid.to_bytes()[..], &value[..]).map_err(self.db_err("insert pin"))?;
        Ok(())
    }

    /// The pin for `cid`, if any.
    pub fn get(&self, cid: &Cid) -> Result<Option<Pin>, StoreError> {
        let key = cid.to_bytes();
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        let value = table.get(&key[..]).map_err(self.db_err("read pin"))?;
        value.map(|v| self.decode(&key, v.value())).transpose()
    }

    /// Removes the pin for `cid` in one durable transaction and returns it (`None` if there was
    /// none).
    pub fn remove(&self, cid: &Cid) -> Result<Option<Pin>, StoreError> {
        let key = cid.to_bytes();
        let txn = self.begin_write()?;
        let removed = {
            let mut table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
            let old = table.remove(&key[..]).map_err(self.db_err("remove pin"))?;
            // Decode before committing: a corrupt record is reported and left in place.
            match old {
                Some(v) => Some(self.decode(&key, v.value())?),
                None => None,
            }
        };
        txn.commit().map_err(self.db_err("commit"))?;
        Ok(removed)
    }

    /// Number of pins.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        table.len().map_err(self.db_err("count pins"))
    }

    /// True when the pinset is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
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
            let pin = self.decode(k.value(), v.value())?;
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
        let txn = self.db.begin_read().map_err(self.db_err("begin read"))?;
        let table = txn.open_table(PINS).map_err(self.db_err("open pins table"))?;
        let after_key = after.map(Cid::to_bytes);
        let lower = match &after_key {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let range = table.range::<&[u8]>((lower, Bound::Unbounded)).map_err(self.db_err("iterate pins"))?;
        let mut pins = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for entry in range {
            let (k, v) = entry.map_err(self.db_err("read pin"))?;
            if pins.len() == limit {
                more = true;
                break;
            }
            pins.push(self.decode(k.value(), v.value())?);
        }
        let next = if more { pins.last().map(|p| p.cid.clone()) } else { None };
        Ok(PinPage { pins, next })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_marker_is_written_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pinset.redb");
        drop(PinStore::open(&path).expect("create"));
        {
            let db = Database::create(&path).expect("raw open");
            let txn = db.begin_read().expect("read");
            let meta = txn.open_table(META).expect("meta");
            assert_eq!(meta.get(VERSION_KEY).expect("get").map(|v| v.value()), Some(1));
        }
        PinStore::open(&path).expect("reopen v1");
    }
}
