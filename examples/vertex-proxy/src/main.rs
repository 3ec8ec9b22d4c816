//! The example function's Lambda entry point (binary `vertex-proxy`, deployed as `bootstrap`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vertex_proxy::{HttpApiRequest, HttpApiResponse, Proxy};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if let Err(e) = vertex_broker::config::require_lambda(
        "vertex-proxy (the example function)",
        "its handler is tested through `cargo test -p vertex-proxy`",
    ) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    vertex_broker::telemetry::init(&std::env::var("VERTEX_BROKER_LOG").unwrap_or_else(|_| "info".into()), true);
    let proxy = Proxy::from_env()?;
    let proxy = &proxy;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<HttpApiRequest>| async move {
        let remaining = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        Ok::<HttpApiResponse, Error>(proxy.handle(event.payload, remaining).await)
    }))
    .await
}
