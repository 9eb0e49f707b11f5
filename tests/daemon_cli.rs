//! `cairn daemon`, run as a separate process: bad configs, the folder lock, readiness,
//! clean shutdown, SIGHUP reload. Every wait is bounded; children are killed on drop.

mod common;

use std::path::Path;

use common::*;

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
            serde_json::json!({"plugin": "builtin:basic-auth", "config": {"token_lifetime": "soon"}})
    });
    d.signal("HUP");
    d.wait_for(
        &["decision point reload failed, keeping the active plugin", "point=api.restapi.authorizer_plugin"],
        START,
    );
    d.wait_for(&["reload finished", "failed=1"], START);

    // The section and the explicit config disagree about the credentials: refused, naming both.
    edit(&dir, |v| {
        v["api"]["restapi"]["authorizer_plugin"] = serde_json::json!({"plugin": "builtin:basic-auth",
            "config": {"basic_auth_credentials": {"admin": "other"}}})
    });
    d.signal("HUP");
    d.wait_for(
        &[
            "reload refused, keeping the active plugins",
            "api.restapi.authorizer_plugin.config.basic_auth_credentials",
            "conflicts with api.restapi.basic_auth_credentials",
        ],
        START,
    );

    // A config that does not load: nothing changes, the daemon keeps running.
    std::fs::write(dir.join("service.json"), "{ not json").expect("write");
    d.signal("HUP");
    d.wait_for(&["reload refused, keeping the active plugins", "service.json: invalid JSON"], START);

    d.signal("TERM");
    assert!(d.wait_exit(STOP).success(), "{}", d.log());
}

#[test]
fn daemon_init_creates_the_config_on_first_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("fresh");
    // The environment override keeps the test off the default port (and off 0.0.0.0).
    let mut cmd = cairn(&dir);
    cmd.args(["daemon", "--init"]).env("CLUSTER_LISTENMULTIADDRESS", "/ip4/127.0.0.1/tcp/0");
    let mut daemon = Daemon::spawn(cmd);
    let ready = daemon.wait_for(&["cairn daemon ready"], START);
    assert!(ready.contains("listen=/ip4/127.0.0.1/tcp/"), "{ready}");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(STOP).success(), "{}", daemon.log());
    assert!(dir.join("service.json").is_file() && dir.join("identity.json").is_file());
}

#[test]
fn a_closed_log_pipe_does_not_take_the_daemon_down() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = init(tmp.path(), &[]);
    let mut child = cairn(&dir)
        .arg("daemon")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut log = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    log.read_line(&mut first).expect("a first log line");
    drop(log); // the logger goes away; the daemon keeps logging into a closed pipe
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(matches!(child.try_wait(), Ok(None)), "the daemon died when its log pipe closed");
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + STOP;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not stop on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
