//! The gateway's connections to Vertex: hyper's pooled HTTP/1.1 client over rustls with the
//! system's roots (as the broker's Google clients use them; `SSL_CERT_FILE` names others), made
//! on the first call so that a cold start reads no CA bundle for a function that never calls the
//! gateway. Through the proxy `HTTPS_PROXY` names, in a CONNECT tunnel, unless `NO_PROXY`
//! exempts the host. Hyper's client directly rather than reqwest: a call goes up with a prebuilt
//! `http::Uri`, with no URL parse, no redirect or retry layers and no boxing per call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::body::Attempt;
use crate::config::Proxies;

/// An idle pooled connection is closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Pool = Client<HttpsConnector<Connector>, Attempt>;

/// The pool of connections to Vertex, made on first use.
pub struct Upstream {
    connect_timeout: Duration,
    proxies: Proxies,
    client: OnceLock<Pool>,
}

/// Why an attempt got no answer.
pub type UpstreamError = hyper_util::client::legacy::Error;

impl Upstream {
    /// A pool whose connects each take at most `connect_timeout`, through `proxies`.
    pub fn new(connect_timeout: Duration, proxies: Proxies) -> Self {
        Self { connect_timeout, proxies, client: OnceLock::new() }
    }

    /// Sends one attempt and waits for the answer's head.
    pub async fn send(&self, request: Request<Attempt>) -> Result<Response<Incoming>, UpstreamError> {
        self.client.get_or_init(|| self.pool()).request(request).await
    }

    fn pool(&self) -> Pool {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false); // TLS goes on top
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.connect_timeout));
        let p = &self.proxies;
        let matcher = Matcher::builder()
            .https(p.https.clone().unwrap_or_default())
            .http(p.http.clone().unwrap_or_default())
            .no(p.no.clone().unwrap_or_default());
        let connector = Connector { tcp, proxies: Arc::new(matcher.build()) };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = match hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
            Ok(tls) => tls,
            Err(e) => {
                // Plain-HTTP endpoints still work; HTTPS calls fail with the verifier's error.
                tracing::warn!(error = %e, "no system CA roots for the gateway's HTTPS connections (SSL_CERT_FILE)");
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots(provider))
            }
        };
        let https = tls.https_or_http().enable_http1().wrap_connector(connector);
        Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE).pool_timer(TokioTimer::new()).build(https)
    }
}

fn no_roots(provider: Arc<rustls::crypto::CryptoProvider>) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// TCP to the host, or to the proxy that intercepts it and through a CONNECT tunnel from there;
/// TLS goes on top either way.
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    proxies: Arc<Matcher>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, host: Uri) -> Self::Future {
        let Some(proxy) = self.proxies.intercept(&host) else {
            let connecting = self.tcp.call(host);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let host = with_port(host);
        Box::pin(async move {
            std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await?;
            tunnel.call(host).await.map_err(|e| format!("through the proxy (HTTPS_PROXY): {e}").into())
        })
    }
}

/// The URI with its port written out: the tunnel asks for 443 when none is.
fn with_port(uri: Uri) -> Uri {
    if uri.port().is_some() || uri.scheme() != Some(&hyper::http::uri::Scheme::HTTP) {
        return uri;
    }
    let authority = format!("{}:80", uri.host().unwrap_or_default());
    let mut parts = uri.clone().into_parts();
    match authority.parse() {
        Ok(a) => parts.authority = Some(a),
        Err(_) => return uri,
    }
    Uri::from_parts(parts).unwrap_or(uri)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_is_asked_for_the_port_the_scheme_means() {
        let port = |u: &str| with_port(u.parse().unwrap()).port_u16();
        assert_eq!(port("http://vertex.internal/v1/x"), Some(80), "the tunnel would ask for 443");
        assert_eq!(port("http://127.0.0.1:8080/v1/x"), Some(8080));
        assert_eq!(port("https://aiplatform.googleapis.com/v1/x"), None, "443, which the tunnel asks for");
        assert_eq!(with_port("http://h/v1/x?alt=sse".parse().unwrap()).to_string(), "http://h:80/v1/x?alt=sse");
    }
}
