//! `cairn plugin test` and `cairn plugin bench` against the default plugins, run as a
//! separate process.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `cairn` and return its exit code and its stdout and stderr.
fn cairn(args: &[&str]) -> (Option<i32>, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).env("CAIRN_LOG", "warn").output().expect("run cairn");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write a cases file into `dir`.
fn cases_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write cases file");
    path
}

fn test(plugin: &str, cases: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["plugin", "test", plugin, cases.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    cairn(&args)
}

const BASIC_AUTH: &str = r#"
[config]
basic_auth_credentials = { alice = "secret" }

[[case]]
name = "alice may list pins"
[case.request]
path = "/pins"
credentials = { basic = { user = "alice", password = "secret" } }
[case.expect]
allow = "alice"

[[case]]
name = "no credentials"
request = { method = "POST", path = "/pins/bafy" }
expect = { deny = 401, reason = "no auth provided", headers = { www-authenticate = 'Basic realm="Restricted IPFS Cluster API"' } }

[[case]]
name = "health is open"
request = { path = "/health" }
expect = { allow = "*" }

[[case]]
name = "token for alice"
token = { credentials = { basic = { user = "alice", password = "secret" } } }
expect = { token = true }

[[case]]
name = "open when unconfigured"
config = {}
request = { path = "/pins" }
expect = { allow = "*" }
"#;

#[test]
fn passing_authorizer_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases_file(&dir, "auth.toml", BASIC_AUTH);
    let (code, out, err) = test("builtin:basic-auth", &cases, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l == "5 passed, 0 failed"), "{out}");
    assert!(out.contains("alice may list pins") && out.contains("allow alice"), "{out}");

    let peers = cases_file(
        &dir,
        "peers.toml",
        r#"
        config = { trusted_peers = ["12D3KooWTrusted"] }
        [[case]]
        name = "trusted peer writes"
        peer = { peer_id = "12D3KooWTrusted", action = "pinset-write" }
        expect = { allow = true }
        [[case]]
        name = "stranger may ask the id"
        peer = { peer_id = "12D3KooWStranger", action = "id" }
        expect = { allow = true }
        [[case]]
        name = "stranger may not pin"
        peer = { peer_id = "12D3KooWStranger", action = "Cluster.Pin" }
        expect = { deny = true, reason = "not trusted" }
        "#,
    );
    let (code, out, err) = test("builtin:trusted-peers", &peers, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l == "3 passed, 0 failed"), "{out}");
}

const CORS: &str = r#"
[config]
cors_allowed_origins = ["https://app.example"]
cors_allowed_methods = ["GET", "POST"]

[[case]]
name = "allowed preflight"
preflight = { origin = "https://app.example", method = "POST", headers = ["content-type"] }
[case.expect.headers]
vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
access-control-allow-origin = "https://app.example"
access-control-allow-methods = "POST"
access-control-allow-headers = "content-type"

[[case]]
name = "other origin gets only vary"
actual = { origin = "https://evil.example" }
expect = { headers = { vary = "Origin" } }
"#;

#[test]
fn passing_cors_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases_file(&dir, "cors.toml", CORS);
    let (code, out, err) = test("builtin:cors-config", &cases, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l == "2 passed, 0 failed"), "{out}");
}

const BALANCED: &str = r#"
[[case]]
name = "spreads over groups"
[case.allocate]
replication_min = 2
candidates = [
  { peer = "a1", metrics = [{ name = "tag:group", value = "a", partitionable = true }, { name = "freespace", value = "100", weight = 100 }] },
  { peer = "a2", metrics = [{ name = "tag:group", value = "a", partitionable = true }, { name = "freespace", value = "400", weight = 400 }] },
  { peer = "b1", metrics = [{ name = "tag:group", value = "b", partitionable = true }, { name = "freespace", value = "300", weight = 300 }] },
]
[case.expect]
peers = ["a2", "b1"]

[[case]]
name = "not enough peers"
allocate = { replication_min = 3, candidates = [{ peer = "a1", metrics = [{ name = "tag:group", value = "a" }, { name = "freespace", value = "1", weight = 1 }] }] }
expect = { error = "not enough peers" }
"#;

#[test]
fn passing_allocator_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases_file(&dir, "alloc.toml", BALANCED);
    let (code, out, err) = test("builtin:balanced", &cases, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l == "2 passed, 0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = BASIC_AUTH.replace("allow = \"alice\"", "allow = \"bob\"");
    let cases = cases_file(&dir, "wrong.toml", &wrong);
    let (code, out, err) = test("builtin:basic-auth", &cases, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.lines().any(|l| l == "4 passed, 1 failed"), "{out}");
    let row = out.lines().find(|l| l.contains("alice may list pins")).expect("row of the failed case");
    assert!(row.starts_with("FAIL") && row.contains("allow bob") && row.contains("allow alice"), "{out}");
}

#[test]
fn a_case_for_another_kind_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases_file(&dir, "cors.toml", CORS);
    let (code, out, err) = test("builtin:basic-auth", &cases, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("not run: [case.preflight] needs a cors plugin; builtin:basic-auth is an authorizer plugin"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "0 passed, 2 failed"), "{out}");
}

#[test]
fn json_output_has_the_counts_and_every_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = BASIC_AUTH.replace("deny = 401", "deny = 403");
    let cases = cases_file(&dir, "wrong.toml", &wrong);
    let (code, out, err) = test("builtin:basic-auth", &cases, &["--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(report["plugin"], "builtin:basic-auth");
    assert_eq!(report["passed"], 4);
    assert_eq!(report["failed"], 1);
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    let failed: Vec<&serde_json::Value> = cases.iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "no credentials");
    assert!(failed[0]["expected"].as_str().expect("expected").starts_with("deny 403"), "{out}");
    assert!(failed[0]["got"].as_str().expect("got").starts_with("deny 401"), "{out}");
    assert!(failed[0]["micros"].is_u64(), "{out}");
}

#[test]
fn unloadable_files_and_plugins_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = cases_file(&dir, "broken.toml", "[[case]\nname = \"x\"\n");
    let (code, out, err) = test("builtin:basic-auth", &broken, &[]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("broken.toml") && err.contains("line 1"), "{err}");

    let typo = cases_file(
        &dir,
        "typo.toml",
        "[[case]]\nname = \"x\"\nrequest = { pth = \"/\" }\nexpect = { allow = \"*\" }\n",
    );
    let (code, _, err) = test("builtin:basic-auth", &typo, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("typo.toml") && err.contains("line 3") && err.contains("pth"), "{err}");

    let (code, _, err) = test("builtin:basic-auth", &dir.path().join("missing.toml"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read cases file") && err.contains("missing.toml"), "{err}");

    let cases = cases_file(&dir, "auth.toml", BASIC_AUTH);
    let (code, _, err) = test("builtin:nope", &cases, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown builtin plugin `nope`"), "{err}");
}

#[test]
fn bench_prints_percentiles_per_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases_file(&dir, "cors.toml", CORS);
    let (code, out, err) =
        cairn(&["plugin", "bench", "builtin:cors-config", cases.to_str().expect("utf-8 path"), "--iterations", "50"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("case") && l.contains("p50") && l.contains("p99")), "{out}");
    for name in ["allowed preflight", "other origin gets only vary"] {
        let row = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row for {name}: {out}"));
        // p50 and p99 as durations, e.g. `12.3µs  20.1µs`.
        let times: Vec<&str> = row[name.len()..].split_whitespace().collect();
        assert_eq!(times.len(), 2, "{row}");
        assert!(times.iter().all(|t| t.starts_with(|c: char| c.is_ascii_digit()) && t.ends_with('s')), "{row}");
    }
    assert!(out.contains("50 timed calls each"), "{out}");
}
