//! The crdt engine's messages: deltas on pubsub, fingerprint and record pages over RPC. JSON,
//! with pins in IPFS Cluster's own JSON form.

use cairn_state::{Cid, Pin, Record, Version};
use serde::{Deserialize, Serialize};

/// A record on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRecord {
    /// The CID (string form).
    pub cid: String,
    /// The version's clock.
    pub clock: u64,
    /// The version's author (base58 peer id; empty for unversioned writes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// The pin; absent for a removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

impl WireRecord {
    /// The wire form of `record`.
    pub fn from_record(record: &Record) -> Self {
        WireRecord {
            cid: record.cid.to_string(),
            clock: record.version.clock,
            author: String::from_utf8_lossy(&record.version.author).into_owned(),
            pin: record.pin.clone(),
        }
    }

    /// Back to a record; refuses a pin whose CID is not the record's.
    pub fn into_record(self) -> Result<Record, String> {
        let cid = Cid::parse(&self.cid).map_err(|e| e.to_string())?;
        if let Some(pin) = &self.pin
            && pin.cid != cid
        {
            return Err(format!("record for {cid} carries a pin for {}", pin.cid));
        }
        Ok(Record { cid, version: Version { clock: self.clock, author: self.author.into_bytes() }, pin: self.pin })
    }
}

/// A batch of one author's writes, broadcast on the cluster topic.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delta {
    /// The records, all authored by the publisher.
    pub records: Vec<WireRecord>,
}

impl Delta {
    /// Serialized deltas of `records`, each under `max_bytes` when a single record fits.
    pub fn encode_chunks(records: &[Record], max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        // Split by an estimate first, then halve any chunk that is still too large.
        let mut stack: Vec<(usize, usize)> = Vec::new();
        while start < records.len() {
            let end = (start + 2_000).min(records.len());
            stack.push((start, end));
            start = end;
        }
        stack.reverse();
        while let Some((a, b)) = stack.pop() {
            let delta = Delta { records: records[a..b].iter().map(WireRecord::from_record).collect() };
            let Ok(bytes) = serde_json::to_vec(&delta) else { continue };
            if bytes.len() > max_bytes && b - a > 1 {
                let mid = a + (b - a) / 2;
                stack.push((mid, b));
                stack.push((a, mid));
            } else {
                out.push(bytes);
            }
        }
        out
    }

    /// The delta's records, checked to be authored by `source` (the message's signer).
    pub fn into_records(self, source: &str) -> Result<Vec<Record>, String> {
        self.records
            .into_iter()
            .map(|w| {
                if w.author != source {
                    return Err(format!("a record of {} is authored by {:?}, not by its publisher", w.cid, w.author));
                }
                w.into_record()
            })
            .collect()
    }
}

/// `Crdt.Records` request: records of buckets `first..=last` after the CID `after`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordsRequest {
    /// First bucket.
    pub first: u16,
    /// Last bucket (inclusive).
    pub last: u16,
    /// Continue after this CID.
    pub after: Option<String>,
    /// Page size wanted (capped by the server).
    pub limit: usize,
}

/// `Crdt.Records` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordsPage {
    /// The records, tombstones included.
    pub records: Vec<WireRecord>,
    /// Where to continue, if the range has more.
    pub next: Option<String>,
}
