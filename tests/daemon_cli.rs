//! `cairn daemon`, run as a separate process: bad configs, the folder lock, readiness,
//! clean shutdown, SIGHUP reload. Every wait is bounded; children are killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Long enough for a first plugin compile on a loaded 2-core machine.
const START: Duration = Duration::from_secs(120);
const STOP: Duration = Duration::from_secs(20);

fn cairn(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("--config").arg(dir).env("CAIRN_LOG", "info").env("NO_COLOR", "1").env_remove("CAIRN_PATH");
    for var in ["CLUSTER_SECRET", "CLUSTER_SECRET_FILE", "CLUSTER_PEERNAME"] {
        cmd.env_remove(var);
    }
    cmd
}

/// A compile cache shared by the tests, so only the first daemon compiles the plugins.
fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cairn-daemon-test-plugin-cache")
}

/// `cairn init` in a fresh folder, with the shared plugin cache.
fn init(tmp: &Path, args: &[&str]) -> PathBuf {
    let dir = tmp.join("cfg");
    let out = cairn(&dir).arg("init").args(args).output().expect("run init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    edit(&dir, |v| v["plugins"]["cache_folder"] = shared_cache().to_string_lossy().into_owned().into());
    dir
}

fn edit(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("service.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("serialize")).expect("write");
}

/// A running daemon: killed when dropped, stderr lines on a channel.
struct Daemon {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let mut child = cairn(dir).arg("daemon").stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn");
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
    fn wait_for(&mut self, parts: &[&str], within: Duration) -> String {
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

    fn log(&self) -> String {
        self.seen.join("\n")
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{name}");
    }

    /// Wait for exit, bounded.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
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
fn run_failing(dir: &Path) -> String {
    let mut d = Daemon::start(dir);
    let status = d.wait_exit(START);
    assert!(!status.success(), "daemon should have failed:\n{}", d.log());
    d.log()
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read")))
        .collect();
    files.sort();
    files
}

#[test]
fn malformed_service_json_stops_the_daemon_naming_file_and_key_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let good = std::fs::read_to_string(dir.join("service.json")).expect("read");
    let secret = serde_json::from_str::<serde_json::Value>(&good).expect("json")["cluster"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("bad JSON", good.replacen('{', "{,", 1), vec!["service.json: invalid JSON", "line 1 column 2"]),
        (
            "wrong type",
            good.replacen("\"replication_factor_min\": -1", "\"replication_factor_min\": \"one\"", 1),
            vec!["service.json: cluster.replication_factor_min: invalid type", "line "],
        ),
        (
            "short secret",
            good.replacen(&secret, &secret[..62], 1),
            vec!["service.json: cluster.secret: input secret is 31 bytes, cluster secret should be 32"],
        ),
        (
            "unknown consensus",
            good.replacen("\"crdt\": {", "\"paxos\": {", 1),
            vec!["service.json: consensus: no known consensus configured (found: paxos)"],
        ),
    ];
    for (name, text, expected) in cases {
        assert_ne!(text, good, "{name}: the edit applied");
        std::fs::write(dir.join("service.json"), &text).expect("write");
        let before = snapshot(&dir);
        let log = run_failing(&dir);
        for part in expected {
            assert!(log.contains(part), "{name}: expected {part:?} in:\n{log}");
        }
        assert_eq!(snapshot(&dir), before, "{name}: files changed");
    }
}

#[test]
fn raft_with_an_empty_secret_is_refused_and_crdt_warns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &["--consensus", "raft"]);
    edit(&dir, |v| v["cluster"]["secret"] = "".into());
    let log = run_failing(&dir);
    assert!(log.contains("cluster.secret: is empty, and raft mode requires a secret"), "{log}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    edit(&dir, |v| v["cluster"]["secret"] = "".into());
    let mut d = Daemon::start(&dir);
    d.wait_for(&["cluster.secret is EMPTY", "UNPROTECTED"], START);
    d.wait_for(&["cairn daemon ready"], START);
}

#[test]
fn daemon_starts_refuses_a_second_one_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let mut first = Daemon::start(&dir);
    let ready = first.wait_for(&["cairn daemon ready"], START);
    assert!(ready.contains("peer_id=12D3KooW") && ready.contains("decision_points=8"), "{ready}");

    let log = run_failing(&dir);
    assert!(log.contains("another cairn daemon is already running"), "{log}");

    first.signal("TERM");
    let status = first.wait_exit(STOP);
    assert!(status.success(), "exit {status:?}:\n{}", first.log());
    assert!(first.log().contains("cairn daemon stopped"), "{}", first.log());

    // The lock goes with the process: a new daemon starts.
    let mut again = Daemon::start(&dir);
    again.wait_for(&["cairn daemon ready"], START);
    again.signal("INT");
    assert!(again.wait_exit(STOP).success(), "{}", again.log());
}

#[test]
fn sighup_reloads_a_changed_plugin_config_and_keeps_the_old_plugin_on_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let mut d = Daemon::start(&dir);
    let loaded = d.wait_for(&["decision point loaded", "point=api.restapi.authorizer_plugin"], START);
    d.wait_for(&["cairn daemon ready"], START);
    let config_of =
        |line: &str| line.split("config=").nth(1).and_then(|s| s.split_whitespace().next()).map(String::from);
    let before = config_of(&loaded).expect("config fingerprint");

    // A changed config for the default authorizer (IPFS Cluster's own key).
    edit(&dir, |v| v["api"]["restapi"]["basic_auth_credentials"] = serde_json::json!({"admin": "pw"}));
    d.signal("HUP");
    let reloaded = d.wait_for(&["decision point reloaded", "point=api.restapi.authorizer_plugin"], START);
    let after = config_of(&reloaded).expect("config fingerprint");
    assert_ne!(before, after, "the new config is active:\n{}", d.log());
    d.wait_for(&["reload finished", "failed=0"], START);

    // A plugin that refuses its config: the old one stays.
    edit(&dir, |v| {
        v["api"]["restapi"]["authorizer_plugin"] =
            serde_json::json!({"plugin": "builtin:basic-auth", "config": {"basic_auth_credentials": {}}})
    });
    d.signal("HUP");
    d.wait_for(
        &["decision point reload failed, keeping the active plugin", "point=api.restapi.authorizer_plugin"],
        START,
    );
    d.wait_for(&["reload finished", "failed=1"], START);

    // A config that does not load: nothing changes, the daemon keeps running.
    std::fs::write(dir.join("service.json"), "{ not json").expect("write");
    d.signal("HUP");
    d.wait_for(&["reload refused, keeping the active plugins", "service.json: invalid JSON"], START);

    d.signal("TERM");
    assert!(d.wait_exit(STOP).success(), "{}", d.log());
}
