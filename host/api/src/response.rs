//! Response building as IPFS Cluster's `SendResponse` and `StreamResponse` do it (reference
//! §1.1, §1.2): configured headers plus `Content-Type: application/json` on every JSON answer,
//! one JSON value and a newline per body, NDJSON streams whose first item decides the status, and
//! the `X-Stream-Error` trailer.

use std::convert::Infallible;
use std::error::Error as StdError;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{CONTENT_TYPE, HeaderValue, TRAILER};
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use serde::Serialize;

use crate::cluster::ApiStream;
use crate::error::ApiError;
use crate::trailers::Sentinel;

/// Error type of response bodies (a failed body aborts the connection).
pub(crate) type BodyError = Box<dyn StdError + Send + Sync>;
/// The response body type of every answer.
pub(crate) type ResBody = UnsyncBoxBody<Bytes, BodyError>;

/// The trailer name, in Go's canonical spelling.
pub(crate) const STREAM_ERROR: &str = "X-Stream-Error";
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What every JSON answer carries: the configured headers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Common {
    /// The `headers` of the config, validated.
    pub(crate) headers: HeaderMap,
}

fn infallible(e: Infallible) -> BodyError {
    match e {}
}

/// A body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).map_err(infallible).boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> ResBody {
    Empty::new().map_err(infallible).boxed_unsync()
}

/// A response with this status and body and no headers.
pub(crate) fn bare(status: u16, body: ResBody) -> Response<ResBody> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

impl Common {
    /// Adds the configured headers and the JSON content type (Go's `SetHeaders`).
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        headers.append(CONTENT_TYPE, JSON);
    }

    /// A JSON response with an empty body (e.g. 204).
    pub(crate) fn no_content(&self, status: u16) -> Response<ResBody> {
        let mut response = bare(status, empty());
        self.set_headers(response.headers_mut());
        response
    }

    /// A JSON value followed by a newline, as Go's `json.Encoder` writes it.
    pub(crate) fn json<T: Serialize + ?Sized>(&self, status: u16, value: &T) -> Response<ResBody> {
        match serde_json::to_vec(value) {
            Ok(mut body) => {
                body.push(b'\n');
                let mut response = bare(status, full(body));
                self.set_headers(response.headers_mut());
                response
            }
            Err(e) => self.error(&ApiError::internal(format!("encoding response: {e}"))),
        }
    }

    /// The error object with the error's status.
    pub(crate) fn error(&self, error: &ApiError) -> Response<ResBody> {
        self.json(error.status(), &error.body())
    }

    /// An answer for a non-streaming result: 200 with the value, or the error.
    pub(crate) fn result<T: Serialize>(&self, result: Result<T, ApiError>) -> Response<ResBody> {
        match result {
            Ok(value) => self.json(200, &value),
            Err(e) => self.error(&e),
        }
    }

    /// Go's `StreamResponse`: an error before any item is the answer (with its status), no
    /// item at all is 204 with no body, otherwise 200 with NDJSON and the `X-Stream-Error`
    /// trailer (empty on success). `sentinel` is `None` where trailers cannot be sent
    /// (HTTP/1.0).
    pub(crate) async fn stream<T>(&self, mut items: ApiStream<T>, sentinel: Option<Sentinel>) -> Response<ResBody>
    where
        T: Serialize + Send + 'static,
    {
        let first = items.next().await;
        let mut response = match first {
            None => self.no_content(204),
            Some(Err(e)) => self.error(&e),
            Some(Ok(first)) => {
                let mut response = bare(200, ndjson(Some(first), items, sentinel));
                self.set_headers(response.headers_mut());
                response
            }
        };
        // Declared on every outcome, as Go sets it before writing the status.
        response.headers_mut().insert(TRAILER, HeaderValue::from_static(STREAM_ERROR));
        response
    }
}

/// A trailer value: the message with line breaks and other control characters made spaces.
pub(crate) fn trailer_value(message: &str) -> String {
    message.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect()
}

enum NdjsonState<T> {
    Items { first: Option<T>, rest: ApiStream<T> },
    Done,
}

/// The body of a stream: one JSON line per item; then, if a sentinel is given, the trailer
/// frame with the first error (or an empty value).
pub(crate) fn ndjson<T>(first: Option<T>, rest: ApiStream<T>, sentinel: Option<Sentinel>) -> ResBody
where
    T: Serialize + Send + 'static,
{
    let frames = futures::stream::unfold(NdjsonState::Items { first, rest }, move |state| async move {
        match state {
            NdjsonState::Items { first, mut rest } => {
                let item = match first {
                    Some(item) => Some(Ok(item)),
                    None => rest.next().await,
                };
                match item {
                    Some(Ok(item)) => match serde_json::to_vec(&item) {
                        Ok(mut line) => {
                            line.push(b'\n');
                            Some((Ok(Frame::data(Bytes::from(line))), NdjsonState::Items { first: None, rest }))
                        }
                        Err(e) => trailer_frame(sentinel, Some(format!("encoding stream item: {e}"))),
                    },
                    Some(Err(e)) => trailer_frame(sentinel, Some(e.message().to_owned())),
                    None => trailer_frame(sentinel, None),
                }
            }
            NdjsonState::Done => None,
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// One step of the NDJSON body: the frame and the state after it.
type NdjsonStep<T> = (Result<Frame<Bytes>, BodyError>, NdjsonState<T>);

fn trailer_frame<T>(sentinel: Option<Sentinel>, error: Option<String>) -> Option<NdjsonStep<T>> {
    if let Some(error) = &error {
        tracing::warn!(error = %error, "stream ended with an error");
    }
    let sentinel = sentinel?;
    let value = trailer_value(error.as_deref().unwrap_or(""));
    Some((Ok(Frame::data(sentinel.frame(&[(STREAM_ERROR, &value)]))), NdjsonState::Done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_values_are_single_line() {
        assert_eq!(trailer_value("a\r\nb\tc"), "a  b\tc");
    }
}
