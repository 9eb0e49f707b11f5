//! `POST /add` input limits at the HTTP level: paths that would cost the adder memory out of
//! proportion to their bytes are refused with a 400 naming the limit, and a body that never
//! shows its boundary is refused once the preamble limit is passed, whatever its size.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CT: &str = "multipart/form-data; boundary=XYZ";

/// A directory part at `path`, then a symlink part (which makes a real add fail).
fn deep_body(path: &str) -> String {
    format!(
        "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path}\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"link\"\r\nContent-Type: application/symlink\r\n\r\nx\r\n--XYZ--\r\n"
    )
}

#[tokio::test]
async fn too_deep_or_too_long_paths_are_400_naming_the_limit() {
    let h = start(local_config()).await;
    let auth = [("authorization", ADMIN_BASIC), ("content-type", CT)];
    for (levels, limit) in [(1000, "max path depth"), (20_000, "max path length")] {
        let body = deep_body(&vec!["a"; levels].join("/"));
        for query in ["", "?stream-channels=false"] {
            let r = send(h.addr, "POST", &format!("/add{query}"), &auth, &body).await;
            assert_eq!(r.status, 400, "{levels} levels{query}: {}", r.text());
            let message = r.json()["message"].as_str().expect("message").to_owned();
            assert!(message.contains(limit), "{levels} levels{query}: {message}");
            assert!(message.len() < 200, "the message does not echo the path: {message}");
        }
    }
    // Within the limits, the add goes on.
    let r = send(h.addr, "POST", "/add", &auth, &deep_body(&vec!["a"; 200].join("/"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_body_without_boundary_is_refused_without_being_read_to_the_end() {
    let h = start(local_config()).await;
    let stream = TcpStream::connect(h.addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /add HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN_BASIC}\r\nContent-Type: {CT}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.expect("head");
    // 64 MiB of chunks that never hold the boundary.
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 64 << 20;
    let writer = tokio::spawn(async move {
        let chunk = format!("{CHUNK:x}\r\n{}\r\n", "x".repeat(CHUNK));
        let mut sent = 0;
        while sent < TOTAL {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += CHUNK;
        }
        sent
    });
    let read = async {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        // Up to the end of the answer's JSON line, or the connection's end.
        while !out.ends_with(b"}\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let answer = tokio::time::timeout(WAIT, read).await.expect("answered in time");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("max preamble size"), "{answer}");
    drop(rd);
    let sent = tokio::time::timeout(WAIT, writer).await.expect("writer stops").expect("writer");
    assert!(sent < TOTAL, "the server read the whole body ({sent} bytes)");
    h.server.shutdown().await;
}
