//! Tracing export (`observations.tracing`, `cairn daemon --tracing`): the daemon's `tracing`
//! spans of Cairn's crates become OpenTelemetry spans, exported over OTLP/HTTP
//! (`cairn_telemetry::otlp`; where the endpoint comes from is documented on
//! [`TracingConfig`](crate::config::TracingConfig)).
//!
//! The log subscriber is set up in `main` before the config is read, so it carries an empty
//! slot ([`subscriber_slot`]) that [`start`] fills once the daemon knows tracing is on. The
//! export stops with the daemon: [`Tracing::stop`] flushes and shuts the exporter down.
//! Spans are created where the work is: `rpc.call` / `rpc.serve` (host/swarm), `consensus.commit`
//! and `crdt.sync` (host/consensus, host/raft), `tracker.pin` / `tracker.unpin` (host/tracker),
//! `ipfs.pin`, `ipfs.unpin` and `ipfs.request` (host/ipfs). They are INFO spans, so `CAIRN_LOG`
//! must let INFO through for their crates (the default `info` does). Peer RPCs carry the
//! caller's `traceparent`, so a served call's `rpc.serve` continues the caller's trace.

use std::sync::OnceLock;
use std::time::Duration;

use std::any::TypeId;

use cairn_telemetry::otlp::{self, OtlpSettings, SdkTracerProvider};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, span};
use tracing_subscriber::layer::Context;
use tracing_subscriber::{Layer, Registry};

use crate::config::ServiceConfig;

/// The OpenTelemetry layer, set at most once per process by [`start`].
static SLOT: OnceLock<Box<dyn Layer<Registry> + Send + Sync>> = OnceLock::new();

/// The target prefix of the spans exported: every Cairn crate (`cairn`, `cairn_swarm`, ...).
const TARGETS: &str = "cairn";

/// Deadline of one export to the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The (empty) OpenTelemetry layer for the process's subscriber; put it in the subscriber
/// built in `main`.
pub fn subscriber_slot() -> LateLayer {
    LateLayer
}

/// A layer that forwards to [`SLOT`] once it is set. Unlike `tracing_subscriber::reload`, it
/// forwards downcasts (safe, since the slot never changes once set): OpenTelemetry's span
/// context lookups, which trace propagation across peers needs, go through them.
pub struct LateLayer;

impl Layer<Registry> for LateLayer {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        if let Some(l) = SLOT.get() {
            l.on_register_dispatch(subscriber);
        }
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Unset, it has no opinion (the log filter decides); set, the layer's own answer.
        SLOT.get().map_or(Interest::always(), |l| l.register_callsite(metadata))
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, Registry>) -> bool {
        SLOT.get().is_none_or(|l| l.enabled(metadata, ctx))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // OFF when unset, so the log filter's hint alone decides.
        SLOT.get().map_or(Some(LevelFilter::OFF), |l| l.max_level_hint())
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_record(span, values, ctx);
        }
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_follows_from(span, follows, ctx);
        }
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, Registry>) -> bool {
        SLOT.get().is_none_or(|l| l.event_enabled(event, ctx))
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_close(id, ctx);
        }
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = SLOT.get() {
            l.on_id_change(old, new, ctx);
        }
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: forwarded to the installed layer, which lives (unchanged) for the rest of
        // the process, so the pointers it hands out stay valid.
        SLOT.get().and_then(|l| unsafe { l.downcast_raw(id) })
    }
}

/// A running trace export; [`Tracing::stop`] flushes it.
pub struct Tracing {
    provider: SdkTracerProvider,
}

/// Starts exporting spans when `observations.tracing.enable_tracing` (or `force`, the
/// `--tracing` flag) is on. `peer_id` and the peername name the service, as IPFS Cluster does.
pub fn start(config: &ServiceConfig, peer_id: &str, force: bool) -> anyhow::Result<Option<Tracing>> {
    let settings = &config.observations.tracing;
    if !(settings.enable_tracing || force) {
        return Ok(None);
    }
    let endpoint = settings.effective_otlp_endpoint().map_err(|e| anyhow::anyhow!("observations.tracing: {e}"))?;
    let peername = &config.cluster().peername;
    let otlp = OtlpSettings {
        endpoint: endpoint.clone(),
        service_name: format!("{}-{peername}", settings.service_name),
        attributes: vec![("cluster_id".into(), peer_id.to_owned()), ("cairn.peername".into(), peername.clone())],
        sampling_prob: settings.sampling_prob,
        timeout: EXPORT_TIMEOUT,
    };
    let provider = otlp::provider(&otlp, tokio::runtime::Handle::current())
        .map_err(|e| anyhow::anyhow!("observations.tracing: {e}"))?;
    let layer: Box<dyn Layer<Registry> + Send + Sync> = Box::new(otlp::layer::<Registry>(&provider, TARGETS));
    if SLOT.set(layer).is_err() {
        anyhow::bail!("observations.tracing: the trace export is already running in this process");
    }
    // Callsites registered before the layer was set cached its "no opinion"; ask again.
    tracing::callsite::rebuild_interest_cache();
    otlp::install_propagation();
    tracing::info!(
        endpoint = %otlp::traces_url(&endpoint),
        sampling_prob = settings.sampling_prob,
        service = %otlp.service_name,
        "tracing: exporting spans over OTLP/HTTP"
    );
    Ok(Some(Tracing { provider }))
}

impl Tracing {
    /// Stops recording spans and sends the last batch (waiting at most the export timeout).
    pub async fn stop(self) {
        // The SDK's shutdown blocks until its export thread is done, and that thread's requests
        // run on this runtime: block a blocking-pool thread, not a worker.
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("tracing export shutdown: {e}"),
            Err(e) => tracing::warn!("tracing export shutdown task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::TracingConfig;

    fn endpoint(jaeger: &str, otlp: Option<&str>) -> Result<String, String> {
        TracingConfig {
            jaeger_agent_endpoint: jaeger.into(),
            otlp_endpoint: otlp.map(Into::into),
            ..TracingConfig::default()
        }
        .effective_otlp_endpoint()
    }

    #[test]
    fn otlp_endpoint_comes_from_otlp_endpoint_or_the_jaeger_agent_host() {
        assert_eq!(TracingConfig::default().effective_otlp_endpoint().as_deref(), Ok("http://127.0.0.1:4318"));
        assert_eq!(endpoint("/ip4/0.0.0.0/udp/6831", Some("http://jaeger:4318")).as_deref(), Ok("http://jaeger:4318"));
        assert_eq!(endpoint("/ip4/10.1.2.3/udp/6831", None).as_deref(), Ok("http://10.1.2.3:4318"));
        assert_eq!(endpoint("/dns4/jaeger/udp/6831", Some(" ")).as_deref(), Ok("http://jaeger:4318"));
        assert_eq!(endpoint("/ip6/::1/udp/6831", None).as_deref(), Ok("http://[::1]:4318"));
        assert_eq!(endpoint("/ip6/::/udp/6831", None).as_deref(), Ok("http://127.0.0.1:4318"));
        assert!(endpoint("jaeger:6831", None).is_err());
    }
}
