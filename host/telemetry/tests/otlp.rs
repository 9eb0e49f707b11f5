//! Spans of Cairn's targets reach an OTLP/HTTP collector: a fake one on 127.0.0.1 that
//! decodes `POST /v1/traces`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_telemetry::otlp::{self, OtlpSettings};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// What the collector received: (path, content type, decoded request).
type Received = Arc<Mutex<Vec<(String, String, ExportTraceServiceRequest)>>>;

/// A collector answering every request with an empty success; returns its base URL.
async fn fake_collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let received = received.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = received.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let content_type = req
                            .headers()
                            .get(hyper::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if let Ok(request) = ExportTraceServiceRequest::decode(body) {
                            received.lock().unwrap().push((path, content_type, request));
                        }
                        let mut answer = Response::new(Full::new(Bytes::new()));
                        answer
                            .headers_mut()
                            .insert(hyper::header::CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Sends the last batch and stops the provider (off the async threads: it blocks).
async fn flush(provider: otlp::SdkTracerProvider) {
    let flushed = tokio::task::spawn_blocking(move || {
        let flushed = provider.force_flush();
        let _ = provider.shutdown();
        flushed
    })
    .await
    .expect("flush task");
    assert!(flushed.is_ok(), "{flushed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector() {
    let received: Received = Arc::default();
    let endpoint = fake_collector(received.clone()).await;
    let settings = OtlpSettings {
        endpoint,
        service_name: "cluster-daemon-test".into(),
        attributes: vec![("cluster_id".into(), "12D3KooWTest".into())],
        sampling_prob: 1.0,
        timeout: Duration::from_secs(5),
    };
    let provider = otlp::provider(&settings, tokio::runtime::Handle::current()).expect("provider");
    let subscriber = tracing_subscriber::registry().with(otlp::layer(&provider, "otlp"));
    tracing::subscriber::with_default(subscriber, || {
        // This test's target is `otlp` (the test crate's name): exported.
        let outer = tracing::info_span!("rpc.call", method = "Cluster.ID");
        outer.in_scope(|| {
            tracing::info_span!("consensus.commit", op = "pin").in_scope(|| tracing::info!("committed"));
        });
        // Another crate's span is not.
        tracing::info_span!(target: "libp2p_swarm", "connection").in_scope(|| {});
    });
    flush(provider).await;

    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "no export arrived");
    let mut names = Vec::new();
    for (path, content_type, request) in received.iter() {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        for resource_spans in &request.resource_spans {
            let resource = resource_spans.resource.as_ref().expect("resource");
            let service = resource.attributes.iter().find(|kv| kv.key == "service.name").expect("service.name");
            assert!(format!("{:?}", service.value).contains("cluster-daemon-test"), "{service:?}");
            for scope in &resource_spans.scope_spans {
                for span in &scope.spans {
                    names.push((span.name.clone(), span.parent_span_id.is_empty(), span.events.len()));
                }
            }
        }
    }
    assert!(names.contains(&("rpc.call".to_owned(), true, 0)), "{names:?}");
    assert!(names.contains(&("consensus.commit".to_owned(), false, 1)), "{names:?}");
    assert!(!names.iter().any(|(name, _, _)| name == "connection"), "{names:?}");
}

#[test]
fn traces_url_appends_the_path_once() {
    assert_eq!(otlp::traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(otlp::traces_url("http://jaeger:4318/"), "http://jaeger:4318/v1/traces");
    assert_eq!(otlp::traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_traceparent_continues_the_callers_trace() {
    let received: Received = Arc::default();
    let endpoint = fake_collector(received.clone()).await;
    let settings = OtlpSettings {
        endpoint,
        service_name: "propagation-test".into(),
        attributes: Vec::new(),
        sampling_prob: 1.0,
        timeout: Duration::from_secs(5),
    };
    let provider = otlp::provider(&settings, tokio::runtime::Handle::current()).expect("provider");
    otlp::install_propagation();
    let subscriber = tracing_subscriber::registry().with(otlp::layer(&provider, "otlp"));
    let sent = tracing::subscriber::with_default(subscriber, || {
        // The caller's side: the traceparent of its current span travels with the call.
        let sent = tracing::info_span!("rpc.call").in_scope(cairn_telemetry::propagation::current_traceparent);
        let sent = sent.expect("a traceparent inside a recorded span");
        // The serving side (another peer in real life): its span continues that trace.
        let served = tracing::info_span!("rpc.serve");
        cairn_telemetry::propagation::continue_trace(&served, &sent);
        served.in_scope(|| {});
        // A malformed value leaves the span a trace of its own.
        let stray = tracing::info_span!("stray");
        cairn_telemetry::propagation::continue_trace(&stray, "00-not-a-trace");
        stray.in_scope(|| {});
        sent
    });
    flush(provider).await;
    assert_eq!(cairn_telemetry::propagation::current_traceparent(), None, "no span, no traceparent");

    let mut spans = std::collections::HashMap::new();
    for (_, _, request) in received.lock().unwrap().iter() {
        for scope in request.resource_spans.iter().flat_map(|r| &r.scope_spans) {
            for span in &scope.spans {
                spans.insert(span.name.clone(), span.clone());
            }
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (call, serve, stray) = (&spans["rpc.call"], &spans["rpc.serve"], &spans["stray"]);
    assert_eq!(sent, format!("00-{}-{}-01", hex(&call.trace_id), hex(&call.span_id)));
    assert_eq!(serve.trace_id, call.trace_id, "rpc.serve joins the caller's trace");
    assert_eq!(serve.parent_span_id, call.span_id, "as a child of rpc.call");
    assert_ne!(stray.trace_id, call.trace_id);
    assert!(stray.parent_span_id.is_empty());
}
