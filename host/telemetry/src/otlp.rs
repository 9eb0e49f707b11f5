//! The OpenTelemetry trace pipeline: `tracing` spans of Cairn's crates become OpenTelemetry
//! spans, batched and exported over OTLP/HTTP (protobuf) to a collector — Jaeger (which takes
//! OTLP on port 4318), the OpenTelemetry Collector, Tempo, ...
//!
//! The HTTP client is hyper-util's (no reqwest, no gRPC). The SDK exports from its own thread,
//! outside any async runtime, so each request is spawned on the daemon's tokio runtime and
//! awaited from there.

use std::any::TypeId;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Sampler;
pub use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The OTLP/HTTP port collectors listen on.
pub const OTLP_HTTP_PORT: u16 = 4318;
/// The path of the trace export endpoint under a collector's base URL.
pub const TRACES_PATH: &str = "/v1/traces";
/// Largest collector answer read (it is a small protobuf message).
const MAX_RESPONSE: usize = 1 << 20;

/// How to export.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`, or `https://…` verified against the
    /// system's trust store); [`TRACES_PATH`] is appended unless the URL already ends with it.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Other resource attributes (peer id, peer name).
    pub attributes: Vec<(String, String)>,
    /// Fraction of new traces recorded (0 to 1); a span whose parent is sampled is recorded.
    pub sampling_prob: f64,
    /// Deadline of one export request.
    pub timeout: Duration,
}

/// The trace export URL for a collector base URL.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) { base.to_owned() } else { format!("{base}{TRACES_PATH}") }
}

/// Builds the tracer provider: a batch span processor exporting to `settings.endpoint`, its
/// requests run on `runtime`. Shut it down (off the async threads: it blocks until the last
/// batch is sent) to flush.
pub fn provider(settings: &OtlpSettings, runtime: tokio::runtime::Handle) -> Result<SdkTracerProvider, String> {
    let url = traces_url(&settings.endpoint);
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url}: the OTLP endpoint must be an http:// or https:// URL"));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(settings.timeout)
        .with_http_client(HyperClient::new(runtime, settings.timeout)?)
        .build()
        .map_err(|e| e.to_string())?;
    let mut attributes: Vec<KeyValue> =
        settings.attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
    attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    let resource =
        Resource::builder_empty().with_service_name(settings.service_name.clone()).with_attributes(attributes).build();
    let prob = if settings.sampling_prob.is_finite() { settings.sampling_prob.clamp(0.0, 1.0) } else { 0.0 };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(prob))))
        .with_resource(resource)
        .build())
}

/// Installs the [`crate::propagation`] hooks: W3C trace context (`traceparent`) read from and
/// written into the OpenTelemetry context of `tracing` spans.
pub fn install_propagation() {
    crate::propagation::install(crate::propagation::Hooks { current: current_traceparent, continue_remote });
}

fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

fn continue_remote(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let remote = TraceContextPropagator::new().extract(&carrier);
    if remote.span().span_context().is_valid() {
        // Fails only for a span already started or not recorded; it then keeps its own trace.
        let _ = span.set_parent(remote);
    }
}

/// The `tracing` layer that turns spans of targets starting with `target_prefix` (`cairn`:
/// every Cairn crate) into OpenTelemetry spans of `provider`. Other crates' spans (libp2p's
/// per-connection spans, openraft's, hyper's) are not exported; events inside an exported
/// span become its span events.
pub fn layer<S>(provider: &SdkTracerProvider, target_prefix: &'static str) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let tracer = provider.tracer("cairn");
    OnlyTargets {
        inner: tracing_opentelemetry::layer().with_tracer(tracer).with_tracked_inactivity(false),
        prefix: target_prefix,
    }
}

/// Forwards spans of targets under `prefix` to `inner` (see [`layer`]). Only span creation is
/// gated: the OpenTelemetry layer ignores the other callbacks of spans it did not create.
struct OnlyTargets<L> {
    inner: L,
    prefix: &'static str,
}

impl<S, L> Layer<S> for OnlyTargets<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // What is recorded is the other layers' (the log filter's) decision.
        Interest::always()
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().target().starts_with(self.prefix) {
            self.inner.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.inner.on_event(event, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: forwarded to the wrapped layer, which upholds the contract for its own types
        // (tracing-opentelemetry finds its `WithContext` this way).
        unsafe { self.inner.downcast_raw(id) }
    }
}

/// [`HttpClient`] over hyper-util's pooled client (`http://`, or `https://` verified against
/// the system's trust store, which honours `SSL_CERT_FILE`), each request run on a tokio
/// runtime.
#[derive(Debug, Clone)]
pub struct HyperClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl HyperClient {
    /// A client whose requests run on `runtime`, each bounded by `timeout` (body included).
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> Result<HyperClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: an https:// export then fails with the
        // TLS error, an http:// one is unaffected.
        let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        tracing::debug!(roots = added, "OTLP client: system trust store loaded");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS client: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HyperClient { client, runtime, timeout })
    }
}

#[async_trait::async_trait]
impl HttpClient for HyperClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        let exchange = async move {
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let task = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("no answer from the OTLP collector within {timeout:?}").into()))
        });
        task.await?
    }
}
