//! `cairn plugin test`: run a cases file (docs/plugin-cases.md) against a plugin through
//! the real runtime and report each case. Also the plugin loading shared with `bench`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_policy::{
    AllocatorPlugin, AuthorizerPlugin, CorsPlugin, PluginKind, PluginSource, PluginSpec, PolicyRuntime, RuntimeSettings,
};

use super::cases::{self, Answer, Case, Input};

/// Exit code when the cases file or the plugin cannot be loaded (1 means a case failed).
pub const LOAD_ERROR: u8 = 2;

/// Arguments of `cairn plugin test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// A `.wasm` component file, or `builtin:<name>`.
    plugin: String,
    /// The cases file (TOML).
    cases: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Run `cairn plugin test`: exit 0 when every case passed, 1 when one failed, 2 when the
/// file or the plugin cannot be loaded.
pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let (mut target, cases) = match open(&args.plugin, &args.cases) {
        Ok(opened) => opened,
        Err(e) => return Ok(load_error(&e)),
    };
    let mut results = Vec::with_capacity(cases.len());
    for case in &cases {
        results.push(run_case(&mut target, case).await);
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    let passed = results.len() - failed;
    if args.json {
        let cases: Vec<serde_json::Value> = cases
            .iter()
            .zip(&results)
            .map(|(case, r)| {
                serde_json::json!({
                    "name": case.name,
                    "ok": r.ok,
                    "expected": case.expect.to_string(),
                    "got": r.got,
                    "micros": r.time.map(|t| t.as_micros() as u64),
                })
            })
            .collect();
        let report = serde_json::json!({
            "plugin": target.source().to_string(),
            "passed": passed,
            "failed": failed,
            "cases": cases,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rows = cases.iter().zip(&results).map(|(case, r)| {
            [
                if r.ok { "ok" } else { "FAIL" }.to_string(),
                case.name.clone(),
                case.expect.to_string(),
                r.got.clone(),
                r.time.map(|t| format!("{t:.1?}")).unwrap_or_else(|| "-".into()),
            ]
        });
        print_table(["", "case", "expected", "got", "time"], rows);
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Report a load error the way `main` reports errors, with the load-error exit code.
pub fn load_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(LOAD_ERROR)
}

/// The plugin under test and the cases file's cases.
pub fn open(plugin: &str, cases_path: &Path) -> anyhow::Result<(Target, Vec<Case>)> {
    let text = std::fs::read_to_string(cases_path)
        .with_context(|| format!("cannot read cases file {}", cases_path.display()))?;
    let cases = cases::parse(&text).with_context(|| format!("cases file {}", cases_path.display()))?;
    Ok((Target::open(plugin)?, cases))
}

/// One case's outcome.
struct CaseResult {
    ok: bool,
    /// The answer, or why there is none (`failed: ...`, `not run: ...`).
    got: String,
    /// How long the call took; `None` when the case could not run.
    time: Option<Duration>,
}

async fn run_case(target: &mut Target, case: &Case) -> CaseResult {
    let plugin = match target.prepare(case).await {
        Ok(plugin) => plugin,
        Err(why) => return CaseResult { ok: false, got: format!("not run: {why}"), time: None },
    };
    let started = Instant::now();
    let answer = plugin.call(&case.input).await;
    let time = Some(started.elapsed());
    match answer {
        Ok(answer) => CaseResult { ok: case.expect.matches(&answer), got: answer.to_string(), time },
        Err(failed) => CaseResult { ok: false, got: failed, time },
    }
}

/// The plugin under test: its source and kind, and one loaded plugin per distinct config
/// (cases may override the config, and a plugin parses its config once, at load).
pub struct Target {
    runtime: PolicyRuntime,
    source: PluginSource,
    kind: PluginKind,
    /// By config JSON text: the loaded plugin, or why it could not be loaded.
    loaded: HashMap<String, Result<Loaded, String>>,
}

impl Target {
    /// Compile and inspect the plugin; an error means it cannot be tested at all.
    pub fn open(plugin: &str) -> anyhow::Result<Self> {
        let source = PluginSource::parse(plugin, None);
        let runtime = PolicyRuntime::new(RuntimeSettings::default()).context("start the policy runtime")?;
        let info = runtime.inspect(&source)?;
        if let Some((import, why)) = info.refused() {
            bail!("plugin {source}: import `{import}` is not allowed: {why}");
        }
        let Some(kind) = info.kind else {
            bail!(
                "plugin {source}: it implements none of the plugin worlds ({})",
                PluginKind::ALL.map(|k| k.world_name()).join(", ")
            );
        };
        Ok(Target { runtime, source, kind, loaded: HashMap::new() })
    }

    /// Where the plugin comes from.
    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// The plugin to run `case` with, or why the case cannot run: an input for another
    /// kind of plugin, or a config the plugin refuses.
    pub async fn prepare(&mut self, case: &Case) -> Result<Loaded, String> {
        let wanted = case.input.kind();
        if wanted != self.kind {
            return Err(format!(
                "[case.{}] needs {}; {} is {}",
                case.input.table(),
                a_plugin(wanted),
                self.source,
                a_plugin(self.kind)
            ));
        }
        let key = case.config.to_string();
        if let Some(loaded) = self.loaded.get(&key) {
            return loaded.clone();
        }
        let spec = PluginSpec { source: self.source.clone(), config: case.config.clone() };
        let loaded = match self.kind {
            PluginKind::Authorizer => self.runtime.load_authorizer(&spec).await.map(Loaded::Authorizer),
            PluginKind::Cors => self.runtime.load_cors(&spec).await.map(Loaded::Cors),
            PluginKind::Allocator => self.runtime.load_allocator(&spec).await.map(Loaded::Allocator),
        }
        .map_err(|e| e.to_string());
        self.loaded.insert(key, loaded.clone());
        loaded
    }
}

/// A loaded plugin of any kind.
#[derive(Clone)]
pub enum Loaded {
    Authorizer(AuthorizerPlugin),
    Cors(CorsPlugin),
    Allocator(AllocatorPlugin),
}

impl Loaded {
    /// Ask the plugin about `input`. A failed call (trap, deadline, malformed answer...)
    /// is `Err("failed: <why>")` rather than the fail-safe decision, so a case shows it.
    pub async fn call(&self, input: &Input) -> Result<Answer, String> {
        let answer = match (self, input) {
            (Loaded::Authorizer(p), Input::Request(r)) => p.try_authorize_request(r).await.map(Answer::Request),
            (Loaded::Authorizer(p), Input::Token(r)) => p.try_issue_token(r).await.map(Answer::Token),
            (Loaded::Authorizer(p), Input::Peer(r)) => p.try_authorize_peer(r).await.map(Answer::Peer),
            (Loaded::Cors(p), Input::Preflight(r)) => p.try_preflight(r).await.map(Answer::Headers),
            (Loaded::Cors(p), Input::Actual(r)) => p.try_actual(r).await.map(Answer::Headers),
            (Loaded::Allocator(p), Input::Allocate(r)) => p.try_allocate(r).await.map(Answer::Allocation),
            // `Target::prepare` only hands out a plugin of the input's kind.
            _ => return Err(format!("not run: [case.{}] needs {}", input.table(), a_plugin(input.kind()))),
        };
        answer.map_err(|failure| format!("failed: {failure}"))
    }
}

/// "an authorizer plugin", "a cors plugin", ...
fn a_plugin(kind: PluginKind) -> String {
    let article = if kind.to_string().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind} plugin")
}

/// Print rows as left-aligned columns under a header. Cells are made single-line (plugin
/// messages may hold newlines) and a column is no wider than its widest cell, capped so
/// one long answer does not push every row off screen.
pub fn print_table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) {
    const MAX_WIDTH: usize = 48;
    let one_line = |cell: &str| cell.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let rows: Vec<[String; N]> = rows.into_iter().map(|row| row.map(|cell| one_line(&cell))).collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count().min(MAX_WIDTH));
        }
    }
    let print_row = |cells: &[&str]| {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", line.join("  ").trim_end());
    };
    print_row(&header);
    for row in &rows {
        print_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
