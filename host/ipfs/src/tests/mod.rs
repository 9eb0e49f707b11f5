//! Connector tests against a scripted fake daemon: tolerant parsing, the pin-progress timeout,
//! timeouts, throttling, headers and credentials, unix sockets.

mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cid::Cid;
use cid::multibase::Base;
use cid::multihash::Multihash;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;

use self::fake::{End, FakeDaemon, Recorded, Reply};
use crate::*;

fn test_cid(n: u8) -> Cid {
    Cid::new_v1(0x55, Multihash::wrap(0x12, &[n; 32]).expect("32-byte digest"))
}

fn b58(cid: &Cid) -> String {
    cid.to_string_of_base(Base::Base58Btc).expect("base58")
}

fn connector(fake: &FakeDaemon) -> IpfsHttp {
    IpfsHttp::new(IpfsHttpConfig::with_address(&fake.addr)).expect("config")
}

fn connector_with(fake: &FakeDaemon, edit: impl FnOnce(&mut IpfsHttpConfig)) -> IpfsHttp {
    let mut config = IpfsHttpConfig::with_address(&fake.addr);
    edit(&mut config);
    IpfsHttp::new(config).expect("config")
}

fn json(body: &str) -> Reply {
    Reply::Json(200, body.to_owned())
}

fn not_pinned(r: &Recorded) -> Reply {
    let arg = r.param("arg").unwrap_or_default();
    Reply::Json(500, format!(r#"{{"Message":"path '{arg}' is not pinned","Code":0,"Type":"error"}}"#))
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test]
async fn id_tolerates_missing_fields_and_names_the_call_when_unusable() {
    let fake = FakeDaemon::tcp(|_| json(r#"{"ID":"12D3KooWabc","Addresses":null}"#)).await;
    let id = connector(&fake).id().await.unwrap();
    assert_eq!(id, IpfsId { peer_id: "12D3KooWabc".into(), addresses: vec![], agent_version: None });

    let fake = FakeDaemon::tcp(|_| {
        json(r#"{"id":"12D3KooWxyz","addresses":["/ip4/1.2.3.4/tcp/4001"],"AgentVersion":"kubo/0.30"}"#)
    })
    .await;
    let id = connector(&fake).id().await.unwrap();
    assert_eq!(id.peer_id, "12D3KooWxyz");
    assert_eq!(id.addresses, ["/ip4/1.2.3.4/tcp/4001"]);
    assert_eq!(id.agent_version.as_deref(), Some("kubo/0.30"));

    let fake = FakeDaemon::tcp(|_| json(r#"{"Addresses":[]}"#)).await;
    let err = connector(&fake).id().await.unwrap_err();
    assert!(matches!(err, IpfsError::Malformed { call: "id", .. }), "{err}");
    assert!(err.to_string().contains(&fake.addr), "{err}");
}

#[tokio::test]
async fn kubo_error_bodies_become_daemon_errors_with_call_address_and_message() {
    let fake = FakeDaemon::tcp(|r| match r.call.as_str() {
        "id" => Reply::Json(500, r#"{"Message":"boom","Code":0,"Type":"error"}"#.into()),
        _ => Reply::Json(404, "404 page not found".into()),
    })
    .await;
    let ipfs = connector(&fake);
    let err = ipfs.id().await.unwrap_err();
    match &err {
        IpfsError::Daemon { call, daemon, status, message, code } => {
            assert_eq!(
                (*call, daemon.as_str(), *status, message.as_str(), *code),
                ("id", fake.addr.as_str(), 500, "boom", Some(0))
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.to_string(), format!("ipfs id at {}: daemon answered 500: boom", fake.addr));
    let err = ipfs.swarm_peers().await.unwrap_err();
    assert_eq!(err.daemon_message(), Some("404 page not found"));
}

#[tokio::test]
async fn repo_stat_reads_numbers_and_strings() {
    // js-ipfs sends strings, Kubo numbers.
    let fake = FakeDaemon::tcp(|_| {
        json(r#"{"NumObjects":"13","RepoSize":"11586","RepoPath":"/r","Version":"12","StorageMax":"9007199254740991"}"#)
    })
    .await;
    let stat = connector(&fake).repo_stat().await.unwrap();
    assert_eq!(stat, RepoStat { repo_size: 11586, storage_max: 9_007_199_254_740_991, num_objects: Some(13) });
    assert_eq!(stat.free_space(), 9_007_199_254_740_991 - 11586);
    assert_eq!(fake.requests()[0].param("size-only"), Some("true"));

    let fake = FakeDaemon::tcp(|_| json(r#"{"RepoSize":200,"StorageMax":100}"#)).await;
    let stat = connector(&fake).repo_stat().await.unwrap();
    assert_eq!((stat.free_space(), stat.num_objects), (0, None));

    let fake = FakeDaemon::tcp(|_| json(r#"{"RepoSize":200}"#)).await;
    let err = connector(&fake).repo_stat().await.unwrap_err();
    assert!(err.to_string().contains("StorageMax"), "{err}");
}

#[tokio::test]
async fn pin_ls_cid_reads_every_answer_shape() {
    let cid = test_cid(1);
    let b58 = b58(&cid);
    let fake = FakeDaemon::tcp(move |r| match r.param("type") {
        // js-ipfs NDJSON with a base58btc CIDv1.
        Some("recursive") => json(&format!("{{\"Type\":\"recursive\",\"Cid\":\"{b58}\"}}\n")),
        // Kubo's non-streamed map, with Kubo's indirect wording.
        Some("all") => json(&format!(r#"{{"Keys":{{"{cid}":{{"Type":"indirect through QmFoo"}}}}}}"#)),
        _ => not_pinned(r),
    })
    .await;
    let ipfs = connector(&fake);
    assert_eq!(ipfs.pin_ls_cid(cid, Some(PinMode::Recursive)).await.unwrap(), PinStatus::Recursive);
    assert_eq!(ipfs.pin_ls_cid(cid, Some(PinMode::Direct)).await.unwrap(), PinStatus::Unpinned);
    assert_eq!(ipfs.pin_ls_cid(cid, None).await.unwrap(), PinStatus::Indirect);
    let first = &fake.requests()[0];
    assert_eq!(
        (first.call.as_str(), first.param("stream"), first.param("arg")),
        ("pin/ls", Some("true"), Some(cid.to_string().as_str()))
    );
}

#[tokio::test]
async fn pin_ls_lists_recursive_then_direct_pins_in_both_answer_shapes() {
    let (a, b, c) = (test_cid(1), test_cid(2), test_cid(3));
    let fake = FakeDaemon::tcp(move |r| match r.param("type") {
        Some("recursive") => Reply::Stream(
            vec![
                (MS(0), format!("{{\"Type\":\"recursive\",\"Cid\":\"{}\"}}\n", b58(&a))),
                (MS(20), format!("{{\"Type\":\"recursive\",\"Cid\":{{\"/\":\"{b}\"}}}}\n")),
            ],
            End::Finish,
        ),
        Some("direct") => json(&format!(r#"{{"Keys":{{"{c}":{{"Type":"direct"}}}}}}"#)),
        _ => Reply::Json(400, "{}".into()),
    })
    .await;
    let pins: Vec<PinnedCid> = connector(&fake).pin_ls().try_collect().await.unwrap();
    assert_eq!(
        pins,
        vec![
            PinnedCid { cid: a, status: PinStatus::Recursive },
            PinnedCid { cid: b, status: PinStatus::Recursive },
            PinnedCid { cid: c, status: PinStatus::Direct },
        ]
    );
    let types: Vec<_> = fake.requests().iter().map(|r| r.param("type").unwrap_or_default().to_owned()).collect();
    assert_eq!(types, ["recursive", "direct"]);
}

#[tokio::test]
async fn pin_ls_stream_ends_after_an_error() {
    let fake = FakeDaemon::tcp(|_| {
        Reply::Stream(vec![(MS(0), "{\"Type\":\"recursive\",\"Cid\":\"nonsense\"}\n".into())], End::Finish)
    })
    .await;
    let items: Vec<_> = connector(&fake).pin_ls().collect::<Vec<_>>().await;
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Err(IpfsError::Malformed { call: "pin/ls", .. })));
    assert_eq!(fake.requests().len(), 1, "the direct listing is not asked after an error");
}

/// The daemon's pin/ls says "not pinned"; pin/add answers with `pin_add`.
async fn pin_daemon(pin_add: impl Fn() -> Reply + Send + Sync + 'static) -> FakeDaemon {
    FakeDaemon::tcp(move |r| match r.call.as_str() {
        "pin/ls" => not_pinned(r),
        "pin/add" => pin_add(),
        _ => Reply::Json(404, "{}".into()),
    })
    .await
}

fn progress_lines(n: u64, every: Duration) -> Vec<(Duration, String)> {
    (1..=n).map(|p| (every, format!("{{\"Progress\":{p}}}\n"))).collect()
}

#[tokio::test]
async fn pin_fails_when_progress_stalls_for_pin_timeout() {
    let fake = pin_daemon(|| Reply::Stream(progress_lines(3, MS(50)), End::Hang)).await;
    let ipfs = connector_with(&fake, |c| c.pin_timeout = MS(400));
    let (tx, rx) = watch::channel(0);
    let mut request = PinRequest::new(test_cid(7), PinMode::Recursive);
    request.progress = Some(tx);
    let started = Instant::now();
    let err = ipfs.pin(request).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, IpfsError::PinStalled { progress: 3, .. }), "{err}");
    assert!(err.to_string().contains("no progress for 400ms"), "{err}");
    // 3 × 50 ms of progress, then 400 ms of silence.
    assert!(took >= MS(540) && took < MS(2000), "{took:?}");
    assert_eq!(*rx.borrow(), 3);
    let add = fake.requests().into_iter().find(|r| r.call == "pin/add").unwrap();
    assert_eq!((add.param("recursive"), add.param("progress")), (Some("true"), Some("true")));
    // The request was cancelled: the daemon saw the client hang up.
    tokio::time::timeout(Duration::from_secs(2), async {
        while fake.closed_by_client.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(MS(10)).await;
        }
    })
    .await
    .expect("the stalled pin/add connection is closed");
}

#[tokio::test]
async fn slow_pin_that_keeps_progressing_outlives_pin_timeout() {
    let cid = test_cid(8);
    let fake = pin_daemon(move || {
        let mut chunks = progress_lines(8, MS(150));
        chunks.push((MS(150), format!("{{\"Pins\":[\"{cid}\"]}}\n")));
        Reply::Stream(chunks, End::Finish)
    })
    .await;
    let ipfs = connector_with(&fake, |c| c.pin_timeout = MS(400));
    let (tx, rx) = watch::channel(0);
    let mut request = PinRequest::new(cid, PinMode::Recursive);
    request.progress = Some(tx);
    let started = Instant::now();
    assert_eq!(ipfs.pin(request).await.unwrap(), PinOutcome::Pinned);
    // 1.35 s in total, more than three pin_timeouts: the timeout is about stalls, not totals.
    assert!(started.elapsed() > MS(1200));
    assert_eq!(*rx.borrow(), 8);
}

#[tokio::test]
async fn pin_without_progress_lines_succeeds_within_pin_timeout_and_fails_after() {
    // js-ipfs: no progress lines, one answer at the end.
    let cid = test_cid(9);
    let fake =
        pin_daemon(move || Reply::Stream(vec![(MS(200), format!("{{\"Pins\":[\"{}\"]}}\n", b58(&cid)))], End::Finish))
            .await;
    let ipfs = connector_with(&fake, |c| c.pin_timeout = MS(1000));
    assert_eq!(ipfs.pin(PinRequest::new(cid, PinMode::Direct)).await.unwrap(), PinOutcome::Pinned);
    let add = fake.requests().into_iter().find(|r| r.call == "pin/add").unwrap();
    assert_eq!(add.param("recursive"), Some("false"));

    let fake = pin_daemon(|| Reply::Hang).await;
    let ipfs = connector_with(&fake, |c| c.pin_timeout = MS(300));
    let err = ipfs.pin(PinRequest::new(cid, PinMode::Recursive)).await.unwrap_err();
    assert!(matches!(err, IpfsError::PinStalled { progress: 0, .. }), "{err}");
}

#[tokio::test]
async fn pin_errors_in_the_stream_are_reported() {
    let fake =
        pin_daemon(|| Reply::Stream(progress_lines(1, MS(0)), End::Trailer("merkledag: not found".into()))).await;
    let err = connector(&fake).pin(PinRequest::new(test_cid(1), PinMode::Recursive)).await.unwrap_err();
    assert_eq!(err.daemon_message(), Some("merkledag: not found"), "{err}");

    let fake = pin_daemon(|| {
        Reply::Stream(
            vec![(MS(0), "{\"Message\":\"pin: context canceled\",\"Code\":0,\"Type\":\"error\"}\n".into())],
            End::Finish,
        )
    })
    .await;
    let err = connector(&fake).pin(PinRequest::new(test_cid(1), PinMode::Recursive)).await.unwrap_err();
    assert_eq!(err.daemon_message(), Some("pin: context canceled"), "{err}");
}

#[tokio::test]
async fn pin_skips_pins_the_daemon_already_holds() {
    let cid = test_cid(4);
    let fake = FakeDaemon::tcp(move |r| match r.call.as_str() {
        "pin/ls" => json(&format!("{{\"Type\":\"recursive\",\"Cid\":\"{cid}\"}}\n")),
        _ => Reply::Json(500, "{}".into()),
    })
    .await;
    assert_eq!(
        connector(&fake).pin(PinRequest::new(cid, PinMode::Recursive)).await.unwrap(),
        PinOutcome::AlreadyPinned
    );
    assert_eq!(fake.calls(), ["pin/ls"]);
}

#[tokio::test]
async fn pin_update_is_used_when_the_old_pin_is_held_and_falls_back_when_missing() {
    let (from, to) = (test_cid(1), test_cid(2));
    let kubo = Arc::new(AtomicBool::new(true));
    let k = kubo.clone();
    let fake = FakeDaemon::tcp(move |r| match (r.call.as_str(), r.param("arg")) {
        ("pin/ls", Some(arg)) if arg == from.to_string() => {
            json(&format!("{{\"Type\":\"recursive\",\"Cid\":\"{from}\"}}\n"))
        }
        ("pin/ls", _) => not_pinned(r),
        ("pin/update", _) if k.load(Ordering::SeqCst) => json(&format!(r#"{{"Pins":["{from}","{to}"]}}"#)),
        ("pin/update", _) => Reply::Json(404, r#"{"Message":"Not Found","Code":3,"Type":"error"}"#.into()),
        ("pin/add", _) => json(&format!(r#"{{"Pins":["{to}"]}}"#)),
        _ => Reply::Json(500, "{}".into()),
    })
    .await;
    let ipfs = connector(&fake);
    let mut request = PinRequest::new(to, PinMode::Recursive);
    request.update_from = Some(from);
    assert_eq!(ipfs.pin(request).await.unwrap(), PinOutcome::Updated);
    let update = fake.requests().into_iter().find(|r| r.call == "pin/update").unwrap();
    let args: Vec<_> = update.query.iter().filter(|(k, _)| k == "arg").map(|(_, v)| v.clone()).collect();
    assert_eq!(args, [from.to_string(), to.to_string()]);
    assert_eq!(update.param("unpin"), Some("false"));

    // js-ipfs: no pin/update (404), so the pin is made with pin/add.
    kubo.store(false, Ordering::SeqCst);
    let mut request = PinRequest::new(to, PinMode::Recursive);
    request.update_from = Some(from);
    assert_eq!(ipfs.pin(request).await.unwrap(), PinOutcome::Pinned);
    assert_eq!(fake.calls().last().map(String::as_str), Some("pin/add"));
}

#[tokio::test]
async fn unpin_treats_not_pinned_as_success_honours_unpin_disable_and_unpin_timeout() {
    let (plain, absent, slow) = (test_cid(1), test_cid(2), test_cid(3));
    let fake = FakeDaemon::tcp(move |r| match r.param("arg") {
        Some(arg) if arg == absent.to_string() => {
            Reply::Json(500, r#"{"Message":"not pinned or pinned indirectly","Code":0,"Type":"error"}"#.into())
        }
        Some(arg) if arg == slow.to_string() => Reply::Hang,
        _ => json(r#"{"Pins":["x"]}"#),
    })
    .await;
    let ipfs = connector_with(&fake, |c| c.unpin_timeout = MS(300));
    assert_eq!(ipfs.unpin(absent).await.unwrap(), UnpinOutcome::NotPinned);
    assert_eq!(ipfs.unpin(plain).await.unwrap(), UnpinOutcome::Unpinned);
    let err = ipfs.unpin(slow).await.unwrap_err();
    assert!(matches!(err, IpfsError::Timeout { call: "pin/rm", timeout, .. } if timeout == MS(300)), "{err}");

    let sent = fake.requests().len();
    let disabled = connector_with(&fake, |c| c.unpin_disable = true);
    let err = disabled.unpin(plain).await.unwrap_err();
    assert!(matches!(err, IpfsError::UnpinDisabled { .. }), "{err}");
    assert_eq!(fake.requests().len(), sent, "nothing was sent");
}

#[tokio::test]
async fn plain_calls_time_out_after_ipfs_request_timeout() {
    let fake = FakeDaemon::tcp(|_| Reply::Hang).await;
    let ipfs = connector_with(&fake, |c| c.ipfs_request_timeout = MS(250));
    let started = Instant::now();
    let err = ipfs.id().await.unwrap_err();
    assert!(started.elapsed() < MS(2000));
    assert_eq!(err.to_string(), format!("ipfs id at {}: no answer within 250ms", fake.addr));
}

#[tokio::test]
async fn requests_are_throttled_after_ten_consecutive_transport_failures() {
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let fake =
        FakeDaemon::tcp(move |_| if u.load(Ordering::SeqCst) { json(r#"{"ID":"p"}"#) } else { Reply::Close }).await;
    let ipfs = connector(&fake);
    let started = Instant::now();
    for _ in 0..11 {
        assert!(ipfs.id().await.unwrap_err().is_unreachable());
    }
    assert!(started.elapsed() < MS(1000), "no throttling up to the threshold");
    assert_eq!(ipfs.consecutive_failures(), 11);
    // Above the threshold: one request per second.
    let started = Instant::now();
    for _ in 0..3 {
        assert!(ipfs.id().await.is_err());
    }
    let took = started.elapsed();
    assert!(took >= MS(1900) && took < MS(4000), "{took:?}");
    // One answer ends the throttling.
    up.store(true, Ordering::SeqCst);
    assert!(ipfs.id().await.is_ok());
    assert_eq!(ipfs.consecutive_failures(), 0);
    let started = Instant::now();
    for _ in 0..3 {
        ipfs.id().await.unwrap();
    }
    assert!(started.elapsed() < MS(500));
}

#[tokio::test]
async fn extra_headers_and_basic_auth_go_on_every_request() {
    let fake = FakeDaemon::tcp(|_| json(r#"{"ID":"p","Peers":[{"Peer":"QmA","Addr":"/ip4/1.2.3.4/tcp/1"}]}"#)).await;
    let ipfs = connector_with(&fake, |c| {
        c.headers = vec![("X-Api-Key".into(), "k1".into())];
        c.basic_auth = Some(BasicAuth { username: "user".into(), password: "pass".into() });
    });
    ipfs.id().await.unwrap();
    assert_eq!(ipfs.swarm_peers().await.unwrap(), ["QmA"]);
    for request in fake.requests() {
        assert_eq!(request.header("authorization"), Some("Basic dXNlcjpwYXNz"));
        assert_eq!(request.header("x-api-key"), Some("k1"));
    }
}

#[tokio::test]
async fn unix_socket_daemons_work() {
    let fake = FakeDaemon::unix(|_| json(r#"{"ID":"12D3KooWunix","Addresses":[]}"#)).await;
    assert!(fake.addr.starts_with("/unix/"));
    assert_eq!(connector(&fake).id().await.unwrap().peer_id, "12D3KooWunix");
}

#[tokio::test]
async fn block_put_sends_one_multipart_file_and_reads_the_key() {
    let cid = test_cid(5);
    let fake = FakeDaemon::tcp(move |_| json(&format!(r#"{{"Key":"{}","Size":"5"}}"#, b58(&cid)))).await;
    let ipfs = connector(&fake);
    let info = ipfs.block_put(bytes::Bytes::from_static(b"hello"), BlockPutOptions::for_cid(&cid)).await.unwrap();
    assert_eq!(info, BlockInfo { cid, size: 5 });
    let put = &fake.requests()[0];
    assert_eq!(
        (put.param("cid-codec"), put.param("mhtype"), put.param("mhlen"), put.param("pin"), put.param("format")),
        (Some("raw"), Some("sha2-256"), Some("32"), Some("false"), None)
    );
    let content_type = put.header("content-type").unwrap();
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
    let body = String::from_utf8(put.body.clone()).unwrap();
    assert!(body.starts_with(&format!("--{boundary}\r\n")), "{body}");
    assert!(body.contains("name=\"file\""));
    assert!(body.ends_with(&format!("\r\n\r\nhello\r\n--{boundary}--\r\n")), "{body}");
}

#[tokio::test]
async fn resolve_skips_plain_cids_and_reads_js_ipfs_prefixed_cidv0() {
    let v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
    let fake = FakeDaemon::tcp(move |r| match r.param("arg") {
        Some("/ipns/example.com") => json(&format!(r#"{{"Path":"/ipfs/z{v0}"}}"#)),
        _ => json(r#"{"Path":"/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/sub"}"#),
    })
    .await;
    let ipfs = connector(&fake);
    let cid = test_cid(3);
    assert_eq!(ipfs.resolve(&format!("/ipfs/{cid}")).await.unwrap(), cid);
    assert!(fake.requests().is_empty(), "no call for /ipfs/<cid>");
    assert_eq!(ipfs.resolve("/ipns/example.com").await.unwrap().to_string(), v0);
    let err = ipfs.resolve(&format!("/ipfs/{cid}/a/b")).await.unwrap_err();
    assert!(err.to_string().contains("not an immutable"), "{err}");
}

#[tokio::test]
async fn config_key_walks_dotted_keys() {
    let fake = FakeDaemon::tcp(|_| json(r#"{"Identity":{"PeerID":"12D3KooWme"},"Datastore":{}}"#)).await;
    let ipfs = connector(&fake);
    assert_eq!(ipfs.config_key("Identity.PeerID").await.unwrap(), "12D3KooWme");
    let err = ipfs.config_key("Datastore.StorageMax").await.unwrap_err();
    assert!(err.to_string().contains("Datastore.StorageMax"), "{err}");
}

#[tokio::test]
async fn repo_gc_collects_keys_and_errors() {
    let (a, b) = (test_cid(1), test_cid(2));
    let fake = FakeDaemon::tcp(move |_| {
        Reply::Stream(
            vec![
                (MS(0), format!("{{\"Key\":{{\"/\":\"{}\"}}}}\n", b58(&a))),
                (MS(10), "{\"Error\":\"could not remove block\"}\n".into()),
                (MS(10), format!("{{\"Key\":\"{b}\"}}\n")),
            ],
            End::Finish,
        )
    })
    .await;
    let report = connector(&fake).repo_gc().await.unwrap();
    assert_eq!(report, GcReport { removed: vec![a, b], errors: vec!["could not remove block".into()] });
    assert_eq!(fake.requests()[0].param("stream-errors"), Some("true"));
}

#[tokio::test]
async fn informer_trigger_ticks_every_n_operations() {
    let fake = FakeDaemon::tcp(|_| json(r#"{"Pins":["x"]}"#)).await;
    let ipfs = connector_with(&fake, |c| c.informer_trigger_interval = 2);
    let rx = ipfs.informer_trigger();
    for n in 0..5 {
        ipfs.unpin(test_cid(n)).await.unwrap();
    }
    assert_eq!(*rx.borrow(), 2);
    let never = connector(&fake);
    let rx = never.informer_trigger();
    never.unpin(test_cid(1)).await.unwrap();
    assert_eq!(*rx.borrow(), 0);
}

#[tokio::test]
async fn wait_ready_polls_until_the_daemon_answers_and_is_bounded() {
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let fake =
        FakeDaemon::tcp(move |_| if u.load(Ordering::SeqCst) { json(r#"{"ID":"ready"}"#) } else { Reply::Close }).await;
    let ipfs = connector(&fake);
    let err = ipfs.wait_ready(MS(1500)).await.unwrap_err();
    assert!(matches!(err, IpfsError::Timeout { call: "id", .. }), "{err}");
    let attempts = fake.requests().len();
    assert!((2..=3).contains(&attempts), "polls once a second: {attempts}");
    let flip = tokio::spawn(async move {
        tokio::time::sleep(MS(1200)).await;
        up.store(true, Ordering::SeqCst);
    });
    assert_eq!(ipfs.wait_ready(Duration::from_secs(10)).await.unwrap().peer_id, "ready");
    flip.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_daemon_is_named_in_the_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    let ipfs = IpfsHttp::new(IpfsHttpConfig::with_address(&addr)).unwrap();
    let err = ipfs.repo_stat().await.unwrap_err();
    assert!(err.is_unreachable());
    let text = err.to_string();
    assert!(text.starts_with(&format!("ipfs repo/stat at {addr}: cannot reach the daemon")), "{text}");
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test]
async fn connector_is_object_safe_and_shareable() {
    let fake = FakeDaemon::tcp(|_| json(r#"{"ID":"p"}"#)).await;
    let shared: Arc<dyn IpfsConnector> = Arc::new(connector(&fake));
    let handle = tokio::spawn({
        let shared = shared.clone();
        async move { shared.id().await.map(|id| id.peer_id) }
    });
    assert_eq!(handle.await.unwrap().unwrap(), "p");
    assert!(spawn_connect_swarms(shared.clone(), Duration::ZERO, async { vec![] }).is_none());
    let task = spawn_connect_swarms(shared, MS(10), async { vec!["/ip4/127.0.0.1/tcp/1/p2p/QmX".to_owned()] }).unwrap();
    task.await.unwrap();
    assert_eq!(fake.calls(), ["id", "swarm/connect"]);
}
