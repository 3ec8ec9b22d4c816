//! The gateway's connections to Vertex: hyper's pooled HTTP/1.1 client over rustls with the
//! system's roots (as the broker's Google clients use), built on the first call so that a cold
//! start does not read the CA bundle for a function that never calls the gateway. Hyper's client
//! directly rather than reqwest: a call goes up with a prebuilt `http::Uri`, with no URL parse,
//! no redirect or retry layers and no boxing (measured: see the README's gateway benchmark).

use std::sync::OnceLock;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::Attempt;

/// An idle pooled connection is closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The pool of connections to Vertex, made on first use.
pub struct Upstream {
    connect_timeout: Duration,
    client: OnceLock<Client<HttpsConnector<HttpConnector>, Attempt>>,
}

/// Why an attempt got no answer.
pub type UpstreamError = hyper_util::client::legacy::Error;

impl Upstream {
    /// A pool whose connects each take at most `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self { connect_timeout, client: OnceLock::new() }
    }

    /// Sends one attempt and waits for the answer's head.
    pub async fn send(&self, request: Request<Attempt>) -> Result<Response<Incoming>, UpstreamError> {
        self.client().request(request).await
    }

    fn client(&self) -> &Client<HttpsConnector<HttpConnector>, Attempt> {
        self.client.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(self.connect_timeout));
            let https = hyper_rustls::HttpsConnectorBuilder::new();
            // No readable roots (a bare container) still lets plain-HTTP endpoints work; HTTPS
            // then fails each call with the verifier's error, which names the missing roots.
            let https = match https.with_native_roots() {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "no system CA roots for the gateway's HTTPS connections");
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(empty_roots())
                }
            };
            let connector = https.https_or_http().enable_http1().wrap_connector(http);
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(TokioTimer::new())
                .build(connector)
        })
    }
}

fn empty_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
}

/// The error and its causes, on one line ("client error (Connect): tcp connect error: ...").
pub fn describe(e: &UpstreamError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
