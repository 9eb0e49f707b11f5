//! Response bodies: whole ones, Kubo-style errors, and streamed ones that may end with trailers
//! (carried to the client by [`crate::trailers`]).

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{CONTENT_TYPE, HeaderValue, SERVER};
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use serde::Serialize;

use crate::headers::SERVER_NAME;
use crate::trailers::Sentinel;
use crate::upstream::BoxError;

/// The response body type of every answer.
pub(crate) type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// The trailer Kubo and IPFS Cluster report stream errors in, in Go's canonical spelling.
pub(crate) const STREAM_ERROR: &str = "X-Stream-Error";

/// A body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).map_err(|e: std::convert::Infallible| match e {}).boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> ResBody {
    Empty::new().map_err(|e: std::convert::Infallible| match e {}).boxed_unsync()
}

/// A response with this status, these headers and this body.
pub(crate) fn response(status: u16, headers: HeaderMap, body: ResBody) -> Response<ResBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *response.headers_mut() = headers;
    response
}

/// `value` as Go's `json.Marshal` writes it (no newline).
pub(crate) fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Our answer types are plain structs and maps with string keys: encoding cannot fail.
    serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"Message\":\"encoding: {e}\"}}").into_bytes())
}

/// `value` as Go's `json.Encoder` writes it (with a newline).
pub(crate) fn json_line<T: Serialize + ?Sized>(value: &T) -> Bytes {
    let mut line = json_bytes(value);
    line.push(b'\n');
    Bytes::from(line)
}

/// go-ipfs-cmds' error object.
#[derive(Serialize)]
struct KuboError<'a> {
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "Code")]
    code: u8,
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// A Kubo-style error answer `{"Message":..,"Code":0,"Type":"error"}` (IPFS Cluster's
/// `ipfsErrorResponder`) with these headers.
pub(crate) fn kubo_error(status: u16, mut headers: HeaderMap, message: &str) -> Response<ResBody> {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json_bytes(&KuboError { message, code: 0, kind: "error" });
    response(status, headers, full(body))
}

/// A Kubo-style error answer of the proxy itself (not a hijacked call): JSON and our `Server`.
pub(crate) fn proxy_error(status: u16, message: &str) -> Response<ResBody> {
    let mut headers = HeaderMap::new();
    headers.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    kubo_error(status, headers, message)
}

/// A trailer value: the message with line breaks and other control characters made spaces.
pub(crate) fn trailer_value(message: &str) -> String {
    message.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect()
}

/// One step of a streamed answer.
pub(crate) enum Piece {
    /// Body bytes.
    Data(Bytes),
    /// A trailer field (name, value), sent after the last byte.
    Trailer(String, String),
}

struct Streamed<S> {
    pieces: Pin<Box<S>>,
    trailers: Vec<(String, String)>,
    done: bool,
}

/// A body made of `pieces`; the trailer fields among them go out after the body when
/// `sentinel` is given (a chunked HTTP/1.1 answer), and are logged and dropped otherwise. An
/// `Err` aborts the answer (the client sees a cut connection, as with Go's proxy).
pub(crate) fn streamed<S>(pieces: S, sentinel: Option<Sentinel>) -> ResBody
where
    S: Stream<Item = Result<Piece, BoxError>> + Send + 'static,
{
    let state = Streamed { pieces: Box::pin(pieces), trailers: Vec::new(), done: false };
    let frames = futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.pieces.next().await {
                Some(Ok(Piece::Data(bytes))) if bytes.is_empty() => {}
                Some(Ok(Piece::Data(bytes))) => return Some((Ok(Frame::data(bytes)), st)),
                Some(Ok(Piece::Trailer(name, value))) => st.trailers.push((name, trailer_value(&value))),
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    if st.trailers.is_empty() {
                        return None;
                    }
                    let Some(sentinel) = sentinel else {
                        tracing::warn!(trailers = ?st.trailers, "ipfsproxy: trailers dropped (the client cannot receive them)");
                        return None;
                    };
                    let fields: Vec<(&str, &str)> = st.trailers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    let frame = Frame::data(sentinel.frame(&fields));
                    return Some((Ok(frame), st));
                }
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_errors_and_trailer_values() {
        assert_eq!(
            json_bytes(&KuboError { message: "boom", code: 0, kind: "error" }),
            br#"{"Message":"boom","Code":0,"Type":"error"}"#
        );
        assert_eq!(trailer_value("a\r\nb\tc"), "a  b\tc");
    }
}
