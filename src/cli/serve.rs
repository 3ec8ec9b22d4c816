//! `vertex-broker serve`: the broker as a daemon on 127.0.0.1 (ECS sidecar, EC2, a laptop),
//! until SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{AwsSide, Failure, Printer};
use crate::broker::server::{self, ListenError};
use crate::broker::Broker;
use crate::config::{check_source, Config};
use crate::text::split_list;

/// How often `serve` writes its metrics (and once more when it stops).
const METRICS_PERIOD: Duration = Duration::from_secs(60);

/// `vertex-broker serve`'s arguments.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  VERTEX_BROKER_SECRET_ID=prod/vertex-key vertex-broker serve\n  \
    export GCE_METADATA_HOST=127.0.0.1:2775 GCE_METADATA_IP=127.0.0.1:2775")]
pub struct Args {
    /// Port on 127.0.0.1 (default: VERTEX_BROKER_PORT, else 2775).
    #[arg(long)]
    port: Option<u16>,
    /// Secret id(s) or ARN(s), comma separated (default: VERTEX_BROKER_SECRET_ID).
    #[arg(long)]
    secret: Option<String>,
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(args: Args, mut config: Config, out: Printer) -> Result<(), Failure> {
    if let Some(p) = args.port {
        config.port = p;
    }
    if let Some(s) = args.secret {
        config.secret_ids = split_list(&s);
    }
    check_source(&config.secret_ids, config.credential_config.as_ref(), config.token_secret_id.as_deref())
        .map_err(|e| Failure::usage(e.to_string()))?;
    // Listen first: clients can connect while the AWS configuration loads.
    let (listener, signals) = server::listen(config.port).await.map_err(|e| match e {
        ListenError::Port { .. } => Failure::failed(format!("{e}; pick another with --port")),
        ListenError::Signals(_) => Failure::failed(e.to_string()),
    })?;
    let aws = AwsSide::load().await;
    let broker =
        Arc::new(Broker::new(&aws.broker_settings(&config), aws.store).map_err(|e| Failure::usage(e.to_string()))?);
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%addr, "vertex-broker listening");
    out.result(
        format!("vertex-broker serving on {addr}\nexport GCE_METADATA_HOST={addr} GCE_METADATA_IP={addr}"),
        json!({"address": addr, "environment": {"GCE_METADATA_HOST": addr, "GCE_METADATA_IP": addr}}),
    );
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.warm_up().await }
    });
    let flushing = tokio::spawn(broker.metrics().clone().flush_every(METRICS_PERIOD));
    let drain = broker.limits().drain_timeout;
    let stopped = async {
        signals.until_stop(broker.clone()).await;
        tracing::info!(?drain, "stopping");
        drain
    };
    server::serve(broker.clone(), listener, stopped).await;
    flushing.abort();
    broker.metrics().flush();
    tracing::info!("vertex-broker stopped");
    Ok(())
}
