//! Cairn's durable pinset.
//!
//! - [`Pin`] / [`PinOptions`]: IPFS Cluster's pin record with its exact JSON form.
//! - [`PinStore`]: the pinset on one crash-safe redb file, keyed by CID, with a format-version
//!   marker and streaming iteration ([`PinStore::for_each`], [`PinStore::page`]) that never
//!   loads the whole pinset.
//! - [`export`] / [`import`]: NDJSON in IPFS Cluster's `state export` format.
//!
//! Standalone for now: the daemon wires it into consensus later (issue 5).

pub mod ndjson;
pub mod pin;
pub mod store;

pub use ndjson::{ExportError, ImportError, export, import};
pub use pin::{Cid, CidError, Pin, PinMode, PinOptions, PinType, Timestamp};
pub use store::{FORMAT_VERSION, MAX_PAGE_SIZE, PinPage, PinStore, StoreError};
