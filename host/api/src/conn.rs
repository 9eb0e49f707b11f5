//! One client connection below hyper: the byte stream ([`ConnIo`]: activity tracking and the
//! trailer rewriting of [`crate::trailers`]) and the timeouts Go's `http.Server` applies, which
//! hyper does not have in this form ([`Activity`], [`watchdog`]).
//!
//! hyper's own header-read timeout starts as soon as a keep-alive connection waits for its next
//! request, so it would also cut idle connections after `read_header_timeout`. Go starts the
//! header clock at the first byte of a request and lets an idle connection wait `idle_timeout`;
//! the watchdog reproduces that from the connection's phases.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::trailers::Rewriter;

/// A byte stream a connection can run on (TCP, unix socket, or TLS over either).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// What a connection is doing, for the timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A request head is arriving (from the first byte, or from accept).
    ReadingHead,
    /// A request is being served (from the handler's start to the end of its response body).
    Busy,
    /// Waiting for the next request on a kept-alive connection.
    Idle,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    in_flight: usize,
    generation: u64,
}

/// Phase changes of one connection.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

impl Activity {
    /// A new connection, reading its first request head.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State { phase: Phase::ReadingHead, since: Instant::now(), in_flight: 0, generation: 0 }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set(&self, state: &mut State, phase: Phase) {
        state.phase = phase;
        state.since = Instant::now();
        state.generation += 1;
        self.changed.notify_waiters();
    }

    fn on_bytes_read(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Idle {
            self.set(&mut state, Phase::ReadingHead);
        }
    }

    /// A handler starts; the returned guard ends the request when dropped (with the response
    /// body, so streaming counts as busy).
    pub fn request_started(self: &Arc<Self>) -> BusyGuard {
        let mut state = self.lock();
        state.in_flight += 1;
        self.set(&mut state, Phase::Busy);
        BusyGuard { activity: self.clone() }
    }

    fn snapshot(&self) -> (Phase, Instant, u64) {
        let state = self.lock();
        (state.phase, state.since, state.generation)
    }
}

/// Keeps a connection busy while alive.
#[derive(Debug)]
pub struct BusyGuard {
    activity: Arc<Activity>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            self.activity.set(&mut state, Phase::Idle);
        }
    }
}

/// A response body that keeps its connection busy (for the timeouts) until it is finished or
/// dropped.
pub struct TrackedBody<B> {
    inner: B,
    _guard: BusyGuard,
}

impl<B> TrackedBody<B> {
    /// `inner`, holding `guard` for as long as it lives.
    pub fn new(inner: B, guard: BusyGuard) -> Self {
        TrackedBody { inner, _guard: guard }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The limits of each phase; `None` is no limit.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request head time.
    pub header: Option<Duration>,
    /// Keep-alive wait.
    pub idle: Option<Duration>,
    /// Response time.
    pub write: Option<Duration>,
}

/// Resolves with the phase whose limit ran out.
pub async fn watchdog(activity: Arc<Activity>, limits: Limits) -> Phase {
    loop {
        let notified = activity.changed.notified();
        tokio::pin!(notified);
        // Register before reading the state, so a change in between is not missed.
        notified.as_mut().enable();
        let (phase, since, generation) = activity.snapshot();
        let limit = match phase {
            Phase::ReadingHead => limits.header,
            Phase::Idle => limits.idle,
            Phase::Busy => limits.write,
        };
        match limit {
            None => notified.await,
            Some(limit) => {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(since + limit) => {
                        if activity.snapshot().2 == generation {
                            return phase;
                        }
                    }
                }
            }
        }
    }
}

/// The connection's byte stream as hyper sees it.
pub struct ConnIo {
    inner: Box<dyn Io>,
    activity: Arc<Activity>,
    rewriter: Rewriter,
    /// Rewritten output not yet written to `inner`.
    out: Vec<u8>,
    out_pos: usize,
}

impl ConnIo {
    /// Wraps a connection's stream: activity tracking and trailer rewriting.
    pub fn new(inner: Box<dyn Io>, activity: Arc<Activity>, rewriter: Rewriter) -> Self {
        Self { inner, activity, rewriter, out: Vec::new(), out_pos: 0 }
    }

    /// Writes pending rewritten output; Ready once it is all out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_bytes_read();
        }
        result
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        match self.rewriter.rewrite(buf) {
            // Unchanged output goes straight through; a partial write is fine because the whole
            // slice was scanned and held no sentinel.
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
            Some(rewritten) => {
                // Accept the whole slice (hyper must not re-send part of a rewritten frame) and
                // push out what the socket takes now; the rest goes at the next write or flush.
                self.out = rewritten;
                self.out_pos = 0;
                if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then flattens every frame into one buffer, which the trailer rewriting needs.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn watchdog_follows_phases() {
        let limits = Limits { header: Some(Duration::from_secs(5)), idle: Some(Duration::from_secs(120)), write: None };
        // A fresh connection that sends nothing hits the header limit.
        let activity = Activity::new();
        let fired = tokio::time::timeout(Duration::from_secs(6), watchdog(activity.clone(), limits)).await;
        assert_eq!(fired.expect("header limit"), Phase::ReadingHead);

        // A busy connection without a write limit is never cut; once idle, the idle limit runs.
        let activity = Activity::new();
        let guard = activity.request_started();
        let dog = tokio::spawn(watchdog(activity.clone(), limits));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!dog.is_finished());
        drop(guard);
        tokio::time::sleep(Duration::from_secs(60)).await;
        // Bytes of a new request restart the clock with the header limit.
        activity.on_bytes_read();
        let phase = tokio::time::timeout(Duration::from_secs(10), dog).await.expect("fires").expect("joins");
        assert_eq!(phase, Phase::ReadingHead);
    }
}
