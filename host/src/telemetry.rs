//! Tracing export (`observations.tracing`, `cairn daemon --tracing`): the daemon's `tracing`
//! spans of Cairn's crates become OpenTelemetry spans, exported over OTLP/HTTP
//! (`cairn_telemetry::otlp`; where the endpoint comes from is documented on
//! [`TracingConfig`](crate::config::TracingConfig)).
//!
//! The log subscriber is set up in `main` before the config is read, so it carries an empty
//! slot ([`subscriber_slot`]) that [`start`] fills once the daemon knows tracing is on.
//! Spans are created where the work is: `rpc.call` / `rpc.serve` (host/swarm), `consensus.commit`
//! and `crdt.sync` (host/consensus, host/raft), `tracker.pin` / `tracker.unpin` (host/tracker),
//! `ipfs.pin`, `ipfs.unpin` and `ipfs.request` (host/ipfs). They are INFO spans, so `CAIRN_LOG`
//! must let INFO through for their crates (the default `info` does).

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use cairn_telemetry::otlp::{self, OtlpSettings, SdkTracerProvider};
use tracing_subscriber::{Layer, Registry, reload};

use crate::config::ServiceConfig;

type Slot = Option<Box<dyn Layer<Registry> + Send + Sync>>;

/// The handle to the subscriber's OpenTelemetry slot, set by [`subscriber_slot`]. A static
/// because the subscriber it belongs to is the process-wide one.
static SLOT: OnceLock<reload::Handle<Slot, Registry>> = OnceLock::new();

/// The target prefix of the spans exported: every Cairn crate (`cairn`, `cairn_swarm`, ...).
const TARGETS: &str = "cairn";

/// Deadline of one export to the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The (empty) OpenTelemetry layer for the process's subscriber; call once, in `main`.
pub fn subscriber_slot() -> reload::Layer<Slot, Registry> {
    let (layer, handle) = reload::Layer::new(None);
    let _ = SLOT.set(handle);
    layer
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
    let Some(slot) = SLOT.get() else {
        tracing::warn!("tracing is enabled but this process's log subscriber has no OpenTelemetry slot");
        return Ok(None);
    };
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
    slot.reload(Some(layer)).context("install the OpenTelemetry layer")?;
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
        if let Some(slot) = SLOT.get() {
            let _ = slot.reload(None);
        }
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
