//! The broker's HTTP listener: HTTP/1.1 with keep-alive on 127.0.0.1 only, hyper directly (no
//! framework) because the token endpoint is a hot path. Bounded against its neighbours:
//! [`Connections`] caps open connections and closes one that does not send a whole request head
//! within the header timeout (idle keep-alive ones included) with one sweep rather than a timer
//! per request, one whose peer stops reading its answer is closed after the write timeout, accept
//! errors (descriptors exhausted) back off instead of spinning and are logged at most once a
//! second, and shutdown drains requests in flight for a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::connections::{Admitted, Connections, NoRoom};
use super::gateway::{self, ResponseBody};
use super::metadata::{self, Reply};
use super::refusal::Refusal;
use super::signals::Signals;
use super::write_timeout::WriteTimeout;
use super::Broker;

/// Largest request head accepted; larger ones get 431 from hyper.
const MAX_HEAD: usize = 16 * 1024;
/// Connections being answered 429 (over the cap) at once; beyond it a newcomer is just closed.
const MAX_REFUSING: usize = 32;
/// How long a refused connection may take to send the request it is refused.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause after repeated accept failures.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// At most one accept-failure log line per this period.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Binds 127.0.0.1:`port` (0 picks a free one). Never any other address.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Why a process serving a broker could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// SIGTERM, SIGINT or SIGHUP could not be handled.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The port is taken (or not ours to take).
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Port {
        /// The port asked for.
        port: u16,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// A process's listener (the extension's, `serve`'s, `dev`'s): the signal handlers installed
/// first, so that a signal arriving as soon as the port opens is handled rather than killing
/// the process, then 127.0.0.1:`port` bound.
pub async fn listen(port: u16) -> Result<(TcpListener, Signals), ListenError> {
    let signals = Signals::install().map_err(ListenError::Signals)?;
    let listener = bind(port).await.map_err(|source| ListenError::Port { port, source })?;
    Ok((listener, signals))
}

/// Serves until `shutdown` resolves with how long to drain: then stops accepting, closes idle
/// connections, and lets requests in flight finish for at most that long.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: impl Future<Output = Duration>) {
    let limits = *broker.limits();
    let connections = Connections::new(limits.max_connections);
    tokio::spawn({
        let connections = connections.clone();
        async move { connections.close_idle(limits.header_timeout).await }
    });
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_HEAD).keep_alive(true);
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    let drain_for = loop {
        let accepted = tokio::select! {
            drain_for = &mut shutdown => break drain_for,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                let pause = errors.failed(&e);
                tokio::select! {
                    drain_for = &mut shutdown => break drain_for,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        errors.accepted();
        if !peer.ip().is_loopback() {
            continue; // unreachable when bound to 127.0.0.1; kept as a second lock
        }
        let _ = stream.set_nodelay(true);
        match connections.admit() {
            Ok(admitted) => {
                tokio::spawn(connection(http.clone(), stream, broker.clone(), admitted));
            }
            Err(NoRoom::Full { max }) => {
                // Answer 429 if few are being refused already; otherwise just close.
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream, max).await;
                        drop(permit);
                    });
                }
            }
            Err(NoRoom::Draining) => {}
        }
    };
    drop(listener);
    let open = connections.len();
    connections.drain();
    if tokio::time::timeout(drain_for, connections.closed()).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still in flight after {drain_for:?} of draining; closing them"
        );
    } else if open > 0 {
        tracing::info!(connections = open, "drained");
    }
}

/// Serves one admitted connection until it ends, is evicted, or the broker drains.
async fn connection(http: http1::Builder, stream: TcpStream, broker: Arc<Broker>, admitted: Admitted) {
    let admitted = Arc::new(admitted);
    let write_timeout = broker.limits().write_timeout;
    let service = service_fn({
        let admitted = admitted.clone();
        move |req| {
            let (broker, admitted) = (broker.clone(), admitted.clone());
            async move {
                admitted.busy();
                let resp = if req.uri().path().starts_with(gateway::route::PREFIX) {
                    gateway::handle(&broker, req).await
                } else {
                    let reply = metadata::handle(&broker, req.method(), req.uri(), req.headers()).await;
                    response(reply).map(Either::Left)
                };
                // Busy until the answer's body is sent: a stream may run long after its head.
                Ok::<_, Infallible>(resp.map(|body| UntilSent { body, admitted }))
            }
        }
    });
    let conn = http.serve_connection(WriteTimeout::new(TokioIo::new(stream), write_timeout), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = admitted.close.notified() => {}
    }
    // Evicted or draining: an idle connection is dropped now, a busy one finishes its answer.
    if admitted.is_busy() {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// An answer's body that keeps its connection marked busy (not evictable, drained on shutdown)
/// until hyper has sent it and dropped it.
struct UntilSent {
    body: ResponseBody,
    admitted: Arc<Admitted>,
}

impl Drop for UntilSent {
    fn drop(&mut self) {
        self.admitted.done();
    }
}

impl hyper::body::Body for UntilSent {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match &mut self.body {
            Either::Left(full) => std::pin::Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            Either::Right(download) => std::pin::Pin::new(download).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers one request on a connection over the cap with 429, then closes it.
async fn refuse(stream: TcpStream, max: usize) {
    let service = service_fn(move |_req: Request<Incoming>| async move {
        let refusal = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "all {max} connections are busy (VERTEX_BROKER_MAX_CONNECTIONS); retry shortly, or reuse one \
                 connection"
            ),
        );
        Ok::<_, Infallible>(response(refusal.retry_after(1).into()))
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(REFUSAL_TIMEOUT).max_buf_size(MAX_HEAD).keep_alive(false);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT * 2, http.serve_connection(TokioIo::new(stream), service)).await;
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert("metadata-flavor", HeaderValue::from_static("Google"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Some(s) = reply.retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(hyper::header::ALLOW, HeaderValue::from_static("GET"));
    }
    resp
}

/// Accept failures: an exponential pause per consecutive failure (descriptors exhausted would
/// otherwise make `accept` fail at once, forever), and one log line a second with a count.
#[derive(Default)]
struct AcceptErrors {
    consecutive: u32,
    unreported: u64,
    last_report: Option<Instant>,
}

impl AcceptErrors {
    /// Records a failure; returns how long to pause before accepting again.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.consecutive = self.consecutive.saturating_add(1);
        self.unreported += 1;
        let pause = Duration::from_millis(1u64 << (self.consecutive - 1).min(10)).min(MAX_ACCEPT_PAUSE);
        if self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            tracing::warn!(
                error = %e,
                failures = self.unreported,
                pause_ms = pause.as_millis() as u64,
                "cannot accept connections; pausing. If descriptors ran out, raise the open-file limit (ulimit -n) or \
                 lower VERTEX_BROKER_MAX_CONNECTIONS"
            );
            self.unreported = 0;
            self.last_report = Some(Instant::now());
        }
        pause
    }

    fn accepted(&mut self) {
        if self.consecutive > 0 {
            if self.unreported > 0 {
                tracing::warn!(failures = self.unreported, "accepting connections again");
            }
            *self = Self { last_report: self.last_report, ..Self::default() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_failures_pause_longer_each_time_and_report_once_a_second() {
        let mut errors = AcceptErrors::default();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<u128> = (0..12).map(|_| errors.failed(&e).as_millis()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000]);
        assert_eq!(errors.unreported, 11, "the first failure was reported, the rest wait for the next second");
        tokio::time::advance(REPORT_EVERY).await;
        errors.failed(&e);
        assert_eq!(errors.unreported, 0, "reported with its count");
        errors.accepted();
        assert_eq!(errors.failed(&e), Duration::from_millis(1), "success resets the pause");
    }
}
