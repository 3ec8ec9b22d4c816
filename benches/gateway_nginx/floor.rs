//! The floor under the gateway: the least a proxy built from the gateway's parts costs (hyper's
//! HTTP/1 server and hyper-util's pooled client on a current-thread runtime, as `serve` runs
//! them). Each request goes to the upstream with `Authorization` added and its answer streams
//! back; nothing is checked, retried, audited or counted. What the gateway costs above it is
//! the gateway's own; what the floor costs above nginx is the parts'.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Starts the floor proxy to `127.0.0.1:upstream` on a thread of its own: its port and the
/// thread's id (its CPU time is `/proc/{id}/stat`'s).
pub fn start(upstream: u16, token: &str) -> (u16, u32) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut authorization = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
    authorization.set_sensitive(true);
    let (sender, thread) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // "PID/task/TID"
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        sender.send(me.file_name().unwrap().to_str().unwrap().parse::<u32>().unwrap()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            serve(tokio::net::TcpListener::from_std(listener).unwrap(), upstream, authorization).await
        });
    });
    (port, thread.recv().unwrap())
}

async fn serve(listener: tokio::net::TcpListener, upstream: u16, authorization: HeaderValue) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (client, authorization) = (client.clone(), authorization.clone());
        let service = service_fn(move |req: Request<Incoming>| {
            let (client, authorization) = (client.clone(), authorization.clone());
            async move {
                let (mut parts, body) = req.into_parts();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://127.0.0.1:{upstream}{path}").parse().unwrap();
                parts.headers.insert(AUTHORIZATION, authorization);
                let answer: Response<Incoming> = match client.request(Request::from_parts(parts, body)).await {
                    Ok(answer) => answer,
                    Err(e) => panic!("the floor proxy's upstream failed: {e}"),
                };
                Ok::<_, Infallible>(answer)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
