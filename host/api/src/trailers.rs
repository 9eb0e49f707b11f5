//! HTTP/1.1 trailers for every client.
//!
//! IPFS Cluster always sends the `X-Stream-Error` trailer on streamed responses, and its Go
//! client reads mid-stream errors only from there (reference §1.2). hyper sends HTTP/1.1
//! trailers only when the request carried `TE: trailers`, which Go's client never sends, so a
//! plain hyper server would drop every mid-stream error.
//!
//! The fix works below hyper, on the bytes it writes. A streamed body ends with one *sentinel*
//! data frame: a per-server nonce, then the length and text of the trailer block. hyper encodes
//! it as an ordinary chunk, and the connection's writer ([`Rewriter`]) replaces that chunk and
//! the last-chunk after it (`0\r\n\r\n`) with `0\r\n<trailer block>\r\n`. The nonce starts with
//! `FF 00`, which no JSON text contains, followed by 14 random bytes, so response content
//! cannot forge a trailer.
//!
//! This relies on two properties of hyper's HTTP/1 writer, both pinned by the tests: with
//! vectored writes off it flattens each encoded frame into one buffer, and it hands the whole
//! buffer to one `poll_write` (the writer accepts whole slices), so a sentinel chunk never
//! straddles two writes.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the nonce.
pub const NONCE_LEN: usize = 16;
/// What hyper writes when a chunked body ends without trailers.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The per-server nonce that marks a sentinel frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sentinel {
    nonce: [u8; NONCE_LEN],
}

impl Default for Sentinel {
    fn default() -> Self {
        Self::new()
    }
}

impl Sentinel {
    /// A fresh nonce: `FF 00` and 14 random bytes.
    pub fn new() -> Self {
        use ring::rand::SecureRandom;
        let mut nonce = [0u8; NONCE_LEN];
        if ring::rand::SystemRandom::new().fill(&mut nonce[2..]).is_err() {
            // No OS randomness: fall back to std's randomly keyed hasher; the FF 00 prefix
            // alone already keeps JSON content from matching.
            use std::hash::{BuildHasher, Hasher};
            for chunk in nonce[2..].chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(0);
                let v = h.finish().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        nonce[0] = 0xFF;
        nonce[1] = 0x00;
        Self { nonce }
    }

    /// The sentinel data frame carrying these trailer fields. Names and values must already be
    /// valid header text.
    pub fn frame(&self, fields: &[(&str, &str)]) -> Bytes {
        let mut block = Vec::new();
        for (name, value) in fields {
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(b": ");
            block.extend_from_slice(value.as_bytes());
            block.extend_from_slice(b"\r\n");
        }
        let mut out = BytesMut::with_capacity(NONCE_LEN + 4 + block.len());
        out.put_slice(&self.nonce);
        // A trailer block longer than u32::MAX cannot come from one error message; saturate
        // rather than panic, the rewriter then leaves the frame alone.
        out.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
        out.put_slice(&block);
        out.freeze()
    }

    /// A rewriter for one connection.
    pub fn rewriter(&self) -> Rewriter {
        Rewriter { nonce: self.nonce, pending: None }
    }
}

/// Turns sentinel chunks in a connection's output into trailers.
#[derive(Debug)]
pub struct Rewriter {
    nonce: [u8; NONCE_LEN],
    /// The trailer block of a sentinel seen, waiting for hyper's last-chunk.
    pending: Option<Vec<u8>>,
}

impl Rewriter {
    /// Rewrites one slice of hyper's output; `None` when it passes through unchanged.
    pub fn rewrite(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        if self.pending.is_none() && find(input, &self.nonce).is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut i = 0;
        loop {
            if let Some(block) = self.pending.take() {
                let rest = &input[i..];
                if rest.is_empty() {
                    self.pending = Some(block);
                    break;
                }
                if rest.starts_with(LAST_CHUNK) {
                    out.extend_from_slice(b"0\r\n");
                    out.extend_from_slice(&block);
                    out.extend_from_slice(b"\r\n");
                    i += LAST_CHUNK.len();
                    continue;
                }
                // The body went on after its sentinel: not ours to end; the trailer is lost.
                tracing::warn!("stream trailer dropped: body continued after the trailer frame");
            }
            let Some(j) = find(&input[i..], &self.nonce).map(|j| j + i) else {
                out.extend_from_slice(&input[i..]);
                break;
            };
            match self.frame_at(input, i, j) {
                Some((start, end, block)) => {
                    out.extend_from_slice(&input[i..start]);
                    self.pending = Some(block);
                    i = end;
                }
                None => {
                    tracing::warn!("stream trailer frame split across writes; sent as data");
                    out.extend_from_slice(&input[i..=j]);
                    i = j + 1;
                }
            }
        }
        Some(out)
    }

    /// The chunk `<hex>\r\n<nonce><len><block>\r\n` around a nonce at `j`, as (start, end,
    /// block), if it is whole within `s[lo..]`.
    fn frame_at(&self, s: &[u8], lo: usize, j: usize) -> Option<(usize, usize, Vec<u8>)> {
        if j < lo + 3 || &s[j - 2..j] != b"\r\n" {
            return None;
        }
        let mut k = j - 2;
        while k > lo && s[k - 1].is_ascii_hexdigit() {
            k -= 1;
        }
        let size = std::str::from_utf8(&s[k..j - 2]).ok().and_then(|h| usize::from_str_radix(h, 16).ok())?;
        let after = j + NONCE_LEN;
        let len: [u8; 4] = s.get(after..after + 4)?.try_into().ok()?;
        let len = u32::from_be_bytes(len) as usize;
        let block = s.get(after + 4..after + 4 + len)?;
        if size != NONCE_LEN + 4 + len {
            return None;
        }
        let end = after + 4 + len;
        if s.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        Some((k, end + 2, block.to_vec()))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(pos) = haystack[from..].iter().position(|b| *b == first) {
        let at = from + pos;
        if haystack.len() - at < needle.len() {
            return None;
        }
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut v = format!("{:X}\r\n", data.len()).into_bytes();
        v.extend_from_slice(data);
        v.extend_from_slice(b"\r\n");
        v
    }

    #[test]
    fn sentinel_and_last_chunk_become_trailers() {
        let s = Sentinel::new();
        let mut w = s.rewriter();
        let head = b"HTTP/1.1 200 OK\r\ntrailer: X-Stream-Error\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let mut wire = head.clone();
        wire.extend(chunk(b"{\"a\":1}\n"));
        wire.extend(chunk(&s.frame(&[("X-Stream-Error", "")])));
        wire.extend_from_slice(LAST_CHUNK);
        let out = w.rewrite(&wire).expect("rewritten");
        let mut want = head;
        want.extend(chunk(b"{\"a\":1}\n"));
        want.extend_from_slice(b"0\r\nX-Stream-Error: \r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
    }

    #[test]
    fn last_chunk_may_come_in_a_later_write() {
        let s = Sentinel::new();
        let mut w = s.rewriter();
        let mut first = chunk(b"x\n");
        first.extend(chunk(&s.frame(&[("X-Stream-Error", "boom")])));
        assert_eq!(w.rewrite(&first).expect("rewritten"), chunk(b"x\n"));
        // An empty write in between changes nothing.
        assert_eq!(w.rewrite(b"").expect("pending"), b"");
        let mut second = LAST_CHUNK.to_vec();
        second.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
        let out = w.rewrite(&second).expect("rewritten");
        assert_eq!(out, b"0\r\nX-Stream-Error: boom\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        // Afterwards, plain output passes through untouched.
        assert!(w.rewrite(b"5\r\nhello\r\n").is_none());
    }

    #[test]
    fn a_lookalike_is_left_alone() {
        let s = Sentinel::new();
        let mut w = s.rewriter();
        // The nonce inside ordinary data that is not a well-formed sentinel chunk.
        let mut data = b"abc".to_vec();
        data.extend_from_slice(&s.nonce);
        data.extend_from_slice(b"xyz");
        let wire = chunk(&data);
        assert_eq!(w.rewrite(&wire).expect("scanned"), wire);
        // Another server's sentinel is just data.
        let other = Sentinel::new();
        let wire = chunk(&other.frame(&[("X-Stream-Error", "")]));
        assert!(w.rewrite(&wire).is_none());
    }
}
