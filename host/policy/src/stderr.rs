//! A guest stdout/stderr that never fails and keeps only the last few KiB, so a panic
//! message can be logged after a trap without letting a chatty plugin grow memory.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

const KEEP: usize = 2048;

/// The tail of everything the guest wrote to stdout and stderr.
#[derive(Clone, Default)]
pub(crate) struct TailPipe(Arc<Mutex<VecDeque<u8>>>);

impl TailPipe {
    fn push(&self, bytes: &[u8]) {
        let Ok(mut buf) = self.0.lock() else { return };
        let bytes = &bytes[bytes.len().saturating_sub(KEEP)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(KEEP);
        let drop = overflow.min(buf.len());
        buf.drain(..drop);
        buf.extend(bytes);
    }

    /// Take what was written since the last call, as lossy UTF-8.
    pub(crate) fn take(&self) -> String {
        let Ok(mut buf) = self.0.lock() else { return String::new() };
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for TailPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TailPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for TailPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let pipe = TailPipe::default();
        pipe.push(&vec![b'a'; KEEP]);
        pipe.push(b"panicked at the end");
        let text = pipe.take();
        assert_eq!(text.len(), KEEP);
        assert!(text.ends_with("panicked at the end"));
        assert_eq!(pipe.take(), "");
    }
}
