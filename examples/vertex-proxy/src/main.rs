//! The example function's Lambda entry point (binary `vertex-proxy`, deployed as `bootstrap`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vertex_proxy::{HttpApiRequest, HttpApiResponse, Proxy};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none_or(|v| v.is_empty()) {
        eprintln!(
            "vertex-proxy (the example function) runs inside AWS Lambda only (AWS_LAMBDA_RUNTIME_API is not set); \
             its handler is tested through `cargo test -p vertex-proxy`"
        );
        std::process::exit(1);
    }
    // JSON lines on stderr, which Lambda sends to CloudWatch Logs.
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    let proxy = Proxy::from_env()?;
    let proxy = &proxy;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<HttpApiRequest>| async move {
        let remaining = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        Ok::<HttpApiResponse, Error>(proxy.handle(event.payload, remaining).await)
    }))
    .await
}
