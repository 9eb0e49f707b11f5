//! The cluster secret: 64 hex characters = the 32-byte libp2p private-network key.

use std::fmt;

use libp2p::pnet::PreSharedKey;

use crate::error::SecretError;

/// A parsed `cluster.secret`. Its `Debug` output is redacted so that it cannot leak into logs;
/// use [`ClusterSecret::fingerprint`] to identify it.
#[derive(Clone, Copy)]
pub struct ClusterSecret(PreSharedKey);

impl ClusterSecret {
    /// Parses the `cluster.secret` value as IPFS Cluster does: surrounding whitespace is ignored,
    /// an empty value means "no secret" (`Ok(None)`: unprotected network), otherwise it must be
    /// hex decoding to exactly 32 bytes. The raw bytes are the PSK (no `swarm.key` wrapper).
    pub fn parse(hex_value: &str) -> Result<Option<Self>, SecretError> {
        let trimmed = hex_value.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let bytes = hex::decode(trimmed).map_err(|e| SecretError::InvalidHex(e.to_string()))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretError::WrongLength(bytes.len()))?;
        Ok(Some(Self::from_bytes(key)))
    }

    /// Wraps 32 raw key bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(PreSharedKey::new(key))
    }

    /// The libp2p pre-shared key.
    pub fn psk(&self) -> PreSharedKey {
        self.0
    }

    /// The key's fingerprint (32 hex characters, the same value go-libp2p prints): safe to log,
    /// lets operators compare secrets across peers without revealing them.
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint().to_string()
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(fingerprint {})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "9a3f5d1c7e2b4a6f8d0c1e3a5b7f9d2c4e6a8b0d1f3e5c7a9b2d4f6e8a0c1b3d";

    #[test]
    fn parses_64_hex_chars() {
        let s = ClusterSecret::parse(GOOD).unwrap().unwrap();
        assert_eq!(s.fingerprint().len(), 32);
        // Whitespace around the value (a trailing newline from a file) is ignored.
        let t = ClusterSecret::parse(&format!("  {GOOD}\n")).unwrap().unwrap();
        assert_eq!(s.fingerprint(), t.fingerprint());
    }

    #[test]
    fn empty_means_no_secret() {
        assert!(ClusterSecret::parse("").unwrap().is_none());
        assert!(ClusterSecret::parse("  ").unwrap().is_none());
    }

    #[test]
    fn wrong_length_names_key_and_sizes() {
        let err = ClusterSecret::parse(&GOOD[..62]).unwrap_err();
        assert_eq!(err, SecretError::WrongLength(31));
        let msg = err.to_string();
        assert!(msg.contains("cluster.secret"), "{msg}");
        assert!(msg.contains("31 bytes"), "{msg}");
        assert!(msg.contains("32"), "{msg}");
        let long = format!("{GOOD}00");
        assert_eq!(ClusterSecret::parse(&long).unwrap_err(), SecretError::WrongLength(33));
    }

    #[test]
    fn invalid_hex_names_key() {
        let bad = format!("zz{}", &GOOD[2..]);
        let err = ClusterSecret::parse(&bad).unwrap_err();
        assert!(matches!(err, SecretError::InvalidHex(_)));
        let msg = err.to_string();
        assert!(msg.contains("cluster.secret"), "{msg}");
        assert!(msg.contains("hex"), "{msg}");
        // Odd number of hex digits is an invalid-hex error, not a panic.
        assert!(matches!(ClusterSecret::parse("abc"), Err(SecretError::InvalidHex(_))));
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let s = ClusterSecret::parse(GOOD).unwrap().unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(GOOD), "{dbg}");
        assert!(dbg.contains(&s.fingerprint()));
        let err = ClusterSecret::parse(&GOOD[..60]).unwrap_err().to_string();
        assert!(!err.contains(&GOOD[..60]));
    }

    #[test]
    fn fingerprint_differs_between_keys() {
        let a = ClusterSecret::from_bytes([1; 32]);
        let b = ClusterSecret::from_bytes([2; 32]);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
