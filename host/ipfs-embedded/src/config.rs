//! `ipfs_connector.embedded`: the embedded node's configuration, read from service.json with
//! the same conventions as the `ipfshttp` section (Go duration strings, `""` keeps the default,
//! unknown keys refused).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_ipfs::{Multiaddr, PeerId, Protocol};
use serde::{Deserialize, Serialize};

use crate::error::EmbeddedError;
use cairn_ipfs::go_duration as duration;

/// Kubo's default `Datastore.StorageMax` ("10GB").
pub const DEFAULT_STORAGE_MAX: u64 = 10_000_000_000;

/// The embedded IPFS node's configuration; every key has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig", into = "RawConfig")]
pub struct EmbeddedIpfsConfig {
    /// Where blocks, pins and the node's key live; relative paths are under the config folder.
    pub data_folder: PathBuf,
    /// Swarm listen addresses (`/ip4/0.0.0.0/tcp/4001`); port 0 picks a free port.
    pub listen_multiaddress: Vec<String>,
    /// Addresses announced to peers instead of the listening ones; empty = the listening ones.
    pub announce_multiaddress: Vec<String>,
    /// Peers (`…/p2p/<id>`) dialled and kept connected at start; empty = join no network.
    pub bootstrap: Vec<String>,
    /// Use the cluster secret as the libp2p pre-shared key, so only cluster nodes can connect.
    pub private_network: bool,
    /// A pin fails when no new block has arrived for this long (not a total deadline).
    pub pin_timeout: Duration,
    /// Deadline of an unpin.
    pub unpin_timeout: Duration,
    /// Deadline of a garbage collection, including the wait for running pins.
    pub repogc_timeout: Duration,
    /// Capacity in bytes reported by `repo_stat` (the `freespace` metric).
    pub storage_max: u64,
    /// Every N-th pin, unpin or block put asks the informers to republish; 0 disables it.
    pub informer_trigger_interval: u64,
}

impl Default for EmbeddedIpfsConfig {
    fn default() -> Self {
        EmbeddedIpfsConfig {
            data_folder: PathBuf::from("ipfs"),
            listen_multiaddress: vec!["/ip4/0.0.0.0/tcp/4001".to_owned()],
            announce_multiaddress: Vec::new(),
            bootstrap: Vec::new(),
            private_network: true,
            pin_timeout: Duration::from_secs(2 * 60),
            unpin_timeout: Duration::from_secs(3 * 60 * 60),
            repogc_timeout: Duration::from_secs(24 * 60 * 60),
            storage_max: DEFAULT_STORAGE_MAX,
            informer_trigger_interval: 0,
        }
    }
}

/// The addresses of a valid configuration, parsed.
#[derive(Debug, Clone)]
pub(crate) struct ParsedAddresses {
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) announce: Vec<Multiaddr>,
    pub(crate) bootstrap: Vec<(PeerId, Multiaddr)>,
}

impl EmbeddedIpfsConfig {
    /// The data folder: `data_folder` itself when absolute, else under `config_dir`.
    pub fn data_path(&self, config_dir: &Path) -> PathBuf {
        if self.data_folder.is_absolute() { self.data_folder.clone() } else { config_dir.join(&self.data_folder) }
    }

    /// Checks every key; the error names the key and the offending value.
    pub fn validate(&self) -> Result<(), EmbeddedError> {
        self.parsed().map(drop)
    }

    pub(crate) fn parsed(&self) -> Result<ParsedAddresses, EmbeddedError> {
        if self.data_folder.as_os_str().is_empty() {
            return Err(config_error("data_folder", "must not be empty"));
        }
        for (key, value) in [
            ("pin_timeout", self.pin_timeout),
            ("unpin_timeout", self.unpin_timeout),
            ("repogc_timeout", self.repogc_timeout),
        ] {
            if value.is_zero() {
                return Err(config_error(key, "must be greater than zero"));
            }
        }
        if self.storage_max == 0 {
            return Err(config_error("storage_max", "must be greater than zero"));
        }
        let listen = parse_addrs("listen_multiaddress", &self.listen_multiaddress)?;
        for addr in &listen {
            if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
                return Err(config_error("listen_multiaddress", &format!("{addr} must not contain /p2p")));
            }
        }
        let announce = parse_addrs("announce_multiaddress", &self.announce_multiaddress)?;
        let bootstrap = parse_addrs("bootstrap", &self.bootstrap)?
            .into_iter()
            .map(|addr| match peer_of(&addr) {
                Some(peer) => Ok((peer, addr)),
                None => Err(config_error("bootstrap", &format!("{addr} must end with /p2p/<peer id>"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ParsedAddresses { listen, announce, bootstrap })
    }
}

/// The peer id of an address ending in `/p2p/<id>`.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

fn parse_addrs(key: &'static str, list: &[String]) -> Result<Vec<Multiaddr>, EmbeddedError> {
    list.iter()
        .map(|text| {
            text.trim()
                .parse::<Multiaddr>()
                .map_err(|e| config_error(key, &format!("{text:?} is not a multiaddr: {e}")))
        })
        .collect()
}

fn config_error(key: &'static str, reason: &str) -> EmbeddedError {
    EmbeddedError::Config { key, reason: reason.to_owned() }
}

/// What service.json holds: strings for durations and sizes, one address or a list.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    data_folder: String,
    listen_multiaddress: OneOrMany,
    announce_multiaddress: OneOrMany,
    bootstrap: OneOrMany,
    private_network: bool,
    pin_timeout: String,
    unpin_timeout: String,
    repogc_timeout: String,
    storage_max: Size,
    informer_trigger_interval: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig::from(EmbeddedIpfsConfig::default())
    }
}

/// A list key that also accepts a single string (as IPFS Cluster's `listen_multiaddress` does).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `storage_max`: bytes as a number or a string with a unit (`"10GB"`, `"512MiB"`).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl From<EmbeddedIpfsConfig> for RawConfig {
    fn from(c: EmbeddedIpfsConfig) -> Self {
        RawConfig {
            data_folder: c.data_folder.to_string_lossy().into_owned(),
            listen_multiaddress: OneOrMany::Many(c.listen_multiaddress),
            announce_multiaddress: OneOrMany::Many(c.announce_multiaddress),
            bootstrap: OneOrMany::Many(c.bootstrap),
            private_network: c.private_network,
            pin_timeout: duration::format(c.pin_timeout),
            unpin_timeout: duration::format(c.unpin_timeout),
            repogc_timeout: duration::format(c.repogc_timeout),
            storage_max: Size::Text(format_size(c.storage_max)),
            informer_trigger_interval: c.informer_trigger_interval,
        }
    }
}

impl TryFrom<RawConfig> for EmbeddedIpfsConfig {
    type Error = EmbeddedError;

    fn try_from(raw: RawConfig) -> Result<Self, EmbeddedError> {
        let defaults = EmbeddedIpfsConfig::default();
        let duration = |key: &'static str, text: &str, default: Duration| {
            // IPFS Cluster: an empty duration keeps the default.
            if text.is_empty() { Ok(default) } else { duration::parse(text).map_err(|e| config_error(key, &e)) }
        };
        let storage_max = match raw.storage_max {
            Size::Bytes(n) => n,
            Size::Text(text) => parse_size(&text).map_err(|e| config_error("storage_max", &e))?,
        };
        let config = EmbeddedIpfsConfig {
            data_folder: if raw.data_folder.is_empty() { defaults.data_folder } else { raw.data_folder.into() },
            listen_multiaddress: raw.listen_multiaddress.into_vec(),
            announce_multiaddress: raw.announce_multiaddress.into_vec(),
            bootstrap: raw.bootstrap.into_vec(),
            private_network: raw.private_network,
            pin_timeout: duration("pin_timeout", &raw.pin_timeout, defaults.pin_timeout)?,
            unpin_timeout: duration("unpin_timeout", &raw.unpin_timeout, defaults.unpin_timeout)?,
            repogc_timeout: duration("repogc_timeout", &raw.repogc_timeout, defaults.repogc_timeout)?,
            storage_max,
            informer_trigger_interval: raw.informer_trigger_interval,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses a byte size as go-humanize's `ParseBytes` does: `"10GB"` (SI), `"1.5 GiB"` (IEC),
/// `"4096"` (bytes); units are case-insensitive.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let number_len = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(number_len);
    let value: f64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        other => return Err(format!("unknown unit {other:?} in size {text:?}")),
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// The shortest exact SI spelling of `bytes` (`10000000000` → `"10GB"`).
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, multiplier) in [
        ("PB", 1_000_000_000_000_000u64),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1_000),
    ] {
        if bytes >= multiplier && bytes.is_multiple_of(multiplier) {
            return format!("{}{unit}", bytes / multiplier);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config: EmbeddedIpfsConfig = serde_json::from_str("{}").expect("empty section");
        assert_eq!(config, EmbeddedIpfsConfig::default());
        assert_eq!(config.data_folder, PathBuf::from("ipfs"));
        assert_eq!(config.listen_multiaddress, vec!["/ip4/0.0.0.0/tcp/4001"]);
        assert!(config.bootstrap.is_empty() && config.announce_multiaddress.is_empty());
        assert!(config.private_network);
        assert_eq!(config.pin_timeout, Duration::from_secs(120));
        assert_eq!(config.unpin_timeout, Duration::from_secs(3 * 3600));
        assert_eq!(config.repogc_timeout, Duration::from_secs(24 * 3600));
        assert_eq!(config.storage_max, 10_000_000_000);
        assert_eq!(config.informer_trigger_interval, 0);
        let json = serde_json::to_value(&config).expect("serializes");
        assert_eq!(json["pin_timeout"], "2m0s");
        assert_eq!(json["storage_max"], "10GB");
        let back: EmbeddedIpfsConfig = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, config);
    }

    #[test]
    fn reads_strings_numbers_and_single_addresses() {
        let config: EmbeddedIpfsConfig = serde_json::from_str(
            r#"{"pin_timeout": "2s", "unpin_timeout": "", "storage_max": "1.5GiB",
                "listen_multiaddress": "/ip4/127.0.0.1/tcp/0", "private_network": false,
                "bootstrap": ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"]}"#,
        )
        .expect("parses");
        assert_eq!(config.pin_timeout, Duration::from_secs(2));
        assert_eq!(config.unpin_timeout, Duration::from_secs(3 * 3600));
        assert_eq!(config.storage_max, 1_610_612_736);
        assert_eq!(config.listen_multiaddress, vec!["/ip4/127.0.0.1/tcp/0"]);
        assert!(!config.private_network);
        let config: EmbeddedIpfsConfig = serde_json::from_str(r#"{"storage_max": 4096}"#).expect("number");
        assert_eq!(config.storage_max, 4096);
    }

    #[test]
    fn errors_name_the_key() {
        for (json, key) in [
            (r#"{"pin_timeout": "2 minutes"}"#, "pin_timeout"),
            (r#"{"pin_timeout": "0s"}"#, "pin_timeout"),
            (r#"{"storage_max": "10XB"}"#, "storage_max"),
            (r#"{"listen_multiaddress": ["nonsense"]}"#, "listen_multiaddress"),
            (r#"{"bootstrap": ["/ip4/10.0.0.1/tcp/4001"]}"#, "bootstrap"),
            (r#"{"announce_multiaddress": ["/ip4/1.2.3/tcp/1"]}"#, "announce_multiaddress"),
            (r#"{"no_such_key": 1}"#, "no_such_key"),
        ] {
            let err = serde_json::from_str::<EmbeddedIpfsConfig>(json).expect_err(json).to_string();
            assert!(err.contains(key), "{json}: {err}");
        }
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("10 gb"), Ok(10_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("GB").is_err());
        assert_eq!(format_size(10_000_000_000), "10GB");
        assert_eq!(format_size(1_500_000), "1500kB");
        assert_eq!(format_size(1023), "1023B");
    }

    #[test]
    fn relative_data_folders_are_under_the_config_folder() {
        let config = EmbeddedIpfsConfig::default();
        assert_eq!(config.data_path(Path::new("/etc/cairn")), PathBuf::from("/etc/cairn/ipfs"));
        let config = EmbeddedIpfsConfig { data_folder: "/var/lib/ipfs".into(), ..Default::default() };
        assert_eq!(config.data_path(Path::new("/etc/cairn")), PathBuf::from("/var/lib/ipfs"));
    }
}
