//! A tiny scripted HTTP/1.1 server standing in for an IPFS daemon, over TCP or a unix socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

/// One request as the fake daemon saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// e.g. `pin/add` (the part after `/api/v0/`).
    pub call: String,
    pub query: Vec<(String, String)>,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What the fake daemon answers.
pub(crate) enum Reply {
    /// A complete answer with this status and JSON body.
    Json(u16, String),
    /// A chunked 200 answer: each chunk after its delay, then `end`.
    Stream(Vec<(Duration, String)>, End),
    /// Read the request, never answer, and count it in `closed_by_client` when the client hangs up.
    Hang,
    /// Close the connection without answering.
    Close,
}

/// How a streamed answer ends.
pub(crate) enum End {
    Finish,
    Trailer(String),
    Hang,
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

pub(crate) struct FakeDaemon {
    /// The multiaddr to configure the connector with.
    pub addr: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Hung requests whose client went away (a cancelled pin, a timed-out call).
    pub closed_by_client: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDaemon {
    pub(crate) async fn tcp(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake daemon");
        let port = listener.local_addr().expect("local addr").port();
        let (requests, closed, handler) = shared(handler);
        let (r, c) = (requests.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), r.clone(), c.clone()));
            }
        });
        FakeDaemon { addr: format!("/ip4/127.0.0.1/tcp/{port}"), requests, closed_by_client: closed, task, _dir: None }
    }

    pub(crate) async fn unix(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).expect("bind unix socket");
        let (requests, closed, handler) = shared(handler);
        let (r, c) = (requests.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), r.clone(), c.clone()));
            }
        });
        FakeDaemon {
            addr: format!("/unix{}", path.display()),
            requests,
            closed_by_client: closed,
            task,
            _dir: Some(dir),
        }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.call).collect()
    }
}

fn shared(
    handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> (Arc<Mutex<Vec<Recorded>>>, Arc<AtomicUsize>, Handler) {
    (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)), Arc::new(handler))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    handler: Handler,
    log: Arc<Mutex<Vec<Recorded>>>,
    closed: Arc<AtomicUsize>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader).await else { return };
        log.lock().expect("lock").push(request.clone());
        let reply = handler(&request);
        let io = reader.get_mut();
        let ok = match reply {
            Reply::Json(status, body) => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                io.write_all(head.as_bytes()).await.is_ok() && io.write_all(body.as_bytes()).await.is_ok()
            }
            Reply::Stream(chunks, end) => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\
                            trailer: X-Stream-Error\r\n\r\n";
                let mut ok = io.write_all(head.as_bytes()).await.is_ok() && io.flush().await.is_ok();
                for (delay, chunk) in chunks {
                    if !ok {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    let data = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                    ok = io.write_all(data.as_bytes()).await.is_ok() && io.flush().await.is_ok();
                }
                match end {
                    End::Finish => ok && io.write_all(b"0\r\n\r\n").await.is_ok(),
                    End::Trailer(message) => {
                        let tail = format!("0\r\nX-Stream-Error: {message}\r\n\r\n");
                        ok && io.write_all(tail.as_bytes()).await.is_ok()
                    }
                    End::Hang => {
                        wait_for_hangup(&mut reader).await;
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
            Reply::Hang => {
                wait_for_hangup(&mut reader).await;
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Reply::Close => return,
        };
        if !ok {
            return;
        }
    }
}

/// Returns when the client closes the connection (or after a minute, so nothing lingers).
async fn wait_for_hangup<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut buf = [0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn read_request<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let target = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let call = path.strip_prefix("/api/v0/").unwrap_or(path).to_owned();
    let query = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    Some(Recorded { call, query, headers, body })
}
