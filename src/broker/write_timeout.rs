//! A connection whose peer stops reading is closed: a write that cannot go on for the write
//! timeout fails, hyper drops the connection, its slot returns, and a gateway answer being
//! streamed to it lets go of its upstream. Without it, callers that ask for a large answer and
//! never read it would hold every connection slot for as long as they like.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::time::Sleep;

/// `inner` with its writes bounded: one that makes no progress for `timeout` fails.
pub struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write waits for the peer.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self { inner, timeout, stalled: None }
    }

    /// Passes a ready result on (the peer took bytes: the clock restarts); on `Pending`, fails
    /// once the peer has taken nothing for the timeout.
    fn bound<R>(&mut self, polled: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {timeout:?} (VERTEX_BROKER_WRITE_TIMEOUT)"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Read + Unpin> Read for WriteTimeout<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for WriteTimeout<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_write(cx, buf);
        me.bound(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        me.bound(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_flush(cx);
        me.bound(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let polled = Pin::new(&mut me.inner).poll_shutdown(cx);
        me.bound(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    /// A writer that never takes a byte.
    struct Stuck;

    impl Write for Stuck {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    async fn write(w: &mut WriteTimeout<impl Write + Unpin>, bytes: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *w).poll_write(cx, bytes)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_after_the_timeout() {
        let mut w = WriteTimeout::new(Stuck, Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        let e = write(&mut w, b"answer").await.unwrap_err();
        assert_eq!((e.kind(), started.elapsed()), (io::ErrorKind::TimedOut, Duration::from_secs(10)));
        assert!(e.to_string().contains("VERTEX_BROKER_WRITE_TIMEOUT"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_is_never_timed_out() {
        let (a, mut b) = tokio::io::duplex(4);
        let mut w = WriteTimeout::new(TokioIo::new(a), Duration::from_secs(1));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4];
            while got.len() < 40 {
                tokio::time::sleep(Duration::from_millis(900)).await; // slower than the writer, never stalled 1 s
                let n = tokio::io::AsyncReadExt::read(&mut b, &mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let data = [7u8; 40];
        let mut sent = 0;
        while sent < data.len() {
            sent += write(&mut w, &data[sent..]).await.unwrap();
        }
        assert_eq!(reader.await.unwrap(), data);
    }
}
