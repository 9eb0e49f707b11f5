//! The `ipfs-cluster-ctl` commands of `cairn` (reference §7.1): a client of a peer's REST API
//! (`api.restapi`, reference §1), over HTTP(S) or a unix socket.
//!
//! Differences from ipfs-cluster-ctl, all deliberate:
//! - client flags go after the command name (`cairn pin add --host ... <cid>`), since the
//!   other `cairn` commands do not take them;
//! - without `--host`, the address is the `api.restapi` listen address of the config folder's
//!   service.json when there is one (so `cairn --config <dir> id` asks that folder's peer);
//! - `--basic-auth` needs `user:password` (no prompt); `--token` sends a bearer token;
//!   `--ca-cert` trusts a private CA; there is no libp2p-http (`/p2p/`) transport;
//! - errors go to stderr, in JSON with `--enc json`;
//! - `health graph` prints Graphviz DOT of its own layout.

mod add;
mod endpoint;
mod http;
mod output;
mod pins;
mod progress;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_api::{Alert, Bandwidth, ConnectGraph, GlobalRepoGc, Id, Metric, Token, Version};
use hyper::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::http::{Client, ClientError, ClientSettings, Query, TlsOptions, empty, path_escape};
use crate::config::ConfigDir;
use crate::monitor::now_nanos;

/// How to reach and talk to the REST API; on every client command.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Client options")]
pub struct ApiOptions {
    /// The REST API: multiaddrs or http(s):// URLs, comma-separated, tried in order. Default:
    /// the api.restapi address in the config folder's service.json, else /ip4/127.0.0.1/tcp/9094.
    #[arg(long, short = 'l', global = true, value_name = "ADDR[,ADDR]")]
    host: Option<String>,
    /// Use HTTPS for addresses that do not name their scheme.
    #[arg(long, global = true)]
    https: bool,
    /// Accept any TLS certificate from the API.
    #[arg(long, global = true)]
    no_check_certificate: bool,
    /// The cluster secret (64 hex characters): the private-network key when --host is a
    /// libp2p-http address (`/ip4/…/tcp/…/p2p/<peer id>`).
    #[arg(long, global = true, value_name = "HEX")]
    secret: Option<String>,
    /// Trust the CA certificates of this PEM file instead of the system's (Cairn).
    #[arg(long, global = true, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Basic auth credentials. Implies HTTPS unless --force-http or an http:// address.
    #[arg(long, global = true, env = "CLUSTER_CREDENTIALS", hide_env_values = true, value_name = "USER:PASSWORD")]
    basic_auth: Option<String>,
    /// A bearer token (from `cairn token`) instead of --basic-auth (Cairn). Implies HTTPS like
    /// --basic-auth.
    #[arg(long, global = true, env = "CAIRN_TOKEN", hide_env_values = true, value_name = "JWT")]
    token: Option<String>,
    /// Send credentials over plain HTTP.
    #[arg(long, global = true)]
    force_http: bool,
    /// Output format.
    #[arg(long = "encoding", visible_alias = "enc", global = true, value_enum, default_value_t = Encoding::Text)]
    encoding: Encoding,
    /// Seconds each request may take, answer included (0: no limit); exit code 62 when it
    /// elapses.
    #[arg(long, short = 't', global = true, default_value_t = 0, value_name = "SECONDS")]
    timeout: u64,
}

/// `--encoding`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Lines for people, as ipfs-cluster-ctl prints them.
    Text,
    /// The API's JSON: indented objects; streams as one object per line.
    Json,
}

/// The client commands, flattened into `cairn`'s command list.
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// The peer's id, addresses and IPFS daemon (GET /id).
    Id(Plain),
    /// The peer's version (GET /version).
    Version(Plain),
    /// The cluster's peers.
    Peers(PeersArgs),
    /// Pin, unpin and list pins.
    Pin(pins::PinArgs),
    /// Pin status on each peer (GET /pins, /pins/<cid>).
    Status(pins::StatusArgs),
    /// Retry pins in an error state (POST /pins/recover, /pins/<cid>/recover).
    Recover(pins::RecoverArgs),
    /// Add files or directories to the cluster and pin them (POST /add).
    Add(add::AddArgs),
    /// The cluster's connectivity, metrics and alerts.
    Health(HealthArgs),
    /// Ask the peers' IPFS daemons.
    Ipfs(IpfsArgs),
    /// Get a bearer token for the credentials given (POST /token).
    Token(Plain),
}

/// A command that takes only the client options.
#[derive(clap::Args)]
pub struct Plain {
    #[command(flatten)]
    api: ApiOptions,
}

/// `peers ...`.
#[derive(clap::Args)]
pub struct PeersArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: PeersCommand,
}

/// The `peers` subcommands.
#[derive(clap::Subcommand)]
pub enum PeersCommand {
    /// Every peer's id, as the peer asked sees them (GET /peers).
    Ls,
    /// Remove a peer from the cluster (DELETE /peers/<peer>).
    Rm {
        /// The peer id.
        peer: String,
    },
}

/// `health ...`.
#[derive(clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: HealthCommand,
}

/// The `health` subcommands.
#[derive(clap::Subcommand)]
pub enum HealthCommand {
    /// The connectivity graph as Graphviz DOT (GET /health/graph).
    Graph {
        /// Write the graph to this file instead of stdout.
        #[arg(short = 'f', long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Also draw IPFS daemons that belong to no cluster peer.
        #[arg(long)]
        all_ipfs_peers: bool,
    },
    /// Without a name, the metric names; with one, each peer's latest valid value
    /// (GET /monitor/metrics[/<name>]).
    Metrics {
        /// A metric name, such as ping, freespace or tag:group.
        name: Option<String>,
    },
    /// Alerts raised for expired metrics, newest first (GET /health/alerts).
    Alerts,
    /// libp2p traffic by protocol (GET /health/bandwidth).
    Bandwidth,
}

/// `ipfs ...`.
#[derive(clap::Args)]
pub struct IpfsArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: IpfsCommand,
}

/// The `ipfs` subcommands.
#[derive(clap::Subcommand)]
pub enum IpfsCommand {
    /// Garbage-collect the IPFS daemons' repositories (POST /ipfs/gc).
    Gc {
        /// Only this peer's daemon.
        #[arg(long)]
        local: bool,
    },
}

impl ClientCommand {
    fn api(&self) -> &ApiOptions {
        match self {
            ClientCommand::Id(a) | ClientCommand::Version(a) | ClientCommand::Token(a) => &a.api,
            ClientCommand::Peers(a) => &a.api,
            ClientCommand::Pin(a) => &a.api,
            ClientCommand::Status(a) => &a.api,
            ClientCommand::Recover(a) => &a.api,
            ClientCommand::Add(a) => &a.api,
            ClientCommand::Health(a) => &a.api,
            ClientCommand::Ipfs(a) => &a.api,
        }
    }
}

/// Runs a client command against the API. `config` is `--config`/`$CAIRN_PATH`, where the API
/// address is looked up when `--host` is not given. API errors are printed here (exit 1;
/// 62 for a timeout); other failures are returned.
pub async fn run(config: Option<PathBuf>, command: ClientCommand) -> anyhow::Result<ExitCode> {
    let api = command.api().clone();
    let out = Printer { encoding: api.encoding };
    let result = async {
        let client = client(&api, config)?;
        dispatch(&client, &out, command).await
    }
    .await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => report(e, api.encoding),
    }
}

fn client(api: &ApiOptions, config: Option<PathBuf>) -> anyhow::Result<Client> {
    let endpoints = match &api.host {
        Some(host) => endpoint::parse_hosts(host)?,
        None => endpoint::from_config(ConfigDir::resolve(config).as_ref())?,
    };
    Client::new(ClientSettings {
        endpoints,
        https: api.https,
        force_http: api.force_http,
        basic_auth: api.basic_auth.clone(),
        token: api.token.clone(),
        tls: TlsOptions { no_check: api.no_check_certificate, ca_cert: api.ca_cert.clone() },
        timeout: (api.timeout > 0).then(|| Duration::from_secs(api.timeout)),
        secret: match api.secret.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(hex) => crate::config::decode_secret(hex).map_err(|e| anyhow::anyhow!("--secret: {e}"))?,
        },
    })
}

/// Prints an API error as ipfs-cluster-ctl does and picks the exit code.
fn report(e: anyhow::Error, encoding: Encoding) -> anyhow::Result<ExitCode> {
    let mut err = std::io::stderr().lock();
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Api { code, message }) => {
            let _ = match encoding {
                Encoding::Text => writeln!(err, "An error occurred:\n  Code: {code}\n  Message: {message}"),
                Encoding::Json => {
                    let body = serde_json::json!({ "code": code, "message": message });
                    writeln!(err, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())
                }
            };
            Ok(ExitCode::from(1))
        }
        Some(ClientError::Timeout(_) | ClientError::WaitTimeout(_)) => {
            let _ = writeln!(err, "error: {e:#}");
            Ok(ExitCode::from(62))
        }
        _ => Err(e),
    }
}

async fn dispatch(client: &Client, out: &Printer, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Id(_) => out.value::<Id>(client.get("/id").await?, output::id),
        ClientCommand::Version(_) => {
            out.value::<Version>(client.get("/version").await?, |v| format!("{}\n", v.version))
        }
        ClientCommand::Token(_) => {
            out.value::<Token>(client.call(Method::POST, "/token").await?, |t| format!("{}\n", t.token))
        }
        ClientCommand::Peers(args) => match args.command {
            PeersCommand::Ls => client
                .stream(Method::GET, "/peers", empty(), None, |item| out.item::<Id>(item, output::id))
                .await
                .map(drop),
            PeersCommand::Rm { peer } => {
                client.call(Method::DELETE, &format!("/peers/{}", path_escape(&peer))).await.map(drop)
            }
        },
        ClientCommand::Pin(args) => pins::run(client, out, args.command).await,
        ClientCommand::Status(args) => pins::status(client, out, args).await,
        ClientCommand::Recover(args) => pins::recover(client, out, args).await,
        ClientCommand::Add(args) => add::run(client, out, args).await,
        ClientCommand::Health(args) => health(client, out, args.command).await,
        ClientCommand::Ipfs(args) => match args.command {
            IpfsCommand::Gc { local } => {
                let mut query = Query::default();
                query.flag("local", local);
                out.value::<GlobalRepoGc>(client.call(Method::POST, &query.on("/ipfs/gc")).await?, output::repo_gc)
            }
        },
    }
}

async fn health(client: &Client, out: &Printer, command: HealthCommand) -> anyhow::Result<()> {
    match command {
        HealthCommand::Graph { file, all_ipfs_peers } => {
            let graph = client.get("/health/graph").await?;
            match file {
                None => out.value::<ConnectGraph>(graph, |g| output::graph_dot(g, all_ipfs_peers)),
                Some(path) => {
                    let text = match (out.encoding, graph) {
                        (_, None) => String::new(),
                        (Encoding::Json, Some(v)) => pretty(&v),
                        (Encoding::Text, Some(v)) => output::graph_dot(&decode(v, "graph")?, all_ipfs_peers),
                    };
                    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
                }
            }
        }
        HealthCommand::Metrics { name: None } => out
            .value::<Vec<String>>(client.get("/monitor/metrics").await?, |names| {
                names.iter().map(|n| format!("{n}\n")).collect()
            }),
        HealthCommand::Metrics { name: Some(name) } => {
            let metrics = client.get(&format!("/monitor/metrics/{}", path_escape(&name))).await?;
            let now = now_nanos();
            out.value::<Vec<Metric>>(metrics, |ms| ms.iter().map(|m| output::metric(m, now)).collect())
        }
        HealthCommand::Alerts => out.value::<Vec<Alert>>(client.get("/health/alerts").await?, |alerts| {
            alerts.iter().map(output::alert).collect()
        }),
        HealthCommand::Bandwidth => {
            out.value::<BTreeMap<String, Bandwidth>>(client.get("/health/bandwidth").await?, output::bandwidth)
        }
    }
}

/// Writes answers to stdout in the chosen encoding.
pub struct Printer {
    encoding: Encoding,
}

impl Printer {
    /// A whole answer: indented JSON, or `text` of the decoded value. An empty answer (204)
    /// prints nothing.
    pub fn value<T: DeserializeOwned>(&self, value: Option<Value>, text: impl Fn(&T) -> String) -> anyhow::Result<()> {
        let Some(value) = value else { return Ok(()) };
        match self.encoding {
            Encoding::Json => self.text(&format!("{}\n", pretty(&value))),
            Encoding::Text => self.text(&text(&decode(value, "answer")?)),
        }
    }

    /// One item of a stream: one JSON line, or `text` of the decoded item.
    pub fn item<T: DeserializeOwned>(&self, item: Value, text: impl Fn(&T) -> String) -> anyhow::Result<()> {
        match self.encoding {
            Encoding::Json => self.text(&format!("{item}\n")),
            Encoding::Text => self.text(&text(&decode(item, "stream item")?)),
        }
    }

    /// Raw text; flushed at once so that stream items show as they arrive.
    pub fn text(&self, text: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("write to stdout")
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Decodes an answer; the error names what was expected.
pub fn decode<T: DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("the API sent an unexpected {what}"))
}

/// A Go duration (`90s`, `1h30m`), as the API and ipfs-cluster-ctl take them.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    if text.is_empty() {
        anyhow::bail!("empty duration");
    }
    // The parser of the config's Go durations, so both accept exactly the same texts.
    cairn_go_duration::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("{e} (expected a Go duration such as 90s or 1h30m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(parse_duration("1h30m").expect("ok"), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").expect("ok"), Duration::from_millis(250));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn api_errors_exit_1_and_timeouts_62() {
        let api = anyhow::Error::from(ClientError::Api { code: 404, message: "nope".into() }).context("pin rm");
        assert_eq!(report(api, Encoding::Text).expect("printed"), ExitCode::from(1));
        let timeout = anyhow::Error::from(ClientError::Timeout(Duration::from_secs(1)));
        assert_eq!(report(timeout, Encoding::Json).expect("printed"), ExitCode::from(62));
        assert!(report(anyhow::anyhow!("other"), Encoding::Text).is_err());
    }
}
