//! A real IPFS daemon for integration tests (feature `test-daemon`): js-ipfs 0.66.1 from the
//! harness in `tests/ipfs/`, isolated on loopback, one temporary repo per daemon.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_ipfs::IpfsConnector;
//! let daemon = cairn_ipfs::testing::IpfsDaemon::start().await?;
//! let ipfs = daemon.connector();
//! assert_eq!(ipfs.id().await?.peer_id, daemon.peer_id());
//! # Ok(()) }
//! ```
//!
//! The js-ipfs install (3–4 minutes the first time) is found through `CAIRN_JSIPFS_DIR` (a folder
//! holding `node_modules/ipfs`) or made by `tests/ipfs/install.sh`, which caches it under
//! `~/.cache/cairn-jsipfs/` and reuses it. A daemon that cannot start is an error, never a skip.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::{IpfsConnector, IpfsHttp, IpfsHttpConfig};

/// How long a start may take (measured: ~7 s with init, ~4 s after; CI shares 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the js-ipfs install may take (measured: 3.5 min cold, 2 min with a warm npm cache).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long a stopping daemon gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Port picks that may collide with another process before start gives up.
const START_ATTEMPTS: usize = 3;

/// Why a test daemon could not be provided.
#[derive(Debug, thiserror::Error)]
#[error("test IPFS daemon: {0}")]
pub struct DaemonError(String);

/// A running js-ipfs daemon; killed and its repo removed on drop.
pub struct IpfsDaemon {
    dir: tempfile::TempDir,
    api_port: u16,
    swarm_port: u16,
    peer_id: String,
    child: Option<Child>,
}

impl IpfsDaemon {
    /// Installs js-ipfs if needed, starts a daemon on free loopback ports and waits until its API answers.
    pub async fn start() -> Result<IpfsDaemon, DaemonError> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-ipfs-daemon-")
            .tempdir()
            .map_err(|e| DaemonError(format!("cannot create a temporary folder: {e}")))?;
        let mut daemon = IpfsDaemon { dir, api_port: 0, swarm_port: 0, peer_id: String::new(), child: None };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            (daemon.api_port, daemon.swarm_port) = free_port_pair()?;
            match daemon.launch().await {
                Ok(()) => return Ok(daemon),
                // Another process may have taken a port between our probe and the daemon's bind.
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| DaemonError("no start attempt was made".to_owned())))
    }

    /// The RPC API, `/ip4/127.0.0.1/tcp/<port>`.
    pub fn api_multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.api_port)
    }

    /// The swarm address other daemons dial, `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>`.
    pub fn swarm_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.swarm_port, self.peer_id)
    }

    /// The daemon's libp2p peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The daemon's repo folder (inside the temporary folder).
    pub fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The default connector config pointed at this daemon.
    pub fn connector_config(&self) -> IpfsHttpConfig {
        IpfsHttpConfig::with_address(self.api_multiaddr())
    }

    /// A connector with the default config pointed at this daemon.
    pub fn connector(&self) -> IpfsHttp {
        // The address is ours and well formed, so the only failure would be a bug in this module.
        IpfsHttp::new(self.connector_config()).expect("the test daemon's address is a valid config")
    }

    /// The daemon's output so far (start.sh, init and the daemon itself).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// True while the daemon process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 10 s), keeping its repo for [`Self::start_again`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        signal_group(&child, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal_group(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// Starts the daemon again on the same repo and ports (after [`Self::stop`]).
    pub async fn start_again(&mut self) -> Result<(), DaemonError> {
        if self.is_running() {
            return Err(DaemonError("start_again: the daemon is still running; stop it first".to_owned()));
        }
        let peer_id = std::mem::take(&mut self.peer_id);
        self.launch().await?;
        if self.peer_id != peer_id {
            return Err(DaemonError(format!("restarted daemon has peer id {}, expected {peer_id}", self.peer_id)));
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Runs start.sh and waits until `id` answers.
    async fn launch(&mut self) -> Result<(), DaemonError> {
        let jsipfs = jsipfs_dir().await?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| DaemonError(format!("cannot open the daemon log: {e}")))?;
        let log_err = log.try_clone().map_err(|e| DaemonError(format!("cannot open the daemon log: {e}")))?;
        let script = harness_dir().join("start.sh");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg(self.repo_path())
            .arg(self.api_port.to_string())
            .arg(self.swarm_port.to_string())
            .env("CAIRN_JSIPFS_DIR", &jsipfs)
            .env("CAIRN_JSIPFS_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Its own process group, so stop/drop can signal the daemon and anything it spawned.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|e| DaemonError(format!("cannot run {}: {e}", script.display())))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(DaemonError(format!("daemon exited during start ({status}); log:\n{}", self.log_tail())));
            }
            // A fresh client per probe: a shared one would throttle to 1/s after 10 refusals.
            let probe = IpfsHttpConfig { ipfs_request_timeout: Duration::from_secs(5), ..self.connector_config() };
            if let Ok(client) = IpfsHttp::new(probe)
                && let Ok(id) = client.id().await
            {
                self.peer_id = id.peer_id;
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop().await;
                return Err(DaemonError(format!(
                    "daemon did not answer within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for IpfsDaemon {
    fn drop(&mut self) {
        // No graceful stop here (Drop cannot await); start.sh clears the lock a kill leaves behind.
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to the child's process group.
fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Two distinct free loopback ports (probed by binding port 0; the daemon binds them moments later).
fn free_port_pair() -> Result<(u16, u16), DaemonError> {
    let bind =
        || TcpListener::bind(("127.0.0.1", 0)).map_err(|e| DaemonError(format!("cannot probe a free port: {e}")));
    let (a, b) = (bind()?, bind()?);
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| DaemonError(e.to_string()));
    Ok((port(&a)?, port(&b)?))
}

/// `tests/ipfs/` of this repository.
fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ipfs")
}

/// The folder holding js-ipfs's node_modules (and the other npm tools of tests/ipfs):
/// `$CAIRN_JSIPFS_DIR`, else install.sh's cache.
pub async fn jsipfs_dir() -> Result<PathBuf, DaemonError> {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_try_init(|| async {
        let dir = match std::env::var_os("CAIRN_JSIPFS_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => run_install().await?,
        };
        if !dir.join("node_modules/ipfs/src/cli.js").is_file() {
            return Err(DaemonError(format!("no js-ipfs in {} (node_modules/ipfs/src/cli.js)", dir.display())));
        }
        Ok(dir)
    })
    .await
    .cloned()
}

/// Runs install.sh (its progress goes to the test's stderr) and returns the path it prints.
async fn run_install() -> Result<PathBuf, DaemonError> {
    let script = harness_dir().join("install.sh");
    let mut command = tokio::process::Command::new("bash");
    command.arg(&script).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    let child = command.spawn().map_err(|e| DaemonError(format!("cannot run {}: {e}", script.display())))?;
    let output = tokio::time::timeout(INSTALL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| DaemonError(format!("{} did not finish within {INSTALL_TIMEOUT:?}", script.display())))?
        .map_err(|e| DaemonError(format!("{}: {e}", script.display())))?;
    if !output.status.success() {
        return Err(DaemonError(format!("{} failed ({})", script.display(), output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim).unwrap_or_default();
    if dir.is_empty() {
        return Err(DaemonError(format!("{} printed no install path", script.display())));
    }
    Ok(PathBuf::from(dir))
}
