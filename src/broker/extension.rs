//! The Lambda extension: bind the listener, register with the Extensions API, warm the cache
//! at once (so code in the function's INIT phase can already get a token), do due refreshes on
//! every INVOKE (a frozen Lambda runs no timers), and stop within the SHUTDOWN deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_extension::{service_fn, Extension, LambdaEvent, NextEvent};
use tokio::sync::watch;

use super::signals::{Signal, Signals};
use super::{server, Broker, BrokerError, BrokerSettings, InvokeWork};
use crate::config::{Config, ConfigError, NotInLambda};
use crate::store::SecretsManagerStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the extension stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// Started outside Lambda.
    #[error(transparent)]
    NotInLambda(#[from] NotInLambda),
    /// Reported to `/extension/init/error` as well, so the function's INIT fails saying why.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Registering or polling the Extensions API failed.
    #[error("the Lambda Extensions API failed: {0}")]
    Api(BoxError),
}

/// Why the broker could not start inside Lambda; [`StartError::error_type`] is what Lambda shows.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The settings name no usable source of credentials.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The port is taken.
    #[error("cannot listen on 127.0.0.1:{port}: {source}; set VERTEX_BROKER_PORT to a free port")]
    Listen {
        /// The port asked for.
        port: u16,
        /// Why binding failed.
        source: std::io::Error,
    },
    #[error(
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION must be set (Lambda sets them for the function's role)"
    )]
    /// Lambda's AWS credentials are missing from the environment.
    NoAwsEnvironment,
}

impl StartError {
    /// The error type Lambda records for the failed INIT.
    pub fn error_type(&self) -> &'static str {
        match self {
            StartError::Listen { .. } => "Extension.ListenFailed",
            StartError::Config(_) | StartError::Broker(_) | StartError::NoAwsEnvironment => "Extension.ConfigInvalid",
        }
    }
}

/// Kept back from the SHUTDOWN deadline to exit in.
const EXIT_MARGIN: Duration = Duration::from_millis(300);
/// Longest drain at SHUTDOWN whatever the deadline says (Lambda gives extensions 2 s in all).
const MAX_SHUTDOWN_DRAIN: Duration = Duration::from_millis(1500);

/// Runs the extension until SHUTDOWN. Configuration errors go to `/extension/init/error`.
pub async fn run() -> Result<(), ExtensionError> {
    crate::config::require_lambda(
        "vertex-broker-extension (started by Lambda from the layer's /opt/extensions)",
        "to run the broker anywhere else use `vertex-broker serve`",
    )?;
    let config = Config::from_env();
    crate::telemetry::init(config.as_ref().map(|c| c.log.as_str()).unwrap_or("info"), true);
    // Listener first: the function's init code may call it as soon as it starts.
    let port = config.as_ref().map(|c| c.port).unwrap_or(crate::config::DEFAULT_PORT);
    let listener = server::bind(port).await;

    // SHUTDOWN sets how long to drain; both the listener and the event loop watch it.
    let (stop, stopped) = watch::channel(None::<Duration>);
    let limits = config.as_ref().map(|c| c.limits).unwrap_or_default();
    let (drain_timeout, invoke_budget) = (limits.drain_timeout, limits.invoke_budget);
    let stop = Arc::new(stop);
    let on_event = {
        let stop = stop.clone();
        let broker: Arc<std::sync::OnceLock<Arc<Broker>>> = Arc::new(std::sync::OnceLock::new());
        (broker.clone(), move |event: LambdaEvent| {
            let (stop, broker) = (stop.clone(), broker.clone());
            async move {
                match event.next {
                    NextEvent::Invoke(invoke) => {
                        if let Some(b) = broker.get() {
                            b.begin_invocation(&invoke.request_id, invoke.deadline_ms);
                            // The previous invocations' metrics, before Lambda may freeze us.
                            b.metrics().flush();
                            if b.on_invoke(invoke_budget).await == InvokeWork::Continuing {
                                tracing::debug!(budget = ?invoke_budget, "renewals go on in the background");
                            }
                        }
                    }
                    NextEvent::Shutdown(e) => {
                        // Lambda allows external extensions 2 s in all; keep a margin to exit.
                        let left = Duration::from_millis(e.deadline_ms)
                            .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
                        let drain = drain_timeout.min(left.saturating_sub(EXIT_MARGIN)).min(MAX_SHUTDOWN_DRAIN);
                        tracing::info!(reason = %e.shutdown_reason, ?drain, "shutting down");
                        let _ = stop.send(Some(drain));
                    }
                }
                Ok::<(), BoxError>(())
            }
        })
    };
    let (broker_cell, handler) = on_event;
    let registered = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn(handler))
        .register()
        .await
        .map_err(ExtensionError::Api)?;

    let started = async {
        let config = config?;
        let listener = listener.map_err(|source| StartError::Listen { port, source })?;
        let store = Arc::new(SecretsManagerStore::from_lambda_env().ok_or(StartError::NoAwsEnvironment)?);
        let mut settings = BrokerSettings::from(&config);
        settings.aws = crate::google::federation::AwsIdentity::from_lambda_env();
        let broker = Broker::new(&settings, store)?;
        Ok::<_, StartError>((Arc::new(broker), listener))
    }
    .await;
    let (broker, listener) = match started {
        Ok(parts) => parts,
        Err(e) => {
            tracing::error!(error = %e, "vertex-broker cannot start");
            report_init_error(&registered.extension_id, e.error_type(), &e.to_string()).await;
            return Err(e.into());
        }
    };
    let _ = broker_cell.set(broker.clone());
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.warm_up().await }
    });
    // As in `serve`: SIGHUP re-reads the secrets, SIGTERM/SIGINT drain and stop (Lambda itself
    // stops extensions with SHUTDOWN).
    if let Ok(mut signals) = Signals::install() {
        let (broker, stop) = (broker.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                match signals.next().await {
                    Signal::Reload => broker.reload_all().await,
                    Signal::Stop => {
                        let _ = stop.send(Some(drain_timeout.min(MAX_SHUTDOWN_DRAIN)));
                    }
                }
            }
        });
    }
    let until_shutdown = |mut rx: watch::Receiver<Option<Duration>>| async move {
        match rx.wait_for(Option::is_some).await {
            Ok(drain) => drain.unwrap_or_default(),
            Err(_) => Duration::ZERO,
        }
    };
    let serving = tokio::spawn(server::serve(broker.clone(), listener, until_shutdown(stopped.clone())));
    tokio::select! {
        r = registered.run() => r.map_err(ExtensionError::Api)?,
        _ = until_shutdown(stopped) => {}
    }
    // The listener drains requests in flight (bounded by the SHUTDOWN deadline), then returns.
    let _ = serving.await;
    broker.metrics().flush();
    Ok(())
}

async fn report_init_error(extension_id: &str, kind: &str, message: &str) {
    let request = lambda_extension::requests::init_error(
        extension_id,
        kind,
        Some(lambda_extension::requests::ErrorRequest {
            error_message: message,
            error_type: kind,
            stack_trace: vec![],
        }),
    );
    let client = match lambda_runtime_api_client::Client::builder().build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot reach the Extensions API"),
    };
    if let Ok(request) = request {
        if let Err(e) = client.call(request).await {
            tracing::error!(error = %e, "could not report the init error");
        }
    }
}
