//! `state export` / `state import`: NDJSON, one IPFS Cluster `Pin` object per line (§10.18),
//! readable by IPFS Cluster's `ipfs-cluster-service state import` and the reverse.

use std::io::{BufRead, BufWriter, Write};
use std::ops::ControlFlow;

use crate::pin::Pin;
use crate::store::{PinStore, StoreError, Version};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed after `written` pins.
    #[error("writing the export failed after {written} pins: {source}")]
    Write {
        /// Pins fully written before the failure.
        written: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A pin could not be encoded.
    #[error("cannot encode pin {cid} for export: {source}")]
    Encode {
        /// The pin's CID.
        cid: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// Why an import stopped. On any error nothing from the input has been stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the input failed at `line` (1-based).
    #[error("reading the import failed at line {line}: {source}")]
    Read {
        /// 1-based line number.
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Line `line` (1-based) is not a valid IPFS Cluster pin.
    #[error("import line {line}: not a valid pin: {source}")]
    BadLine {
        /// 1-based line number.
        line: u64,
        /// serde_json's reason (with the column).
        #[source]
        source: serde_json::Error,
    },
    /// Writing to the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes every pin of `store` to `out`, one JSON object per line, streaming from one snapshot.
/// Returns the number of pins written.
pub fn export(store: &PinStore, out: impl Write) -> Result<u64, ExportError> {
    let mut out = BufWriter::new(out);
    let mut written = 0u64;
    let mut failed: Option<ExportError> = None;
    store.for_each(|pin| {
        let step = serde_json::to_writer(&mut out, &pin)
            .map_err(|source| {
                if source.is_io() {
                    ExportError::Write { written, source: source.into() }
                } else {
                    ExportError::Encode { cid: pin.cid.to_string(), source }
                }
            })
            .and_then(|()| out.write_all(b"\n").map_err(|source| ExportError::Write { written, source }));
        match step {
            Ok(()) => {
                written += 1;
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush().map_err(|source| ExportError::Write { written, source })?;
    Ok(written)
}

/// Reads NDJSON pins from `input` and stores them, replacing pins with the same CID. Blank lines
/// are skipped. Every line is validated; the first bad one is reported with its 1-based line
/// number. `adjust` may change each pin before it is stored (the `--rmin/--rmax/--allocs`
/// overrides). Every pin is stored with `version` (the crdt engine merges by version, so an import
/// meant to spread to the other peers carries a fresh clock).
///
/// The import is one redb write transaction: either every pin of the input is stored or, on any
/// error (a bad line, a truncated file, an I/O error), none is — a failed import never leaves a
/// half-imported pinset. Memory stays bounded by one line plus redb's write buffers.
pub fn import(
    store: &PinStore,
    input: impl BufRead,
    version: &Version,
    mut adjust: impl FnMut(&mut Pin),
) -> Result<u64, ImportError> {
    let mut lines = input.lines();
    let mut line_no = 0u64;
    // Lines are decoded lazily, inside the store's single write transaction.
    let pins = std::iter::from_fn(move || {
        loop {
            line_no += 1;
            let line = match lines.next()? {
                Ok(line) => line,
                Err(source) => {
                    return Some(Err(ImportError::Read { line: line_no, source }));
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let mut pin = match serde_json::from_str::<Pin>(&line) {
                Ok(pin) => pin,
                Err(source) => return Some(Err(ImportError::BadLine { line: line_no, source })),
            };
            adjust(&mut pin);
            return Some(Ok(pin));
        }
    });
    store.put_all(pins, version)
}
