//! The raft settings (IPFS Cluster's `consensus.raft` keys) and how they map onto openraft.

use std::path::PathBuf;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// The `consensus.raft` section, parsed: IPFS Cluster's keys and defaults (which are
/// hashicorp/raft's library defaults), plus whether the cluster secret is set.
///
/// hashicorp/raft and openraft name their timers alike but do not mean the same thing, so
/// [`openraft_config`](Self::openraft_config) translates:
///
/// | key | openraft | why |
/// |---|---|---|
/// | `heartbeat_timeout`, `election_timeout` | `election_timeout_min` = the larger of the two, `election_timeout_max` = twice that | hashicorp starts an election after a random `[T, 2T)` without leader contact; openraft's window is `[min, max)` |
/// | `heartbeat_timeout` | `heartbeat_interval` = a quarter of it (at least 10 ms) | hashicorp heartbeats at `T/10`, but openraft also uses the interval as the deadline of each AppendEntries RPC, which must cover encoding a full message and a follower's fsync on a busy machine; four heartbeats per timeout still keep followers from campaigning |
/// | `max_append_entries` | `max_payload_entries` | entries per AppendEntries RPC (an entry is a batch of up to 64 concurrent pin operations) |
/// | `snapshot_threshold` | `snapshot_policy = LogsSinceLast(threshold)` | openraft checks after every apply; hashicorp every `snapshot_interval` |
/// | `snapshot_interval` | – | a timer of the engine re-checks the threshold every interval (a safety net; openraft is more eager) |
/// | `trailing_logs` | `max_in_snapshot_log_to_keep` | entries kept after a snapshot so a briefly lagging follower catches up from the log, not a snapshot |
/// | `network_timeout` | `install_snapshot_timeout` | per snapshot chunk; the engine also bounds every peer call and every commit attempt by it |
/// | `leader_lease_timeout`, `commit_timeout` | – | openraft has no separate lease (a leader's lease is its election timeout) and replicates as soon as entries are appended, with no idle-commit delay |
/// | `commit_retries`, `commit_retry_delay`, `wait_for_leader_timeout` | – | used by the engine's commit path and [`ready`](cairn_consensus::Consensus::ready) |
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Peers (base58 ids) forming the initial membership; empty = this peer alone.
    pub init_peerset: Vec<String>,
    /// How long [`ready`](cairn_consensus::Consensus::ready) and commits wait for a leader.
    pub wait_for_leader_timeout: Duration,
    /// Bound of every call to another peer (and of one commit attempt).
    pub network_timeout: Duration,
    /// How many times a failed commit is retried.
    pub commit_retries: u32,
    /// Pause between commit retries.
    pub commit_retry_delay: Duration,
    /// hashicorp's follower timeout before campaigning.
    pub heartbeat_timeout: Duration,
    /// hashicorp's candidate timeout before a new election.
    pub election_timeout: Duration,
    /// hashicorp's idle-commit heartbeat (no openraft counterpart; kept for the config file).
    pub commit_timeout: Duration,
    /// Entries per AppendEntries RPC.
    pub max_append_entries: u64,
    /// Entries kept in the log after a snapshot.
    pub trailing_logs: u64,
    /// How often the snapshot threshold is re-checked by a timer.
    pub snapshot_interval: Duration,
    /// Entries since the last snapshot that trigger a new one.
    pub snapshot_threshold: u64,
    /// hashicorp's leader lease (no openraft counterpart; kept for the config file).
    pub leader_lease_timeout: Duration,
    /// Where snapshot files live; `None` = `raft-snapshots/` next to the pinset file.
    pub data_folder: Option<PathBuf>,
    /// Whether `cluster.secret` is set. Raft trusts every peer that can connect, so without a
    /// secret anyone able to reach the swarm port could rewrite the pinset.
    pub secret_present: bool,
}

impl Default for RaftSettings {
    /// IPFS Cluster's defaults, with `secret_present: false` (the caller must say it is set).
    fn default() -> Self {
        RaftSettings {
            init_peerset: Vec::new(),
            wait_for_leader_timeout: Duration::from_secs(15),
            network_timeout: Duration::from_secs(10),
            commit_retries: 1,
            commit_retry_delay: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(1),
            election_timeout: Duration::from_secs(1),
            commit_timeout: Duration::from_millis(50),
            max_append_entries: 64,
            trailing_logs: 10240,
            snapshot_interval: Duration::from_secs(120),
            snapshot_threshold: 8192,
            leader_lease_timeout: Duration::from_millis(500),
            data_folder: None,
            secret_present: false,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RaftSettings {
    /// The openraft configuration these settings map to (see the table on [`RaftSettings`]),
    /// validated by openraft.
    pub fn openraft_config(&self) -> Result<Config, Box<openraft::ConfigError>> {
        let election_min = millis(self.heartbeat_timeout.max(self.election_timeout)).max(50);
        let heartbeat = (millis(self.heartbeat_timeout) / 4).clamp(10, election_min / 3);
        Config {
            cluster_name: "cairn".into(),
            election_timeout_min: election_min,
            election_timeout_max: election_min.saturating_mul(2),
            heartbeat_interval: heartbeat,
            install_snapshot_timeout: millis(self.network_timeout).max(1),
            max_payload_entries: self.max_append_entries.max(1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_threshold.max(1)),
            max_in_snapshot_log_to_keep: self.trailing_logs,
            // Chunks travel inside one peer RPC message; 1 MiB keeps each well under message
            // limits while a 300 MB snapshot still needs only a few hundred calls.
            snapshot_max_chunk_size: 1024 * 1024,
            ..Config::default()
        }
        .validate()
        .map_err(Box::new)
    }
}
