//! The multipart body of `POST /add`, read as a stream of parts (multer), with the size limits
//! of [`crate::AddLimits`] and the request's read deadline.

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
        e => ApiError::bad_request(format!("error reading multipart: {e}")),
    }
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

fn to_part(field: multer::Field<'static>) -> AddPart {
    let headers = field
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    AddPart {
        field_name: field.name().map(str::to_owned),
        file_name: field.file_name().map(str::to_owned),
        content_type: field.content_type().map(ToString::to_string),
        headers,
        data: field.map(|chunk| chunk.map_err(multipart_error)).boxed(),
    }
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
    let mut multipart =
        multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(size));
    let first = match multipart.next_field().await {
        Ok(Some(field)) => to_part(field),
        Ok(None) => return Err(ApiError::bad_request("no files found in multipart form")),
        Err(e) => return Err(multipart_error(e)),
    };
    let rest = stream::unfold(Some(multipart), |multipart| async move {
        let mut multipart = multipart?;
        match multipart.next_field().await {
            Ok(Some(field)) => Some((Ok(to_part(field)), Some(multipart))),
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
}
