//! `pin add|rm|update|ls`, `status`, `recover`, and `--wait`: poll a CID's status until every
//! peer it is allocated to reports the target status.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_api::{Cid, GlobalPinInfo, Pin, TrackerFilter, TrackerStatus};
use hyper::Method;
use serde_json::Value;

use super::http::{Client, ClientError, Query, empty, path_escape};
use super::progress::Progress;
use super::{ApiOptions, Printer, decode, output, parse_duration};

/// `cairn pin ...`.
#[derive(clap::Args)]
pub struct PinArgs {
    #[command(flatten)]
    pub api: ApiOptions,
    #[command(subcommand)]
    pub command: PinCommand,
}

/// The `pin` subcommands.
#[derive(clap::Subcommand)]
pub enum PinCommand {
    /// Pin a CID or an /ipfs/ path in the cluster (POST /pins/ipfs/<cid|path>), then show its
    /// status.
    Add(PinAddArgs),
    /// Unpin a CID or path (DELETE /pins/ipfs/<cid|path>), then show its status.
    Rm(PinRmArgs),
    /// Pin <TO> with <FROM>'s allocations, as an update of <FROM>
    /// (POST /pins/ipfs/<to>?pin-update=<from>); <FROM> stays pinned.
    Update(PinUpdateArgs),
    /// The pinset, or one pin (GET /allocations, GET /allocations/<cid>).
    Ls(PinLsArgs),
}

/// Pin options shared by `pin add` and `add` (IPFS Cluster's query parameters, reference §1.5).
#[derive(clap::Args, Debug, Default)]
pub struct PinOptionArgs {
    /// Minimum number of peers (0: the cluster default; -1: every peer).
    #[arg(long = "replication-min", visible_alias = "rmin", allow_negative_numbers = true, value_name = "N")]
    pub replication_min: Option<i32>,
    /// Maximum number of peers (0: the cluster default; -1: every peer).
    #[arg(long = "replication-max", visible_alias = "rmax", allow_negative_numbers = true, value_name = "N")]
    pub replication_max: Option<i32>,
    /// The pin's name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Unpin after this long (a Go duration: 90s, 1h30m, 720h).
    #[arg(long, value_name = "DURATION")]
    pub expire_in: Option<String>,
    /// Metadata, `key=value` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Pin on these peers first (comma-separated peer ids).
    #[arg(long = "allocations", visible_alias = "allocs", value_delimiter = ',', value_name = "PEER,PEER")]
    pub allocations: Vec<String>,
}

impl PinOptionArgs {
    /// Adds the set options to `query`; `replication` sets both bounds, as in ipfs-cluster-ctl.
    pub fn to_query(&self, replication: Option<i32>, query: &mut Query) -> anyhow::Result<()> {
        let (min, max) = match replication {
            Some(n) => (Some(n), Some(n)),
            None => (self.replication_min, self.replication_max),
        };
        if let Some(n) = min {
            query.push("replication-min", n.to_string());
        }
        if let Some(n) = max {
            query.push("replication-max", n.to_string());
        }
        if let Some(name) = &self.name {
            query.push("name", name.as_str());
        }
        if let Some(expire) = &self.expire_in {
            // Checked here so that a typo is named before anything is sent.
            parse_duration(expire).context("--expire-in")?;
            query.push("expire-in", expire.as_str());
        }
        if !self.allocations.is_empty() {
            query.push("user-allocations", self.allocations.join(","));
        }
        for pair in &self.metadata {
            let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                bail!("--metadata {pair:?}: expected key=value");
            };
            query.push(format!("meta-{key}"), value);
        }
        Ok(())
    }
}

/// `--wait` and friends (pin add, rm, update).
#[derive(clap::Args, Debug, Default)]
pub struct WaitArgs {
    /// Only print the pin, do not ask for its status.
    #[arg(long = "no-status", visible_alias = "ns")]
    pub no_status: bool,
    /// Wait until every allocated peer reports the pin done (pinned, or unpinned for rm);
    /// a pin_error/unpin_error fails the command.
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// With --wait: stop waiting once this many peers are done (0: all).
    #[arg(long = "wait-limit", visible_alias = "wl", default_value_t = 0, value_name = "N")]
    pub wait_limit: usize,
    /// With --wait: give up after this long (a Go duration; 0: never); exit code 62.
    #[arg(long = "wait-timeout", visible_alias = "wt", value_name = "DURATION")]
    pub wait_timeout: Option<String>,
}

impl WaitArgs {
    fn timeout(&self) -> anyhow::Result<Option<Duration>> {
        match &self.wait_timeout {
            None => Ok(None),
            Some(text) => Ok(Some(parse_duration(text).context("--wait-timeout")?).filter(|d| !d.is_zero())),
        }
    }
}

/// `pin add`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PinAddArgs {
    /// A CID, or a path /ipfs/<cid>/..., /ipns/<name>/..., /ipld/<cid>/...
    pub target: String,
    /// Number of peers (sets both --replication-min and --replication-max).
    #[arg(short = 'r', long, allow_negative_numbers = true, value_name = "N")]
    pub replication: Option<i32>,
    #[command(flatten)]
    pub options: PinOptionArgs,
    /// recursive (default) or direct.
    #[arg(long, value_parser = ["recursive", "direct"])]
    pub mode: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `pin rm`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PinRmArgs {
    /// A CID or a path.
    pub target: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `pin update`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PinUpdateArgs {
    /// The pinned CID to update from.
    pub from: String,
    /// The new CID or path.
    pub to: String,
    /// The new pin's name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Unpin the new pin after this long (a Go duration).
    #[arg(long, value_name = "DURATION")]
    pub expire_in: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `pin ls`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PinLsArgs {
    /// Only this pin.
    pub cid: Option<String>,
    /// Pin types: comma-separated pin, meta-pin, clusterdag-pin, shard-pin, all.
    #[arg(long, default_value = "all")]
    pub filter: String,
}

/// `status`'s arguments.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Only these CIDs (default: every pin).
    pub cids: Vec<String>,
    /// Only this peer's view (local=true).
    #[arg(long)]
    pub local: bool,
    /// Statuses: comma-separated pinned, pinning, pin_queued, pin_error, unpinned, remote,
    /// error, queued, ... (a pin is listed when any peer matches).
    #[arg(long)]
    pub filter: Option<String>,
    // Last: the "Client options" heading it sets would apply to the fields after it.
    #[command(flatten)]
    pub api: ApiOptions,
}

/// `recover`'s arguments.
#[derive(clap::Args)]
pub struct RecoverArgs {
    /// Only this CID (default: every pin in an error state).
    pub cid: Option<String>,
    /// Only on this peer (local=true).
    #[arg(long)]
    pub local: bool,
    // Last: the "Client options" heading it sets would apply to the fields after it.
    #[command(flatten)]
    pub api: ApiOptions,
}

/// Runs a `pin` subcommand.
pub async fn run(client: &Client, out: &Printer, command: PinCommand) -> anyhow::Result<()> {
    match command {
        PinCommand::Add(args) => {
            let mut query = Query::default();
            args.options.to_query(args.replication, &mut query)?;
            if let Some(mode) = &args.mode {
                query.push("mode", mode.as_str());
            }
            let path = query.on(&format!("/pins{}", pin_path(&args.target)?));
            let pin = client.call(Method::POST, &path).await?.context("the API answered the pin with no body")?;
            after_pin(client, out, pin, Target::Pinned, &args.wait).await
        }
        PinCommand::Rm(args) => {
            let path = format!("/pins{}", pin_path(&args.target)?);
            let pin = client.call(Method::DELETE, &path).await?.context("the API answered the unpin with no body")?;
            after_pin(client, out, pin, Target::Unpinned, &args.wait).await
        }
        PinCommand::Update(args) => {
            let from = Cid::parse(&args.from).map_err(|e| anyhow::anyhow!("<FROM>: {e}"))?;
            let options = PinOptionArgs { name: args.name, expire_in: args.expire_in, ..PinOptionArgs::default() };
            let mut query = Query::default();
            options.to_query(None, &mut query)?;
            query.push("pin-update", from.to_string());
            let path = query.on(&format!("/pins{}", pin_path(&args.to)?));
            let pin = client.call(Method::POST, &path).await?.context("the API answered the pin with no body")?;
            after_pin(client, out, pin, Target::Pinned, &args.wait).await
        }
        PinCommand::Ls(args) => match &args.cid {
            Some(cid) => {
                let pin = client.get(&format!("/allocations/{}", cid_segment(cid)?)).await?;
                out.value::<Pin>(pin, output::pin)
            }
            None => {
                let mut query = Query::default();
                query.push("filter", args.filter.as_str());
                client
                    .stream(Method::GET, &query.on("/allocations"), empty(), None, |item| {
                        out.item::<Pin>(item, output::pin)
                    })
                    .await
                    .map(drop)
            }
        },
    }
}

/// `status`.
pub async fn status(client: &Client, out: &Printer, args: StatusArgs) -> anyhow::Result<()> {
    let filter = match &args.filter {
        None => None,
        Some(text) => Some(TrackerFilter::parse(text).with_context(|| format!("--filter {text:?}: no known status"))?),
    };
    let mut query = Query::default();
    query.flag("local", args.local);
    let print = |item: Value| -> anyhow::Result<()> {
        // The API filters `GET /pins` itself; CIDs asked by name are filtered here.
        if let Some(filter) = filter {
            let gpi: GlobalPinInfo = decode(item.clone(), "status")?;
            if !gpi.matches(filter) {
                return Ok(());
            }
        }
        out.item::<GlobalPinInfo>(item, output::status)
    };
    match args.cids.as_slice() {
        [] => {
            if let Some(text) = &args.filter {
                query.push("filter", text.as_str());
            }
            client.stream(Method::GET, &query.on("/pins"), empty(), None, print).await.map(drop)
        }
        [cid] => {
            let status = client.get(&query.on(&format!("/pins/{}", cid_segment(cid)?))).await?;
            match (filter, status) {
                (Some(_), Some(item)) => print(item),
                (None, status) => out.value::<GlobalPinInfo>(status, output::status),
                (Some(_), None) => Ok(()),
            }
        }
        cids => {
            let cids = cids.iter().map(|c| cid_segment(c)).collect::<anyhow::Result<Vec<_>>>()?;
            query.push("cids", cids.join(","));
            client.stream(Method::GET, &query.on("/pins"), empty(), None, print).await.map(drop)
        }
    }
}

/// `recover`.
pub async fn recover(client: &Client, out: &Printer, args: RecoverArgs) -> anyhow::Result<()> {
    let mut query = Query::default();
    query.flag("local", args.local);
    match &args.cid {
        Some(cid) => {
            let status = client.call(Method::POST, &query.on(&format!("/pins/{}/recover", cid_segment(cid)?))).await?;
            out.value::<GlobalPinInfo>(status, output::status)
        }
        None => client
            .stream(Method::POST, &query.on("/pins/recover"), empty(), None, |item| {
                out.item::<GlobalPinInfo>(item, output::status)
            })
            .await
            .map(drop),
    }
}

/// A CID as one URL path segment (checked, so that a path is not sent where a CID belongs).
fn cid_segment(text: &str) -> anyhow::Result<String> {
    Cid::parse(text).map(|c| c.to_string()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `/ipfs/<cid>` for a bare CID, the path itself for `/ipfs|ipns|ipld/...`, each segment
/// escaped. ipfs-cluster-ctl always uses the path routes (reference §1.3), so `mode=direct`
/// is honoured.
fn pin_path(target: &str) -> anyhow::Result<String> {
    let target = target.trim_end_matches('/');
    let path = if ["/ipfs/", "/ipns/", "/ipld/"].iter().any(|p| target.starts_with(p)) {
        target.to_owned()
    } else if target.starts_with('/') {
        bail!("{target:?}: a path starts with /ipfs/, /ipns/ or /ipld/");
    } else if target.is_empty() {
        bail!("no CID given");
    } else {
        format!("/ipfs/{target}")
    };
    Ok(path.split('/').map(path_escape).collect::<Vec<_>>().join("/"))
}

/// What `--wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every allocated peer pinned it.
    Pinned,
    /// Every peer dropped it.
    Unpinned,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Pinned => "pinned",
            Target::Unpinned => "unpinned",
        }
    }
}

/// ipfs-cluster-ctl's handling of a pin answer: wait if asked, then print the pin (with
/// `--no-status`) or its status.
async fn after_pin(client: &Client, out: &Printer, pin: Value, target: Target, wait: &WaitArgs) -> anyhow::Result<()> {
    let decoded: Pin = decode(pin.clone(), "pin")?;
    let mut status = None;
    if wait.wait {
        let limit = if target == Target::Pinned { wait.wait_limit } else { 0 };
        status = Some(wait_for(client, &decoded.cid, target, limit, wait.timeout()?).await?);
    }
    if wait.no_status {
        return out.value::<Pin>(Some(pin), output::pin);
    }
    let status = match status {
        Some(status) => Some(status),
        None => client.get(&format!("/pins/{}", decoded.cid)).await?,
    };
    out.value::<GlobalPinInfo>(status, output::status)
}

/// How far a pin is towards `target`, over the peers that should act on it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Peers at the target status.
    reached: usize,
    /// Peers that should get there (for a pin: every peer but those it is `remote` on).
    total: usize,
    /// Peers by status, for the progress line.
    by_status: Vec<(&'static str, usize)>,
    /// `peer: error` of peers that failed.
    failures: Vec<String>,
}

fn tally(gpi: &GlobalPinInfo, target: Target) -> Tally {
    let mut t = Tally::default();
    for (peer, info) in &gpi.peer_map {
        let who = if info.peername.is_empty() { peer.as_str() } else { info.peername.as_str() };
        let status = info.status;
        if target == Target::Pinned && status == TrackerStatus::Remote {
            continue;
        }
        t.total += 1;
        let reached = match target {
            // A meta-pin of a sharded DAG is never pinned in IPFS; `sharded` is its done state.
            Target::Pinned => matches!(status, TrackerStatus::Pinned | TrackerStatus::Sharded),
            Target::Unpinned => status == TrackerStatus::Unpinned,
        };
        let failed = match target {
            Target::Pinned => status == TrackerStatus::PinError,
            Target::Unpinned => status == TrackerStatus::UnpinError,
        };
        if reached {
            t.reached += 1;
        }
        if failed {
            t.failures.push(format!("{who}: {} {}", status.name(), info.error).trim_end().to_owned());
        }
        match t.by_status.iter_mut().find(|(name, _)| *name == status.name()) {
            Some((_, n)) => *n += 1,
            None => t.by_status.push((status.name(), 1)),
        }
    }
    t
}

/// Polls `GET /pins/<cid>` until `limit` peers (0: all that should) reached `target`; a peer
/// error fails at once. Returns the last status as the API sent it.
pub async fn wait_for(
    client: &Client,
    cid: &Cid,
    target: Target,
    limit: usize,
    timeout: Option<Duration>,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let mut progress = Progress::stderr();
    // Quick first polls for the common fast case, then once a second.
    let mut delay = Duration::from_millis(200);
    loop {
        let value = client.get(&format!("/pins/{cid}")).await?.context("the API answered the status with no body")?;
        let gpi: GlobalPinInfo = decode(value.clone(), "status")?;
        let t = tally(&gpi, target);
        if !t.failures.is_empty() {
            progress.finish();
            bail!("{cid} did not get {}: {}", target.name(), t.failures.join("; "));
        }
        let want = if limit > 0 { limit.min(t.total) } else { t.total };
        if t.total > 0 && t.reached >= want {
            progress.finish();
            return Ok(value);
        }
        let statuses: Vec<String> = t.by_status.iter().map(|(name, n)| format!("{name}: {n}")).collect();
        let state = format!("{cid}: {}/{want} {} ({})", t.reached, target.name(), statuses.join(", "));
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            progress.finish();
            return Err(ClientError::WaitTimeout(format!("--wait-timeout {limit:?} elapsed: {state}")).into());
        }
        progress.update(&state, &format!(" {:.0}s", started.elapsed().as_secs_f64()));
        let mut pause = delay;
        if let Some(limit) = timeout {
            pause = pause.min(limit.saturating_sub(started.elapsed()));
        }
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use cairn_api::PinInfoShort;

    use super::*;

    const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";

    #[test]
    fn pin_paths_use_the_ipfs_route() {
        assert_eq!(pin_path(CID).expect("cid"), format!("/ipfs/{CID}"));
        assert_eq!(pin_path(&format!("/ipfs/{CID}/a b/")).expect("path"), format!("/ipfs/{CID}/a%20b"));
        assert_eq!(pin_path("/ipns/example.com").expect("ipns"), "/ipns/example.com");
        assert!(pin_path("/tmp/x").is_err());
        assert!(pin_path("").is_err());
        assert!(cid_segment("not-a-cid").is_err());
    }

    #[test]
    fn options_become_query_parameters() {
        let options = PinOptionArgs {
            replication_min: Some(1),
            replication_max: Some(3),
            name: Some("my pin".into()),
            expire_in: Some("1h30m".into()),
            metadata: vec!["team=infra".into(), "note=a=b".into()],
            allocations: vec!["p1".into(), "p2".into()],
        };
        let mut q = Query::default();
        options.to_query(Some(-1), &mut q).expect("query");
        assert_eq!(
            q.on("/pins"),
            "/pins?replication-min=-1&replication-max=-1&name=my+pin&expire-in=1h30m&user-allocations=p1%2Cp2&meta-team=infra&meta-note=a%3Db"
        );
        let bad = PinOptionArgs { metadata: vec!["novalue".into()], ..PinOptionArgs::default() };
        assert!(bad.to_query(None, &mut Query::default()).is_err());
        let bad = PinOptionArgs { expire_in: Some("soon".into()), ..PinOptionArgs::default() };
        assert!(bad.to_query(None, &mut Query::default()).is_err());
    }

    fn gpi(statuses: &[(&str, TrackerStatus)]) -> GlobalPinInfo {
        let mut g = GlobalPinInfo::new(Cid::parse(CID).expect("cid"));
        for (peer, status) in statuses {
            let info = PinInfoShort { status: *status, error: "e".into(), ..PinInfoShort::default() };
            g.peer_map.insert((*peer).to_owned(), info);
        }
        g
    }

    #[test]
    fn wait_counts_allocated_peers_and_stops_on_errors() {
        use TrackerStatus::*;
        let t = tally(&gpi(&[("a", Pinned), ("b", Pinning), ("c", Remote)]), Target::Pinned);
        assert_eq!((t.reached, t.total), (1, 2));
        assert_eq!(t.by_status, [("pinned", 1), ("pinning", 1)]);
        assert!(t.failures.is_empty());

        let t = tally(&gpi(&[("a", Pinned), ("b", PinError)]), Target::Pinned);
        assert_eq!(t.failures, ["b: pin_error e"]);

        let t = tally(&gpi(&[("a", Unpinned), ("b", Unpinning)]), Target::Unpinned);
        assert_eq!((t.reached, t.total), (1, 2));
        let t = tally(&gpi(&[("a", UnpinError)]), Target::Unpinned);
        assert_eq!(t.failures.len(), 1);
    }
}
