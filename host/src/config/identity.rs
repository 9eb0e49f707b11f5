//! identity.json: `{"id": "<peer id>", "private_key": "<base64 of the libp2p protobuf key>"}`,
//! IPFS Cluster's format (reference §5.2), so an IPFS Cluster peer's identity loads.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use libp2p_identity::{Keypair, PeerId};
use serde::{Deserialize, Serialize};

use super::{ConfigError, EnvLookup, write_private_file};

/// The file name inside the config folder.
pub const IDENTITY_FILE: &str = "identity.json";

/// This peer's identity: its key and the peer id derived from it.
#[derive(Clone)]
pub struct Identity {
    /// The peer id (checked to match the key).
    pub peer_id: PeerId,
    /// The private key.
    pub keypair: Keypair,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Identity").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct IdentityJson {
    id: String,
    private_key: String,
}

impl Identity {
    /// A fresh Ed25519 identity (IPFS Cluster's default key type).
    pub fn generate() -> Self {
        let keypair = Keypair::generate_ed25519();
        Identity { peer_id: keypair.public().to_peer_id(), keypair }
    }

    /// Build from identity.json's two fields, checking that `id` belongs to `private_key`.
    /// `file` and `key_prefix` only name where the fields came from in errors.
    pub fn from_fields(id: &str, private_key: &str, file: &Path, key_prefix: &str) -> Result<Self, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::invalid(file, format!("{key_prefix}{key}"), problem);
        let peer_id: PeerId = id.trim().parse().map_err(|e| invalid("id", format!("{id:?} is not a peer id: {e}")))?;
        let bytes =
            BASE64.decode(private_key.trim()).map_err(|e| invalid("private_key", format!("not valid base64: {e}")))?;
        let keypair = Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| invalid("private_key", format!("not a libp2p private key: {e}")))?;
        let derived = keypair.public().to_peer_id();
        if derived != peer_id {
            return Err(invalid("id", format!("{peer_id} does not match the private key, whose peer id is {derived}")));
        }
        Ok(Identity { peer_id, keypair })
    }

    /// Read identity.json from `path`, with `CLUSTER_ID` / `CLUSTER_PRIVATEKEY` overriding
    /// its fields as in IPFS Cluster.
    pub fn load(path: &Path, env: &EnvLookup) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: path.into(), source })?;
        let mut json: IdentityJson = serde_json::from_str(&text).map_err(|e| ConfigError::json(path, "", &e))?;
        if let Some(id) = env("CLUSTER_ID") {
            json.id = id;
        }
        if let Some(key) = env("CLUSTER_PRIVATEKEY") {
            json.private_key = key;
        }
        Identity::from_fields(&json.id, &json.private_key, path, "")
    }

    /// The base64 protobuf encoding of the private key (identity.json's `private_key`).
    pub fn private_key_base64(&self) -> Result<String, ConfigError> {
        let bytes = self.keypair.to_protobuf_encoding().map_err(|e| {
            ConfigError::invalid(Path::new(IDENTITY_FILE), "private_key", format!("cannot encode: {e}"))
        })?;
        Ok(BASE64.encode(bytes))
    }

    /// identity.json's text.
    pub fn to_json(&self) -> Result<String, ConfigError> {
        let json = IdentityJson { id: self.peer_id.to_string(), private_key: self.private_key_base64()? };
        // Serializing two strings cannot fail.
        Ok(serde_json::to_string_pretty(&json).unwrap_or_default() + "\n")
    }

    /// Write identity.json to `path` (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_private_file(path, self.to_json()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn round_trips_and_checks_the_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(IDENTITY_FILE);
        let id = Identity::generate();
        id.save(&path).expect("save");
        let back = Identity::load(&path, &no_env).expect("load");
        assert_eq!(back.peer_id, id.peer_id);
        assert!(back.peer_id.to_string().starts_with("12D3KooW"), "ed25519 peer ids start with 12D3KooW");

        // Another key's id does not match.
        let other = Identity::generate();
        let text =
            format!(r#"{{"id": "{}", "private_key": "{}"}}"#, other.peer_id, id.private_key_base64().expect("encode"));
        std::fs::write(&path, text).expect("write");
        let e = Identity::load(&path, &no_env).expect_err("mismatch");
        assert!(e.to_string().contains("identity.json: id: "), "{e}");
        assert!(e.to_string().contains("does not match the private key"), "{e}");
    }

    #[test]
    fn loads_an_ipfs_cluster_identity_and_env_overrides_it() {
        // The shape IPFS Cluster writes (base64 std of the protobuf-encoded Ed25519 key).
        let id = Identity::generate();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(IDENTITY_FILE);
        std::fs::write(&path, r#"{"id": "bogus", "private_key": "bogus"}"#).expect("write");
        let key = id.private_key_base64().expect("encode");
        let peer = id.peer_id.to_string();
        let env = move |name: &str| match name {
            "CLUSTER_ID" => Some(peer.clone()),
            "CLUSTER_PRIVATEKEY" => Some(key.clone()),
            _ => None,
        };
        assert_eq!(Identity::load(&path, &env).expect("env identity").peer_id, id.peer_id);
        let e = Identity::load(&path, &no_env).expect_err("bogus");
        assert!(e.to_string().contains("is not a peer id"), "{e}");
    }
}
