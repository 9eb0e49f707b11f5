//! HTTP/1.1 (hyper 1) over `/libp2p-http` streams between a host and clients on 127.0.0.1.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_libp2p_http::{
    Error, HttpStream, Libp2pHttpClient, Libp2pHttpHost, Multiaddr, PeerId, dial, dial_with_timeout,
};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use libp2p::identity::Keypair;

/// Size of the streamed `/big` body.
const BIG: usize = 5 * 1024 * 1024;

fn big_byte(i: usize) -> u8 {
    (i % 251) as u8
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `/id` answers with the host's id and the caller's; `/big` streams BIG bytes in 64 KiB chunks.
async fn handle(host_id: PeerId, remote: PeerId, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match req.uri().path() {
        "/id" => Response::new(
            http_body_util::Full::new(Bytes::from(format!("{{\"id\":\"{host_id}\",\"caller\":\"{remote}\"}}"))).boxed(),
        ),
        "/big" => {
            let chunks = (0..BIG).step_by(64 * 1024).map(|start| {
                let end = (start + 64 * 1024).min(BIG);
                Ok::<_, Infallible>(Frame::data(Bytes::from((start..end).map(big_byte).collect::<Vec<u8>>())))
            });
            Response::new(StreamBody::new(futures::stream::iter(chunks)).boxed())
        }
        _ => {
            let mut r = Response::new(Empty::new().boxed());
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(response)
}

/// Start a host on 127.0.0.1 and serve HTTP on every accepted stream.
async fn serve(psk: Option<[u8; 32]>) -> (Arc<Libp2pHttpHost>, Multiaddr) {
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("addr");
    let host = Arc::new(Libp2pHttpHost::start(Keypair::generate_ed25519(), vec![listen], psk).await.expect("start"));
    let target = host.dial_addrs().into_iter().next().expect("one address");
    let acceptor = host.clone();
    tokio::spawn(async move {
        let host_id = acceptor.peer_id();
        while let Some((remote, stream)) = acceptor.accept().await {
            assert_eq!(remote, stream.peer_id());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(host_id, remote, req));
                // The client dropping its stream ends the connection; that is not an error here.
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (host, target)
}

/// Send one GET on `stream` and return the status and body.
async fn get(stream: HttpStream, path: &str) -> (StatusCode, Bytes) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(path).header("host", "cairn").body(Empty::<Bytes>::new()).expect("request");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_id_big_body_and_many_streams() {
    let (host, target) = serve(None).await;
    assert!(target.to_string().starts_with("/ip4/127.0.0.1/tcp/"), "{target}");
    assert!(!host.listen_addrs()[0].to_string().ends_with("/tcp/0"));

    // One request over a per-call swarm.
    let (status, body) = get(dial(target.clone(), None).await.expect("dial"), "/id").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(text.contains(&host.peer_id().to_string()), "{text}");

    // A streamed 5 MB body arrives intact.
    let (status, body) = get(dial(target.clone(), None).await.expect("dial"), "/big").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), BIG);
    assert!(body.iter().enumerate().all(|(i, b)| *b == big_byte(i)), "body corrupted");

    // Unknown path: the HTTP layer, not the transport, answers.
    let (status, _) = get(dial(target.clone(), None).await.expect("dial"), "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Several requests on one HTTP/1.1 connection (one stream), sequentially.
    let stream = dial(target.clone(), None).await.expect("dial");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    for _ in 0..5 {
        sender.ready().await.expect("connection ready for the next request");
        let req = Request::get("/id").header("host", "cairn").body(Empty::<Bytes>::new()).expect("request");
        let res = sender.send_request(req).await.expect("keep-alive response");
        assert_eq!(res.status(), StatusCode::OK);
        res.into_body().collect().await.expect("body");
    }

    // Sequential streams over one reused client swarm.
    let client = Libp2pHttpClient::new(None, Duration::from_secs(10)).expect("client");
    for _ in 0..5 {
        let (status, _) = get(client.open(&target).await.expect("open"), "/id").await;
        assert_eq!(status, StatusCode::OK);
    }

    // Concurrent streams: many on one client's connection plus several separate clients.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = client.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let stream = if i % 3 == 0 { dial(target, None).await } else { client.open(&target).await };
            let path = if i % 4 == 0 { "/big" } else { "/id" };
            let (status, body) = get(stream.expect("concurrent open"), path).await;
            assert_eq!(status, StatusCode::OK);
            if path == "/big" {
                assert_eq!(body.len(), BIG);
            }
        }));
    }
    for t in tasks {
        t.await.expect("concurrent request");
    }

    host.shutdown().await;
    assert!(host.listen_addrs().is_empty());
    assert!(host.accept().await.is_none(), "accept ends after shutdown");
    let e = dial_with_timeout(target.clone(), None, Duration::from_secs(5)).await.expect_err("host is gone");
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&target.to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_learns_the_client_peer_id() {
    let (host, target) = serve(None).await;
    let client = Libp2pHttpClient::new(None, Duration::from_secs(10)).expect("client");
    let stream = client.open(&target).await.expect("open");
    assert_eq!(stream.peer_id(), host.peer_id());
    let (_, body) = get(stream, "/id").await;
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(text.contains(&format!("\"caller\":\"{}\"", client.peer_id())), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_network_secret_is_enforced() {
    let secret = [7u8; 32];
    let (_host, target) = serve(Some(secret)).await;

    let (status, _) = get(dial(target.clone(), Some(secret)).await.expect("same PSK"), "/id").await;
    assert_eq!(status, StatusCode::OK);

    for (label, psk) in [("other PSK", Some([8u8; 32])), ("no PSK", None)] {
        let started = Instant::now();
        let e = dial_with_timeout(target.clone(), psk, Duration::from_secs(5)).await.expect_err(label);
        assert!(started.elapsed() < Duration::from_secs(8), "{label}: took {:?}", started.elapsed());
        assert!(matches!(e, Error::Connect { .. } | Error::Timeout { .. }), "{label}: {e}");
        assert!(e.to_string().contains(&target.to_string()), "{label}: {e}");
        eprintln!("{label}: {e} (after {:?})", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_errors_are_clear() {
    // No /p2p/ part.
    let e = dial("/ip4/127.0.0.1/tcp/1".parse().expect("addr"), None).await.expect_err("no peer id");
    assert!(matches!(e, Error::NoPeerId { .. }), "{e}");

    // Nothing listening: refused quickly, naming the address and the peer.
    let peer = Keypair::generate_ed25519().public().to_peer_id();
    let target: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().expect("addr");
    let e = dial(target.clone(), None).await.expect_err("refused");
    eprintln!("refused: {e}");
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&peer.to_string()), "{e}");

    // A live host, but the wrong peer id: noise authenticates someone else.
    let (_host, real) = serve(None).await;
    let mut wrong = real.clone();
    wrong.pop();
    let wrong = wrong.with(libp2p::multiaddr::Protocol::P2p(peer));
    let e = dial(wrong, None).await.expect_err("wrong peer id");
    eprintln!("wrong peer id: {e}");
    assert!(matches!(e, Error::Connect { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_identity_from_config_fields() {
    use base64::Engine;
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.to_protobuf_encoding().expect("encode"));
    let parsed = cairn_libp2p_http::host_identity(&id.to_string(), &b64).expect("matching pair");
    // The parsed key starts a host with that id.
    let host =
        Libp2pHttpHost::start(parsed, vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")], None).await.expect("start");
    assert_eq!(host.peer_id(), id);

    let other = Keypair::generate_ed25519().public().to_peer_id();
    let e = cairn_libp2p_http::host_identity(&other.to_string(), &b64).expect_err("mismatch");
    assert!(matches!(e, Error::IdMismatch { .. }));
    assert!(e.to_string().contains(&other.to_string()) && e.to_string().contains(&id.to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_both_ways_and_drop_ends_the_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("addr");
    let host = Libp2pHttpHost::start(Keypair::generate_ed25519(), vec![listen], None).await.expect("start");
    let target = host.dial_addrs().remove(0);

    let mut client = dial(target, None).await.expect("dial");
    client.write_all(b"ping").await.expect("write");
    client.flush().await.expect("flush");
    let (_, mut server) =
        tokio::time::timeout(Duration::from_secs(5), host.accept()).await.expect("accept in time").expect("a stream");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.expect("write back");
    server.flush().await.expect("flush back");
    client.read_exact(&mut buf).await.expect("read back");
    assert_eq!(&buf, b"pong");

    // Dropping the dialed stream (and with it the client swarm) ends the server's stream:
    // EOF or a reset, promptly, never a hang.
    drop(client);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server stream did not end");
    host.shutdown().await;
}
