//! Cairn's durable pinset.
//!
//! - [`Pin`] / [`PinOptions`]: IPFS Cluster's pin record with its exact JSON form.
//! - [`PinStore`]: the pinset on one crash-safe redb file, keyed by CID, with a format-version
//!   marker, versioned records and tombstones (for the crdt's last-writer-wins merge), bucket
//!   fingerprints for set reconciliation, and streaming iteration ([`PinStore::for_each`],
//!   [`PinStore::page`]) that never loads the whole pinset.
//! - [`export`] / [`import`]: NDJSON in IPFS Cluster's `state export` format.

mod guard;
pub mod ndjson;
pub mod pin;
pub mod status;
pub mod store;

pub use ndjson::{ExportError, ImportError, export, import};
pub use pin::{Cid, CidError, Pin, PinMode, PinOptions, PinType, Timestamp};
pub use status::{TrackerFilter, TrackerStatus};
pub use store::{
    BUCKETS, FORMAT_VERSION, Fingerprint, MAX_PAGE_SIZE, PinPage, PinStore, Record, RecordPage, StateWriter,
    StoreError, Version, bucket_of,
};
