//! The multipart body of `POST /add`, read as a stream of parts (multer), with the size limits
//! of [`crate::AddLimits`] (memory stays bounded whatever the client sends) and the request's
//! read deadline.

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::cluster::{AddParams, AddPart, AddRequest};
use crate::config::AddLimits;
use crate::error::ApiError;

/// Go's `http.ErrNotMultipart` text.
const NOT_MULTIPART: &str = "request Content-Type isn't multipart/form-data";
/// Go's `http.ErrMissingBoundary` text.
const NO_BOUNDARY: &str = "no multipart boundary param in Content-Type";

/// The boundary of a `multipart/form-data` (or `multipart/mixed`) content type, as Go's
/// `Request.MultipartReader` accepts it.
pub fn boundary(content_type: Option<&str>) -> Result<String, ApiError> {
    let content_type = content_type.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad_request(NOT_MULTIPART))?;
    let mut pieces = content_type.split(';');
    let media_type = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
    if media_type != "multipart/form-data" && media_type != "multipart/mixed" {
        return Err(ApiError::bad_request(NOT_MULTIPART));
    }
    let params = parse_params(content_type.split_once(';').map_or("", |(_, p)| p))
        .ok_or_else(|| ApiError::bad_request(NOT_MULTIPART))?;
    params
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(NO_BOUNDARY))
}

/// `; key=value; key="quoted"` parameters (keys lower-cased); `None` when malformed.
fn parse_params(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ';']);
        if s.is_empty() {
            return Some(out);
        }
        let (key, rest) = s.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return None;
        }
        let rest = rest.trim_start();
        let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            (rest[..end].trim().to_owned(), &rest[end..])
        };
        out.push((key, value));
        s = rest;
    }
}

fn multipart_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::LockFailure => {
            ApiError::internal("multipart part requested before the previous part was dropped")
        }
        // multer's text hides the cause ("failed to read stream"): a limit or a timeout.
        multer::Error::StreamReadFailed(e) => ApiError::bad_request(format!("error reading multipart: {e}")),
        e => ApiError::bad_request(format!("error reading multipart: {e}")),
    }
}

/// A multipart head over its always-on limit ([`AddLimits`]'s constants).
#[derive(Debug, thiserror::Error)]
enum FramingError {
    #[error("no boundary in the first {0} bytes (max preamble size)")]
    Preamble(u64),
    #[error("part headers longer than {0} bytes (max part header size)")]
    PartHeader(u64),
}

/// Where [`Framing`] is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Before the first `--boundary`.
    Preamble,
    /// Right after a `--boundary`: `--` closes the body; else padding, CRLF, headers.
    Boundary,
    /// After the first byte of a boundary's suffix, which was a `-`.
    Dash,
    /// Spaces and tabs after the boundary.
    Padding,
    /// After the CR ending the boundary line.
    LineEnd,
    /// The part's headers, up to the blank line.
    Headers,
    /// The part's content, up to the next `\r\n--boundary`.
    Data,
    /// Past the closing boundary, or past something multer refuses anyway.
    Done,
}

/// Follows the multipart framing of the body as multer reads it, to refuse it once the preamble
/// or a part's head passes its cap: multer keeps both in its buffer until their end appears, and
/// rescans that buffer as it grows. Content passes with the usual scan for the boundary.
struct Framing {
    /// `--boundary`, which ends the preamble.
    open: memchr::memmem::Finder<'static>,
    /// `\r\n--boundary`, which ends a part's content.
    delimiter: memchr::memmem::Finder<'static>,
    /// The blank line ending a part's headers.
    headers_end: memchr::memmem::Finder<'static>,
    stage: Stage,
    /// Bytes of the current preamble or part head so far.
    used: u64,
    /// The end of the previous chunk that may begin the pattern being looked for.
    carry: Vec<u8>,
}

impl Framing {
    fn new(boundary: &str) -> Self {
        let open = format!("--{boundary}");
        let delimiter = format!("\r\n{open}");
        Framing {
            open: memchr::memmem::Finder::new(open.as_bytes()).into_owned(),
            delimiter: memchr::memmem::Finder::new(delimiter.as_bytes()).into_owned(),
            headers_end: memchr::memmem::Finder::new(b"\r\n\r\n").into_owned(),
            stage: Stage::Preamble,
            used: 0,
            carry: Vec::new(),
        }
    }

    /// Follows one chunk of the body.
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), FramingError> {
        while let Some((&byte, rest)) = chunk.split_first() {
            let consumed = match self.stage {
                Stage::Done => return Ok(()),
                Stage::Preamble => {
                    let found = find(&self.open, &mut self.carry, chunk);
                    let consumed = found.unwrap_or(chunk.len());
                    self.count(consumed, FramingError::Preamble(AddLimits::MAX_PREAMBLE_BYTES))?;
                    if found.is_some() {
                        self.enter_head();
                    }
                    consumed
                }
                Stage::Data => match find(&self.delimiter, &mut self.carry, chunk) {
                    Some(end) => {
                        self.enter_head();
                        end
                    }
                    None => chunk.len(),
                },
                Stage::Headers => {
                    let found = find(&self.headers_end, &mut self.carry, chunk);
                    let consumed = found.unwrap_or(chunk.len());
                    self.count(consumed, FramingError::PartHeader(AddLimits::MAX_PART_HEADER_BYTES))?;
                    if found.is_some() {
                        self.stage = Stage::Data;
                    }
                    consumed
                }
                // The short steps between a boundary and its headers, a byte at a time, as multer
                // takes them.
                Stage::Boundary | Stage::Dash | Stage::Padding | Stage::LineEnd => {
                    self.count(1, FramingError::PartHeader(AddLimits::MAX_PART_HEADER_BYTES))?;
                    self.stage = match (self.stage, byte) {
                        (Stage::Boundary, b'-') => Stage::Dash,
                        (Stage::Dash, b'-') => Stage::Done,
                        // multer then expects CRLF after any padding: `-x` is refused.
                        (Stage::Dash, _) => Stage::Done,
                        (Stage::Boundary | Stage::Padding, b' ' | b'\t') => Stage::Padding,
                        (Stage::Boundary | Stage::Padding, b'\r') => Stage::LineEnd,
                        (Stage::LineEnd, b'\n') => Stage::Headers,
                        _ => Stage::Done,
                    };
                    1
                }
            };
            chunk = if consumed == 0 { rest } else { chunk.get(consumed..).unwrap_or_default() };
        }
        Ok(())
    }

    fn enter_head(&mut self) {
        self.stage = Stage::Boundary;
        self.used = 0;
        self.carry.clear();
    }

    /// Counts `n` more bytes of the current preamble or head against its cap.
    fn count(&mut self, n: usize, over: FramingError) -> Result<(), FramingError> {
        let cap = match over {
            FramingError::Preamble(cap) | FramingError::PartHeader(cap) => cap,
        };
        self.used = self.used.saturating_add(n as u64);
        if self.used > cap {
            self.stage = Stage::Done;
            return Err(over);
        }
        Ok(())
    }
}

/// The offset in `chunk` just past the first match of `pattern`, which may start in `carry` (the
/// previous chunk's end); without a match, `carry` keeps what could begin one.
fn find(pattern: &memchr::memmem::Finder<'_>, carry: &mut Vec<u8>, chunk: &[u8]) -> Option<usize> {
    let len = pattern.needle().len();
    let keep = len.saturating_sub(1);
    if !carry.is_empty() {
        // A match starting in `carry` ends within the chunk's first `len - 1` bytes.
        let mut joined = carry.clone();
        joined.extend_from_slice(chunk.get(..keep.min(chunk.len())).unwrap_or_default());
        if let Some(at) = pattern.find(&joined) {
            let end = at.saturating_add(len).saturating_sub(carry.len());
            carry.clear();
            return Some(end);
        }
    }
    if let Some(at) = pattern.find(chunk) {
        carry.clear();
        return Some(at.saturating_add(len));
    }
    if chunk.len() >= keep {
        carry.clear();
        carry.extend_from_slice(chunk.get(chunk.len().saturating_sub(keep)..).unwrap_or_default());
    } else {
        carry.extend_from_slice(chunk);
        let excess = carry.len().saturating_sub(keep);
        carry.drain(..excess);
    }
    None
}

/// The body as multer gets it: it ends with an error once [`Framing`] refuses it.
fn framed<S>(body: S, framing: Framing) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    stream::unfold(Some((Box::pin(body), framing)), |state| async move {
        let (mut body, mut framing) = state?;
        match body.next().await? {
            Ok(bytes) => match framing.feed(&bytes) {
                Ok(()) => Some((Ok(bytes), Some((body, framing)))),
                Err(e) => Some((Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)), None)),
            },
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Refuses a part whose path (the URL-decoded `filename`) is over [`AddLimits::MAX_PATH_DEPTH`]
/// or [`AddLimits::MAX_PATH_BYTES`], before the adder builds a directory level for each component.
fn check_path(file_name: Option<&str>) -> Result<(), ApiError> {
    let Some(raw) = file_name else { return Ok(()) };
    // A bad escape is the adder's to report; an escape only shortens the name.
    let path = crate::query::decode_path(raw).unwrap_or_else(|| raw.to_owned());
    if path.len() > AddLimits::MAX_PATH_BYTES {
        return Err(ApiError::bad_request(format!(
            "invalid file name: {} bytes, over the limit of {} (max path length)",
            path.len(),
            AddLimits::MAX_PATH_BYTES
        )));
    }
    // Counted as the adder counts them: empty and "." components do not nest.
    let depth = path.split('/').filter(|c| !matches!(*c, "" | ".")).count();
    if depth > AddLimits::MAX_PATH_DEPTH {
        return Err(ApiError::bad_request(format!(
            "invalid file name: {depth} components, over the limit of {} (max path depth)",
            AddLimits::MAX_PATH_DEPTH
        )));
    }
    Ok(())
}

/// The request body as a byte stream that fails once `deadline` passes.
pub fn deadline_stream<S, E>(
    body: S,
    deadline: Option<Instant>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "request read timeout");
                    return Some((Err(e), None));
                }
            },
            None => body.next().await,
        };
        match next? {
            Ok(bytes) => Some((Ok(bytes), Some(body))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    })
}

fn to_part(field: multer::Field<'static>) -> Result<AddPart, ApiError> {
    check_path(field.file_name())?;
    let headers = field
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Ok(AddPart {
        field_name: field.name().map(str::to_owned),
        file_name: field.file_name().map(str::to_owned),
        content_type: field.content_type().map(ToString::to_string),
        headers,
        data: field.map(|chunk| chunk.map_err(multipart_error)).boxed(),
    })
}

/// Reads up to the first part of the body (a malformation so far is a 400 answer) and returns
/// the request whose parts stream on from there.
pub async fn add_request<S>(
    params: AddParams,
    body: S,
    boundary: String,
    limits: AddLimits,
) -> Result<AddRequest, ApiError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut size = multer::SizeLimit::new();
    if let Some(max) = limits.max_body_bytes {
        size = size.whole_stream(max);
    }
    if let Some(max) = limits.max_part_bytes {
        size = size.per_field(max);
    }
    let body = framed(body, Framing::new(&boundary));
    let mut multipart =
        multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(size));
    let first = match multipart.next_field().await {
        Ok(Some(field)) => to_part(field)?,
        Ok(None) => return Err(ApiError::bad_request("no files found in multipart form")),
        Err(e) => return Err(multipart_error(e)),
    };
    let rest = stream::unfold(Some(multipart), |multipart| async move {
        let mut multipart = multipart?;
        match multipart.next_field().await {
            Ok(Some(field)) => match to_part(field) {
                Ok(part) => Some((Ok(part), Some(multipart))),
                Err(e) => Some((Err(e), None)),
            },
            Ok(None) => None,
            Err(e) => Some((Err(multipart_error(e)), None)),
        }
    });
    let parts: BoxStream<'static, Result<AddPart, ApiError>> = stream::iter([Ok(first)]).chain(rest).boxed();
    Ok(AddRequest { params, parts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_as_go_reads_them() {
        assert_eq!(boundary(Some("multipart/form-data; boundary=abc")).as_deref(), Ok("abc"));
        assert_eq!(boundary(Some("Multipart/Mixed; charset=x; boundary=\"a b\\\"c\"")).as_deref(), Ok("a b\"c"));
        let msg = |ct: Option<&str>| boundary(ct).expect_err("bad").message().to_owned();
        assert_eq!(msg(None), NOT_MULTIPART);
        assert_eq!(msg(Some("application/json")), NOT_MULTIPART);
        assert_eq!(msg(Some("multipart/form-data")), NO_BOUNDARY);
        assert_eq!(msg(Some("multipart/form-data; boundary=\"open")), NOT_MULTIPART);
    }

    #[tokio::test]
    async fn parts_stream_in_order() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n--XX--\r\n";
        let stream = stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]);
        let mut req = add_request(AddParams::default(), stream, "XX".into(), AddLimits::default()).await.expect("ok");
        let mut first = req.parts.next().await.expect("part").expect("ok");
        assert_eq!(first.file_name.as_deref(), Some("a.txt"));
        let mut data = Vec::new();
        while let Some(chunk) = first.data.next().await {
            data.extend_from_slice(&chunk.expect("data"));
        }
        assert_eq!(data, b"hello");
        drop(first);
        let second = req.parts.next().await.expect("part").expect("ok");
        assert_eq!(second.content_type.as_deref(), Some("application/x-directory"));
        drop(second);
        assert!(req.parts.next().await.is_none());
    }

    #[tokio::test]
    async fn malformed_and_oversized_bodies() {
        let garbage = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"not multipart at all"))]);
        let err = add_request(AddParams::default(), garbage, "XX".into(), AddLimits::default()).await.expect_err("bad");
        assert_eq!(err.status(), 400);
        assert!(err.message().starts_with("error reading multipart"), "{err}");

        let body =
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n0123456789\r\n--XX--\r\n";
        let limits = AddLimits { max_body_bytes: None, max_part_bytes: Some(4) };
        let stream = stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]);
        let mut req = add_request(AddParams::default(), stream, "XX".into(), limits).await.expect("headers fit");
        let mut part = req.parts.next().await.expect("part").expect("ok");
        let mut failed = None;
        while let Some(chunk) = part.data.next().await {
            if let Err(e) = chunk {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("limit hit");
        assert_eq!(e.status(), 400);
    }

    /// A body of `total` bytes of `fill`, after `prefix`, in chunks of `chunk`; `pulled` counts
    /// what the parser has taken from it.
    fn endless(
        prefix: &'static [u8],
        fill: u8,
        total: usize,
        chunk: usize,
        pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let first = Bytes::from_static(prefix);
        let rest = stream::iter((0..total / chunk).map(move |_| Bytes::from(vec![fill; chunk])));
        stream::iter([first]).chain(rest).map(move |b| {
            pulled.fetch_add(b.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(b)
        })
    }

    /// What the parser may take before refusing: the cap plus the chunk that crossed it.
    const BOUNDED: usize = AddLimits::MAX_PREAMBLE_BYTES as usize + 64 * 1024 + 1024;

    async fn first_error(body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> ApiError {
        let mut req = match add_request(AddParams::default(), body, "XX".into(), AddLimits::default()).await {
            Err(e) => return e,
            Ok(req) => req,
        };
        loop {
            match req.parts.next().await {
                Some(Err(e)) => return e,
                Some(Ok(mut part)) => {
                    while let Some(chunk) = part.data.next().await {
                        if let Err(e) = chunk {
                            return e;
                        }
                    }
                }
                None => panic!("the body parsed"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_without_boundary_is_refused_within_the_preamble_cap() {
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let body = endless(b"", b'x', 64 << 20, 64 * 1024, pulled.clone());
        let err = add_request(AddParams::default(), body, "XX".into(), AddLimits::default()).await.expect_err("bad");
        let pulled = pulled.load(std::sync::atomic::Ordering::Relaxed);
        assert!(pulled <= BOUNDED, "read {pulled} bytes before refusing: {err}");
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("max preamble size"), "{err}");
    }

    #[tokio::test]
    async fn endless_part_headers_are_refused_within_the_header_cap() {
        let heads: [&'static [u8]; 3] = [
            // The first part's headers never end.
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"",
            // Nor does the padding after a boundary.
            b"--XX",
            // A later part's headers never end.
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--XX\r\nX-Long: ",
        ];
        for (head, fill) in heads.into_iter().zip([b'a', b' ', b'a']) {
            let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let err = first_error(endless(head, fill, 64 << 20, 64 * 1024, pulled.clone())).await;
            let pulled = pulled.load(std::sync::atomic::Ordering::Relaxed);
            assert!(pulled <= BOUNDED, "read {pulled} bytes before refusing: {err}");
            assert_eq!(err.status(), 400);
            assert!(err.message().contains("max part header size"), "{err}");
        }
    }

    #[tokio::test]
    async fn too_deep_or_too_long_file_names_are_refused_naming_the_limit() {
        let dir_part = |levels: usize| {
            let path = vec!["a"; levels].join("/");
            let body = format!(
                "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path}\"\r\nContent-Type: application/x-directory\r\n\r\n\r\n--XX--\r\n"
            );
            stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))])
        };
        let deep = add_request(AddParams::default(), dir_part(1000), "XX".into(), AddLimits::default()).await;
        let err = deep.expect_err("deep");
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("1000 components") && err.message().contains("max path depth"), "{err}");
        // The 20 000 levels: a 40 KB name, over the length limit first.
        let deep = add_request(AddParams::default(), dir_part(20_000), "XX".into(), AddLimits::default()).await;
        let err = deep.expect_err("deep");
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("max path length"), "{err}");

        // A later part: the error ends the parts.
        let long = "%61".repeat(5000);
        let body = format!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ok\"\r\n\r\nabc\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{long}\"\r\n\r\nabc\r\n--XX--\r\n"
        );
        let err = first_error(stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))])).await;
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("5000 bytes") && err.message().contains("max path length"), "{err}");
    }

    /// Every part's name and content, or the first error.
    async fn parse_all(chunks: Vec<Bytes>) -> Result<Vec<(Option<String>, Vec<u8>)>, ApiError> {
        let body = stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut req = add_request(AddParams::default(), body, "XX".into(), AddLimits::default()).await?;
        let mut out = Vec::new();
        while let Some(part) = req.parts.next().await {
            let mut part = part?;
            let mut data = Vec::new();
            while let Some(chunk) = part.data.next().await {
                data.extend_from_slice(&chunk?);
            }
            out.push((part.file_name.clone(), data));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn bodies_parse_the_same_however_they_are_split() {
        let body = Bytes::from_static(
            b"preamble --X -\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n\r\n-\r\n--X\r\n--\r\n\r\n--XY\r\r\n\r\n--XX  \t\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\nContent-Type: text/plain\r\n\r\n\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c\"\r\n\r\nend\r\n--XX--\r\nepilogue",
        );
        let whole = parse_all(vec![body.clone()]).await.expect("parses");
        let names: Vec<_> = whole.iter().map(|(n, _)| n.as_deref().unwrap_or("")).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(whole[0].1, b"\r\n-\r\n--X\r\n--\r\n\r\n--XY\r\r\n");
        // Content is not a head: it may be as long as it likes.
        let big = b"\r\n\r\n--X\r\n-".repeat(100_000);
        let mut long = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n".to_vec();
        long.extend_from_slice(&big);
        long.extend_from_slice(b"\r\n--XX--\r\n");
        let chunks: Vec<Bytes> = long.chunks(4096).map(Bytes::copy_from_slice).collect();
        assert_eq!(parse_all(chunks).await.expect("parses"), [(Some("big".to_owned()), big)]);
        for size in 1..=body.len() {
            let chunks: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
            assert_eq!(parse_all(chunks).await.ok().as_ref(), Some(&whole), "chunks of {size}");
        }
    }
}
