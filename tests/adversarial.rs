//! Issue #14's adversarial suite: a real peer (Basic auth on the REST API, the Pinning Service
//! API and the IPFS proxy; the proxy and the IPFS connector in front of a recording fake IPFS
//! daemon; Prometheus on) gets each class of hostile input. After every case the peer must still
//! answer `GET /id` with credentials; the recording daemon must never see a forwarded request
//! without credentials, nor any of the unauthenticated cases.
//!
//! Malformed requests go over raw `std::net::TcpStream`s so every byte is the test's. Every wait,
//! loop and body is bounded; daemons are killed and temp folders removed on drop.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use serde_json::{Value, json};

/// A CID the peer can pin (the fake IPFS daemon answers anything).
const CID: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
/// The header that marks a request the test sends without credentials; the fake IPFS daemon
/// must never see it.
const UNAUTH_MARK: &str = "x-adversarial-unauthenticated";
/// Bound of one raw exchange.
const IO: Duration = Duration::from_secs(30);
/// `read_header_timeout` of the API sections in this suite (the metrics endpoint keeps 5s).
const HEADER_TIMEOUT_SECS: u64 = 2;
/// A slowloris is given this long to be cut off by the server.
const SLOWLORIS_BOUND: Duration = Duration::from_secs(15);
/// What a boundary-less add body may stream at most, and the RSS growth allowed meanwhile.
const ENDLESS_BODY: u64 = 512 * 1024 * 1024;
const RSS_BOUND: u64 = 128 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The recording fake IPFS daemon.

/// One request the fake IPFS daemon received: method, target and headers (names lower-cased).
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The proxy adds `X-Forwarded-For` to what it forwards; the connector's own calls and the
    /// proxy's header probe carry none.
    fn forwarded(&self) -> bool {
        self.header("x-forwarded-for").is_some()
    }
}

/// A fake Kubo RPC API on 127.0.0.1 that records every request and answers plausibly: enough
/// for the connector's start-up calls (`id`, `version`, `pin/ls`, `repo/stat`), `{}` otherwise.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start(ipfs_id: String) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake IPFS daemon");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (kept, id) = (kept.clone(), ipfs_id.clone());
                std::thread::spawn(move || serve_upstream(stream, &kept, &id));
            }
        });
        Upstream { port, seen, stop }
    }

    fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so its thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One connection of the fake daemon: requests until the client closes (keep-alive), each
/// recorded before its body is read.
fn serve_upstream(stream: TcpStream, kept: &Mutex<Vec<Seen>>, ipfs_id: &str) {
    let _ = stream.set_read_timeout(Some(IO));
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        let mut head_bytes = line.len();
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(n) => head_bytes += n,
            }
            if h == "\r\n" || h == "\n" || head_bytes > 1024 * 1024 {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let seen = Seen { method, target, headers };
        kept.lock().expect("lock").push(seen.clone());
        if !skip_body(&mut reader, &seen) {
            return;
        }
        let path = seen.target.split('?').next().unwrap_or("");
        let body = match path {
            "/api/v0/id" => json!({"ID": ipfs_id, "Addresses": [], "AgentVersion": "kubo/0.30.0/fake"}).to_string(),
            "/api/v0/version" => json!({"Version": "0.30.0", "Commit": "", "Repo": "16"}).to_string(),
            "/api/v0/repo/stat" => {
                json!({"RepoSize": 1000, "StorageMax": 100_000_000_000u64, "NumObjects": 1}).to_string()
            }
            // An empty NDJSON stream: nothing pinned.
            "/api/v0/pin/ls" => String::new(),
            "/api/v0/swarm/peers" => json!({"Peers": []}).to_string(),
            _ => "{}".to_string(),
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads and drops a request body (Content-Length or chunked); false when the connection is
/// unusable.
fn skip_body(reader: &mut BufReader<TcpStream>, seen: &Seen) -> bool {
    if seen.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(n) = u64::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else { return false };
            if n == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).unwrap_or(0) == 0 {
                        return false;
                    }
                    if t == "\r\n" || t == "\n" {
                        return true;
                    }
                }
            }
            if std::io::copy(&mut reader.by_ref().take(n.saturating_add(2)), &mut std::io::sink()).is_err() {
                return false;
            }
        }
    }
    let length: u64 = seen.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink()).map(|n| n == length).unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

/// An HTTP answer: status, head (as text), body (de-chunked) and trailers (as text).
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    trailers: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// An error status, or a streamed answer that ended with an error (`X-Stream-Error`, as
    /// IPFS Cluster reports a failure after the 200).
    fn failed(&self) -> bool {
        let stream_error = self.trailers.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(n, v)| n.trim().eq_ignore_ascii_case("x-stream-error") && !v.trim().is_empty())
        });
        self.status >= 400 || stream_error
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.text();
        let cut: String = body.chars().take(600).collect();
        write!(f, "{}\n\n{cut}\n{}", self.head, self.trailers)
    }
}

/// Parses what a server sent; `None` when there is no complete status line.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(raw.get(..end)?).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let rest = raw.get(end + 4..)?;
    let mut answer = Answer { status, head, body: Vec::new(), trailers: String::new() };
    let chunked = answer.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    if chunked {
        (answer.body, answer.trailers) = dechunk(rest);
    } else {
        answer.body = rest.to_vec();
    }
    Some(answer)
}

/// A chunked body's data and its trailers.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, String) {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else { break };
        let data = &rest[eol + 2..];
        if n == 0 {
            return (out, String::from_utf8_lossy(data).trim().to_string());
        }
        if data.len() < n {
            out.extend_from_slice(data);
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data.get(n + 2..).unwrap_or(&[]);
    }
    (out, String::new())
}

/// Sends `request` as it is and reads until the server closes (every request here says
/// `Connection: close`). `None` when the server closed without an answer.
fn exchange(port: u16, request: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(IO)).expect("timeout");
    stream.set_write_timeout(Some(IO)).expect("timeout");
    // A server may answer and close before it read everything (a limit): keep what it said.
    let _ = stream.write_all(request);
    read_answer(&mut stream)
}

/// Everything the server sends until it closes; a reset after an answer keeps the answer.
fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + IO;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(!raw.is_empty(), "no answer and no close within {IO:?}");
                break;
            }
            Err(_) => break,
        }
        assert!(Instant::now() < deadline, "the answer did not end within {IO:?}");
    }
    parse_answer(&raw)
}

/// An HTTP/1.1 request closing its connection, with a Content-Length when there is a body.
fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// HMAC-SHA256 (RFC 2104), for the test's own JWTs.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// An HS256 JWT `{"iss": user}` signed with `key`.
fn jwt(user: &str, key: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"iss": user}).to_string());
    let signing = format!("{header}.{claims}");
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(key.as_bytes(), signing.as_bytes()));
    format!("{signing}.{signature}")
}

// ---------------------------------------------------------------------------------------------
// The peer under attack.

struct Peer {
    daemon: Daemon,
    upstream: Upstream,
    id: String,
    rest: u16,
    pinsvc: u16,
    proxy: u16,
    metrics: u16,
    auth: String,
    // Last: removed after the daemon is killed.
    _tmp: tempfile::TempDir,
}

fn port_of(multiaddr: &Value) -> u16 {
    let text = multiaddr.as_str().expect("one address");
    text.rsplit('/').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {text}"))
}

fn identity(dir: &Path) -> String {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).expect("read")).expect("json");
    v["id"].as_str().expect("id").to_string()
}

impl Peer {
    /// A peer with `admin:pw` on every API (plus `extra` users), its proxy and connector on a
    /// recording fake IPFS daemon, Prometheus on a free port, short header timeouts.
    fn start(extra_users: Value) -> Peer {
        let tmp = tempfile::tempdir().expect("tempdir");
        // The fake IPFS daemon's peer id: a real one, from a second config.
        let ipfs_id = identity(&init_named(tmp.path(), "ipfs-identity", &[]));
        let upstream = Upstream::start(ipfs_id);
        let dir = init(tmp.path(), &[]);
        let metrics = free_port();
        let mut users = json!({"admin": "pw"});
        if let (Some(all), Some(more)) = (users.as_object_mut(), extra_users.as_object()) {
            all.extend(more.clone());
        }
        edit(&dir, |v| {
            for api in ["restapi", "pinsvcapi", "ipfsproxy"] {
                v["api"][api]["basic_auth_credentials"] = users.clone();
                v["api"][api]["read_header_timeout"] = format!("{HEADER_TIMEOUT_SECS}s").into();
            }
            v["api"]["ipfsproxy"]["node_multiaddress"] = upstream.multiaddr().into();
            v["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = upstream.multiaddr().into();
            v["observations"]["metrics"]["prometheus_endpoint"] = format!("/ip4/127.0.0.1/tcp/{metrics}").into();
        });
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).expect("read")).expect("json");
        let started = Instant::now();
        let mut daemon = Daemon::spawn({
            let mut cmd = cairn(&dir);
            cmd.args(["daemon", "--stats"]);
            cmd
        });
        daemon.wait_for(&["cairn daemon ready"], START);
        eprintln!("peer ready in {:?}", started.elapsed());
        Peer {
            daemon,
            id: identity(&dir),
            rest: port_of(&v["api"]["restapi"]["http_listen_multiaddress"]),
            pinsvc: port_of(&v["api"]["pinsvcapi"]["http_listen_multiaddress"]),
            proxy: port_of(&v["api"]["ipfsproxy"]["listen_multiaddress"]),
            metrics,
            auth: basic("admin", "pw"),
            upstream,
            _tmp: tmp,
        }
    }

    /// Every listener with a request that must succeed on it (with credentials).
    fn listeners(&self) -> [(&'static str, u16, &'static str, &'static str); 4] {
        [
            ("restapi", self.rest, "GET", "/id"),
            ("pinsvcapi", self.pinsvc, "GET", "/pins"),
            ("ipfsproxy", self.proxy, "POST", "/api/v0/pin/ls"),
            ("prometheus", self.metrics, "GET", "/metrics"),
        ]
    }

    /// `method target` with the admin's credentials; `None` when closed without an answer.
    fn try_authed(
        &self,
        port: u16,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Answer> {
        let mut all = vec![("Authorization", self.auth.as_str())];
        all.extend_from_slice(headers);
        exchange(port, &request(method, target, &all, body))
    }

    /// [`Peer::try_authed`] where an answer is required.
    fn authed(&self, port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        self.try_authed(port, method, target, headers, body)
            .unwrap_or_else(|| panic!("{method} {target} on port {port}: closed without an answer"))
    }

    /// `method target` without credentials, marked so that `finish` can tell if it ever
    /// reached the fake IPFS daemon.
    fn unauthed(&self, port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Option<Answer> {
        let mut all = vec![(UNAUTH_MARK, "1")];
        all.extend_from_slice(headers);
        exchange(port, &request(method, target, &all, b""))
    }

    /// The peer is still running and answers `GET /id` with its own id.
    fn alive(&mut self, after: &str) {
        let running = self.daemon.child_running();
        assert!(running, "the peer exited after {after}:\n{}", self.daemon.drain_log());
        let answer = exchange(self.rest, &request("GET", "/id", &[("Authorization", &self.auth)], b""));
        let ok = answer.as_ref().is_some_and(|a| a.status == 200 && a.text().contains(&self.id));
        assert!(ok, "GET /id after {after}: {answer:?}\n{}", self.daemon.drain_log());
    }

    /// The end of a test: the failed cases, a task that panicked on the input (a defect even
    /// when the process lives on), anything unauthenticated that reached the fake IPFS daemon.
    fn finish(mut self, mut problems: Problems) {
        let log = self.daemon.drain_log();
        let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
        problems.check(panics.is_empty(), || format!("the peer panicked:\n{}", panics.join("\n")));
        for seen in self.upstream.seen() {
            problems.check(seen.header(UNAUTH_MARK).is_none(), || {
                format!("an unauthenticated request reached IPFS: {seen:?}")
            });
            // The proxy forwards the client's Authorization: a forwarded request without one
            // came from a client without credentials.
            problems.check(!seen.forwarded() || seen.header("authorization").is_some(), || {
                format!("a forwarded request without credentials reached IPFS: {seen:?}")
            });
        }
        problems.assert_none();
    }
}

/// A multipart body of the given parts `(filename, content type, content)` with boundary `XX`.
fn multipart(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content_type, content) in parts {
        body.extend_from_slice(
            format!(
                "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XX--\r\n");
    body
}

const MULTIPART: (&str, &str) = ("Content-Type", "multipart/form-data; boundary=XX");

/// The failed cases of a test, reported together so that one defect does not hide the others.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    /// An answer with a status in `statuses`; a close without an answer is a problem too.
    fn status(&mut self, case: &str, answer: Option<Answer>, statuses: impl Fn(u16) -> bool) {
        match answer {
            Some(a) => self.check(statuses(a.status), || format!("{case}: {a}")),
            None => self.0.push(format!("{case}: the connection closed without an answer")),
        }
    }

    /// An answer that says the request failed ([`Answer::failed`]).
    fn failure(&mut self, case: &str, answer: Option<Answer>) {
        match answer {
            Some(a) => self.check(a.failed(), || format!("{case}: succeeded\n{a}")),
            None => self.0.push(format!("{case}: the connection closed without an answer")),
        }
    }

    fn assert_none(self) {
        assert!(self.0.is_empty(), "{} case(s) failed:\n{}", self.0.len(), self.0.join("\n-----\n"));
    }
}

/// The first 80 characters of a long target, for messages.
fn short(target: &str) -> String {
    target.chars().take(80).collect()
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// #14.1: a directory part nesting 20 000 levels, then a symlink part, on REST `/add` and the
/// proxy's `/api/v0/add`: a 400 naming the limit, and the peer lives.
#[test]
fn a_deeply_nested_add_path_is_refused_naming_the_limit() {
    let mut peer = Peer::start(json!({}));
    let deep = vec!["a"; 20_000].join("/");
    let link = format!("{deep}/link");
    let body = multipart(&[(&deep, "application/x-directory", b""), (&link, "application/symlink", b"a")]);
    for (port, target) in [(peer.rest, "/add?local=true"), (peer.proxy, "/api/v0/add?local=true")] {
        let answer = peer.authed(port, "POST", target, &[MULTIPART], &body);
        assert_eq!(answer.status, 400, "{target}: {answer}");
        let text = answer.text();
        assert!(text.contains("max path depth") || text.contains("max path length"), "{target}: {answer}");
        peer.alive(&format!("a 20 000-level path on {target}"));
    }
    peer.finish(Problems::default());
}

/// Streams a chunked multipart body that never holds its boundary (bounded by
/// [`ENDLESS_BODY`] and a minute) while sampling the peer's RSS. Returns the answer, the
/// bytes sent before the server stopped the body, and the largest RSS growth seen.
fn endless_add(peer: &Peer, port: u16, target: &str) -> (Option<Answer>, u64, u64) {
    let pid = peer.daemon.pid();
    let before = rss_bytes(pid).expect("the peer's RSS");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: multipart/form-data; boundary=NEVER-SENT\r\nTransfer-Encoding: chunked\r\n\r\n",
        peer.auth
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    // The answer is read while the body is still being sent.
    let answered = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut stream = stream.try_clone().expect("clone");
        let answered = answered.clone();
        stream.set_read_timeout(Some(Duration::from_secs(90))).expect("timeout");
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        raw.extend_from_slice(&buf[..n]);
                        answered.store(true, Ordering::SeqCst);
                    }
                }
            }
            answered.store(true, Ordering::SeqCst);
            raw
        })
    };
    let chunk_len = 256 * 1024;
    let mut chunk = format!("{chunk_len:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', chunk_len));
    chunk.extend_from_slice(b"\r\n");
    let (mut sent, mut growth) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent < ENDLESS_BODY && !answered.load(Ordering::SeqCst) && Instant::now() < deadline {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk_len as u64;
        if sent.is_multiple_of(4 * 1024 * 1024) {
            let now = rss_bytes(pid).unwrap_or(0);
            growth = growth.max(now.saturating_sub(before));
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    let raw = reader.join().expect("reader");
    growth = growth.max(rss_bytes(pid).unwrap_or(0).saturating_sub(before));
    (parse_answer(&raw), sent, growth)
}

/// #14.2: an add body that never contains its boundary is refused early, and memory stays flat.
#[test]
fn an_add_body_without_its_boundary_is_cut_off_and_memory_stays_flat() {
    let mut peer = Peer::start(json!({}));
    for (port, target) in [(peer.rest, "/add?local=true"), (peer.proxy, "/api/v0/add?local=true")] {
        let (answer, sent, growth) = endless_add(&peer, port, target);
        eprintln!("{target}: {sent} bytes sent, RSS growth {growth} bytes, answer {answer:?}");
        assert!(growth < RSS_BOUND, "{target}: the peer's RSS grew by {growth} bytes ({sent} bytes sent)");
        let answer = answer.unwrap_or_else(|| panic!("{target}: no answer after {sent} bytes"));
        assert!((400..500).contains(&answer.status), "{target}: {answer}");
        assert!(sent < ENDLESS_BODY / 4, "{target}: the peer read {sent} bytes before refusing");
        peer.alive(&format!("a boundary-less body on {target}"));
    }
    peer.finish(Problems::default());
}

/// #14.3: what basic-auth leaves open (OPTIONS, /health) is never forwarded without
/// credentials; a real preflight is answered by the proxy itself; `/health` is open for GET and
/// HEAD only.
#[test]
fn unauthenticated_requests_never_reach_ipfs_and_health_is_open_for_reads_only() {
    let mut peer = Peer::start(json!({}));
    // A positive control: with credentials the proxy does forward, and the recorder sees it.
    let control = peer.authed(peer.proxy, "POST", "/debug/vars?control=1", &[], b"");
    assert_eq!(control.status, 200, "{control}");
    assert!(
        peer.upstream.seen().iter().any(|s| s.method == "POST" && s.target == "/debug/vars?control=1" && s.forwarded()),
        "the recorder never saw the authenticated control request: {:?}",
        peer.upstream.seen()
    );
    let mut problems = Problems::default();
    for (method, target) in
        [("OPTIONS", "/debug/vars"), ("OPTIONS", "/debug/pprof/"), ("POST", "/health"), ("OPTIONS", "/api/v0/pin/ls")]
    {
        let case = format!("proxy {method} {target} without credentials");
        problems.status(&case, peer.unauthed(peer.proxy, method, target, &[]), |s| s == 401);
        peer.alive(&case);
    }
    // A real preflight: answered by the proxy (the fake daemon's record shows it was not
    // forwarded; `finish` checks that).
    let preflight = [("Origin", "http://example.com"), ("Access-Control-Request-Method", "POST")];
    let case = "a preflight OPTIONS /api/v0/cat through the proxy";
    problems.status(case, peer.unauthed(peer.proxy, "OPTIONS", "/api/v0/cat", &preflight), |s| s < 500);
    peer.alive(case);
    // /health: open to read, closed to anything else.
    for (name, port) in [("restapi", peer.rest), ("pinsvcapi", peer.pinsvc)] {
        let case = format!("{name} POST /health without credentials");
        problems.status(&case, peer.unauthed(port, "POST", "/health", &[]), |s| s == 401);
    }
    for method in ["GET", "HEAD"] {
        let case = format!("restapi {method} /health without credentials");
        problems.status(&case, peer.unauthed(peer.rest, method, "/health", &[]), |s| s < 300);
    }
    peer.alive("the /health and OPTIONS cases");
    peer.finish(problems);
}

/// #14.7: a JWT signed with an empty password is refused; `POST /token` mints tokens from Basic
/// credentials only.
#[test]
fn tokens_need_a_password_and_are_minted_from_basic_credentials_only() {
    let mut peer = Peer::start(json!({"nopass": ""}));
    let with = |port: u16, method: &str, target: &str, authorization: &str| {
        exchange(port, &request(method, target, &[("Authorization", authorization)], b""))
    };
    // Positive controls: the test's own JWTs are right (signed with the real password), and
    // POST /token with Basic mints a token that works.
    let good = format!("Bearer {}", jwt("admin", "pw"));
    let answer = with(peer.rest, "GET", "/id", &good).expect("an answer");
    assert_eq!(answer.status, 200, "a JWT signed with admin's password: {answer}");
    let minted = peer.authed(peer.rest, "POST", "/token", &[], b"");
    assert_eq!(minted.status, 200, "POST /token with Basic: {minted}");
    let token = minted.json().and_then(|v| v["token"].as_str().map(str::to_owned)).expect("a token");
    let bearer = format!("Bearer {token}");
    let answer = with(peer.rest, "GET", "/id", &bearer).expect("an answer");
    assert_eq!(answer.status, 200, "the minted token works: {answer}");

    let mut problems = Problems::default();
    let empty = format!("Bearer {}", jwt("nopass", ""));
    for (name, port, method, target) in [
        ("restapi", peer.rest, "GET", "/id"),
        ("pinsvcapi", peer.pinsvc, "GET", "/pins"),
        ("ipfsproxy", peer.proxy, "POST", "/api/v0/pin/ls"),
    ] {
        let case = format!("{name} {method} {target} with a JWT signed with an empty password");
        problems.status(&case, with(port, method, target, &empty), |s| s == 401);
        let case = format!("{name} {method} {target} with Basic and an empty password");
        problems.status(&case, with(port, method, target, &basic("nopass", "")), |s| s == 401);
        peer.alive(&case);
    }
    let again = with(peer.rest, "POST", "/token", &bearer);
    let minted_again =
        again.as_ref().is_some_and(|a| a.status == 200 || a.json().is_some_and(|v| v.get("token").is_some()));
    problems.check(!minted_again, || format!("POST /token with a Bearer token minted one: {again:?}"));
    peer.alive("POST /token with a Bearer token");
    peer.finish(problems);
}

/// #14.8: no listener redirects to another host (`Location: //host` or `/\host`).
#[test]
fn no_redirect_leaves_the_site() {
    let mut peer = Peer::start(json!({}));
    let targets = ["//evil.example/", "//evil.example/%2e%2e", "///evil.example/", "//evil.example/pins/../id"];
    let mut problems = Problems::default();
    let listeners = peer.listeners();
    for (name, port, _, _) in listeners {
        for target in targets {
            for authorized in [true, false] {
                let case = format!("{name} GET {target} (credentials: {authorized})");
                let answer = if authorized {
                    peer.try_authed(port, "GET", target, &[], b"")
                } else {
                    peer.unauthed(port, "GET", target, &[])
                };
                let Some(answer) = answer else {
                    problems.0.push(format!("{case}: the connection closed without an answer"));
                    continue;
                };
                let location = answer.header("location").unwrap_or("");
                problems.check(!location.starts_with("//") && !location.starts_with("/\\"), || {
                    format!("{case}: off-site redirect {location:?}\n{answer}")
                });
            }
        }
        peer.alive(&format!("double-slash paths on {name}"));
    }
    peer.finish(problems);
}

/// #14.10 and pagination/replication abuse: out-of-range numbers are a 400, never a wrapped
/// value or a 5xx.
#[test]
fn out_of_range_numbers_in_queries_are_refused() {
    let mut peer = Peer::start(json!({}));
    let mut problems = Problems::default();
    let refused = [
        (peer.rest, "POST", format!("/pins/{CID}?expire-in=94522879700260684295381835.9h")),
        (peer.rest, "POST", format!("/pins/{CID}?expire-in=-9223372036854775808000h")),
        (peer.rest, "POST", format!("/pins/{CID}?replication-min=99999999999999999999999")),
        (peer.rest, "POST", format!("/pins/{CID}?replication-max=-99999999999999999999999")),
        (peer.pinsvc, "GET", "/pins?limit=-1".to_string()),
        (peer.pinsvc, "GET", "/pins?limit=18446744073709551617".to_string()),
        (peer.pinsvc, "GET", "/pins?limit=99999999999999999999999999999".to_string()),
    ];
    for (port, method, target) in &refused {
        let case = format!("{method} {target}");
        problems.status(&case, peer.try_authed(*port, method, target, &[], b""), |s| s == 400);
        peer.alive(&case);
    }
    // Odd but not necessarily invalid: any answer but a server error.
    let odd = [
        (peer.rest, "GET", "/pins?filter=pinned&cids=".to_string() + &"x,".repeat(5000)),
        (peer.pinsvc, "GET", "/pins?before=99999-01-01T00:00:00Z&after=-1".to_string()),
        (peer.pinsvc, "GET", "/pins?limit=1&cid=".to_string() + &format!("{CID},").repeat(2000)),
    ];
    for (port, method, target) in &odd {
        let case = format!("{method} {}", short(target));
        problems.status(&case, peer.try_authed(*port, method, target, &[], b""), |s| s < 500);
        peer.alive(&case);
    }
    // Invalid replication factors fail (IPFS Cluster answers them with a 500).
    let target = format!("/pins/{CID}?replication-min=-5&replication-max=-7");
    let case = format!("POST {target}");
    problems.failure(&case, peer.try_authed(peer.rest, "POST", &target, &[], b""));
    peer.alive(&case);
    // The proxy's pin/add ignores replication options, as IPFS Cluster's: an answer is enough.
    for target in [
        format!("/api/v0/pin/add?arg={CID}&replication-min=99999999999999999999999"),
        format!("/api/v0/pin/add?arg={CID}&replication-max=-99999999999999999999999"),
    ] {
        let case = format!("proxy POST {target}");
        problems.status(&case, peer.try_authed(peer.proxy, "POST", &target, &[], b""), |_| true);
        peer.alive(&case);
    }
    // Chunker sizes and CID versions out of range on both adds: refused, before or (as IPFS
    // Cluster does for what its query parser lets through) during the stream.
    let body = multipart(&[("a.txt", "application/octet-stream", b"hello")]);
    for query in ["chunker=size-99999999999999999999999", "chunker=size-0", "cid-version=-1", "cid-version=4294967297"]
    {
        let target = format!("/add?local=true&{query}");
        let answer = peer.try_authed(peer.rest, "POST", &target, &[MULTIPART], &body);
        problems.failure(&format!("REST POST {target}"), answer);
        let target = format!("/api/v0/add?local=true&{query}");
        let answer = peer.try_authed(peer.proxy, "POST", &target, &[MULTIPART], &body);
        problems.failure(&format!("proxy POST {target}"), answer);
        peer.alive(&format!("add?{query}"));
    }
    peer.finish(problems);
}

/// A slowloris on every listener: one header byte per 100 ms, never the end of the head. The
/// server must close the connection (its header timeout) within [`SLOWLORIS_BOUND`].
#[test]
fn every_listener_cuts_off_a_slowloris() {
    let mut peer = Peer::start(json!({}));
    let listeners = peer.listeners();
    let results: Vec<(&str, Option<Duration>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = listeners
            .iter()
            .map(|&(name, port, _, _)| {
                scope.spawn(move || {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    // The 100 ms between bytes is the wait for the server's close.
                    stream.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
                    stream.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
                    let started = Instant::now();
                    let head = b"GET /id HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
                    let mut buf = [0u8; 4096];
                    let mut i = 0usize;
                    while started.elapsed() < SLOWLORIS_BOUND {
                        let byte = head.get(i).copied().unwrap_or(b'a');
                        i += 1;
                        if stream.write_all(&[byte]).is_err() {
                            return (name, Some(started.elapsed()));
                        }
                        match stream.read(&mut buf) {
                            // Closed, or an answer (408/400) before the close.
                            Ok(_) => return (name, Some(started.elapsed())),
                            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                            Err(_) => return (name, Some(started.elapsed())),
                        }
                    }
                    (name, None)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("slowloris thread")).collect()
    });
    for (name, closed) in &results {
        eprintln!("slowloris on {name}: closed after {closed:?}");
    }
    peer.alive("slowloris on every listener");
    for (name, closed) in results {
        assert!(closed.is_some(), "{name} kept a slowloris open for {SLOWLORIS_BOUND:?}");
    }
    peer.finish(Problems::default());
}

/// 1 MB of header bytes (one huge header, and twenty thousand small ones) on every listener:
/// refused (4xx) or closed, never served, and the peer lives.
#[test]
fn every_listener_refuses_a_megabyte_of_headers() {
    let mut peer = Peer::start(json!({}));
    let huge = format!("X-Big: {}\r\n", "a".repeat(1024 * 1024));
    let many: String = (0..20_000).map(|i| format!("X-H{i}: {:040}\r\n", i)).collect();
    let listeners = peer.listeners();
    for (name, port, method, target) in listeners {
        for (shape, headers) in [("one huge header", &huge), ("20 000 headers", &many)] {
            let mut raw = format!(
                "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: close\r\n",
                peer.auth
            )
            .into_bytes();
            raw.extend_from_slice(headers.as_bytes());
            raw.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            if let Some(answer) = exchange(port, &raw) {
                assert!((400..500).contains(&answer.status), "{name}, {shape}: {answer}");
            }
            peer.alive(&format!("{shape} on {name}"));
        }
    }
    peer.finish(Problems::default());
}

/// A 10 000-deep JSON body on the Pinning Service API's JSON routes: a 400, no stack overflow.
#[test]
fn a_deeply_nested_json_body_is_refused() {
    let mut peer = Peer::start(json!({}));
    let depth = 10_000;
    let nested = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let bodies = [
        format!(r#"{{"cid":"{CID}","name":"deep","meta":{nested}}}"#),
        format!(r#"{{"cid":"{CID}","origins":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)),
        "[".repeat(depth * 10),
    ];
    for body in &bodies {
        for target in ["/pins", "/pins/any-request-id"] {
            let answer =
                peer.authed(peer.pinsvc, "POST", target, &[("Content-Type", "application/json")], body.as_bytes());
            assert_eq!(answer.status, 400, "POST {target} with a {depth}-deep body: {answer}");
            peer.alive(&format!("a deep JSON body on POST {target}"));
        }
    }
    peer.finish(Problems::default());
}

/// Invalid UTF-8 in paths and queries, raw and percent-encoded: no server error, no crash.
#[test]
fn invalid_utf8_in_paths_is_harmless() {
    let mut peer = Peer::start(json!({}));
    let listeners = peer.listeners();
    for (name, port, method, _) in listeners {
        let targets: [&[u8]; 5] = [
            b"/pins/\xff\xfe\xfd",
            b"/pins/%ff%fe%fd",
            b"/%c0%af%c0%af/id",
            b"/api/v0/pin/ls?arg=%ff%fe",
            b"/id?\xc3\x28=\xa0\xa1",
        ];
        for target in targets {
            let mut raw = format!("{method} ").into_bytes();
            raw.extend_from_slice(target);
            raw.extend_from_slice(
                format!(" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", peer.auth)
                    .as_bytes(),
            );
            let shown = String::from_utf8_lossy(target).into_owned();
            // The proxy answers errors Kubo's way (500 with a message); the others must not fail.
            if let Some(answer) = exchange(port, &raw)
                && name != "ipfsproxy"
            {
                assert!(answer.status < 500, "{name} {method} {shown}: {answer}");
            }
            peer.alive(&format!("{name} {method} {shown}"));
        }
    }
    peer.finish(Problems::default());
}

/// 500 idle connections on every listener at once: each listener still serves, the peer
/// answers `/id`, and they all go away.
#[test]
fn many_idle_connections_do_not_lock_the_peer_out() {
    let mut peer = Peer::start(json!({}));
    let listeners = peer.listeners();
    let mut idle = Vec::new();
    for (name, port, _, _) in listeners {
        for i in 0..500 {
            match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5)) {
                Ok(stream) => idle.push(stream),
                Err(e) => panic!("{name}: connection {i} refused while others idle: {e}"),
            }
        }
    }
    for (name, port, method, target) in listeners {
        let started = Instant::now();
        let answer = peer.authed(port, method, target, &[], b"");
        assert_eq!(answer.status, 200, "{name} {method} {target} with 2000 idle connections: {answer}");
        eprintln!("{name} answered in {:?} with 2000 idle connections", started.elapsed());
    }
    peer.alive("2000 idle connections");
    drop(idle);
    peer.alive("closing 2000 idle connections");
    peer.finish(Problems::default());
}
