//! Request ids: opaque, unique per pin request, and checkable without any extra state.
//!
//! An id is base64url (no padding) of `0x01 ‖ commit time as i128 Unix nanoseconds, big endian ‖
//! CID bytes`. The CID finds the pin; the time says which request of that CID it was: the
//! cluster stamps a pin at every commit, so a re-pin or replace (or anything else that
//! re-commits the pin) retires the previous id, and an id whose time no longer matches the
//! pinset is unknown (404).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_state::{Cid, Timestamp};

/// The format version, first byte of every id, so the format can change later.
const VERSION: u8 = 1;
const NANOS_LEN: usize = 16;

/// The commit time as the id holds it.
pub(crate) fn nanos(timestamp: Timestamp) -> i128 {
    timestamp.0.unix_timestamp_nanos()
}

/// The id of the pin request committed for `cid` at `timestamp`.
pub(crate) fn encode(cid: &Cid, timestamp: Timestamp) -> String {
    let mut bytes = Vec::with_capacity(1 + NANOS_LEN + 40);
    bytes.push(VERSION);
    bytes.extend_from_slice(&nanos(timestamp).to_be_bytes());
    bytes.extend_from_slice(&cid.to_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The CID and commit time of an id; `None` when it is not one of ours.
pub(crate) fn decode(id: &str) -> Option<(Cid, i128)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION || rest.len() <= NANOS_LEN {
        return None;
    }
    let (time, cid_bytes) = rest.split_at(NANOS_LEN);
    let nanos = i128::from_be_bytes(time.try_into().ok()?);
    let cid = Cid::from_bytes(cid_bytes).ok()?;
    // The cid crate stops at the end of the CID; trailing bytes would make two ids for one
    // request.
    (cid.to_bytes() == cid_bytes).then_some((cid, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_junk() {
        let cid = Cid::parse("QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco").expect("cid");
        let at = Timestamp::parse("2024-05-06T07:08:09.123456789Z").expect("time");
        let id = encode(&cid, at);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
        assert_eq!(decode(&id), Some((cid.clone(), nanos(at))));
        // Another commit of the same CID is another id.
        let later = Timestamp(at.0 + std::time::Duration::from_nanos(1));
        assert_ne!(encode(&cid, later), id);
        // The zero time (year 1) still fits.
        assert_eq!(decode(&encode(&cid, Timestamp::ZERO)).map(|(_, n)| n), Some(nanos(Timestamp::ZERO)));

        assert_eq!(decode(cid.as_str()), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("!!!"), None);
        assert_eq!(decode(&format!("{id}A")), None);
        let mut trailing = URL_SAFE_NO_PAD.decode(&id).expect("b64");
        trailing.push(0);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(&trailing)), None);
        trailing[0] = 2;
        trailing.pop();
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(&trailing)), None);
    }
}
