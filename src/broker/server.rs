//! The broker's HTTP listener: HTTP/1.1 with keep-alive on 127.0.0.1 only, hyper directly
//! (no framework) because the token endpoint is a hot path.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metadata;
use super::Broker;

/// Largest request head accepted; larger ones get 431 from hyper.
const MAX_HEAD: usize = 16 * 1024;

/// Binds 127.0.0.1:`port` (0 picks a free one). Never any other address.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Serves until `shutdown` resolves, then stops accepting and returns.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        if !peer.ip().is_loopback() {
            continue; // unreachable when bound to 127.0.0.1; kept as a second lock
        }
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let broker = broker.clone();
                async move { Ok::<_, Infallible>(respond(&broker, req, peer).await) }
            });
            let _ = http1::Builder::new()
                .max_buf_size(MAX_HEAD)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(broker: &Broker, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let request = metadata::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        metadata_flavor: headers.get("metadata-flavor").map(HeaderValue::as_bytes),
        forwarded: headers.contains_key("x-forwarded-for"),
    };
    let reply = metadata::handle(broker, request).await;
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("metadata-flavor", HeaderValue::from_static("Google"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if let Some(s) = reply.retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if reply.status == 405 {
        h.insert(hyper::header::ALLOW, HeaderValue::from_static("GET"));
    }
    resp
}
