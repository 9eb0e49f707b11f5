//! The cases file of `cairn plugin test` and `cairn plugin bench` (docs/plugin-cases.md):
//! its TOML model, its conversion into the contract's requests, and the expectations
//! checked against a plugin's answers.

use std::fmt;

use anyhow::{Context, anyhow, bail};
use cairn_policy::types::{
    AllocationRequest, Api, ApiRequest, BasicCredentials, CorsRequest, Credentials, Header, PeerAction, PeerDecision,
    PeerRequest, PinInfo, PinMode, PreflightRequest, RequestDecision, TokenDecision,
};
use cairn_policy::{PeerMetric, PluginKind};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// The CID of an `allocate` case that names none.
pub const DEFAULT_CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

/// One case: an input for the plugin and the decision expected from it.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    /// The config object the plugin is loaded with for this case (`null` when none).
    pub config: serde_json::Value,
    pub input: Input,
    pub expect: Expect,
}

/// A case's input: one call into the plugin.
#[derive(Debug)]
pub enum Input {
    Request(ApiRequest),
    Token(ApiRequest),
    Peer(PeerRequest),
    Preflight(PreflightRequest),
    Actual(CorsRequest),
    Allocate(AllocationRequest),
}

impl Input {
    /// The kind of plugin that can answer this input.
    pub fn kind(&self) -> PluginKind {
        match self {
            Input::Request(_) | Input::Token(_) | Input::Peer(_) => PluginKind::Authorizer,
            Input::Preflight(_) | Input::Actual(_) => PluginKind::Cors,
            Input::Allocate(_) => PluginKind::Allocator,
        }
    }

    /// The input's table name in the cases file.
    pub fn table(&self) -> &'static str {
        match self {
            Input::Request(_) => "request",
            Input::Token(_) => "token",
            Input::Peer(_) => "peer",
            Input::Preflight(_) => "preflight",
            Input::Actual(_) => "actual",
            Input::Allocate(_) => "allocate",
        }
    }
}

/// The decision a case expects (`[case.expect]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A request allowed with this principal; `*` accepts any.
    Allow(String),
    /// A request or token denied with this status, a reason containing `reason` and at
    /// least these headers.
    Deny {
        status: u16,
        reason: Option<String>,
        headers: Vec<Header>,
    },
    /// Any token.
    Token,
    PeerAllow,
    /// A denied peer action whose reason contains `reason`.
    PeerDeny {
        reason: Option<String>,
    },
    /// Exactly these CORS headers, in any order.
    Headers(Vec<Header>),
    /// Exactly these peers, in this order.
    Peers(Vec<String>),
    /// An allocation error containing this text.
    Error(String),
}

/// A plugin's answer to a case's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Request(RequestDecision),
    Token(TokenDecision),
    Peer(PeerDecision),
    Headers(Vec<Header>),
    Allocation(Result<Vec<String>, String>),
}

impl Expect {
    /// Whether `answer` is what this expectation asks for.
    pub fn matches(&self, answer: &Answer) -> bool {
        match (self, answer) {
            (Expect::Allow(want), Answer::Request(RequestDecision::Allow(got))) => want == "*" || want == got,
            (
                Expect::Deny { status, reason, headers },
                Answer::Request(RequestDecision::Deny(denial)) | Answer::Token(TokenDecision::Deny(denial)),
            ) => {
                denial.status == *status
                    && reason.as_ref().is_none_or(|r| denial.reason.contains(r.as_str()))
                    && headers.iter().all(|h| denial.headers.contains(h))
            }
            (Expect::Token, Answer::Token(TokenDecision::Token(_))) => true,
            (Expect::PeerAllow, Answer::Peer(PeerDecision::Allow)) => true,
            (Expect::PeerDeny { reason }, Answer::Peer(PeerDecision::Deny(got))) => {
                reason.as_ref().is_none_or(|r| got.contains(r.as_str()))
            }
            (Expect::Headers(want), Answer::Headers(got)) => {
                let (mut want, mut got) = (want.clone(), got.clone());
                want.sort();
                got.sort();
                want == got
            }
            (Expect::Peers(want), Answer::Allocation(Ok(got))) => want == got,
            (Expect::Error(want), Answer::Allocation(Err(got))) => got.contains(want.as_str()),
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Allow(principal) if principal == "*" => f.write_str("allow (any principal)"),
            Expect::Allow(principal) => write!(f, "allow {principal}"),
            Expect::Deny { status, reason, headers } => {
                write!(f, "deny {status}")?;
                if let Some(reason) = reason {
                    write!(f, " ~ {reason:?}")?;
                }
                if !headers.is_empty() {
                    write!(f, " with {}", HeaderList(headers))?;
                }
                Ok(())
            }
            Expect::Token => f.write_str("a token"),
            Expect::PeerAllow => f.write_str("allow"),
            Expect::PeerDeny { reason: None } => f.write_str("deny"),
            Expect::PeerDeny { reason: Some(reason) } => write!(f, "deny ~ {reason:?}"),
            Expect::Headers(headers) => write!(f, "{}", HeaderList(headers)),
            Expect::Peers(peers) => write!(f, "peers [{}]", peers.join(", ")),
            Expect::Error(text) => write!(f, "error ~ {text:?}"),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Request(RequestDecision::Allow(principal)) => write!(f, "allow {principal}"),
            Answer::Request(RequestDecision::Deny(d)) | Answer::Token(TokenDecision::Deny(d)) => {
                write!(f, "deny {}: {}", d.status, d.reason)?;
                if !d.headers.is_empty() {
                    write!(f, " with {}", HeaderList(&d.headers))?;
                }
                Ok(())
            }
            // A token is long and secret-like; its start is enough to recognise it.
            Answer::Token(TokenDecision::Token(token)) => {
                write!(f, "token {}…", token.chars().take(16).collect::<String>())
            }
            Answer::Peer(PeerDecision::Allow) => f.write_str("allow"),
            Answer::Peer(PeerDecision::Deny(reason)) => write!(f, "deny: {reason}"),
            Answer::Headers(headers) => write!(f, "{}", HeaderList(headers)),
            Answer::Allocation(Ok(peers)) => write!(f, "peers [{}]", peers.join(", ")),
            Answer::Allocation(Err(error)) => write!(f, "error: {error}"),
        }
    }
}

/// Headers as `{name: value, ...}`, or `no headers`.
struct HeaderList<'a>(&'a [Header]);

impl fmt::Display for HeaderList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no headers");
        }
        let pairs: Vec<String> = self.0.iter().map(|(name, value)| format!("{name}: {value}")).collect();
        write!(f, "{{{}}}", pairs.join(", "))
    }
}

/// Parse a cases file. Errors name the line: TOML's own for syntax, type and unknown-key
/// errors, the case's line for inconsistent cases.
pub fn parse(text: &str) -> anyhow::Result<Vec<Case>> {
    let file: RawFile = toml::from_str(text)?;
    let file_config = file.config.map(table_to_json).transpose().context("config")?;
    if file.cases.is_empty() {
        bail!("no cases: add at least one [[case]]");
    }
    file.cases
        .into_iter()
        .map(|spanned| {
            let line = text.get(..spanned.span().start).map_or(0, |before| before.matches('\n').count()) + 1;
            let raw = spanned.into_inner();
            let name = raw.name.clone();
            raw.into_case(file_config.as_ref()).with_context(|| format!("case {name:?} (line {line})"))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    config: Option<toml::Table>,
    #[serde(default, rename = "case")]
    cases: Vec<toml::Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    config: Option<toml::Table>,
    request: Option<RawRequest>,
    token: Option<RawRequest>,
    peer: Option<RawPeer>,
    preflight: Option<RawPreflight>,
    actual: Option<RawActual>,
    allocate: Option<RawAllocate>,
    expect: RawExpect,
}

/// The contract's `api` enum as the file spells it.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum RawApi {
    #[default]
    Restapi,
    Pinsvcapi,
    Ipfsproxy,
    Libp2pHttp,
}

impl From<RawApi> for Api {
    fn from(api: RawApi) -> Api {
        match api {
            RawApi::Restapi => Api::Restapi,
            RawApi::Pinsvcapi => Api::Pinsvcapi,
            RawApi::Ipfsproxy => Api::Ipfsproxy,
            RawApi::Libp2pHttp => Api::Libp2pHttp,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    api: RawApi,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    query: String,
    #[serde(default)]
    headers: Headers,
    remote_addr: Option<String>,
    peer_id: Option<String>,
    #[serde(default)]
    tls: bool,
    credentials: Option<RawCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum RawCredentials {
    Basic { user: String, password: String },
    Bearer(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    peer_id: String,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreflight {
    #[serde(default)]
    api: RawApi,
    origin: String,
    method: Option<String>,
    #[serde(default)]
    headers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActual {
    #[serde(default)]
    api: RawApi,
    origin: String,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllocate {
    cid: Option<String>,
    #[serde(default)]
    name: String,
    replication_min: Option<i32>,
    replication_max: Option<i32>,
    #[serde(default)]
    current: Vec<String>,
    #[serde(default)]
    priority: Vec<String>,
    #[serde(default)]
    candidates: Vec<RawCandidate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCandidate {
    peer: String,
    #[serde(default)]
    metrics: Vec<RawMetric>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: String,
    value: String,
    #[serde(default)]
    weight: i64,
    #[serde(default)]
    partitionable: bool,
}

/// Every key any expectation may use; which ones apply depends on the input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    allow: Option<toml::Value>,
    deny: Option<toml::Value>,
    reason: Option<String>,
    headers: Option<Headers>,
    token: Option<bool>,
    peers: Option<Vec<String>>,
    error: Option<String>,
}

/// A `{ name = "value" }` table as (lower-cased name, value) pairs in file order: request
/// headers reach the plugin in arrival order, which a `BTreeMap` would lose.
#[derive(Default)]
struct Headers(Vec<Header>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of header names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut pairs = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    pairs.push((name.to_ascii_lowercase(), value));
                }
                Ok(Headers(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

impl RawCase {
    fn into_case(self, file_config: Option<&serde_json::Value>) -> anyhow::Result<Case> {
        let config = match self.config {
            Some(table) => table_to_json(table).context("config")?,
            None => file_config.cloned().unwrap_or(serde_json::Value::Null),
        };
        let mut inputs = Vec::new();
        if let Some(raw) = self.request {
            inputs.push(Input::Request(raw.into_api_request("GET", None).context("request")?));
        }
        if let Some(raw) = self.token {
            inputs.push(Input::Token(raw.into_api_request("POST", Some("/token")).context("token")?));
        }
        if let Some(raw) = self.peer {
            inputs.push(Input::Peer(raw.into()));
        }
        if let Some(raw) = self.preflight {
            inputs.push(Input::Preflight(PreflightRequest {
                api: raw.api.into(),
                origin: raw.origin,
                method: raw.method.unwrap_or_else(|| "GET".into()),
                headers: raw.headers,
            }));
        }
        if let Some(raw) = self.actual {
            inputs.push(Input::Actual(CorsRequest {
                api: raw.api.into(),
                origin: raw.origin,
                method: raw.method.unwrap_or_else(|| "GET".into()),
            }));
        }
        if let Some(raw) = self.allocate {
            inputs.push(Input::Allocate(raw.into()));
        }
        let input = match inputs.len() {
            1 => inputs.remove(0),
            0 => bail!("no input: give one of [case.request], token, peer, preflight, actual, allocate"),
            _ => bail!(
                "{} inputs ({}): give exactly one",
                inputs.len(),
                inputs.iter().map(Input::table).collect::<Vec<_>>().join(", ")
            ),
        };
        let expect = self.expect.into_expect(&input).context("expect")?;
        Ok(Case { name: self.name, config, input, expect })
    }
}

impl RawRequest {
    fn into_api_request(self, method: &str, path: Option<&str>) -> anyhow::Result<ApiRequest> {
        let path = match (self.path, path) {
            (Some(path), _) => path,
            (None, Some(default)) => default.to_string(),
            (None, None) => bail!("`path` is required"),
        };
        Ok(ApiRequest {
            api: self.api.into(),
            method: self.method.unwrap_or_else(|| method.to_string()),
            path,
            query: self.query,
            headers: self.headers.0,
            remote_addr: self.remote_addr.unwrap_or_else(|| "127.0.0.1:40000".into()),
            peer_id: self.peer_id,
            tls: self.tls,
            credentials: match self.credentials {
                None => Credentials::None,
                Some(RawCredentials::Basic { user, password }) => {
                    Credentials::Basic(BasicCredentials { user, password })
                }
                Some(RawCredentials::Bearer(token)) => Credentials::Bearer(token),
            },
        })
    }
}

impl From<RawPeer> for PeerRequest {
    fn from(raw: RawPeer) -> PeerRequest {
        let action = match raw.action.as_str() {
            "id" => PeerAction::Id,
            "version" => PeerAction::Version,
            "pinset-write" => PeerAction::PinsetWrite,
            "status-sync" => PeerAction::StatusSync,
            "add-content" => PeerAction::AddContent,
            _ => PeerAction::Other(raw.action),
        };
        PeerRequest { peer_id: raw.peer_id, action }
    }
}

impl From<RawAllocate> for AllocationRequest {
    fn from(raw: RawAllocate) -> AllocationRequest {
        let min = raw.replication_min.unwrap_or(1);
        let pin = PinInfo {
            cid: raw.cid.unwrap_or_else(|| DEFAULT_CID.into()),
            name: raw.name,
            mode: PinMode::Recursive,
            replication_factor_min: min,
            replication_factor_max: raw.replication_max.unwrap_or(min),
            shard_size: 0,
            // The priority peers are the pin's user allocations, as the peer builds them.
            user_allocations: raw.priority.clone(),
            expire_at: None,
            metadata: Vec::new(),
            origins: Vec::new(),
        };
        let rows = raw
            .candidates
            .into_iter()
            .map(|c| {
                let metrics =
                    c.metrics.iter().map(|m| PeerMetric::new(&m.name, &m.value, m.weight, m.partitionable)).collect();
                (c.peer, metrics)
            })
            .collect();
        AllocationRequest::from_rows(pin, raw.current, raw.priority, rows)
    }
}

impl RawExpect {
    /// The expectation, checked against the keys that apply to `input`.
    fn into_expect(self, input: &Input) -> anyhow::Result<Expect> {
        let given: Vec<&str> = [
            ("allow", self.allow.is_some()),
            ("deny", self.deny.is_some()),
            ("reason", self.reason.is_some()),
            ("headers", self.headers.is_some()),
            ("token", self.token.is_some()),
            ("peers", self.peers.is_some()),
            ("error", self.error.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect();
        let (allowed, usage): (&[&str], &str) = match input {
            Input::Request(_) => (
                &["allow", "deny", "reason", "headers"],
                "allow = \"<principal>\", or deny = <status> with optional reason and headers",
            ),
            Input::Token(_) => (&["token", "deny", "reason"], "token = true, or deny = <status> with optional reason"),
            Input::Peer(_) => (&["allow", "deny", "reason"], "allow = true, or deny = true with optional reason"),
            Input::Preflight(_) | Input::Actual(_) => (&["headers"], "headers = { name = \"value\", ... }"),
            Input::Allocate(_) => (&["peers", "error"], "peers = [...], or error = \"<substring>\""),
        };
        if let Some(key) = given.iter().find(|key| !allowed.contains(key)) {
            bail!("`{key}` does not apply to [case.{}]; use {usage}", input.table());
        }
        let wrong = || anyhow!("use {usage}");
        let expect = match input {
            Input::Request(_) => match (self.allow, self.deny) {
                (Some(allow), None) if self.reason.is_none() && self.headers.is_none() => {
                    Expect::Allow(allow.as_str().ok_or_else(wrong)?.to_string())
                }
                (None, Some(deny)) => Expect::Deny {
                    status: status(&deny).ok_or_else(wrong)?,
                    reason: self.reason,
                    headers: self.headers.unwrap_or_default().0,
                },
                _ => return Err(wrong()),
            },
            Input::Token(_) => match (self.token, self.deny) {
                (Some(true), None) if self.reason.is_none() => Expect::Token,
                (None, Some(deny)) => {
                    Expect::Deny { status: status(&deny).ok_or_else(wrong)?, reason: self.reason, headers: Vec::new() }
                }
                _ => return Err(wrong()),
            },
            Input::Peer(_) => match (self.allow, self.deny) {
                (Some(toml::Value::Boolean(true)), None) if self.reason.is_none() => Expect::PeerAllow,
                (None, Some(toml::Value::Boolean(true))) => Expect::PeerDeny { reason: self.reason },
                _ => return Err(wrong()),
            },
            Input::Preflight(_) | Input::Actual(_) => Expect::Headers(self.headers.ok_or_else(wrong)?.0),
            Input::Allocate(_) => match (self.peers, self.error) {
                (Some(peers), None) => Expect::Peers(peers),
                (None, Some(error)) => Expect::Error(error),
                _ => return Err(wrong()),
            },
        };
        Ok(expect)
    }
}

/// An HTTP status from `deny = <status>`.
fn status(value: &toml::Value) -> Option<u16> {
    value.as_integer().and_then(|n| u16::try_from(n).ok())
}

/// A TOML table as the JSON object the plugin's `config()` returns. Dates become their
/// TOML text, as JSON has no date type.
fn table_to_json(table: toml::Table) -> anyhow::Result<serde_json::Value> {
    let object = table
        .into_iter()
        .map(|(key, value)| {
            let json = value_to_json(value).with_context(|| format!("`{key}`"))?;
            Ok((key, json))
        })
        .collect::<anyhow::Result<serde_json::Map<_, _>>>()?;
    Ok(serde_json::Value::Object(object))
}

fn value_to_json(value: toml::Value) -> anyhow::Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match value {
        toml::Value::String(s) => Json::String(s),
        toml::Value::Integer(n) => Json::from(n),
        toml::Value::Float(x) => {
            Json::Number(serde_json::Number::from_f64(x).ok_or_else(|| anyhow!("{x} has no JSON representation"))?)
        }
        toml::Value::Boolean(b) => Json::Bool(b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => Json::Array(items.into_iter().map(value_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(table) => table_to_json(table)?,
    })
}

#[cfg(test)]
mod tests {
    use cairn_policy::types::Denial;

    use super::*;

    fn one(text: &str) -> Case {
        let mut cases = parse(text).expect("parses");
        assert_eq!(cases.len(), 1);
        cases.remove(0)
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("refused"))
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../docs/plugin-cases.md");
        let start = doc.find("```toml\n").expect("example") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("end of example");
        let case = one(&doc[start..end]);
        assert_eq!(case.expect, Expect::Allow("alice".into()));
        let Input::Request(req) = case.input else { panic!("request") };
        assert_eq!(req.peer_id.as_deref(), Some("12D3KooW..."));
    }

    #[test]
    fn request_defaults_and_file_config() {
        let case = one(r#"
            [config]
            basic_auth_credentials = { alice = "secret" }
            [[case]]
            name = "n"
            request = { path = "/pins", headers = { "X-B" = "1", "a" = "2" }, credentials = { basic = { user = "u", password = "p" } } }
            expect = { allow = "*" }
            "#);
        assert_eq!(case.config, serde_json::json!({ "basic_auth_credentials": { "alice": "secret" } }));
        let Input::Request(req) = case.input else { panic!("request") };
        assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("GET", "/pins", ""));
        assert_eq!(req.api, Api::Restapi);
        assert_eq!(req.remote_addr, "127.0.0.1:40000");
        assert_eq!(req.headers, [("x-b".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(req.credentials, Credentials::Basic(BasicCredentials { user: "u".into(), password: "p".into() }));
        assert_eq!(case.expect, Expect::Allow("*".into()));
    }

    #[test]
    fn case_config_replaces_the_file_config() {
        let case = one(r#"
            config = { a = 1, b = [1.5, true] }
            [[case]]
            name = "n"
            config = { when = 1979-05-27 }
            token = { api = "libp2p-http", credentials = { bearer = "t" } }
            expect = { deny = 401, reason = "unauth" }
            "#);
        assert_eq!(case.config, serde_json::json!({ "when": "1979-05-27" }));
        let Input::Token(req) = case.input else { panic!("token") };
        assert_eq!((req.method.as_str(), req.path.as_str(), req.api), ("POST", "/token", Api::Libp2pHttp));
        assert_eq!(req.credentials, Credentials::Bearer("t".into()));
        assert_eq!(case.expect, Expect::Deny { status: 401, reason: Some("unauth".into()), headers: vec![] });
    }

    #[test]
    fn no_config_is_null() {
        let case = one(
            "[[case]]\nname = \"n\"\npeer = { peer_id = \"p\", action = \"Cluster.Pin\" }\nexpect = { deny = true }",
        );
        assert_eq!(case.config, serde_json::Value::Null);
        let Input::Peer(req) = case.input else { panic!("peer") };
        assert_eq!(req.action, PeerAction::Other("Cluster.Pin".into()));
        assert_eq!(case.expect, Expect::PeerDeny { reason: None });
    }

    #[test]
    fn allocate_builds_columns_from_rows() {
        let case = one(r#"
            [[case]]
            name = "n"
            [case.allocate]
            replication_min = 2
            priority = ["b"]
            candidates = [
              { peer = "a", metrics = [{ name = "freespace", value = "10", weight = 10 }] },
              { peer = "b", metrics = [{ name = "freespace", value = "10", weight = 10 }, { name = "tag:group", value = "x", partitionable = true }] },
            ]
            [case.expect]
            peers = ["b", "a"]
            "#);
        let Input::Allocate(req) = case.input else { panic!("allocate") };
        assert_eq!(req.pin.cid, DEFAULT_CID);
        assert_eq!((req.pin.replication_factor_min, req.pin.replication_factor_max), (2, 2));
        assert_eq!(req.pin.user_allocations, ["b"]);
        assert_eq!(req.candidates, ["a", "b"]);
        assert_eq!(req.metrics.len(), 2);
        assert_eq!(req.metrics[0].distinct_values, ["10"]);
        assert_eq!(case.expect, Expect::Peers(vec!["b".into(), "a".into()]));
    }

    #[test]
    fn cors_inputs_default_their_method() {
        let cases = parse(
            r#"
            [[case]]
            name = "p"
            preflight = { origin = "https://a", headers = ["x"] }
            expect = { headers = {} }
            [[case]]
            name = "a"
            actual = { api = "pinsvcapi", origin = "https://a", method = "PUT" }
            expect = { headers = { Vary = "Origin" } }
            "#,
        )
        .expect("parses");
        let Input::Preflight(p) = &cases[0].input else { panic!("preflight") };
        assert_eq!((p.method.as_str(), p.headers.as_slice()), ("GET", ["x".to_string()].as_slice()));
        assert_eq!(cases[0].expect, Expect::Headers(vec![]));
        let Input::Actual(a) = &cases[1].input else { panic!("actual") };
        assert_eq!((a.method.as_str(), a.api), ("PUT", Api::Pinsvcapi));
        assert_eq!(cases[1].expect, Expect::Headers(vec![("vary".into(), "Origin".into())]));
    }

    #[test]
    fn inconsistent_cases_are_refused_with_their_line() {
        let two = "[[case]]\nname = \"x\"\nrequest = { path = \"/\" }\npeer = { peer_id = \"p\", action = \"id\" }\nexpect = { allow = \"a\" }";
        assert!(error(two).contains("case \"x\" (line 1): 2 inputs (request, peer)"), "{}", error(two));
        let none = "\n[[case]]\nname = \"x\"\nexpect = { allow = \"a\" }";
        assert!(error(none).contains("(line 2): no input"), "{}", error(none));
        let no_path = "[[case]]\nname = \"x\"\nrequest = {}\nexpect = { allow = \"a\" }";
        assert!(error(no_path).contains("request: `path` is required"), "{}", error(no_path));
        let wrong_key = "[[case]]\nname = \"x\"\nrequest = { path = \"/\" }\nexpect = { peers = [] }";
        assert!(
            error(wrong_key).contains("expect: `peers` does not apply to [case.request]; use allow"),
            "{}",
            error(wrong_key)
        );
        let both = "[[case]]\nname = \"x\"\nrequest = { path = \"/\" }\nexpect = { allow = \"a\", deny = 401 }";
        assert!(error(both).contains("expect: use allow = "), "{}", error(both));
        let peer_allow =
            "[[case]]\nname = \"x\"\npeer = { peer_id = \"p\", action = \"id\" }\nexpect = { allow = \"a\" }";
        assert!(error(peer_allow).contains("expect: use allow = true"), "{}", error(peer_allow));
        assert!(error("").contains("no cases"));
    }

    #[test]
    fn toml_errors_name_line_and_field() {
        let unknown = "[[case]]\nname = \"x\"\nrequest = { path = \"/\", methd = \"GET\" }\nexpect = { allow = \"a\" }";
        let message = error(unknown);
        assert!(message.contains("line 3") && message.contains("methd"), "{message}");
        let syntax = error("[[case]\nname = 1");
        assert!(syntax.contains("line 1"), "{syntax}");
        let bad_api =
            error("[[case]]\nname = \"x\"\nrequest = { api = \"grpc\", path = \"/\" }\nexpect = { allow = \"a\" }");
        assert!(bad_api.contains("grpc") && bad_api.contains("libp2p-http"), "{bad_api}");
    }

    #[test]
    fn expectations_match_answers() {
        let denial = |status, reason: &str, headers: Vec<Header>| Denial { status, reason: reason.into(), headers };
        let deny =
            Expect::Deny { status: 401, reason: Some("no auth".into()), headers: vec![("a".into(), "1".into())] };
        let answer = |d| Answer::Request(RequestDecision::Deny(d));
        assert!(deny.matches(&answer(denial(401, "unauthorized: no auth provided", vec![("a".into(), "1".into())]))));
        assert!(!deny.matches(&answer(denial(403, "no auth", vec![("a".into(), "1".into())]))));
        assert!(!deny.matches(&answer(denial(401, "no auth", vec![("a".into(), "2".into())]))));
        assert!(Expect::Allow("*".into()).matches(&Answer::Request(RequestDecision::Allow("bob".into()))));
        assert!(!Expect::Allow("alice".into()).matches(&Answer::Request(RequestDecision::Allow("bob".into()))));

        let headers = Expect::Headers(vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert!(headers.matches(&Answer::Headers(vec![("b".into(), "2".into()), ("a".into(), "1".into())])));
        assert!(!headers.matches(&Answer::Headers(vec![("a".into(), "1".into())])));
        assert!(Expect::Headers(vec![]).matches(&Answer::Headers(vec![])));

        let peers = Expect::Peers(vec!["a".into(), "b".into()]);
        assert!(peers.matches(&Answer::Allocation(Ok(vec!["a".into(), "b".into()]))));
        assert!(!peers.matches(&Answer::Allocation(Ok(vec!["b".into(), "a".into()]))));
        assert!(Expect::Error("enough".into()).matches(&Answer::Allocation(Err("not enough peers".into()))));
        assert!(!Expect::Token.matches(&Answer::Token(TokenDecision::Deny(denial(401, "x", vec![])))));
        assert!(Expect::PeerDeny { reason: None }.matches(&Answer::Peer(PeerDecision::Deny("x".into()))));
    }

    #[test]
    fn display_is_one_readable_line() {
        assert_eq!(
            Expect::Deny { status: 401, reason: Some("no".into()), headers: vec![] }.to_string(),
            "deny 401 ~ \"no\""
        );
        assert_eq!(Expect::Headers(vec![]).to_string(), "no headers");
        assert_eq!(Answer::Allocation(Ok(vec!["a".into(), "b".into()])).to_string(), "peers [a, b]");
        assert_eq!(Answer::Headers(vec![("vary".into(), "Origin".into())]).to_string(), "{vary: Origin}");
    }
}
