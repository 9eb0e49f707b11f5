//! Helpers for the tests that run `cairn` processes: config folders from `cairn init`
//! (listening on 127.0.0.1, never the default ports), daemons killed on drop, bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Long enough for a first plugin compile on a loaded 2-core machine.
pub const START: Duration = Duration::from_secs(120);
pub const STOP: Duration = Duration::from_secs(20);

/// The `cairn` binary under test: this build's, or `CAIRN_TEST_BINARY` (to run a suite against
/// another build, e.g. one from before a fix, to see its tests fail there).
pub fn cairn_binary() -> PathBuf {
    std::env::var_os("CAIRN_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cairn")))
}

pub fn cairn(dir: &Path) -> Command {
    let mut cmd = Command::new(cairn_binary());
    cmd.arg("--config").arg(dir).env("CAIRN_LOG", "info").env("NO_COLOR", "1").env_remove("CAIRN_PATH");
    for var in ["CLUSTER_SECRET", "CLUSTER_SECRET_FILE", "CLUSTER_PEERNAME"] {
        cmd.env_remove(var);
    }
    cmd
}

/// A compile cache shared by the tests, so only the first daemon compiles the plugins.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cairn-daemon-test-plugin-cache")
}

/// `cairn init` in a fresh folder, with the shared plugin cache.
pub fn init(tmp: &Path, args: &[&str]) -> PathBuf {
    init_named(tmp, "cfg", args)
}

/// `cairn init` in `tmp/<name>`; the swarm listens on a free 127.0.0.1 port.
pub fn init_named(tmp: &Path, name: &str, args: &[&str]) -> PathBuf {
    let dir = tmp.join(name);
    let out = cairn(&dir).arg("init").args(args).output().expect("run init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    edit(&dir, |v| {
        v["plugins"]["cache_folder"] = shared_cache().to_string_lossy().into_owned().into();
        v["cluster"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
        // Never the default ports: the REST API on a free port, and an IPFS daemon address
        // where nothing listens (tests that need IPFS start one and set it).
        for api in ["restapi", "pinsvcapi"] {
            if v["api"].get(api).is_some() {
                v["api"][api]["http_listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
            }
        }
        if v["api"].get("ipfsproxy").is_some() {
            v["api"]["ipfsproxy"]["listen_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
            v["api"]["ipfsproxy"]["node_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
        }
        if v["ipfs_connector"].get("ipfshttp").is_some() {
            v["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = format!("/ip4/127.0.0.1/tcp/{}", free_port()).into();
        }
    });
    dir
}

pub fn edit(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("service.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("serialize")).expect("write");
}

/// A running daemon: killed when dropped, stderr lines on a channel.
pub struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        let mut cmd = cairn(dir);
        cmd.arg("daemon");
        Daemon::spawn(cmd)
    }

    /// Start `cmd` (a `cairn ... daemon` command) and collect its log.
    pub fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines, seen: Vec::new() }
    }

    /// Wait for a line containing all of `parts`; panics with the log so far on timeout.
    pub fn wait_for(&mut self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no line with {parts:?} within {within:?}:\n{}", self.log()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("daemon exited before a line with {parts:?}:\n{}", self.log())
                }
            }
        }
    }

    /// Whether the process is still the one started (it has not exited).
    pub fn child_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        self.seen.join("\n")
    }

    /// The log so far, including lines not yet waited for (does not block).
    pub fn drain_log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.log()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{name}");
    }

    /// Wait for exit, bounded.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect the rest of the log.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a daemon that is expected to fail at once; returns its output.
/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Run `cairn --config <dir> <args>`; returns success, stdout and stderr.
pub fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = cairn(dir).args(args).env("CAIRN_LOG", "warn").output().expect("run cairn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Resident memory of a process in bytes (`VmRSS` of /proc/<pid>/status); `None` once it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
